"""The llama-cpp-python internals pica relies on, checked loudly.

pica's llama.cpp backend uses a few private handles of llama-cpp-python (the KV cache of the
context, the model's vocab for end-of-generation tokens). pyproject.toml bounds the package to the
tested series; these tests fail with a clear message when a release moves them.
"""

from __future__ import annotations

from importlib.metadata import version

import pytest
from packaging.version import Version

pytestmark = pytest.mark.slow

TESTED = (Version("0.3.8"), Version("0.4"))  # pyproject.toml: llama-cpp-python>=0.3.8,<0.4


def test_installed_release_is_in_the_tested_range():
    installed = Version(version("llama-cpp-python"))
    assert TESTED[0] <= installed < TESTED[1], (
        f"llama-cpp-python {installed} is outside the range pica was tested with"
        f" ({TESTED[0]} <= v < {TESTED[1]}); check pica/backends/llama_cpp.py's private API use")


def test_private_handles_the_backend_uses_exist(gemma):
    import llama_cpp

    llm = gemma.llm
    missing = [name for name, ok in [
        ("Llama._ctx.kv_cache_seq_rm", callable(getattr(getattr(llm, "_ctx", None), "kv_cache_seq_rm", None))),
        ("Llama._model.vocab", getattr(getattr(llm, "_model", None), "vocab", None) is not None),
        ("Llama._ctx.decode", callable(getattr(getattr(llm, "_ctx", None), "decode", None))),
        ("Llama._batch.set_batch", callable(getattr(getattr(llm, "_batch", None), "set_batch", None))),
        ("Llama.input_ids", hasattr(llm, "input_ids")),
        ("Llama.n_tokens", hasattr(llm, "n_tokens")),
        ("llama_cpp.llama_vocab_is_eog", callable(getattr(llama_cpp, "llama_vocab_is_eog", None))),
        ("llama_cpp.llama_get_logits_ith", callable(getattr(llama_cpp, "llama_get_logits_ith", None))),
    ] if not ok]
    assert not missing, f"llama-cpp-python {llama_cpp.__version__} lacks {missing}; pica's backend needs them"


def test_kv_cache_trim_keeps_the_prompt_prefix(gemma):
    """Trimming the cache to a prefix and evaluating the rest gives the same greedy answer and
    log-prob as a fresh evaluation: what prefix reuse inside one call relies on."""
    prompt = "Q: What colour is the sky on a clear day?\nA:"
    gemma.complete(["Hello"], max_tokens=1)  # a cached BOS, whatever ran before (batch numerics)
    [first] = gemma.complete([prompt])
    [again] = gemma.complete([prompt, prompt])[1:]
    assert again.text == first.text and again.logprob == pytest.approx(first.logprob, abs=0.05)
