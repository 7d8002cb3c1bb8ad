"""The llama-cpp-python internals pica relies on, checked loudly.

pica's llama.cpp backend uses a few private handles of llama-cpp-python (the KV cache of the
context, the context's parameters and batch for multi-sequence scoring, the model's vocab for
end-of-generation tokens). pyproject.toml bounds the package to the
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
        ("Llama._ctx.kv_cache_seq_cp", callable(getattr(getattr(llm, "_ctx", None), "kv_cache_seq_cp", None))),
        ("Llama._batch.batch", all(hasattr(getattr(getattr(llm, "_batch", None), "batch", None), f)
                                   for f in ("token", "pos", "n_seq_id", "seq_id", "logits", "n_tokens"))),
        ("Llama.context_params.n_seq_max", hasattr(getattr(llm, "context_params", None), "n_seq_max")),
        ("Llama.context_params.kv_unified", hasattr(getattr(llm, "context_params", None), "kv_unified")),
        ("Llama._stack.enter_context", callable(getattr(getattr(llm, "_stack", None), "enter_context", None))),
        ("internals.LlamaContext", callable(getattr(llama_cpp._internals, "LlamaContext", None))),
        ("llama_cpp.llama_n_seq_max", callable(getattr(llama_cpp, "llama_n_seq_max", None))),
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


def test_the_backend_context_has_its_scoring_sequences(gemma):
    import llama_cpp

    from pica.llm.llama_batch import SCORING_SEQUENCES

    assert llama_cpp.llama_n_seq_max(gemma.llm.ctx) == SCORING_SEQUENCES
    assert gemma.llm.context_params.kv_unified


def test_more_sequences_leave_one_sequence_numerics_unchanged(gemma, gemma_path):
    """The rebuilt multi-sequence context gives the logits of llama-cpp-python's own
    single-sequence context, bit for bit: greedy answers and :meth:`score` are unchanged."""
    import llama_cpp

    plain = llama_cpp.Llama(model_path=gemma_path, n_ctx=gemma.n_ctx, n_batch=512, n_ubatch=512,
                            n_threads=gemma.llm.n_threads, n_threads_batch=gemma.llm.n_threads_batch,
                            n_gpu_layers=gemma.n_gpu_layers, logits_all=False, verbose=False)
    tokens = gemma.tokenize("Q: What colour is the sky on a clear day?\nA:")
    try:
        want = []
        for llm in (plain, gemma.llm):
            llm.reset()
            llm._ctx.kv_cache_seq_rm(-1, 0, -1)
            llm.eval(tokens)
            logits = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
            want.append([logits[i] for i in range(0, gemma.n_vocab, 997)])
        assert want[0] == want[1]
    finally:
        plain.close()
