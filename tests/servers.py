"""Real HTTP servers on 127.0.0.1 for tests of the OpenAI-compatible backend.

``FlakyServer`` is a scripted OpenAI-style server (errors, slow answers, chat-only mode) that records
what it received; ``start_llama_server`` runs the real ``llama_cpp.server`` on a GGUF file.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

Body = dict[str, Any] | Callable[[dict[str, Any]], dict[str, Any]]


def completion_json(text: str, token_logprobs: list[float] | None = None,
                    tokens: list[str] | None = None, prompt: str = "", prompt_tokens: int = 7
                    ) -> dict[str, Any]:
    """An OpenAI ``/completions`` answer; ``tokens`` default to ``[text]``.

    ``text_offset`` starts at ``len(prompt)`` as OpenAI and llama-cpp-python report it.
    """
    tokens = tokens if tokens is not None else [text]
    offsets, pos = [], len(prompt)
    for token in tokens:
        offsets.append(pos)
        pos += len(token)
    logprobs = None
    if token_logprobs is not None:
        logprobs = {"tokens": tokens, "token_logprobs": token_logprobs, "text_offset": offsets,
                    "top_logprobs": [{t: lp} for t, lp in zip(tokens, token_logprobs, strict=True)]}
    return {"object": "text_completion", "model": "test",
            "choices": [{"index": 0, "text": text, "logprobs": logprobs, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(tokens),
                      "total_tokens": prompt_tokens + len(tokens)}}


def chat_json(text: str, token_logprobs: list[tuple[str, float]] | None = None) -> dict[str, Any]:
    """An OpenAI ``/chat/completions`` answer, with ``(token, logprob)`` pairs when given."""
    logprobs = None
    if token_logprobs is not None:
        logprobs = {"content": [{"token": t, "logprob": lp, "top_logprobs": []}
                                for t, lp in token_logprobs]}
    return {"object": "chat.completion", "model": "test",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "logprobs": logprobs, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10}}


def error_json(message: str) -> dict[str, Any]:
    """An OpenAI-style error body."""
    return {"error": {"message": message, "type": "invalid_request_error", "code": None}}


@dataclass
class Received:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


class LocalServer:
    """An HTTP server on 127.0.0.1 (a free port), served from a thread inside a ``with`` block:
    what the scripted servers below share. ``base_url`` ends in ``/v1``."""

    def _listen(self, handler: type[BaseHTTPRequestHandler], queue: int | None = None) -> None:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        if queue:
            self._httpd.request_queue_size = queue
        self.port = self._httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


class FlakyServer(LocalServer):
    """A scripted OpenAI-style server on 127.0.0.1 (a context manager).

    Each request to a ``.../completions`` endpoint takes the next script entry; after the script
    ends the last entry repeats. Entries:

    - ``(status, headers)``: an error status with an OpenAI error body, e.g. ``(429, {"Retry-After": "0"})``;
    - ``(status, headers, body)``: any status with an explicit body (dict as JSON, str as text);
    - ``(200, body)``: success; ``body`` is a dict, or a callable taking the request JSON;
    - ``("slow", seconds)`` / ``("slow", seconds, entry)``: wait, then answer ``entry``
      (default: a completion ``"late"``), for timeouts and concurrency.

    Args:
        script: The entries, in request order.
        chat_only: Answer ``/completions`` with HTTP 404 (or with ``(status, message)`` when a tuple)
            and serve the script on ``/chat/completions`` only.

    Attributes:
        base_url: ``http://127.0.0.1:PORT/v1``.
        received: Every request (method, path, headers, parsed JSON body), in arrival order.
        max_in_flight: Most scripted requests being handled at the same time.
    """

    def __init__(self, script: list[tuple], chat_only: bool | tuple[int, str] = False) -> None:
        if not script:
            raise ValueError("FlakyServer needs at least one script entry")
        self.script = list(script)
        self.chat_only = (404, "Not Found") if chat_only is True else chat_only or None
        self.received: list[Received] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._served = 0
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._listen(self._handler_class())

    def close(self) -> None:
        """Stop serving; slow answers still waiting give up at once."""
        self._closing.set()
        super().close()

    @property
    def count(self) -> int:
        """Number of requests received (every path)."""
        return len(self.received)

    def paths(self) -> list[str]:
        """Paths of the requests received, in order."""
        return [r.path for r in self.received]

    def _next_entry(self) -> tuple:
        with self._lock:
            entry = self.script[min(self._served, len(self.script) - 1)]
            self._served += 1
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        return entry

    def _finished(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
                pass

            def do_GET(self) -> None:
                self._record(None)
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, {}, {"object": "list", "data": [{"id": "test", "object": "model"}]})
                else:
                    self._send(404, {}, error_json("Not Found"))

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                self._record(body)
                path = self.path.split("?")[0]
                if not path.endswith("/completions"):
                    return self._send(404, {}, error_json("Not Found"))
                is_chat = path.endswith("/chat/completions")
                if server.chat_only and not is_chat:
                    status, message = server.chat_only
                    return self._send(status, {}, error_json(message))
                self._answer(server._next_entry(), body)

            def _record(self, body: Any) -> None:
                with server._lock:
                    server.received.append(Received(self.command, self.path.split("?")[0],
                                                    dict(self.headers.items()), body))

            def _answer(self, entry: tuple, request: Any) -> None:
                if entry[0] == "slow":
                    if server._closing.wait(entry[1]):
                        return server._finished()
                    entry = entry[2] if len(entry) > 2 else (200, completion_json("late", [-1.0]))
                status = entry[0]
                if len(entry) == 2 and 200 <= status < 300:
                    headers, body = {}, entry[1]
                else:
                    headers = entry[1] if len(entry) > 1 else {}
                    body = entry[2] if len(entry) > 2 else error_json(f"scripted HTTP {status}")
                if callable(body):
                    body = body(request)
                server._finished()  # before answering: the client may send its next request at once
                self._send(status, headers, body)

            def _send(self, status: int, headers: dict[str, str], body: Any) -> None:
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                try:
                    self.send_response(status)
                    ctype = "text/plain" if isinstance(body, str) else "application/json"
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

        return Handler


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_llama_server(model_path: str | Path, port: int | None = None, n_ctx: int = 2048,
                       timeout: float = 60.0) -> tuple[subprocess.Popen, str]:
    """Start ``python -m llama_cpp.server`` on ``model_path``; return the process and its base URL.

    ``--logits_all True`` is what lets ``/completions`` return log-probs. Waits until
    ``GET /v1/models`` answers; stop it with :func:`stop_llama_server`.

    Raises:
        RuntimeError: the server exited or did not answer within ``timeout`` (with its stderr tail).
    """
    port = port or free_port()
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model_path),
               "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx),
               "--n_batch", "512", "--n_threads", "-1", "--n_threads_batch", "-1",
               "--logits_all", "True", "--verbose", "False"]
    log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the process; closed by stop
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                               stderr=subprocess.STDOUT)
    process.log = log  # type: ignore[attr-defined]
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"{base_url}/models", timeout=2) as response:
                if response.status == 200:
                    return process, base_url
        except OSError:
            time.sleep(0.2)  # readiness poll, not a retry
    state = (f"exited with code {process.returncode}" if process.poll() is not None
             else f"no answer within {timeout:g} s")
    tail = _log_tail(process)
    stop_llama_server(process)
    raise RuntimeError(f"llama_cpp.server on port {port}: {state}; output tail:\n{tail}")


def stop_process(process: subprocess.Popen, timeout: float = 10) -> None:
    """Terminate a server process, killing it if it has not ended after ``timeout`` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def stop_llama_server(process: subprocess.Popen) -> None:
    """Terminate a server started by :func:`start_llama_server` (kill after 10 s)."""
    stop_process(process)
    log = getattr(process, "log", None)
    if log is not None:
        log.close()


