"""Local GGUF models through llama-cpp-python (the default backend, fully offline).

Decoding is a small greedy loop over llama.cpp's logits instead of ``create_completion`` so that
(a) the summed log-prob needs only the last position's logits (``logits_all=True`` would project
every prompt token onto Gemma's 262k-word vocabulary), and (b) the KV cache of the longest common
prefix with the previous prompt is kept, which makes ensembles and candidate scoring cheap.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from pica.errors import BackendError, ModelLoadError
from pica.llm.base import Backend, cut_at_stop
from pica.llm.llama_batch import SCORING_SEQUENCES, score_in_one_batch, sequences
from pica.types import Completion
from pica.util.llama import PACKAGED_MODELS, gpu_layers, resolve_gguf, silence_llama_logs

__all__ = ["PACKAGED_MODELS", "LlamaCppBackend", "gpu_layers", "resolve_gguf"]

REGISTER = {"backend": {"llama-cpp": "LlamaCppBackend"}}


class LlamaCppBackend(Backend):
    """A GGUF model run in-process by llama.cpp.

    Args:
        model: Anything :func:`resolve_gguf` accepts.
        n_ctx: Context window in tokens.
        threads: CPU threads (``None`` = all cores).
        n_batch: Prompt tokens evaluated per llama.cpp batch.
        flash_attn: llama.cpp's flash attention (measured slower on pica's short prompts on CPU).
        n_gpu_layers: Layers offloaded to the GPU (-1 = all, 0 = none); ``None`` = all when
            llama-cpp-python was built with GPU support (CUDA, Metal, ...), else 0.

    Raises:
        InputError: GPU layers asked of a llama-cpp-python built without GPU support.
        ModelLoadError: the model cannot be found or loaded.
    """

    def __init__(self, model: str = "gemma3-270m", n_ctx: int = 2048,
                 threads: int | None = None, n_batch: int = 512, flash_attn: bool = False,
                 n_gpu_layers: int | None = None) -> None:
        import llama_cpp

        self._llama_cpp = llama_cpp
        silence_llama_logs()
        self.n_gpu_layers = gpu_layers(n_gpu_layers)
        path = resolve_gguf(model)
        threads = threads or os.cpu_count() or 1
        try:
            self.llm = llama_cpp.Llama(
                model_path=str(path), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads,
                n_batch=n_batch, n_ubatch=n_batch, flash_attn=flash_attn, logits_all=False, verbose=False,
                n_gpu_layers=self.n_gpu_layers,
            )
            sequences(self.llm, SCORING_SEQUENCES)
        except (ValueError, RuntimeError) as e:
            raise ModelLoadError(f"llama.cpp could not load {path}: {e}") from e
        self.id = f"llama-cpp:{model if model in PACKAGED_MODELS else path.name}"
        self.n_ctx = self.llm.n_ctx()
        self.n_vocab = self.llm.n_vocab()
        self.prompt_tokens_evaluated = 0
        # Log-probs after each prompt of the last complete() call (its first greedy step).
        self._prompt_end: dict[tuple[int, ...], np.ndarray] = {}

    settings_fields = ("n_ctx", "threads", "n_gpu_layers")

    @classmethod
    def from_settings(cls, model: str, settings) -> LlamaCppBackend:
        """A local model with the settings' context window, threads and GPU layers."""
        return cls(model, n_ctx=settings.n_ctx, threads=settings.threads,
                   n_gpu_layers=settings.n_gpu_layers)

    def tokenize(self, text: str) -> list[int]:
        """Token ids of ``text`` with the model's BOS token."""
        return self.llm.tokenize(text.encode("utf-8"), add_bos=True)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text))

    def prefill(self, tokens: list[int]) -> None:
        """Make the KV cache hold exactly ``tokens``, reusing the longest cached prefix."""
        if len(tokens) > self.n_ctx:
            raise BackendError(f"prompt of {len(tokens)} tokens exceeds the context of {self.n_ctx}")
        cached = self.llm.input_ids[: self.llm.n_tokens]
        n = min(len(cached), len(tokens))
        differ = np.nonzero(cached[:n] != np.asarray(tokens[:n]))[0]
        prefix = int(differ[0]) if differ.size else n
        prefix = min(prefix, len(tokens) - 1)  # always evaluate >= 1 token to get fresh logits
        if prefix > 0 and self.llm._ctx.kv_cache_seq_rm(-1, prefix, -1):
            self.llm.n_tokens = prefix
        else:
            self._reset()
            prefix = 0
        self.llm.eval(tokens[prefix:])
        self.prompt_tokens_evaluated += len(tokens) - prefix

    def _last_logprobs(self) -> np.ndarray:
        return self._logprobs_at(-1)

    def _complete_one(self, prompt: str, max_tokens: int, stop: Sequence[str]) -> Completion:
        tokens = self.tokenize(prompt)
        self.prefill(tokens)
        generated: list[int] = []
        logprob = 0.0
        text = ""
        for step in range(max_tokens):
            logprobs = self._last_logprobs()
            if step == 0:  # what score_candidates of this prompt needs for first tokens
                self._prompt_end[tuple(tokens)] = logprobs
            token = int(np.argmax(logprobs))
            if self._llama_cpp.llama_vocab_is_eog(self.llm._model.vocab, token):
                break
            generated.append(token)
            new_text = self.llm.detokenize(generated).decode("utf-8", errors="ignore")
            new_text, stopped = cut_at_stop(new_text, stop)
            if len(new_text) > len(text):  # the token added answer text (not only the stop)
                logprob += float(logprobs[token])
            text = new_text
            if stopped:
                break
            self.llm.eval([token])
        return Completion(text=text, logprob=logprob, prompt_tokens=len(tokens),
                          completion_tokens=len(generated))

    def complete(self, prompts: Sequence[str], max_tokens: int = 5,
                 stop: Sequence[str] = ("\n",)) -> list[Completion]:
        """Greedy completions; the prompts of one call share their common prefixes in the KV cache.

        Each call starts from a cache that holds at most the BOS token: reusing more across calls
        would make results depend (numerically) on what came before, and a resumed run must
        reproduce an uninterrupted one.
        """
        self._reset()
        self._prompt_end = {}
        return [self._complete_one(p, max_tokens, stop) for p in prompts]

    def score(self, prompt: str, continuations: Sequence[str]) -> list[float]:
        """Summed log-prob of each continuation after ``prompt``; the prompt is evaluated once
        (after the same reset as in :meth:`complete`)."""
        self._reset()
        base = self.tokenize(prompt)
        scores = []
        for cont in continuations:
            self.prefill(base)
            total = 0.0
            for token in self._continuation_tokens(prompt, base, cont):
                total += float(self._last_logprobs()[token])
                self.llm.eval([token])
            scores.append(total)
        return scores

    def _continuation_tokens(self, prompt: str, base: list[int], cont: str) -> list[int]:
        full = self.tokenize(prompt + cont)
        if full[: len(base)] != base:  # tokenization merged across the boundary
            return self.llm.tokenize(cont.encode("utf-8"), add_bos=False)
        return full[len(base):]

    def score_candidates(self, prompt: str, continuations: Sequence[str],
                         reset: bool = False) -> list[tuple[float, int]]:
        """Summed log-prob and token count of each continuation, all in one llama.cpp decode.

        The prompt comes from the KV cache :meth:`complete` left when called right after it for
        the same prompt, as the pipeline does, and the continuations' first tokens are read from
        the log-probs of its first greedy step (results then depend on that question alone, so
        resumed runs reproduce); ``reset`` (or another prompt) evaluates the prompt afresh after
        the BOS-only cache, as :meth:`score` does. One batch then holds each continuation's tokens
        but its last, in a sequence of its own that shares the prompt's cache
        (:func:`pica.llm.llama_batch.score_in_one_batch`; more continuations than the context has
        sequences take one decode per group). The cache holds the prompt alone afterwards.

        First tokens equal :meth:`score`'s. Later tokens go through llama.cpp's batched CPU
        kernels, whose rounding differs from one token at a time: measured up to ~0.25 nats on
        this small quantized model (on 60 OK-VQA dev questions vs one decode per candidate: mean 0.06,
        p99 0.34, max 0.54; tests/test_chooser.py holds the tolerance).

        Raises:
            BackendError: the prompt and the continuations do not fit the context.
        """
        if reset:
            self._reset()
            self._prompt_end = {}
        base = self.tokenize(prompt)
        first = self._prompt_end.get(tuple(base))
        if first is None:
            self.prefill(base)
            first = self._last_logprobs()
        else:
            self._keep(base)
        conts = [self._continuation_tokens(prompt, base, c) for c in continuations]
        return score_in_one_batch(self.llm, base, conts, first)

    def _keep(self, tokens: list[int]) -> None:
        """Make the KV cache hold exactly ``tokens`` (possibly none), reusing the cached prefix."""
        llm = self.llm
        cached = llm.input_ids[: llm.n_tokens]
        n = min(len(cached), len(tokens))
        differ = np.nonzero(cached[:n] != np.asarray(tokens[:n], dtype=cached.dtype))[0]
        prefix = int(differ[0]) if differ.size else n
        if prefix == 0 or not llm._ctx.kv_cache_seq_rm(0, prefix, -1):
            llm.reset()
            llm._ctx.kv_cache_seq_rm(-1, 0, -1)
            prefix = 0
        llm.n_tokens = prefix
        if tokens[prefix:]:  # cached tokens but the prompt's own (an ensemble's first prompt)
            llm.eval(tokens[prefix:])
            self.prompt_tokens_evaluated += len(tokens) - prefix

    def _logprobs_at(self, i: int) -> np.ndarray:
        ptr = self._llama_cpp.llama_get_logits_ith(self.llm.ctx, i)
        logits = np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).astype(np.float64)
        top = logits.max()
        return logits - (top + np.log(np.exp(logits - top).sum()))

    def _reset(self) -> None:
        """Forget every cached prompt token but a leading BOS.

        Keeping the BOS matters for numerics only: llama.cpp's CPU kernels give batch-dependent
        logits, and a prompt evaluated after a cached BOS goes through the same batches as in
        llama.cpp's server, whose cache keeps the prefix shared with the previous prompt.
        """
        llm = self.llm
        if llm.n_tokens > 1 and llm.input_ids[0] == llm.token_bos() and llm._ctx.kv_cache_seq_rm(-1, 1, -1):
            llm.n_tokens = 1
            return
        llm.reset()
        llm._ctx.kv_cache_seq_rm(-1, 0, -1)

    def close(self) -> None:
        self.llm.close() if hasattr(self.llm, "close") else None
