"""Few-shot prompts from templates kept as package data (``pica/templates/*.toml``).

Examples are shown most-similar-last (PromptCap, PICa's public code), so the example closest to the
query sits right above it. When the prompt would overflow the LLM context, examples are dropped
from the far end: the least similar ones, at the top of the prompt.
"""

from __future__ import annotations

import hashlib
import random
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from pica.answers import clean, normalize_answer
from pica.errors import ContextOverflowError, InputError, unknown_name
from pica.types import Example


@dataclass(frozen=True)
class Template:
    """A prompt format: a header, one block per example, and the query block.

    Blocks are ``str.format`` templates with ``{caption}``, ``{question}``, ``{answer}`` (examples
    only), ``{candidates}`` (templates that show answer candidates) and ``{choices}``
    (multiple-choice templates). ``rationale_header`` replaces ``header`` with ``--rationale``.
    Captions are shown one-line without a final period, then ``caption_end`` (Prophet's ``"."``).
    """

    name: str
    header: str
    example: str
    query: str
    description: str = ""
    rationale_header: str = ""
    caption_end: str = ""

    @property
    def uses_candidates(self) -> bool:
        """Whether the template shows a candidate list (Prophet-style)."""
        return "{candidates}" in self.query

    @property
    def uses_choices(self) -> bool:
        """Whether the template lists multiple-choice options (``Choices: a, b, c, d``)."""
        return "{choices}" in self.query


@dataclass(frozen=True)
class Prompt:
    """A built prompt and the ids of the examples in it, in prompt order (most similar last)."""

    text: str
    example_ids: list[str]


def list_templates() -> list[str]:
    """Names of the packaged templates."""
    folder = resources.files("pica") / "templates"
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))


def load_template(name: str) -> Template:
    """Load a packaged template by name, or a template file by path (``*.toml``).

    Raises:
        InputError: unknown name (with suggestions), missing file, or a template lacking a field.
    """
    if name.endswith(".toml"):
        path = Path(name)
        if not path.is_file():
            raise InputError(f"prompt template file not found: {path}")
        text = path.read_text(encoding="utf-8")
    else:
        if name not in list_templates():
            raise unknown_name("prompt template", name, list_templates())
        text = (resources.files("pica") / "templates" / f"{name}.toml").read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
        template = Template(name=Path(name).stem, header=data["header"], example=data["example"],
                            query=data["query"], description=data.get("description", ""),
                            rationale_header=data.get("rationale_header", ""),
                            caption_end=data.get("caption_end", ""))
        fill = dict(caption="c", question="q", answer="a", candidates="x", choices="y")
        template.example.format(**fill), template.query.format(**fill)
    except (tomllib.TOMLDecodeError, KeyError, IndexError, ValueError) as e:
        raise InputError(f"prompt template '{name}' is invalid: {type(e).__name__}: {e}") from e
    return template


def load_choices_template(name: str) -> Template:
    """The multiple-choice template for ``--template name``: the template itself when it has a
    ``{choices}`` field, else its packaged ``<name>_mc`` variant (``pica`` -> ``pica_mc``).

    Raises:
        InputError: neither exists (naming the templates that list choices).
    """
    template = load_template(name)
    if template.uses_choices:
        return template
    variant = f"{Path(name).stem}_mc"
    if variant in list_templates():
        return load_template(variant)
    with_choices = [t for t in list_templates() if load_template(t).uses_choices]
    raise InputError(f"prompt template '{name}' has no multiple-choice variant; use --template"
                     f" {' or '.join(with_choices)} or a .toml template with a {{choices}} field")


MC_EXAMPLE_CHOICES = 4
"""Choices an example without its own lists (when the query has none to match)."""


