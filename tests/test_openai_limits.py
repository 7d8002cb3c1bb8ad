"""The OpenAI-compatible API's limits over real HTTP: the real app under uvicorn on 127.0.0.1 with a
stand-in pipeline that takes a set time per answer (so slots, the queue and the time-out are
exercised without a model): 429 with Retry-After past ``--max-queue``, 504, 413, and image URLs
fetched only with ``--allow-image-urls`` (private addresses only with
``--allow-private-image-urls``), with the redirect bound."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import threading
import time
import urllib.error
import urllib.request
from types import SimpleNamespace
from typing import Any

import pytest
from PIL import Image
from servers import ImageHost, free_port, serving

from pica.serve.image_urls import decode_data_url, fetch_image
from pica.serve.service import RequestFailed, ServeOptions, Service
from pica.types import Answer

pytestmark = pytest.mark.slow


def png_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 120, 200)).save(out, format="PNG")
    return out.getvalue()


class StandInPipeline:
    """Answers every question with "baseball" after ``seconds`` (the warm-up at once)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.backend = SimpleNamespace(id="stand-in", thread_safe=False, count_tokens=lambda t: 1,
                                       close=lambda: None)
        self.index = None
        self.settings = SimpleNamespace(concurrency=1, choose="auto")
        self.choice_info = {"method": "logprob"}
        self.captioner = object()

    def answer(self, q, task=None) -> Answer:
        if q.id != "warm-up":
            time.sleep(self.seconds)
        return Answer(question_id=q.id, question=q.question, answer="baseball", raw=" baseball",
                      caption="a boy with a glove", logprob=-0.1, prompts=["Q: ...\nA:"], example_ids=[[]])


@contextlib.contextmanager
def app_server(seconds: float = 0.0, **options):
    service = Service(StandInPipeline(seconds), ServeOptions(port=free_port(), **options))
    service.warm_up()
    with serving(service) as (url, _):
        yield url


def chat(base: str, url: str | None = None, body: bytes | None = None) -> tuple[int, Any, dict]:
    """POST a chat completion; return status, headers and the JSON body."""
    if body is None:
        url = url or "data:image/png;base64," + base64.b64encode(png_bytes()).decode()
        body = json.dumps({"model": "pica", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What sport is the boy going to play?"},
            {"type": "image_url", "image_url": {"url": url}}]}]}).encode()
    request = urllib.request.Request(f"{base}/v1/chat/completions", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as reply:
            return reply.status, reply.headers, json.loads(reply.read())
    except urllib.error.HTTPError as e:
        return e.code, e.headers, json.loads(e.read())


def assert_openai_error(status: int, body: dict, expected: int, fragment: str) -> None:
    assert status == expected, body
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert fragment in body["error"]["message"], body


def test_slots_and_queue_full_gets_429_with_retry_after():
    with app_server(seconds=6.0, max_queue=1, timeout=120) as base:
        replies: list = []
        threads = [threading.Thread(target=lambda: replies.append(chat(base))) for _ in range(2)]
        for t in threads:  # one answering, one queued
            t.start()
            time.sleep(1.0)
        status, headers, body = chat(base)
        assert_openai_error(status, body, 429, "busy")
        assert body["error"]["type"] == "rate_limit_error" and int(headers["Retry-After"]) >= 1
        for t in threads:
            t.join()
        assert sorted(r[0] for r in replies) == [200, 200]
        assert replies[0][2]["choices"][0]["message"]["content"] == "baseball"


def test_timeout_gets_504():
    with app_server(seconds=8.0, timeout=1) as base:
        status, _, body = chat(base)
        assert_openai_error(status, body, 504, "no answer within 1 s")
        assert body["error"]["type"] == "server_error" and body["error"]["code"] == "timeout"


def test_body_over_the_upload_limit_gets_413():
    with app_server(max_upload_mb=0.05) as base:
        url = "data:image/png;base64," + "A" * 200_000
        status, _, body = chat(base, url)
        assert_openai_error(status, body, 413, "upload limit")
    with pytest.raises(RequestFailed) as e:
        decode_data_url("data:image/png;base64," + base64.b64encode(b"x" * 5000).decode(), 1000, "p")
    assert e.value.status == 413


def test_image_urls_are_fetched_only_when_allowed_and_private_targets_only_when_asked():
    with ImageHost(png_bytes()) as host:
        with app_server() as base:
            status, _, body = chat(base, host.url)
            assert_openai_error(status, body, 400, "--allow-image-urls")
        with app_server(allow_image_urls=True) as base:
            status, _, body = chat(base, host.url)
            assert_openai_error(status, body, 400, "--allow-private-image-urls")
        assert host.hits == []
        with app_server(allow_image_urls=True, allow_private_image_urls=True) as base:
            status, _, body = chat(base, host.url)
            assert status == 200, body
            assert body["choices"][0]["message"]["content"] == "baseball"
        assert host.hits == ["/photo.png"]
        with pytest.raises(RequestFailed) as e:
            fetch_image(f"{host.base}/loop", 10**6, allow_private=True, param="p", redirects=2)
        assert e.value.status == 400 and "redirected more than 2 times" in e.value.message
        assert host.hits[1:] == ["/loop"] * 3
