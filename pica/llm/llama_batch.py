"""Scoring every continuation of one prompt in one llama.cpp decode.

The context has several sequences over one unified KV cache, so a sequence can share the
prompt's cells (``llama_memory_seq_cp`` tags them with its id; nothing is copied). One batch holds
each continuation's tokens but its last in a sequence of its own, at the positions after the
prompt (first tokens are scored from the prompt's own logits). Logits are requested only there,
and each needed position's log-softmax normaliser is computed once, in float32, and read only at
the tokens the continuations need (Gemma's vocabulary has 262,144 words).

These are private handles of llama-cpp-python (``Llama._ctx``, ``Llama._batch``,
``Llama.context_params``, ``Llama._stack``, ``internals.LlamaContext``);
tests/test_llama_cpp_api.py guards them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numpy as np

from pica.errors import BackendError

# Sequences of the local backend's context: the prompt's own and 15 continuations per decode
# (greedy answers plus 8 neighbour answers fit; more take one decode per 15).
SCORING_SEQUENCES = 16


def sequences(llm, n_seq: int) -> None:
    """Give the ``llama_cpp.Llama`` ``llm`` a context of ``n_seq`` sequences over one unified KV
    cache (llama-cpp-python builds single-sequence contexts and has no option for it).

    The context is rebuilt with the same parameters otherwise, before anything is evaluated; a
    single sequence's numerics do not change (tests/test_llama_cpp_api.py checks).

    Raises:
        ValueError: llama.cpp cannot create the context.
    """
    from llama_cpp import _internals

    params = llm.context_params
    if params.n_seq_max >= n_seq:
        return
    params.n_seq_max = n_seq
    params.kv_unified = True
    llm._ctx.close()  # free the single-sequence context before allocating its replacement
    context = _internals.LlamaContext(model=llm._model, params=params, verbose=llm.verbose)
    llm._ctx = llm._stack.enter_context(contextlib.closing(context))


def _normalised(ptr, n_vocab: int) -> tuple[np.ndarray, float]:
    """The logits at ``ptr`` (a float32 view, not a copy) and their log-sum-exp, in float32."""
    logits = np.ctypeslib.as_array(ptr, shape=(n_vocab,))
    top = logits.max()
    return logits, float(top) + float(np.log(np.exp(logits - top).sum(dtype=np.float32)))


def _groups(lengths: dict[int, int], n_seq: int, room: int) -> list[list[int]]:
    """Continuations (index -> tokens evaluated) in decode groups of at most ``n_seq`` sequences
    and ``room`` batch tokens and KV cells, in order.

    Raises:
        BackendError: one continuation alone does not fit.
    """
    groups: list[list[int]] = []
    used = room
    for i, n in lengths.items():
        if n > room:
            raise BackendError("prompt and candidate exceed the context or the batch of the model")
        if used + n > room or len(groups[-1]) >= n_seq:
            groups.append([])
            used = 0
        groups[-1].append(i)
        used += n
    return groups


def score_in_one_batch(llm, base: Sequence[int], conts: Sequence[Sequence[int]],
                       first: np.ndarray) -> list[tuple[float, int]]:
    """Summed log-prob and token count of each continuation's tokens after the prompt ``base``.

    Args:
        llm: The ``llama_cpp.Llama`` whose cache holds ``base`` in sequence 0 (``Llama.n_tokens``
            says so) and nothing in any other sequence.
        base: The prompt's tokens.
        conts: Each continuation's tokens (an empty one scores ``(0.0, 0)``).
        first: The log-probs after ``base`` (its first tokens' scores).

    Returns:
        ``(summed log-prob, len(tokens))`` per continuation. The cache then holds ``base`` in
        sequence 0 and nothing else.

    Raises:
        BackendError: the prompt and a continuation do not fit the context or batch; the decode
            failed.
    """
    import llama_cpp

    ctx, batch = llm._ctx, llm._batch.batch
    n_vocab, n_seq = llm.n_vocab(), llama_cpp.llama_n_seq_max(ctx.ctx)
    totals = [float(first[t[0]]) if t else 0.0 for t in conts]
    rest = {i: len(t) - 1 for i, t in enumerate(conts) if len(t) > 1}
    try:
        for group in _groups(rest, n_seq - 1, min(llm.n_batch, llm.n_ctx() - len(base))):
            k, rows = 0, {}
            for s, i in enumerate(group, start=1):
                ctx.kv_cache_seq_cp(0, s, -1, -1)  # shares the prompt's cells
                rows[i] = k
                for j, token in enumerate(conts[i][:-1]):
                    k = _put(batch, k, token, len(base) + j, s)
            batch.n_tokens = k
            try:
                ctx.decode(llm._batch)
            except RuntimeError as e:
                raise BackendError(f"llama.cpp could not score the candidates: {e}") from e
            for i, row in rows.items():
                for j, token in enumerate(conts[i][1:]):
                    logits, norm = _normalised(llama_cpp.llama_get_logits_ith(ctx.ctx, row + j), n_vocab)
                    totals[i] += float(logits[token]) - norm
            for s in range(1, len(group) + 1):
                ctx.kv_cache_seq_rm(s, -1, -1)
    finally:  # whatever failed, no sequence but the prompt's is left
        for s in range(1, n_seq):
            ctx.kv_cache_seq_rm(s, -1, -1)
    return [(total, len(t)) for total, t in zip(totals, conts)]


def _put(batch, k: int, token: int, pos: int, seq: int) -> int:
    """Write one token of sequence ``seq`` with its logits requested at batch row ``k``; the next
    row."""
    batch.token[k] = token
    batch.pos[k] = pos
    batch.n_seq_id[k] = 1
    batch.seq_id[k][0] = seq
    batch.logits[k] = True
    return k + 1
