"""Where the torch models run: ``--device`` and ``--dtype`` turned into torch objects.

torch is imported only when a spec is resolved (a captioner or open_clip model is being built),
so text-only runs never import it.
"""

from __future__ import annotations

from typing import Any

from pica.config import check_device
from pica.errors import InputError
from pica.util.hub import require

DTYPES = {"float32": "float32", "float16": "float16", "bfloat16": "bfloat16"}


def _mps_available(torch) -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(spec: str = "auto"):
    """The ``torch.device`` for ``spec``: ``auto`` (CUDA, else MPS, else CPU), ``cpu``, ``cuda``,
    ``cuda:N`` or ``mps``.

    Raises:
        InputError: a malformed spec, or a device torch cannot see (one line naming the fix,
            e.g. ``cuda requested but torch sees no GPU; use --device cpu``).
    """
    torch = require("torch", "running models on a device")
    spec = str(spec).strip().lower()
    check_device(spec)
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if _mps_available(torch) else "cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            build = "" if torch.version.cuda else " (this torch is a CPU-only build)"
            raise InputError(f"{spec} requested but torch sees no GPU{build}; use --device cpu")
        count = torch.cuda.device_count()
        _, _, number = spec.partition(":")
        if number and int(number) >= count:
            raise InputError(f"{spec} requested but torch sees {count} GPU(s) (cuda:0 to cuda:{count - 1});"
                             " use --device cuda:0")
    if spec == "mps" and not _mps_available(torch):
        raise InputError("mps requested but torch sees no Apple GPU (MPS); use --device cpu")
    return torch.device(spec)


def resolve_dtype(spec: str, device) -> Any:
    """The ``torch.dtype`` for ``spec`` on ``device``: ``auto`` is float16 on a GPU (CUDA, MPS)
    and float32 on the CPU.

    Raises:
        InputError: an unknown spec, or bfloat16 on a GPU that lacks it.
    """
    import torch

    spec = str(spec).strip().lower()
    if spec == "auto":
        return torch.float16 if device.type in ("cuda", "mps") else torch.float32
    if spec not in DTYPES:
        raise InputError(f"--dtype '{spec}' is not valid; use auto, float32, float16 or bfloat16")
    if spec == "bfloat16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise InputError(f"{device} has no bfloat16 support; use --dtype float16")
    return getattr(torch, DTYPES[spec])


def to_device(inputs: dict[str, Any], device, dtype) -> dict[str, Any]:
    """Move a batch of model inputs to ``device``; floating-point tensors also become ``dtype``
    (token ids and masks keep their integer type)."""
    moved = {}
    for name, value in inputs.items():
        if hasattr(value, "to"):
            value = value.to(device, dtype) if value.is_floating_point() else value.to(device)
        moved[name] = value
    return moved
