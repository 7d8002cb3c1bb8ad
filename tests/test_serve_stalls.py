"""``pica serve`` against hostile clients (issue 27): non-UTF-8 multipart text is refused like a
non-UTF-8 JSON body, and clients that stall in their headers or body are dropped. The real app under
uvicorn as ``pica serve`` configures it (:func:`pica.serve.uvicorn_config`), raw sockets as clients."""

from __future__ import annotations

import socket

import pytest
from serve_server import multipart
from servers import free_port, serving
from test_serve_limits import stand_in_pipeline, urllib_post

from pica.serve.service import ServeOptions, Service


@pytest.fixture(scope="module")
def server():
    options = ServeOptions(port=free_port(), max_upload_mb=1, head_seconds=1, body_seconds=1)
    with serving(Service(stand_in_pipeline(), options)) as found:
        yield found


@pytest.mark.parametrize("field", ["question", "caption"])
def test_non_utf8_multipart_text_is_a_400_like_json(server, field):
    url, _ = server
    fields = {"question": "What is it?", "caption": "a dog"}
    body, ctype = multipart(fields, {})
    raw = body.replace(fields[field].encode(), b"caf\xe9 \xff\xfe")  # Latin-1 bytes, not UTF-8
    status, reply = urllib_post(f"{url}/v1/answer", raw, ctype)
    assert status == 400 and reply == {"error": f"'{field}' is not valid UTF-8 text"}
    status, reply = urllib_post(f"{url}/v1/answer", b'{"question": "caf\xe9"}', "application/json")
    assert status == 400  # the JSON body was already refused


def test_utf8_multipart_text_passes_the_check(server):
    url, _ = server
    body, ctype = multipart({"question": "Qu'est-ce que c'est, café ?", "caption": "ça"}, {})
    status, reply = urllib_post(f"{url}/v1/answer", body, ctype)
    assert "UTF-8" not in reply.get("error", "")  # (the stand-in pipeline fails later)


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (socket time-out: 60 s)."""
    sock.settimeout(60)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_a_client_stalling_in_its_headers_is_dropped(server):
    _, port = server
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"POST /v1/answer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multi")
        assert read_until_closed(sock) == b""  # closed, not held open


def test_a_second_request_stalling_in_its_headers_is_dropped(server):
    _, port = server
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /heal")
        assert read_until_closed(sock).startswith(b"HTTP/1.1 200")


def test_a_client_stalling_in_its_body_gets_408(server):
    _, port = server
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"POST /v1/answer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
                     b"\r\nContent-Length: 100\r\n\r\n{\"question\": ")
        reply = read_until_closed(sock)
    assert reply.startswith(b"HTTP/1.1 408") and b"stalled" in reply
