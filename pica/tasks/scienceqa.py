"""ScienceQA (Lu et al., 2022): the caption + context few-shot prompt with chain-of-thought, and
how an answer is read from what the model writes.

Prompts follow ``models/base_prompt.py`` of github.com/lupantech/ScienceQA: every shot is
``create_one_example`` of a solved problem (the formats are package data,
``pica/templates/scienceqa/formats.toml``), the test problem ends at ``Answer:``, the shots and the
test item are joined by a blank line. The context is the hint and the caption joined by a space
(``N/A`` when both are empty); options read ``(A) x (B) y``.

The answer is the letter of ``The answer is X.`` when the output holds exactly one such sentence
naming one of the problem's options (``models/run_gpt3.py``). Where it holds none, the original
picks an option at random; pica instead scores every option's ``The answer is X.`` after the same
prompt (pica's multiple-choice scoring, :func:`pica.tasks.multiple_choice.rank_choices`) and records
that it did (``fallback``); a backend that cannot score maps the output to the nearest option by
text similarity. With ``--mc-method score`` the options are scored without generating at all
(``--mc-score sum`` or ``calibrated``: minus the score under the same prompt with the question
and context ``N/A``).
"""

from __future__ import annotations

import functools
import re
import time
import tomllib
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

import numpy as np

from pica.errors import InputError
from pica.tasks.base import Prepared, Tools
from pica.tasks.multiple_choice import map_to_choice, rank_choices
from pica.types import Answer, Example

OPTIONS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
ANSWER = re.compile(r"The answer is ([A-Z]).")  # as run_gpt3.py has it: '.' is any character
# Tokens generated per answer: the answer alone, or with a lecture and an explanation (the
# original's max_tokens 512).
ANSWER_TOKENS = 16
EXPLAINED_TOKENS = 512
STOP = ("\n",)  # run_gpt3.py stops at the first newline


