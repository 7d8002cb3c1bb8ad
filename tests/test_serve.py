"""``pica serve`` over HTTP: a real server process on 127.0.0.1 with the packaged Gemma.

Requests carry captions, so no captioner weights are needed; one API-backend server (a scripted
OpenAI-style server) checks parallel answers, the timeout and that the API key never shows.
"""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path

import pytest
from PIL import Image
from serve_server import CAPTION, QUESTION, multipart, pica_server
from servers import FlakyServer, completion_json
from typer.testing import CliRunner

pytestmark = pytest.mark.slow

SECRET = "sk-test-DO-NOT-LEAK-4711"


def image_bytes(fmt: str = "JPEG", size: tuple[int, int] = (64, 64), mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, 90 if mode == "1" else (90, 140, 60)).save(out, format=fmt)
    return out.getvalue()


@pytest.fixture(scope="module")
def server():
    with pica_server("--max-upload-mb", "1", "--timeout", "300") as running:
        yield running


def assert_error(reply, status: int, fragment: str = "") -> None:
    assert reply.status == status, reply.text
    assert set(reply.json) == {"error"}, reply.text
    assert fragment.lower() in reply.json["error"].lower()
    assert "Traceback" not in reply.text and "<html" not in reply.text.lower()


def test_healthz(server):
    reply = server.get("/healthz")
    assert reply.status == 200
    assert reply.json["status"] == "ok"
    assert reply.json["llm"] == "llama-cpp:gemma3-270m"
    assert reply.json["slots"] == 1  # the local model answers one request at a time
    index = reply.json["index"]  # the index's name, never its path on the server
    assert index.startswith("starter-") and "/" not in index


def test_answer_with_an_image_and_a_caption_equals_pica_answer_json(server, tmp_path):
    from pica.cli import app

    photo = tmp_path / "photo.jpg"
    photo.write_bytes(image_bytes())
    reply = server.post_form("/v1/answer", {"question": QUESTION, "caption": CAPTION},
                             {"image": ("photo.jpg", photo.read_bytes(), "image/jpeg")})
    assert reply.status == 200, reply.text
    got = reply.json
    cli = CliRunner().invoke(app, ["answer", str(photo), QUESTION, "--caption", CAPTION, "--json"])
    assert cli.exit_code == 0, cli.output
    expected = json.loads(cli.stdout)
    assert set(got) == set(expected)
    for key in ("answer", "raw", "caption", "example_ids", "examples", "prompts", "llm"):
        assert got[key] == expected[key], key
    assert got["index"] == Path(expected["index"]).name  # the server shows no paths
    assert got["choice"]["method"] == expected["choice"]["method"]
    assert got["logprob"] == pytest.approx(expected["logprob"], abs=1e-3)
    assert got["answer"] and got["caption"] == CAPTION
    assert [e["id"] for e in got["examples"][0]] == got["example_ids"][0]
    assert all({"id", "caption", "question", "answer"} == set(e) for e in got["examples"][0])
    assert {"caption", "retrieval", "llm", "total"} <= set(got["seconds"])


def test_caption_only_as_json_and_as_a_form(server):
    as_json = server.post_json("/v1/answer", {"question": QUESTION, "caption": CAPTION})
    assert as_json.status == 200, as_json.text
    assert as_json.json["caption"] == CAPTION and as_json.json["answer"]
    as_form = server.post_form("/v1/answer", {"question": QUESTION, "caption": CAPTION})
    assert as_form.status == 200, as_form.text
    assert as_form.json["answer"] == as_json.json["answer"]


@pytest.mark.parametrize("payload, fragment", [
    ({"question": "   ", "caption": CAPTION}, "question is empty"),
    ({"question": QUESTION}, "image, a caption"),
    ({"caption": CAPTION}, "question"),
    ({"question": QUESTION, "caption": CAPTION, "image_path": "/etc/passwd"}, "image_path"),
    ([1, 2], "request"),
])
def test_bad_json_requests_get_400(server, payload, fragment):
    assert_error(server.post_json("/v1/answer", payload), 400, fragment)