def example_choices(example: Example, others: Sequence[Example] = (),
                    n: int = MC_EXAMPLE_CHOICES) -> tuple[tuple[str, ...], int]:
    """The choices an example shows in a multiple-choice prompt, and the index of its answer.

    An example with its own choices (A-OKVQA) shows them. One without (a plain OK-VQA index) gets
    ``n`` choices: its answer and up to ``n - 1`` distractors drawn from the answers of the
    ``others`` (the prompt's other examples; never one of the example's own answers after VQA
    normalization), in an order shuffled by a generator seeded with the example's id, so the
    answer's position is uniform over examples and the same in every prompt. (Listing the
    example's own gold answers, best first, taught the model that the first choice is right.)

    Args:
        example: The example.
        others: The other examples of the prompt, distractor sources.
        n: Choices to show (the query's number of choices).

    Returns:
        ``(choices, correct)``: the texts and the index of the example's answer among them
        (``-1`` for choices of its own without a known correct one).
    """
    if example.choices:
        idx = example.correct_choice_idx
        return tuple(example.choices), -1 if idx is None else idx
    answer = clean(example.answer)
    own = {normalize_answer(a) for a in (example.answer, *example.answers)}
    pool: dict[str, str] = {}
    for other in others:
        ranked = sorted(other.answers, key=lambda a: -other.answers[a])
        for text in (other.answer, *ranked):
            norm = normalize_answer(text)
            if norm and norm not in own and clean(text):
                pool.setdefault(norm, clean(text))
    rng = random.Random(int.from_bytes(hashlib.sha256(example.id.encode("utf-8")).digest()[:8], "big"))
    distractors = rng.sample(sorted(pool.values()), min(max(0, n - 1), len(pool)))
    at = rng.randrange(len(distractors) + 1)
    return tuple(distractors[:at] + [answer] + distractors[at:]), at


def format_choices(choices: Sequence[str]) -> str:
    """``["a", "b"]`` -> ``"a, b"`` (the ``Choices:`` line of PromptCap / Prophet)."""
    return ", ".join(clean(c) for c in choices)


def example_answer_text(example: Example, *, rationale: bool, choices: Sequence[str] = (),
                        correct: int = -1) -> str:
    """What follows ``A:`` in an example block: ``choices[correct]`` in multiple-choice prompts
    (when known), else the answer; with ``rationale``, `` because <first rationale>`` too."""
    answer = choices[correct] if choices and correct >= 0 else example.answer
    if rationale and example.rationales:
        answer = f"{answer} because {clean(example.rationales[0])}"
    return answer


def build_prompt(
    template: Template,
    caption: str,
    question: str,
    examples: Sequence[Example],
    *,
    candidates: str = "",
    example_candidates: Callable[[Example], str] | None = None,
    fits: Callable[[str], bool] | None = None,
    choices: Sequence[str] = (),
    rationale: bool = False,
) -> Prompt:
    """Build one few-shot prompt.

    Args:
        template: The prompt format.
        caption: Caption of the query image.
        question: The query question.
        examples: In-context examples, most similar FIRST (as retrieval returns them); the
            prompt shows them in reverse, most similar last.
        candidates: Candidate list of the query (templates with ``{candidates}``).
        example_candidates: Candidate list of an example (templates with ``{candidates}``).
        fits: Predicate on the full prompt text (e.g. tokens + answer budget <= context);
            least similar examples are dropped until it holds.
        choices: The query's multiple-choice options (templates with ``{choices}``); examples
            show theirs, or as many made from the other examples' answers (see
            :func:`example_choices`), and their correct choice as the answer.
        rationale: Examples with rationales show ``<answer> because <rationale>``, and the
            template's ``rationale_header`` (if any) replaces its header.

    Returns:
        The prompt and the ids of the examples it kept.

    Raises:
        InputError: even the zero-shot prompt does not fit.
    """
    mc = template.uses_choices
    blocks = []
    for ex in examples:
        shown, correct = ((), -1)
        if mc:
            others = [o for o in examples if o is not ex]
            shown, correct = example_choices(ex, others, len(choices) or MC_EXAMPLE_CHOICES)
        blocks.append(template.example.format(
            caption=clean(ex.caption) + template.caption_end, question=clean(ex.question),
            answer=example_answer_text(ex, rationale=rationale, choices=shown, correct=correct),
            candidates=example_candidates(ex) if example_candidates else "",
            choices=format_choices(shown),
        ))
    query = template.query.format(caption=clean(caption) + template.caption_end, question=clean(question),
                                  candidates=candidates, choices=format_choices(choices))
    header = template.rationale_header if rationale and template.rationale_header else template.header
    keep = len(blocks)
    while True:
        text = header + "".join(reversed(blocks[:keep])) + query
        if fits is None or fits(text):
            return Prompt(text=text, example_ids=[ex.id for ex in reversed(examples[:keep])])
        if keep == 0:
            raise ContextOverflowError("the question and caption alone overflow the LLM context;"
                                       " shorten them or use a model with a larger --n-ctx")
        keep -= 1


def format_candidates(candidates: Sequence[tuple[str, float]]) -> str:
    """``[("dog", 0.93), ("cat", 0.04)]`` -> ``"dog(0.93), cat(0.04)"`` (Prophet's ``prompt.py``)."""
    return ", ".join(f"{answer}({conf:.2f})" for answer, conf in candidates)
