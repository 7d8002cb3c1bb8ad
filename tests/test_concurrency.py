"""Many LLM requests in flight: answers stay in dataset order, runs stay resumable."""

from __future__ import annotations

import hashlib
import threading
import time

from fakes import FakeBackend
from servers import FlakyServer, completion_json

from pica.config import Settings
from pica.datasets import load_questions
from pica.evaluation import evaluate
from pica.evaluation.results import RESULTS_FILE, read_results
from pica.pipeline import Pipeline
from pica.types import Question

WORDS = ["tennis", "surfing", "italy", "japan", "london", "milk", "leaves", "apple", "winter", "taxi"]


def reply(request: dict) -> dict:
    """A deterministic answer per prompt, so each answer can be checked against its question."""
    digest = hashlib.sha256(request["prompt"].encode("utf-8")).digest()
    return completion_json(" " + WORDS[digest[0] % len(WORDS)], [-float(digest[1]) / 100])


def scripted(count: int) -> list[tuple]:
    """Answers that come back out of order: delays of 0 to 60 ms in a fixed pattern."""
    return [("slow", (i * 7919 % 13) / 200, (200, reply)) for i in range(count)]


def run(okvqa_files, text_index, out, server, concurrency, limit=None):
    settings = Settings(index=str(text_index), captioner=str(okvqa_files["captions"]), llm="openai:test",
                        api_base=server.base_url, concurrency=concurrency, ensemble=2, shots=2)
    questions = load_questions(dataset=okvqa_files["dev"], limit=limit)
    evaluate(settings, questions, out, dataset={"dev": "fixture"}, progress=False)
    return read_results(out / RESULTS_FILE)


def test_concurrent_eval_keeps_dataset_order_and_resumes(okvqa_files, text_index, tmp_path):
    with FlakyServer([(200, reply)]) as server:
        serial = run(okvqa_files, text_index, tmp_path / "serial", server, 1)
        assert server.max_in_flight == 1
    with FlakyServer(scripted(200)) as server:
        partial = run(okvqa_files, text_index, tmp_path / "par", server, 8, limit=6)
        resumed = run(okvqa_files, text_index, tmp_path / "par", server, 8)
        assert 2 < server.max_in_flight <= 8
    order = [r["question_id"] for r in serial]
    assert [r["question_id"] for r in partial] == order[:6]
    assert [r["question_id"] for r in resumed] == order  # finished ones kept, the rest appended in order
    assert [(r["answer"], r["logprob"]) for r in resumed] == [(r["answer"], r["logprob"]) for r in serial]


def test_requests_stay_in_flight_across_chunks():
    lock = threading.Lock()
    state = {"now": 0, "most": 0}

    def slow(prompt: str) -> str:
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        time.sleep(0.02)
        with lock:
            state["now"] -= 1
        return " " + prompt.rsplit("Q: ", 1)[-1].split("?")[0]

    backend = FakeBackend(reply=slow, thread_safe=True)
    pipeline = Pipeline(Settings(index=None, concurrency=6), backend=backend)
    questions = [Question(id=str(i), question=f"q{i}?", caption="a cat") for i in range(30)]
    answers = list(pipeline.answer_stream(questions, chunk=2))
    assert [a.question_id for a in answers] == [q.id for q in questions]
    assert [a.answer for a in answers] == [f"q{i}" for i in range(30)]
    assert state["most"] == 6  # more than the chunk of 2: the next chunks were prepared meanwhile
