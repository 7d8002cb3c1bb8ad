"""The answering pipeline: caption -> retrieve examples -> prompts -> LLM -> choose -> normalize.

``Pipeline.answer_stream`` processes questions in chunks (captions and vectors are batched per
chunk) and yields each answer as soon as its LLM call returns, in input order, so a batch job can
save every answer the moment it exists.
"""

from __future__ import annotations

import functools
import os
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from pica.answers import normalize_answer
from pica.choice.candidates import SCORING
from pica.choice.rules import LEARNED
from pica.config import DEFAULT_CANDIDATES, RATIONALE_TOKENS, TEXT_EMBEDDER, Settings
from pica.datasets.prophet import StageOne
from pica.errors import InputError
from pica.llm.prompts import Prompt, Template, load_template
from pica.retrieval.index import ExampleIndex, Hit
from pica.retrieval.selection import (
    answer_aware,
    candidates_from,
    file_examples,
    kinds_for,
    random_hits,
)
from pica.tasks import direct, multiple_choice, scienceqa
from pica.tasks.base import Prepared, Tools, question_task
from pica.tasks.prompting import build_prompts
from pica.types import Answer, Example, Question
from pica.util.threads import bound_threads, per_question_threads

__all__ = ["Pipeline", "Prepared"]


class Pipeline:
    """Answers questions with the components ``settings`` names; each is built on first use.

    ``Pipeline(index="indexes/okvqa-pool", shots=8)``: settings by keyword over ``settings`` (an
    unknown one is an ``InputError``), components as objects; ``pipe(image, question)`` answers.
    """

    def __init__(self, settings: Settings | None = None, *, backend=None, index=None,
                 captioner=None, embedder=None, llm: str | None = None, **options: Any) -> None:
        named = {k: str(v) for k, v in (("index", index), ("captioner", captioner), ("llm", llm))
                 if isinstance(v, str | os.PathLike)}
        self.settings = (settings or Settings()).updated({**named, **options}).validate()
        given = {"backend": backend, "index": index, "captioner": captioner, "embedder": embedder}
        self.__dict__.update({k: v for k, v in given.items() if v is not None and k not in named})
        from pica.caption import captioner_spec
        from pica.llm import split_llm

        captioner_spec(self.settings.captioner)  # an unknown KIND: fails before anything loads
        split_llm(self.settings.llm)

    # -- components (built lazily) ------------------------------------------------------------
    @functools.cached_property
    def template(self):
        """The prompt template."""
        return load_template(self.settings.template)

    @functools.cached_property
    def index(self) -> ExampleIndex | None:
        """The example index, or ``None`` for zero-shot."""
        from pica.retrieval.build import build_starter
        from pica.retrieval.store import resolve_index

        path = resolve_index(self.settings.index, build_starter=build_starter)
        if path is None:
            return None
        index = ExampleIndex.load(path)
        if self.settings.embedder:  # before loading any model; the same files under another name pass
            from pica.retrieval.embedders import spec_digest

            index.check_embedder(self.settings.embedder, lambda: spec_digest(self.settings.embedder))
        return index

    @functools.cached_property
    def embedder(self):
        """The embedder the index was built with (or the same model files under another name)."""
        from pica.retrieval.embedders import embedder_for_index

        return embedder_for_index(self.index, self.settings.embedder, device=self.settings.device,
                                  dtype=self.settings.dtype)

    @functools.cached_property
    def backend(self):
        """The LLM backend."""
        from pica.llm import make_backend

        return make_backend(self.settings)

    @functools.cached_property
    def captioner(self):
        """The captioner (an image-to-text model, or a captions file)."""
        from pica.caption import captioner_from_settings

        return captioner_from_settings(self.settings)

    @functools.cached_property
    def stage_one(self) -> StageOne:
        """Prophet's stage-1 files of the settings (``--candidates-file``, ``--examples-file``)."""
        return StageOne(self.settings.candidates_file, self.settings.examples_file)

    @functools.cached_property
    def choice(self) -> dict[str, Any]:
        """How answers are chosen, resolved: ``method`` (``learned`` or a rule of
        :mod:`pica.choice.rules` that picks among completions),
        ``chooser`` (the :class:`~pica.choice.chooser.Chooser` or ``None``), ``sha256`` of its
        file and ``info`` (:attr:`choice_info`).

        ``--choose auto`` uses the index's chooser for these settings only when its verdict
        trusts it (:mod:`pica.choice.trust`: a clearly positive held-back gain over greedy);
        an untrusted one is left to ``--choose learned`` and the choice resolves to ``logprob``,
        exactly as without a chooser.

        Raises:
            InputError: ``--choose learned`` without an index or without a matching chooser.
        """
        from pica.choice.resolve import resolve_choice

        return resolve_choice(self.settings.choose, self.index, self.chooser_target())

    @property
    def choice_info(self) -> dict[str, Any]:
        """The answer choice in use, as JSON for ``answer --json``, ``run.json`` and ``summary.json``:
        ``method``, ``requested`` (``--choose``), ``chooser`` (its file or ``None``) and, with a chooser
        for these settings, its held-back ``gain`` over greedy (points), ``se``, ``n``, ``trusted``
        and ``reason``; ``untrusted_chooser`` names a chooser that ``--choose auto`` left out."""
        return self.choice["info"]

    @property
    def ensemble_choice(self) -> str:
        """How one answer is picked among an ensemble's completions: the resolved rule when it
        picks among completions (``vote``, ``prophet`` ...), else ``logprob`` (``--choose auto``
        without a chooser, and the learned chooser's fallback, are PICa's)."""
        from pica.choice.rules import PICA
        from pica.registry import choice_rules

        method = self.choice["method"]
        return method if choice_rules.get(method).ensemble else PICA

    def chooser_target(self) -> dict[str, Any]:
        """What a chooser must have been fitted for to be used with these settings."""
        s = self.settings
        llm = s.llm if not s.api_base else f"{s.llm}@{s.api_base}"  # known without loading the model
        return {"llm": llm, "template": s.template, "shots": s.shots,
                "candidate_answers": s.candidate_answers, "candidate_neighbours": s.candidate_neighbours,
                "candidate_scoring": SCORING}

    @property
    def zero_shot(self) -> bool:
        """Whether prompts carry no examples (no index, or ``shots == 0``)."""
        return self.settings.shots == 0 or self.index is None

    # -- public API ---------------------------------------------------------------------------
    def __call__(self, image: Any, question: str | Sequence[str], *, caption: str | None = None,
                 choices: Sequence[str] = ()) -> Answer | list[Answer]:
        """Answer about ``image`` (a path, a PIL image, bytes; ``None`` with a ``caption``) as HF
        pipelines do; lists give a list (:meth:`Question.from_inputs`); ``choices``: multiple choice."""
        asked = Question.from_inputs(image, question, caption=caption, choices=choices)
        return self.answer(asked) if isinstance(asked, Question) else list(self.answer_stream(asked))

    def to_json(self, answer: Answer) -> dict[str, Any]:
        """``answer`` as ``pica answer --json`` prints it: with the LLM, index and answer choice."""
        index = str(self.index.path) if self.index is not None else None
        return {**answer.to_dict(llm=self.backend.id, index=index), "choice": self.choice_info}

    def answer(self, question: Question, task: str | None = None) -> Answer:
        """Answer one question (see :meth:`answer_stream`)."""
        return next(self.answer_stream([question], task=task))

    def answer_stream(self, questions: Sequence[Question], chunk: int = 16,
                      task: str | None = None) -> Iterator[Answer]:
        """Answer questions in order, yielding each answer as soon as it is ready.

        ``task`` (``auto``, ``da``, ``mc``, ``both``) overrides the settings' for this call.

        With a thread-safe backend (an API) and ``concurrency`` N > 1, N LLM calls stay in flight
        across chunk boundaries: the next chunk is prepared while earlier questions are answered,
        and up to 2N answered or pending questions wait for the oldest, so one slow answer does
        not empty the pipe. pica's own NumPy/BLAS work uses one thread (``--threads`` on an API
        run): :func:`pica.util.threads.per_question_threads`.

        Raises:
            InputError: bad image, missing caption, template/index mismatch.
            BackendError: the LLM failed.
        """
        remote = getattr(self.backend, "thread_safe", False)
        workers = self.settings.concurrency if remote else 1
        bound_threads(per_question_threads(self.settings.threads, local_model=not remote))
        if workers <= 1:
            for start in range(0, len(questions), chunk):
                for item in self.prepare(questions[start:start + chunk]):
                    yield self.respond(item, task)
            return
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pica-answer")
        pending: deque[Future] = deque()
        try:
            for start in range(0, len(questions), chunk):
                for item in self.prepare(questions[start:start + chunk]):
                    pending.append(pool.submit(self.respond, item, task))
                    while len(pending) >= 2 * workers:
                        yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:  # answers still in flight when the caller stops (an interrupt) are not awaited
            pool.shutdown(wait=False, cancel_futures=True)

    def check(self, questions: Sequence[Question]) -> None:
        """Fail before a long run if some questions cannot be captioned (e.g. a captions file
        that lacks their image ids).

        Raises:
            InputError: naming how many questions and the first few.
        """
        uncaptioned = [q for q in questions if q.caption is None]
        if uncaptioned:
            self.captioner.check(uncaptioned)
        s = self.settings
        if s.candidates_file and self.template.uses_candidates:
            for q in questions:
                self.stage_one.query_candidates(q.id)
        if s.examples_file:
            for q in questions:
                self._file_hits(q)

    def build_prompts(self, question: Question, caption: str, hits: Sequence[Hit], *,
                      template: Template | None = None, choices: Sequence[str] = ()) -> list[Prompt]:
        """The ensemble's prompts for one question, from its retrieved hits (most similar first;
        :func:`pica.tasks.prompting.build_prompts`). ``template`` overrides the settings' (multiple
        choice uses its ``Choices:`` variant, which shows ``choices``)."""
        return build_prompts(self.settings, template or self.template, self.backend, self.index,
                             question, caption, hits, answer_tokens=self.answer_tokens,
                             stage_one=self.stage_one if self.settings.candidates_file else None,
                             choices=choices)

    def item_prompts(self, item: Prepared, *, template: Template | None = None,
                     choices: Sequence[str] = ()) -> list[Prompt]:
        """:meth:`build_prompts` for a prepared question."""
        return self.build_prompts(item.question, item.caption, item.hits, template=template, choices=choices)

    @property
    def answer_tokens(self) -> int:
        """Tokens generated per answer: ``max_tokens``, more with ``--rationale``."""
        s = self.settings
        return max(s.max_tokens, RATIONALE_TOKENS) if s.rationale else s.max_tokens

    # -- stages -------------------------------------------------------------------------------
    def prepare(self, questions: Sequence[Question], exclude: dict[str, list[int]] | None = None,
                *, neighbours: bool = False) -> list[Prepared]:
        """The batched stages for a chunk of questions: images, captions, vectors, search.

        ``exclude`` maps a question id to index rows it must never see (besides its own image's).
        ``neighbours`` fetches the K candidate neighbours even when no setting needs them
        (calibration scores candidates for a chooser it has yet to fit).

        Raises:
            InputError: an empty question, a bad image, a question that cannot be captioned.
        """
        for q in questions:
            if not q.question or not q.question.strip():
                raise InputError(f"question {q.id} is empty; ask something about the image")
        t0 = time.perf_counter()
        uncaptioned = any(q.caption is None for q in questions)
        pixels = uncaptioned and self.captioner.reads_pixels
        wants_image = self._wants_image()
        images = {q.id: q.load_image() for q in questions
                  if q.has_image and (wants_image or (q.caption is None and pixels))}
        captions = self._captions(questions, images)
        t1 = time.perf_counter()
        exclude = {q.id: list((exclude or {}).get(q.id, ())) for q in questions}
        if not self.zero_shot:
            for q in questions:
                exclude[q.id] += self.index.rows_of_image(q.image_id)
        wanted = neighbours or self._wants_neighbours()
        found = (self._retrieve(questions, captions, images, exclude, wanted)
                 if wanted or not self.settings.examples_file else [[] for _ in questions])
        t2 = time.perf_counter()
        n = len(questions)
        return [Prepared(q, c, self._file_hits(q) if self.settings.examples_file else self._prompt_hits(h),
                         {"caption": (t1 - t0) / n, "retrieval": (t2 - t1) / n},
                         neighbours=h, exclude_rows=exclude[q.id])
                for q, c, h in zip(questions, captions, found)]

    def _wants_neighbours(self) -> bool:
        return self.settings.example_order == "answer-aware" or self.choice["method"] == LEARNED

    def _file_hits(self, question: Question) -> list[Hit]:
        """The prompts' examples from the answer-aware examples file (Prophet's order and shuffle);
        the file is taken as given: the query's own image is not excluded."""
        s = self.settings
        if self.index is None:
            raise InputError(f"--examples-file {s.examples_file} needs an example index holding its examples")
        return file_examples(self.index, self.stage_one.examples_of(question.id), s.shots * s.ensemble,
                             s.seed, question.id, source=f"examples file {s.examples_file}")

    def top_candidate(self, item: Prepared) -> str:
        """The question's best stage-1 candidate (the file's, else its neighbours'), or ``""``:
        Prophet's answer when every completion of the ensemble is empty."""
        if self.settings.candidates_file:
            found = self.stage_one.candidates_of(item.question.id)
        else:
            found = candidates_from(self.index, item.neighbours or item.hits, 1) if self.index else []
        return normalize_answer(found[0][0]) if found else ""

    def _prompt_hits(self, hits: list[Hit]) -> list[Hit]:
        """The prompts' examples among the retrieved neighbours."""
        s = self.settings
        k = s.shots * s.ensemble
        if s.example_order == "answer-aware" and hits:
            return answer_aware(self.index, hits, k, s.candidate_answers or DEFAULT_CANDIDATES)
        return hits[:k]

    def _wants_image(self) -> bool:
        s = self.settings
        return (not self.zero_shot and s.selection in ("auto", "image+question")
                and "image" in self.index.kinds)

    def _captions(self, questions: Sequence[Question], images: dict) -> list[str]:
        captions = [q.caption for q in questions]
        todo = [i for i, c in enumerate(captions) if c is None]
        if not todo:
            return captions
        texts = self.captioner.caption([questions[i] for i in todo],
                                       images=[images.get(questions[i].id) for i in todo])
        for i, text in zip(todo, texts):
            captions[i] = text
        return captions

    def _retrieve(self, questions: Sequence[Question], captions: Sequence[str],
                  images: dict, exclude: dict[str, list[int]], neighbours: bool) -> list[list[Hit]]:
        s = self.settings
        if self.zero_shot:
            return [[] for _ in questions]
        k = s.shots * s.ensemble
        if neighbours:
            k = max(k, s.candidate_neighbours)
        if s.selection == "random":
            return [random_hits(self.index, k, s.seed, q.id) for q in questions]
        results: list[list[Hit]] = [[] for _ in questions]
        groups: dict[tuple[str, ...], list[int]] = {}
        for i, q in enumerate(questions):
            kinds = kinds_for(s.selection, self.index, q.id in images)
            groups.setdefault(kinds, []).append(i)
        for kinds, members in groups.items():
            queries, text_kinds = {}, [kind for kind in ("question", "caption") if kind in kinds]
            if text_kinds:  # one call: larger products run nearer the BLAS kernel's speed
                vectors = self.embedder.embed_texts([
                    questions[i].search_text if kind == "question" else captions[i]
                    for kind in text_kinds for i in members])
                for j, kind in enumerate(text_kinds):
                    queries[kind] = vectors[j * len(members):(j + 1) * len(members)]
            if "image" in kinds:
                queries["image"] = self.embedder.embed_images([images[questions[i].id] for i in members])
            banned = [exclude[questions[i].id] for i in members]
            for i, hits in zip(members, self.index.nearest(queries, k, s.weights, exclude=banned)):
                results[i] = hits
        return results

    def respond(self, item: Prepared, task: str | None = None) -> Answer:
        """The LLM stage for one prepared question, as ``task`` (default: the settings'): a direct
        answer, a choice among its choices, both, or a ScienceQA problem (:mod:`pica.tasks`)."""
        task = question_task(task or self.settings.task, item.question)
        if task == "scienceqa":
            return scienceqa.respond(self.tools, item)
        if task == "da":
            return direct.answer(self.tools, item)
        return multiple_choice.respond(self.tools, item, task)

    def greedy(self, item: Prepared) -> direct.Greedy:
        """The ensemble's greedy completions for one prepared question (no answer choice)."""
        return direct.greedy(self.tools, item)

    @functools.cached_property
    def tools(self) -> Tools:
        """What the task strategies get from this pipeline (:class:`~pica.tasks.base.Tools`)."""
        from pica.llm.prompts import load_choices_template

        s = self.settings
        learned = self.choice["method"] == LEARNED
        return Tools(
            backend=self.backend, prompts=self.item_prompts,
            choices_template=functools.partial(load_choices_template, s.template),
            examples=self.shown_examples, embed_texts=self._embed_texts, answer_tokens=self.answer_tokens,
            rationale=s.rationale, ensemble_choice=self.ensemble_choice, mc_method=s.mc_method,
            mc_score=s.mc_score, prompt_format=s.prompt_format, shots=s.shots,
            chooser=self.choice["chooser"] if learned else None,
            candidate_table=self.candidate_table if learned else None,
            top_candidate=self.top_candidate, example=lambda row: self.index.example(row),
        )

    def shown_examples(self, item: Prepared, example_ids: Sequence[Sequence[str]]) -> list[list[Example]]:
        """The examples each prompt showed (ids in prompt order), from the question's hits."""
        shown = {e.id: e for e in (self.index.example(h.row) for h in item.hits)} if item.hits else {}
        return [[shown[i] for i in ids] for ids in example_ids]

    def candidate_table(self, item: Prepared, prompt: str, answers: Sequence[str],
                        completions: Sequence[Any]) -> list[dict[str, Any]]:
        """Greedy + neighbour candidates of one question, scored under ``prompt``, with features
        (:func:`pica.choice.candidates.candidate_table`)."""
        from pica.choice.candidates import candidate_table, scored_end

        s = self.settings
        stage_one = self.stage_one.candidates_of(item.question.id) if s.candidates_file else None
        return candidate_table(self.backend, self.index, scored_end(self.template.example), item, prompt,
                               answers, completions, top=s.candidate_answers, k=s.candidate_neighbours,
                               stage_one=stage_one)

    def _embed_texts(self, texts: list[str]):
        """The index's text embedder (the packaged MiniLM when answering zero-shot), built lazily."""
        if self.index is not None:
            return self.embedder.embed_texts(texts)
        from pica.retrieval.embedders import make_embedder

        return make_embedder(TEXT_EMBEDDER).embed_texts(texts)