@contextlib.contextmanager
def llama_server(model_path: str | Path, **kwargs: Any) -> Iterator[str]:
    """``with llama_server(path) as base_url:`` a running ``llama_cpp.server``."""
    process, base_url = start_llama_server(model_path, **kwargs)
    try:
        yield base_url
    finally:
        stop_llama_server(process)


def _log_tail(process: subprocess.Popen, chars: int = 3000) -> str:
    log = getattr(process, "log", None)
    if log is None or log.closed:
        return ""
    log.flush()
    log.seek(0)
    return log.read().decode("utf-8", "replace")[-chars:]


class VisionServer(LocalServer):
    """A chat-completions server on 127.0.0.1 that reads images the way a VLM server does.

    Each ``/chat/completions`` request must carry one user message whose content holds a text part
    and an ``image_url`` part with a base64 data URL; the server decodes the image with PIL and
    answers a caption that is a pure function of the decoded pixels and the instruction,
    :func:`vision_caption` - the model is the only stand-in. At most ``slots`` requests are worked
    on at once (like vLLM's ``--max-num-seqs``), each taking ``latency`` seconds.

    Args:
        slots: Requests served at the same time; more wait for a slot.
        latency: Seconds each request takes once in a slot.
        mode: ``ok``; ``refuse`` (HTTP 400 "image input is not supported", as llama-server
            without ``--mmproj``); ``empty`` (an empty reply); ``fail_after`` (HTTP 400 from the
            ``fail_after``-th request on).
        fail_after: Requests answered before ``fail_after`` mode starts failing.
        decode: Decode each image (else only check the data URL's header: a benchmark's server
            stands for a GPU machine, whose decoding should not load the client's CPUs).

    Attributes:
        base_url, received (request bodies), images (decoded PIL images, in arrival order),
        max_in_flight (most requests the server held at once), count.
    """

    def __init__(self, slots: int = 16, latency: float = 0.0, mode: str = "ok",
                 fail_after: int = 0, decode: bool = True) -> None:
        self.slots, self.latency, self.mode, self.fail_after = slots, latency, mode, fail_after
        self.decode = decode
        self.received: list[dict[str, Any]] = []
        self.images: list[Any] = []
        self.max_in_flight = 0
        self.busy_seconds = 0.0
        self._in_flight = 0
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(slots)
        self._listen(self._handler_class(), queue=256)

    @property
    def count(self) -> int:
        return len(self.received)

    def answer(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Status and JSON for one request body (decodes and records the image)."""
        import base64
        import io

        from PIL import Image

        parts = body["messages"][0]["content"]
        text = next(p["text"] for p in parts if p["type"] == "text")
        url = next(p["image_url"]["url"] for p in parts if p["type"] == "image_url")
        header, _, data = url.partition(",")
        assert header.startswith("data:image/") and header.endswith(";base64"), header
        if not self.decode:
            with self._lock:
                self.received.append({"bytes": len(data)})
            return 200, chat_json("a picture")
        image = Image.open(io.BytesIO(base64.b64decode(data, validate=True)))
        image.load()
        with self._lock:
            self.received.append(body)
            self.images.append(image)
            served = len(self.received)
        if self.mode == "refuse" or (self.mode == "fail_after" and served > self.fail_after):
            return 400, error_json("image input is not supported - hint: if this is unexpected,"
                                   " you may need to provide the mmproj")
        caption = "" if self.mode == "empty" else vision_caption(image, text)
        return 200, chat_json(caption)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # Headers and body go out in two writes; without TCP_NODELAY the second waits for
                # the client's delayed ACK (40 ms). uvicorn (vLLM) and llama-server set it too.
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                if not self.path.endswith("/chat/completions"):
                    return self._send(404, error_json("Not Found"))
                with server._slots:
                    with server._lock:
                        server._in_flight += 1
                        server.max_in_flight = max(server.max_in_flight, server._in_flight)
                    start = time.perf_counter()
                    try:
                        if server.latency:
                            time.sleep(server.latency)
                        status, answer = server.answer(body)
                    finally:
                        with server._lock:
                            server._in_flight -= 1
                            server.busy_seconds += time.perf_counter() - start
                self._send(status, answer)

            def _send(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        return Handler


def vision_caption(image: Any, instruction: str) -> str:
    """The stand-in model's caption: size and mean colour of the decoded image, and the question
    when the instruction is question-aware (``...: QUESTION`` up to the line end)."""
    from PIL import ImageStat

    rgb = image.convert("RGB")
    mean = ",".join(str(round(v)) for v in ImageStat.Stat(rgb).mean)
    caption = f"a {rgb.width}x{rgb.height} picture of colour {mean}"
    if "question" in instruction.lower() and ":" in instruction:
        caption += " for " + instruction.split(":", 1)[1].split("\n", 1)[0].strip()
    return caption


class HangingServer(LocalServer):
    """An OpenAI-style server on 127.0.0.1 that answers the first ``answer_first`` requests (a
    chat caption or a completion naming the request's number) and then never answers: each later request is read
    and held open until the server closes, as a stuck model server does.

    Attributes:
        base_url, count (requests received), held (requests being held unanswered).
    """

    def __init__(self, answer_first: int = 0) -> None:
        self.answer_first = answer_first
        self.count = 0
        self.held = 0
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._listen(self._handler_class(), queue=64)

    def close(self) -> None:
        """Stop serving; held requests are let go (their connections closed)."""
        self._closing.set()
        super().close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with server._lock:
                    server.count += 1
                    number = server.count
                if number > server.answer_first:
                    with server._lock:
                        server.held += 1
                    server._closing.wait()
                    self.close_connection = True
                    return
                answer = (chat_json(f"caption {number}") if self.path.endswith("/chat/completions")
                          else completion_json(f" answer{number}", [-0.5]))
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


@contextlib.contextmanager
def serving(service: Any) -> Iterator[tuple[str, int]]:
    """``service``'s app (:class:`pica.serve.service.Service`) under uvicorn in a thread, configured as
    ``pica serve`` runs it (:func:`pica.serve.uvicorn_config`: the head deadline, graceful shutdown), on
    its options' port (give it ``free_port()``); yields ``(base URL, port)`` and stops the server after."""
    import uvicorn

    from pica.serve import uvicorn_config
    from pica.serve.app import create_app

    options = service.options
    running = uvicorn.Server(uvicorn_config(create_app(service), options, log_level="warning"))
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not running.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{options.port}", options.port
    finally:
        running.should_exit = True
        thread.join(timeout=10)


class ImageHost:
    """An image server on 127.0.0.1 recording every path asked (a request pica serve must not make
    unless told to fetch image URLs): ``url`` serves ``png``, ``/loop`` redirects to itself."""

    def __init__(self, png: bytes) -> None:
        self.hits: list[str] = []
        hits = self.hits

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                hits.append(self.path)
                if self.path == "/loop":
                    self.send_response(302)
                    self.send_header("Location", "/loop")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(png)))
                self.end_headers()
                self.wfile.write(png)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.url = f"{self.base}/photo.png"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
