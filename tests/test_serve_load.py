"""50 concurrent requests to ``pica serve`` with the packaged Gemma, on 127.0.0.1 only.

The local model answers one request at a time, so the requests queue; every one must come back
complete and equal to the answer the same request gets alone, and the server must stay healthy.
The time it took is printed (``-s`` shows it), never asserted.
"""

from __future__ import annotations

import io
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image
from serve_server import pica_server

pytestmark = pytest.mark.slow

REQUESTS = 50
CASES = [
    ("What sport is the boy going to play?", "a young boy putting on a baseball glove"),
    ("Which city is famous for these buses?", "a red double decker bus driving down a city street"),
    ("What fuel does this kind of engine burn?", "a steam engine pulling a train down the tracks"),
    ("What is this animal's natural habitat?", "a polar bear walking on the ice"),
    ("What is this food made from?", "a plate of pasta with tomato sauce"),
]
KEYS = {"answer", "raw", "caption", "logprob", "example_ids", "examples", "candidates", "prompts",
        "prompt_tokens", "seconds", "llm", "index", "choice"}


def photo() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (320, 240), (70, 110, 160)).save(out, format="JPEG")
    return out.getvalue()


def test_fifty_concurrent_requests_are_all_answered_in_full():
    image = photo()
    with pica_server("--timeout", "900") as server:
        def ask(i: int):
            question, caption = CASES[i % len(CASES)]
            if i % 2:  # half as multipart uploads with an image, half as JSON
                return server.post_form("/v1/answer", {"question": question, "caption": caption},
                                        {"image": (f"photo{i}.jpg", image, "image/jpeg")})
            return server.post_json("/v1/answer", {"question": question, "caption": caption})

        alone = [ask(i) for i in range(len(CASES))]
        assert all(r.status == 200 for r in alone), [r.text for r in alone]
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=REQUESTS) as pool:
            replies = list(pool.map(ask, range(REQUESTS)))
        seconds = time.perf_counter() - start
        print(f"\n{REQUESTS} concurrent requests answered in {seconds:.1f} s"
              f" ({seconds / REQUESTS:.2f} s per answer, local Gemma, one at a time)")
        assert [r.status for r in replies] == [200] * REQUESTS, [r.text for r in replies if r.status != 200]
        for i, reply in enumerate(replies):
            expected = alone[i % len(CASES)].json
            assert set(reply.json) == KEYS
            assert reply.json["answer"] == expected["answer"] and reply.json["answer"]
            assert reply.json["caption"] == expected["caption"]
            assert reply.json["example_ids"] == expected["example_ids"]
            assert len(reply.json["examples"][0]) == len(expected["example_ids"][0])
        health = server.get("/healthz")
        assert health.status == 200 and health.json["status"] == "ok"
