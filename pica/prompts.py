"""Few-shot prompts from templates kept as package data (``pica/templates/*.toml``).

Examples are shown most-similar-last (PromptCap, PICa's public code), so the example closest to the
query sits right above it. When the prompt would overflow the LLM context, examples are dropped
from the far end: the least similar ones, at the top of the prompt.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from pica.errors import InputError, unknown_name
from pica.types import Example


@dataclass(frozen=True)
class Template:
    """A prompt format: a header, one block per example, and the query block.

    Blocks are ``str.format`` templates with ``{caption}``, ``{question}``, ``{answer}`` (examples
    only) and ``{candidates}`` (templates that show answer candidates).
    """

    name: str
    header: str
    example: str
    query: str
    description: str = ""

    @property
    def uses_candidates(self) -> bool:
        """Whether the template shows a candidate list (Prophet-style)."""
        return "{candidates}" in self.query


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
                            query=data["query"], description=data.get("description", ""))
        fill = dict(caption="c", question="q", answer="a", candidates="x")
        template.example.format(**fill), template.query.format(**fill)
    except (tomllib.TOMLDecodeError, KeyError, IndexError, ValueError) as e:
        raise InputError(f"prompt template '{name}' is invalid: {type(e).__name__}: {e}") from e
    return template


def clean(text: str) -> str:
    """One-line text for a prompt field: whitespace folded, no trailing period."""
    return " ".join(text.split()).rstrip(".")


def build_prompt(
    template: Template,
    caption: str,
    question: str,
    examples: Sequence[Example],
    *,
    candidates: str = "",
    example_candidates: Callable[[Example], str] | None = None,
    fits: Callable[[str], bool] | None = None,
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

    Returns:
        The prompt and the ids of the examples it kept.

    Raises:
        InputError: even the zero-shot prompt does not fit.
    """
    blocks = []
    for ex in examples:
        blocks.append(template.example.format(
            caption=clean(ex.caption), question=clean(ex.question), answer=ex.answer,
            candidates=example_candidates(ex) if example_candidates else "",
        ))
    query = template.query.format(caption=clean(caption), question=clean(question),
                                  candidates=candidates)
    keep = len(blocks)
    while True:
        text = template.header + "".join(reversed(blocks[:keep])) + query
        if fits is None or fits(text):
            return Prompt(text=text, example_ids=[ex.id for ex in reversed(examples[:keep])])
        if keep == 0:
            raise InputError("the question and caption alone overflow the LLM context;"
                             " shorten them or use a model with a larger --n-ctx")
        keep -= 1


def format_candidates(candidates: Sequence[tuple[str, float]]) -> str:
    """``[("dog", 0.93), ("cat", 0.04)]`` -> ``"dog (0.93), cat (0.04)"``."""
    return ", ".join(f"{answer} ({conf:.2f})" for answer, conf in candidates)