def test_empty_question_in_a_form_gets_400(server):
    reply = server.post_form("/v1/answer", {"question": "", "caption": CAPTION},
                             {"image": ("a.jpg", image_bytes(), "image/jpeg")})
    assert_error(reply, 400, "question is empty")


def test_not_an_image_gets_400(server):
    reply = server.post_form("/v1/answer", {"question": QUESTION, "caption": CAPTION},
                             {"image": ("notes.jpg", b"this is not an image", "image/jpeg")})
    assert_error(reply, 400, "not an image")


def test_truncated_image_and_decompression_bomb_get_400(server):
    truncated = image_bytes(size=(256, 256))[:600]
    assert_error(server.post_form("/v1/answer", {"question": QUESTION, "caption": CAPTION},
                                  {"image": ("t.jpg", truncated, "image/jpeg")}), 400, "")
    bomb = image_bytes("PNG", (12000, 12000), "1")  # 144 MP in a few kB
    assert len(bomb) < 1024 * 1024
    assert_error(server.post_form("/v1/answer", {"question": QUESTION, "caption": CAPTION},
                                  {"image": ("bomb.png", bomb, "image/png")}), 400, "too large")


def test_other_formats_get_415(server):
    reply = server.post_form("/v1/answer", {"question": QUESTION, "caption": CAPTION},
                             {"image": ("a.gif", image_bytes("GIF"), "image/gif")})
    assert_error(reply, 415, "JPEG, PNG or WebP")
    assert_error(server.request("POST", "/v1/answer", b"question=x", {"Content-Type": "text/plain"}), 415)


def test_a_server_side_path_is_never_read(server):
    reply = server.post_form("/v1/answer", {"question": QUESTION, "image": "/work/shared/images/glove_boy.jpeg"})
    assert_error(reply, 400, "server-side path")


def test_too_large_gets_413_by_header_and_while_streaming(server):
    big = b"\xff\xd8" + b"x" * (2 * 1024 * 1024)
    reply = server.post_form("/v1/answer", {"question": QUESTION, "caption": CAPTION},
                             {"image": ("big.jpg", big, "image/jpeg")})
    assert_error(reply, 413, "upload limit")
    body, ctype = multipart({"question": QUESTION}, {"image": ("big.jpg", big, "image/jpeg")})
    chunks = (body[i:i + 65536] for i in range(0, len(body), 65536))  # http.client sends it chunked
    assert_error(server.request("POST", "/v1/answer", chunks, {"Content-Type": ctype}), 413)


def test_image_without_caption_names_the_captioning_problem(server):
    if server.get("/healthz").json["captioning"]:
        pytest.skip("a captioner loaded on this machine")
    reply = server.post_form("/v1/answer", {"question": QUESTION},
                             {"image": ("a.png", image_bytes("PNG"), "image/png")})
    assert_error(reply, 503, "captioning is unavailable")


def test_unknown_route_and_method_are_json_errors(server):
    assert_error(server.get("/nope"), 404, "not found")
    assert_error(server.get("/demo/..%2f..%2fetc%2fpasswd"), 404, "not found")
    assert_error(server.get("/v1/answer"), 405, "method not allowed")


def test_page_docs_and_openapi(server):
    page = server.get("/")
    assert page.status == 200 and "<form id=\"form\"" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert server.get("/static/serve.js").status == 200
    assert server.get("/docs").status == 200
    spec = server.get("/openapi.json").json
    assert "/v1/answer" in spec["paths"] and "/healthz" in spec["paths"]


def test_server_is_still_healthy_after_the_bad_requests(server):
    assert server.get("/healthz").json["status"] == "ok"
    assert server.post_json("/v1/answer", {"question": QUESTION, "caption": CAPTION}).status == 200
    assert "Traceback" not in server.log()


