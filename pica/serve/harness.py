"""Evaluation harnesses' prompts taken apart: question, context, options, instructions.

lmms-eval and VLMEvalKit send one user message whose text wraps the dataset's question in their
own prompt. pica answers the *question* (retrieval and the few-shot prompt see only it), shows the
context next to the caption, scores the options with its multiple-choice machinery, and answers in
the form the instructions ask for. The shapes below are copied from the harnesses' task code:

- lmms-eval ``ok_vqa`` (``lmms_eval/tasks/ok_vqa/_default_template_vqa_yaml``, ``utils.ok_vqa_doc_to_text``:
  ``f"{pre_prompt}{question}{post_prompt}"``)::

      What sport can you use this for?
      When the provided information is insufficient, respond with 'Unanswerable'.
      Answer the question using a single word or phrase.

- lmms-eval ``scienceqa`` / ``scienceqa_img``, ``format: default`` (``lmms_eval/tasks/scienceqa/utils.py``
  ``sqa_doc_to_text``: ``f"{pre_prompt}{context}{question}\\n{choices_str}{post_prompt}"`` with
  ``context = f"Context: {hint}\\n"`` when there is a hint and ``choices_str`` = ``"A. x\\nB. y"``)::

      Context: The passage below describes an experiment.
      Which animal's feet are also adapted for walking on snow?
      A. Eurasian lynx
      B. black-tailed jackrabbit
      Answer with the option's letter from the given choices directly.

  and ``format: qwen_vl``:
  ``"Context: {hint or N/A}\\nQuestion: {question}\\nOptions: {choices_str}\\nAnswer:"``;
  the ``idefics2`` variant ends in ``"\\nAnswer:"``.
- VLMEvalKit ``ImageMCQDataset.build_prompt`` (``vlmeval/dataset/image_mcq.py``: A-OKVQA, ScienceQA_VAL/TEST,
  MMBench, ...)::

      Hint: {hint}
      Question: {question}
      Options:
      A. {A}
      B. {B}
      Please select the correct answer from the options above. \\n

- VLMEvalKit ``ImageVQADataset.build_prompt`` (``vlmeval/dataset/image_vqa.py``): the question, then
  ``"\\nAnswer the question using a single word or phrase."``.

Anything else is answered as a plain question (the whole text, instructions included), never dropped.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

# Harness instruction sentences, matched whole (case-insensitive) on a line of their own. They are
# removed from the question; what they ask for decides the form of the reply.
_INSTRUCTIONS = [
    r"when the provided information is insufficient,? respond with '?unanswerable'?\.?",
    r"answer the question using a single word or phrase\.?",
    r"answer with the option'?s letter from the given choices directly\.?",
    r"please select the correct answer from the options above\.?",
    r"answer with (?:only )?the (?:option|choice|correct option)(?:'s)? letter.*",
    r"(?:please )?(?:answer|respond|reply) (?:with|using) (?:a single|one|only the|the) "
    r"(?:word|phrase|letter|option|number).*",
    r"answer:",
]
INSTRUCTION = re.compile(r"^\s*(?:" + "|".join(_INSTRUCTIONS) + r")\s*$", re.IGNORECASE)
OPTION = re.compile(r"^\s*\(?([A-Z])[.)]\s*(.*?)\s*$")
LABEL = re.compile(r"^\s*(Question|Context|Hint|Options)\s*:\s*(.*)$", re.IGNORECASE | re.DOTALL)


@dataclass
class ParsedPrompt:
    """What a chat prompt asks, as pica answers it.

    Attributes:
        question: The question alone (what retrieval and the few-shot prompt see).
        context: The harness's context or hint (ScienceQA's ``hint``), or ``None``.
        options: The option texts, in letter order (``A``, ``B``, ...); empty without options.
        instructions: The harness instructions that were taken out of the text.
        reply: How the answer is written: ``letter`` (the option's letter), ``option``
            (``"B. text"``) or ``short`` (pica's short direct answer).
        shape: Which known prompt shape matched (``lmms-eval ok_vqa``, ``lmms-eval scienceqa``,
            ``lmms-eval scienceqa qwen_vl``, ``VLMEvalKit MCQ``, ``VLMEvalKit VQA``, ``options``,
            ``plain``).
        parsed: ``False`` when nothing was recognised and the whole text is the question.
    """

    question: str
    context: str | None = None
    options: list[str] = field(default_factory=list)
    instructions: list[str] = field(default_factory=list)
    reply: str = "short"
    shape: str = "plain"
    parsed: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The ``pica.parsed`` object of a chat completion."""
        return asdict(self)

    def answer_text(self, answer: str, chosen_index: int | None) -> str:
        """The reply content: the option letter, ``"B. text"``, or the direct answer."""
        if self.options and chosen_index is not None:
            letter = LETTERS[chosen_index]
            return letter if self.reply == "letter" else f"{letter}. {self.options[chosen_index]}"
        return answer


def parse_prompt(text: str) -> ParsedPrompt:
    """Split a harness prompt into question, context, options and instructions.

    Args:
        text: The text of the last user message (its text parts joined by newlines).

    Returns:
        The parsed prompt; with ``parsed=False`` (the stripped text as the question) when the text
        does not fit any shape, or when taking it apart would leave no question.
    """
    raw = text.strip()
    lines = [ln.rstrip() for ln in raw.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    instructions = [ln.strip() for ln in lines if INSTRUCTION.match(ln)]
    body = [ln for ln in lines if not INSTRUCTION.match(ln) and ln.strip()]
    start, options = _option_block(body)
    before = body[:start] if options else body
    if before and re.fullmatch(r"\s*options\s*:\s*", before[-1], re.IGNORECASE):
        before = before[:-1]
    question, context, labelled = _question_and_context(before)
    if not question:
        return ParsedPrompt(question=raw)
    reply = "short"
    if options:
        asks_letter = any(re.search(r"letter|options? above|given choices|^answer:$", i, re.IGNORECASE)
                          for i in instructions)
        reply = "letter" if asks_letter else "option"
    if not (instructions or options or labelled):
        return ParsedPrompt(question=raw)
    return ParsedPrompt(question=question, context=context, options=options, instructions=instructions,
                        reply=reply, shape=_shape(instructions, labelled, bool(options)), parsed=True)


def _option_block(lines: list[str]) -> tuple[int, list[str]]:
    """The last run of lines ``A. x``, ``B. y``, ... (two or more, letters in order); ``Options: A. x``
    counts as its first line. Returns ``(index of its first line, option texts)``."""
    end = len(lines)
    i = end - 1
    found: list[tuple[str, str]] = []
    while i >= 0:
        line = lines[i]
        label = LABEL.match(line)
        if label and label.group(1).lower() == "options" and label.group(2).strip():
            line = label.group(2)
        match = OPTION.match(line)
        if not match or not match.group(2):
            break
        found.append((match.group(1), match.group(2)))
        if label:
            i -= 1
            break
        i -= 1
    found.reverse()
    letters = "".join(letter for letter, _ in found)
    if len(found) < 2 or not LETTERS.startswith(letters):
        return end, []
    return i + 1, [t for _, t in found]


def _question_and_context(lines: list[str]) -> tuple[str, str | None, bool]:
    """Question and context from the lines before the options; whether labels were found."""
    labelled = any(LABEL.match(ln) for ln in lines)
    q_at = next((k for k, ln in enumerate(lines) if _label(ln) == "question"), None)
    if q_at is not None:
        rest = [ln.strip() for ln in lines[q_at + 1:]]
        question = " ".join([LABEL.match(lines[q_at]).group(2).strip(), *rest])
        context_lines = lines[:q_at]
    elif lines and _label(lines[0]) in ("context", "hint") and len(lines) >= 2:
        question, context_lines = lines[-1].strip(), lines[:-1]
    else:
        return " ".join(ln.strip() for ln in lines).strip(), None, labelled
    context = "\n".join(context_lines).strip()
    if context and _label(context_lines[0]) in ("context", "hint"):
        context = LABEL.match(context).group(2).strip()
    if context.upper() in ("", "N/A"):
        context = None
    return question.strip(), context, labelled


def _label(line: str) -> str | None:
    match = LABEL.match(line)
    return match.group(1).lower() if match else None


def _shape(instructions: list[str], labelled: bool, options: bool) -> str:
    said = " ".join(instructions).lower()
    if "unanswerable" in said:
        return "lmms-eval ok_vqa"
    if "option's letter from the given choices" in said:
        return "lmms-eval scienceqa"
    if "options above" in said:
        return "VLMEvalKit MCQ"
    if said.strip() == "answer:" and options:
        return "lmms-eval scienceqa qwen_vl" if labelled else "lmms-eval scienceqa idefics2"
    if "single word or phrase" in said:
        return "VLMEvalKit VQA"
    return "options" if options else ("labelled" if labelled else "plain")