@functools.cache
def formats() -> dict[str, Any]:
    """The prompt formats (package data): ``formats`` (names), ``input``, ``output``, ``test_output``."""
    text = (resources.files("pica") / "templates" / "scienceqa" / "formats.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def check_format(name: str) -> str:
    """``name`` if it is one of the paper's prompt formats.

    Raises:
        InputError: naming the formats there are.
    """
    if name not in formats()["formats"]:
        raise InputError(f"--prompt-format '{name}' is not a ScienceQA format; choose one of:"
                         f" {', '.join(formats()['formats'])}")
    return name


def context_text(hint: str, caption: str | None) -> str:
    """The problem's context: hint and caption joined by a space, ``N/A`` when both are empty."""
    context = " ".join([hint or "", caption or ""]).strip()
    return context or "N/A"


def choice_text(choices: Sequence[str]) -> str:
    """``(A) x (B) y``."""
    return " ".join(f"({OPTIONS[i]}) {c}" for i, c in enumerate(choices))


def one_example(fmt: str, *, question: str, context: str, choices: Sequence[str], answer: int | None,
                lecture: str = "", solution: str = "") -> str:
    """One shot (``answer`` given) or the test item (``answer`` ``None``) in format ``fmt``
    (``create_one_example``: newlines of lecture and solution written as ``\\n``, double spaces
    made single, a trailing empty ``BECAUSE:`` dropped)."""
    data = formats()
    input_format, output_format = check_format(fmt).split("-")
    fields = {"question": question, "context": context, "choice": choice_text(choices),
              "lecture": lecture.replace("\n", "\\n"), "solution": solution.replace("\n", "\\n"),
              "answer": OPTIONS[answer] if answer is not None else ""}
    text = data["input"][input_format].format(**fields)
    text += data["test_output"] if answer is None else data["output"][output_format].format(**fields)
    text = text.replace("  ", " ").strip()
    if text.endswith("BECAUSE:"):
        text = text.replace("BECAUSE:", "").strip()
    return text


def example_text(fmt: str, ex: Example) -> str:
    """A solved example of the index as a shot."""
    meta = ex.meta
    return one_example(fmt, question=ex.question, context=context_text(meta.get("hint", ""), ex.caption),
                       choices=ex.choices, answer=ex.correct_choice_idx,
                       lecture=meta.get("lecture", ""), solution=meta.get("solution", ""))


def build_prompt(fmt: str, question: str, context: str, choices: Sequence[str],
                 shots: Sequence[Example], fits=None) -> tuple[str, list[Example]]:
    """The prompt: the shots (most similar last, next to the test item), then the test item, joined
    by blank lines.

    Args:
        fmt: The prompt format.
        question, context, choices: The test problem.
        shots: Its examples, most similar first.
        fits: ``text -> bool``: whether a prompt leaves room for the answer; the least similar
            shots are left out until it does.

    Returns:
        ``(prompt, the shots shown, most similar first)``.
    """
    test = one_example(fmt, question=question, context=context, choices=choices, answer=None)
    shown = list(shots)
    while True:
        text = "\n\n".join([*(example_text(fmt, ex) for ex in reversed(shown)), test])
        if not shown or fits is None or fits(text):
            return text, shown
        shown.pop()


def parse_answer(output: str, n_choices: int) -> int | None:
    """The option index of ``The answer is X.`` in ``output``: ``None`` unless exactly one such
    sentence names one of the ``n_choices`` options (``models/run_gpt3.py``)."""
    found = ANSWER.findall(output)
    if len(found) != 1 or found[0] not in OPTIONS[:n_choices]:
        return None
    return OPTIONS.index(found[0])


def rationale_of(output: str, fmt: str) -> str:
    """The explanation in an output: after ``BECAUSE:`` (answer first), else before
    ``The answer is`` (explanation first); ``""`` for answer-only formats."""
    output_format = fmt.split("-")[1]
    if output_format == "A":
        return ""
    if output_format.startswith("A"):
        return output.split("BECAUSE:", 1)[1].strip() if "BECAUSE:" in output else ""
    head = output.split("The answer is", 1)[0]
    return head.strip() if "The answer is" in output else ""


def answer_tokens(fmt: str) -> int:
    """Tokens to generate: a few for the answer alone, the original's 512 with an explanation."""
    return ANSWER_TOKENS if fmt.split("-")[1] == "A" else EXPLAINED_TOKENS


def respond(tools: Tools, item: Prepared) -> Answer:
    """Answer one prepared ScienceQA problem (``item.question``) in ``tools.prompt_format``, with
    the first ``tools.shots`` of its hits as shots (most similar first).

    Args:
        tools: The backend, the text embedder, the index's examples (``tools.mc_method``:
            ``score`` scores the options without generating; ``auto``/``generate`` generate and
            parse).
        item: The problem after captioning and retrieval (``item.caption``: its caption).

    Raises:
        InputError: ``--mc-method score`` with a backend that cannot score text; shots that are
            not solved multiple-choice problems (an index of another dataset).
        BackendError: the LLM failed.
    """
    q = item.question
    t0 = time.perf_counter()
    fmt = tools.prompt_format
    shots = [tools.example(h.row) for h in item.hits[:tools.shots]] if tools.example and item.hits else []
    unsolved = [ex.id for ex in shots if ex.correct_choice_idx is None or not ex.choices]
    if unsolved:
        raise InputError(f"index example {unsolved[0]} has no choices and answer index: ScienceQA's"
                         " prompts need an index of its problems (pica index build IDX --scienceqa"
                         " problems.json --split train), or --index none to answer zero-shot")
    backend = tools.backend
    tokens = answer_tokens(fmt)
    fits = None
    if backend.n_ctx:
        def fits(text: str) -> bool:
            return backend.count_tokens(text) + tokens <= backend.n_ctx
    hint = q.meta.get("hint", q.context)
    prompt, shown = build_prompt(fmt, q.question, context_text(hint, item.caption), q.choices, shots, fits)
    rule = tools.mc_score if tools.mc_score in ("sum", "mean", "calibrated") else "sum"
    record: dict[str, Any] = {"format": fmt, "parsed": False, "fallback": None}
    output, logprob, generating = "", None, 0.0
    if tools.mc_method == "score":
        index, scored = _score_options(tools, fmt, q, shown, prompt, rule)
        if scored is None:
            raise InputError("--mc-method score: the LLM cannot score text; use --mc-method generate")
        record.update(method="score", **scored)
    else:
        t1 = time.perf_counter()
        completion = backend.complete([prompt], max_tokens=tokens, stop=list(STOP))[0]
        generating = time.perf_counter() - t1
        output, logprob = completion.text.strip(), completion.logprob
        index = parse_answer(output, len(q.choices))
        record.update(method="generate", parsed=index is not None)
        if index is None:  # no parseable answer: pica's scoring, never a random option
            index, scored = _score_options(tools, fmt, q, shown, prompt, rule)
            if scored is not None:
                record.update(fallback="score", **scored)
            else:
                index, how = map_to_choice(output or q.question, q.choices, tools.embed_texts)
                record.update(fallback=f"similarity ({how})")
    # The LLM stage is the generation; multiple choice, the scoring of the options (if any).
    seconds = {**item.seconds, "llm": generating, "mc": time.perf_counter() - t0 - generating}
    seconds["total"] = sum(seconds.values())
    mc = {"choices": list(q.choices), "index": index, "chosen": q.choices[index],
          "letter": OPTIONS[index], "rationale": rationale_of(output, fmt), **record}
    return Answer(question_id=q.id, question=q.question, answer=q.choices[index], raw=output,
                  caption=item.caption, logprob=logprob, prompts=[prompt],
                  example_ids=[[ex.id for ex in shown]], seconds=seconds, rationale=mc["rationale"],
                  mc=mc, examples=[shown], prompt_tokens=backend.count_tokens(prompt))


def _score_options(tools: Tools, fmt: str, q, shown: Sequence[Example], prompt: str,
                   rule: str) -> tuple[int, dict[str, Any] | None]:
    """Score each option's `` The answer is X.`` after ``prompt`` by ``rule``; ``(0, None)``
    when the backend cannot score text."""
    conts = [f" The answer is {OPTIONS[i]}." for i in range(len(q.choices))]
    try:
        scored = tools.backend.score_candidates(prompt, conts, reset=True)
        prior: list[float] = []
        if rule == "calibrated":
            blank, _ = build_prompt(fmt, "N/A", "N/A", q.choices, shown)
            prior = [lp for lp, _ in tools.backend.score_candidates(blank, conts, reset=True)]
    except NotImplementedError:
        return 0, None
    scores, counts = [lp for lp, _ in scored], [n for _, n in scored]
    ranking = rank_choices(scores, counts, prior, rule)
    return int(np.argmax(ranking)), {"rule": rule, "scores": scores, "prior": prior, "ranking": ranking}


def problem_meta(meta: Mapping[str, Any]) -> dict[str, Any]:
    """What a shot shows of a problem beyond its question, choices and caption."""
    return {k: meta.get(k, "") for k in ("hint", "lecture", "solution", "grade", "subject")}
