"""Hugging Face hub access: local path or hub id, offline mode, cache look-ups, quiet loading,
and the auto classes that load image-to-text checkpoints.

Loading a model by hub id on a machine without network must fail in seconds with a message that
says what to pass instead, not after minutes of retries.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

VISION_EXTRA_HINT = "install it with: pip install 'pica[vision]' (torch, transformers, open_clip)"


def require(module: str, purpose: str):
    """Import ``module`` for ``purpose``, or fail with one line that says how to install it.

    torch and the libraries on it are the ``vision`` extra: a text-only install (cached or given
    captions, the packaged MiniLM and Gemma) runs without them.

    Raises:
        ModelLoadError: the module is not installed.
    """
    import importlib

    from pica.errors import ModelLoadError

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ModelLoadError(f"{purpose} needs the Python package '{module.split('.')[0]}';"
                             f" {VISION_EXTRA_HINT}") from e


def quiet_transformers() -> None:
    """Silence transformers' weight-loading progress bars and advisory warnings."""
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


def looks_like_path(model: str) -> bool:
    return (
        model.startswith(("/", ".", "~"))
        or "\\" in model
        or model.count("/") > 1
        or Path(model).expanduser().exists()
    )


def hub_offline() -> bool:
    """Offline mode, read at call time (huggingface_hub reads the variable only at import)."""
    from huggingface_hub import constants

    flags = (os.environ.get("HF_HUB_OFFLINE"), os.environ.get("TRANSFORMERS_OFFLINE"))
    return constants.HF_HUB_OFFLINE or any(
        (v or "").strip().upper() in {"1", "ON", "YES", "TRUE"} for v in flags
    )


def hub_cached(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:  # invalid repo id and the like: not cached
        return False


def hub_reachable(timeout: float = 3.0) -> bool:
    """Quick TCP probe of the hub, so an offline machine fails in seconds, not after minutes of
    retries. With a proxy configured we cannot probe directly and assume it is reachable."""
    from huggingface_hub import constants

    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    url = urlparse(constants.ENDPOINT)
    try:
        with socket.create_connection((url.hostname, url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def first_line(error: Exception, limit: int = 200) -> str:
    """``TypeName: first line of the message``, cut after about ``limit`` characters at the end of
    a word, so a URL or a path is never cut in the middle."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {clip_words(text[0] if text else '', limit)}"


def clip_words(text: str, limit: int = 200) -> str:
    """``text`` up to the end of the word that passes ``limit`` characters, then " ..." (a URL or
    a path stays whole)."""
    if len(text) <= limit:
        return text
    end = text.find(" ", limit)
    return text if end < 0 else text[:end].rstrip(" ,;:'\"(") + " ..."


def auto_processor(source: str, local_only: bool):
    """Return ``(image processor or joint processor, tokenizer)``."""
    from transformers import AutoImageProcessor, AutoProcessor, AutoTokenizer

    processor = AutoProcessor.from_pretrained(source, local_files_only=local_only)
    tokenizer = getattr(processor, "tokenizer", None)
    if tokenizer is not None and hasattr(processor, "image_processor"):
        return processor, tokenizer
    # Checkpoints without a joint processor (VisionEncoderDecoder, e.g. ViT-GPT2) keep the image
    # processor and the tokenizer apart; AutoProcessor then returns only one of them.
    images = AutoImageProcessor.from_pretrained(source, local_files_only=local_only)
    return images, AutoTokenizer.from_pretrained(source, local_files_only=local_only)


def auto_model(source: str, local_only: bool, dtype):
    """Load with the first auto class that knows the architecture (image-text-to-text covers
    BLIP, BLIP-2, GIT, InstructBLIP ... in transformers 5; older versions had Vision2Seq)."""
    import transformers

    error: Exception | None = None
    for name in ("AutoModelForImageTextToText", "AutoModelForVision2Seq", "AutoModelForCausalLM"):
        auto = getattr(transformers, name, None)
        if auto is None:
            continue
        try:
            return auto.from_pretrained(source, local_files_only=local_only, dtype=dtype)
        except ValueError as e:
            if "Unrecognized configuration class" not in str(e):
                raise
            error = e
    raise ValueError(f"not an image-to-text model ({first_line(error)})")