# -- API backend: parallel answers, timeout, the key never shows -------------------------------
def test_api_backend_answers_in_parallel_times_out_with_504_and_never_shows_the_key():
    ok = (200, completion_json(" baseball", [-0.25]))
    slow = ("slow", 1.0, ok)
    script = [ok, slow, slow, slow, slow, ("slow", 120, ok)]  # warm-up, 4 parallel, then one too slow
    with FlakyServer(script) as api, pica_server(
            "--llm", "openai:test", "--api-base", api.base_url, "--concurrency", "4", "--timeout", "15",
            env={"OPENAI_API_KEY": SECRET}) as server:
        replies = []

        def ask():
            replies.append(server.post_json("/v1/answer", {"question": QUESTION, "caption": CAPTION}))

        threads = [threading.Thread(target=ask) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert [r.status for r in replies] == [200] * 4, [r.text for r in replies]
        assert all(r.json["answer"] == "baseball" for r in replies)
        assert api.max_in_flight >= 2  # answered in parallel, not one by one
        late = server.post_json("/v1/answer", {"question": QUESTION, "caption": CAPTION})
        assert_error(late, 504, "no answer within 15 s")
        health = server.get("/healthz")
        assert health.json["slots"] == 4 and health.json["llm"].startswith("openai:test@")
        assert any(r.headers.get("Authorization") == f"Bearer {SECRET}" for r in api.received)
        for reply in [*replies, late, health]:
            assert SECRET not in reply.text
        assert SECRET not in server.log()


# -- start-up errors and page extras, without a server -----------------------------------------
def test_serve_refuses_a_bad_port_and_a_port_in_use_before_loading_anything():
    import socket

    from pica.cli import app

    result = CliRunner().invoke(app, ["serve", "--port", "70000"])
    assert result.exit_code == 2 and "--port must be between 0 and 65535" in result.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, ["serve", "--port", str(port)])
    assert result.exit_code == 2 and f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.output


def test_thumbnails_come_from_the_images_folder_the_index_names(tmp_path):
    from types import SimpleNamespace

    import pandas as pd

    from pica.serve.service import Service

    Image.new("RGB", (640, 480), (200, 30, 30)).save(tmp_path / "COCO_val2014_000000000042.jpg")
    index = SimpleNamespace(path=tmp_path, manifest={"sources": {"images": str(tmp_path)}},
                            examples=pd.DataFrame({"id": ["q1", "q2"], "image_id": ["42", "7"]}))
    service = Service(SimpleNamespace(index=index))
    assert service.has_thumbnails
    thumb = Image.open(io.BytesIO(service.thumbnail("q1")))
    assert thumb.format == "JPEG" and max(thumb.size) == 192
    assert service.thumbnail("q2") is None and service.thumbnail("../../etc/passwd") is None
    no_images = Service(SimpleNamespace(index=SimpleNamespace(manifest={"sources": {}})))
    assert not no_images.has_thumbnails and no_images.thumbnail("q1") is None


def test_bomb_header_over_long_text_and_plain_urllib_over_the_limit(server):
    """The served process itself (tests/test_serve_limits.py covers each case in depth)."""
    import urllib.error
    import urllib.request

    from test_serve_limits import png_header

    bomb = png_header(60000, 60000)  # PIL refuses it at open with DecompressionBombError
    assert_error(server.post_form("/v1/answer", {"question": QUESTION, "caption": CAPTION},
                                  {"image": ("bomb.png", bomb, "image/png")}), 400, "decompression bomb")
    assert_error(server.post_json("/v1/answer", {"question": "why? " * 60_000, "caption": CAPTION}),
                 400, "question is too long")
    body, ctype = multipart({"question": QUESTION, "caption": CAPTION},
                            {"image": ("big.jpg", b"\xff\xd8" + b"x" * (2 << 20), "image/jpeg")})
    for _ in range(5):
        request = urllib.request.Request(f"{server.base_url}/v1/answer", data=body,
                                         headers={"Content-Type": ctype}, method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=60)
        assert refused.value.code == 413
