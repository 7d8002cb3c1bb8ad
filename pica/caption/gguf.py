"""A local GGUF vision-language model as captioner, torch-free: ``--captioner gguf:PATH_OR_HF_ID
--mmproj PATH`` runs the model and its multimodal projector in-process through llama-cpp-python's
multimodal chat handlers (``MTMDChatHandler`` by default: the model's own chat template, any model
libmtmd supports; LLaVA 1.5's prompt format for a GGUF without a chat template; or a named handler
such as ``qwen2.5-vl``, ``llava-1.5``, ``moondream``).

The request is the same OpenAI-style message list a served model gets (:mod:`pica.caption.vlm`).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from pica.caption.vlm import DEFAULT_CAPTION_TOKENS, VisionChatCaptioner, vlm_prompt
from pica.config import DEFAULT_CAPTION_MAX_SIDE as DEFAULT_MAX_SIDE
from pica.errors import BackendError, InputError, ModelLoadError
from pica.util.llama import gpu_layers, resolve_gguf, silence_llama_logs

# Handler names -> llama_cpp.llama_chat_format classes (0.3.x). ``auto``: MTMDChatHandler (the
# model's own chat template) when the GGUF has a tokenizer.chat_template, else LLaVA 1.5's format.
HANDLERS = {
    "auto": "MTMDChatHandler", "mtmd": "MTMDChatHandler", "llava-1.5": "Llava15ChatHandler",
    "llava-1.6": "Llava16ChatHandler",
    "qwen2.5-vl": "Qwen25VLChatHandler", "moondream": "MoondreamChatHandler",
    "minicpm-v-2.6": "MiniCPMv26ChatHandler", "nanollava": "NanoLlavaChatHandler",
}
REGISTER = {"captioner": {"gguf": "GGUFCaptioner"}}
MMPROJ_HINT = ("pass --mmproj FILE: the vision projector GGUF published beside the model"
               " (often named mmproj-*.gguf)")


class GGUFCaptioner(VisionChatCaptioner):
    """Captions from a GGUF vision-language model and its mmproj, run by llama.cpp.

    Args:
        model: A ``.gguf`` path or ``ORG/REPO:FILE.gguf`` on the Hugging Face hub.
        mmproj: The multimodal projector: a ``.gguf`` path or ``ORG/REPO:FILE.gguf``.
        question_aware: Ask the question-aware instruction with each question.
        prompt: Replaces the template's question-aware instruction (with ``{question}``).
        max_side: Longest image side handed to the model, in pixels.
        max_tokens: Caption length limit in tokens.
        n_ctx: Context window (image tokens included).
        threads: CPU threads (``None`` = all cores).
        n_gpu_layers: Layers on the GPU (``None`` = all with a GPU build, else 0).
        handler: A :data:`HANDLERS` name; ``auto`` uses the model's own chat template, or LLaVA
            1.5's format when the GGUF has none.

    Raises:
        InputError: no ``--mmproj``, an unknown handler.
        ModelLoadError: a file is missing, or llama.cpp cannot load the model or projector.
    """

    settings_fields = ("mmproj", "question_aware", "caption_prompt", "caption_max_side", "threads",
                       "n_gpu_layers")

    @classmethod
    def from_settings(cls, name: str, settings) -> GGUFCaptioner:
        """The GGUF model ``name`` with the settings' ``mmproj``, question-aware mode, prompt,
        image size, threads and GPU layers."""
        s = settings
        return cls(name, mmproj=s.mmproj, question_aware=s.question_aware,
                   prompt=vlm_prompt(s.caption_prompt), max_side=s.caption_max_side,
                   threads=s.threads, n_gpu_layers=s.n_gpu_layers)

    def __init__(self, model: str, mmproj: str | None = None, question_aware: bool = False,
                 prompt: str | None = None, max_side: int = DEFAULT_MAX_SIDE,
                 max_tokens: int = DEFAULT_CAPTION_TOKENS, n_ctx: int = 4096,
                 threads: int | None = None, n_gpu_layers: int | None = None,
                 handler: str = "auto") -> None:
        super().__init__(question_aware, prompt, max_side, concurrency=1)
        if not mmproj:
            raise InputError(f"--captioner gguf:MODEL needs its vision projector; {MMPROJ_HINT}")
        if handler not in HANDLERS:
            raise InputError(f"GGUF chat handler '{handler}' is unknown; choose one of:"
                             f" {', '.join(HANDLERS)}")
        model_path, projector = resolve_gguf(model), resolve_gguf(mmproj)
        self.max_tokens = int(max_tokens)
        self.id = f"gguf:{model_path.name}+{projector.name}"
        self._lock = threading.Lock()  # one llama.cpp context: one caption at a time
        self._llama = self._load(model_path, projector, handler, n_ctx, threads, gpu_layers(n_gpu_layers))

    @staticmethod
    def _load(model: Path, mmproj: Path, handler: str, n_ctx: int, threads: int | None,
              n_gpu_layers: int) -> Any:
        try:
            import llama_cpp
            from llama_cpp import llama_chat_format
        except ImportError as e:
            raise ModelLoadError("gguf captioners need llama-cpp-python; pip install llama-cpp-python"
                                 ) from e
        silence_llama_logs()
        _silence_mtmd_logs()
        cls = getattr(llama_chat_format, HANDLERS[handler], None)
        if cls is None:
            raise ModelLoadError(f"this llama-cpp-python ({llama_cpp.__version__}) has no"
                                 f" {HANDLERS[handler]}; upgrade it or pick another --chat-handler")
        try:
            chat_handler = cls(clip_model_path=str(mmproj), verbose=False)
            llama = llama_cpp.Llama(model_path=str(model), chat_handler=chat_handler, n_ctx=n_ctx,
                                    n_threads=threads, n_gpu_layers=n_gpu_layers, verbose=False)
            if handler == "auto" and "tokenizer.chat_template" not in (llama.metadata or {}):
                llama.chat_handler = llama_chat_format.Llava15ChatHandler(clip_model_path=str(mmproj),
                                                                         verbose=False)
        except (ValueError, RuntimeError, OSError) as e:
            raise ModelLoadError(f"llama.cpp cannot load {model.name} with {mmproj.name}:"
                                 f" {' '.join(str(e).split())}") from None
        return llama

    def chat(self, messages: list[dict[str, Any]]) -> str:
        """Greedy reply of the local model (its chat handler embeds the image first).

        Raises:
            BackendError: llama.cpp failed on the image (e.g. the projector does not fit the model).
        """
        with self._lock:
            try:
                out = self._llama.create_chat_completion(messages=messages, max_tokens=self.max_tokens,
                                                         temperature=0.0)
            except (ValueError, RuntimeError) as e:
                raise BackendError(f"{self.id} failed on an image: {' '.join(str(e).split())}") from None
        return str(((out.get("choices") or [{}])[0].get("message") or {}).get("content") or "")


def _silence_mtmd_logs() -> None:
    """Route libmtmd's log lines (it logs every image it encodes) where llama.cpp's go."""
    import ctypes

    drop = getattr(silence_llama_logs, "callback", None)
    if drop is None:  # PICA_DEBUG=1 keeps the logs
        return
    try:
        from llama_cpp import mtmd_cpp

        mtmd_cpp.mtmd_log_set(drop, ctypes.c_void_p(0))
        mtmd_cpp.mtmd_helper_log_set(drop, ctypes.c_void_p(0))
    except (ImportError, AttributeError, OSError):  # an older build: logs stay
        pass
