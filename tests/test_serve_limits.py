"""``pica serve``'s request limits over real HTTP: the real app (pica.serve.app) under a real
uvicorn server on 127.0.0.1, a stand-in pipeline (none of these requests reaches the model), and
the clients people use: urllib and http.client, which send the whole body before they read."""

from __future__ import annotations

import asyncio
import http.client
import json
import struct
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from types import SimpleNamespace

import pytest
from serve_server import multipart
from servers import free_port, serving

from pica.serve.service import RequestFailed, ServeOptions, Service

QUESTION = "What sport is the boy going to play?"
CAPTION = "a young boy putting on a baseball glove"


def stand_in_pipeline():
    """What the app needs of a pipeline before any answering: ids, the index, its settings."""
    index = SimpleNamespace(path=Path("/home/someone/.cache/pica/indexes/starter"), manifest={})
    return SimpleNamespace(backend=SimpleNamespace(id="fake"), index=index,
                           settings=SimpleNamespace(choose="auto"))


@pytest.fixture(scope="module")
def server():
    with serving(Service(stand_in_pipeline(), ServeOptions(port=free_port(), max_upload_mb=1,
                                                           max_question_chars=200, max_caption_chars=300))) as found:
        yield found


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` pixels in a few dozen bytes (a bomb's header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


def urllib_post(url: str, body: bytes, ctype: str) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": ctype}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


BIG = b"\xff\xd8" + b"x" * (2 * 1024 * 1024)  # 2 MB against a 1 MB limit


def test_over_limit_upload_reaches_urllib_as_413_every_time(server):
    url, _ = server
    body, ctype = multipart({"question": QUESTION, "caption": CAPTION}, {"image": ("big.jpg", BIG, "image/jpeg")})
    for _ in range(10):  # the server used to reset plain clients: 20 of 20 never read the 413
        status, reply = urllib_post(f"{url}/v1/answer", body, ctype)
        assert status == 413 and "upload limit" in reply["error"]


def test_over_limit_upload_reaches_http_client_as_413_with_length_and_chunked(server):
    _, port = server
    body, ctype = multipart({"question": QUESTION}, {"image": ("big.jpg", BIG, "image/jpeg")})
    for chunked in (False, True, False, True):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            data = (body[i:i + 65536] for i in range(0, len(body), 65536)) if chunked else body
            conn.request("POST", "/v1/answer", body=data, headers={"Content-Type": ctype})
            reply = conn.getresponse()
            assert reply.status == 413 and "upload limit" in json.loads(reply.read())["error"]
            assert reply.getheader("connection") == "close"
        finally:
            conn.close()


def test_curl_style_expect_100_continue_gets_the_413_without_sending_the_body(server):
    _, port = server
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest("POST", "/v1/answer")
        conn.putheader("Content-Type", "multipart/form-data; boundary=x")
        conn.putheader("Content-Length", str(50 * 1024 * 1024))
        conn.putheader("Expect", "100-continue")
        conn.endheaders()  # and no body: the server must answer without waiting for it
        reply = conn.getresponse()
        assert reply.status == 413
    finally:
        conn.close()


def test_decompression_bomb_header_gets_400_not_500(server):
    url, _ = server
    body, ctype = multipart({"question": QUESTION, "caption": CAPTION},
                            {"image": ("bomb.png", png_header(60000, 60000), "image/png")})
    status, reply = urllib_post(f"{url}/v1/answer", body, ctype)
    assert status == 400 and "decompression bomb" in reply["error"]


@pytest.mark.parametrize("payload, fragment", [
    ({"question": "why? " * 60_000, "caption": CAPTION}, "question is too long (299999 characters; at most 200)"),
    ({"question": QUESTION, "caption": "c" * 301}, "caption is too long (301 characters; at most 300)"),
])
def test_over_long_question_or_caption_gets_400(server, payload, fragment):
    url, _ = server
    status, reply = urllib_post(f"{url}/v1/answer", json.dumps(payload).encode(), "application/json")
    assert status == 400 and fragment in reply["error"]


def test_healthz_names_the_index_never_the_server_path(server):
    url, _ = server
    with urllib.request.urlopen(f"{url}/healthz", timeout=30) as reply:
        health = json.loads(reply.read())
    assert health["index"] == "starter"
    with urllib.request.urlopen(f"{url}/", timeout=30) as reply:
        assert "/home/someone" not in reply.read().decode()


def test_length_limits_are_checked_before_the_answer_queue():
    service = Service(stand_in_pipeline(), ServeOptions(max_question_chars=10, max_caption_chars=10))
    # Not warmed up: anything that reached the answer queue would get 503 "still starting".
    with pytest.raises(RequestFailed) as queued:
        asyncio.run(service.answer("short?", caption="a cap"))
    assert queued.value.status == 503
    for question, caption in (("q" * 11, "a cap"), ("short?", "c" * 11)):
        with pytest.raises(RequestFailed) as refused:
            asyncio.run(service.answer(question, caption=caption, image=b"not even looked at"))
        assert refused.value.status == 400 and "too long" in refused.value.message


def test_limits_are_validated():
    with pytest.raises(Exception, match="--max-question-chars"):
        ServeOptions(max_question_chars=0).validate()
