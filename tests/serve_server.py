"""A real ``pica serve`` process on 127.0.0.1 for the server tests, and a tiny HTTP client.

The process inherits the test session's ``PICA_CACHE`` / ``PICA_INDEX_DIR`` (tests/conftest.py) and
runs offline; requests carry captions, so no captioner weights are needed.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from servers import free_port, stop_process

REPO = Path(__file__).resolve().parents[1]
SHARED_IMAGES = REPO.parent / "shared" / "images"
CAPTION = "a young boy putting on a baseball glove"
QUESTION = "What sport is the boy going to play?"


@dataclass
class Reply:
    """An HTTP answer: status, headers, parsed JSON body (or ``None``) and the raw text."""

    status: int
    headers: dict[str, str]
    json: Any
    text: str


@dataclass
class PicaServer:
    """A running server: its base URL, process and log file."""

    base_url: str
    port: int
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        """Everything the server printed so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None, timeout: float = 600) -> Reply:
        """Send one request on a fresh connection; a server that hangs up early reads as status 0."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            raw = response.read()
        except (BrokenPipeError, ConnectionResetError) as e:
            return Reply(0, {}, None, f"connection closed: {e}")
        finally:
            conn.close()
        text = raw.decode("utf-8", "replace")
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, data, text)

    def get(self, path: str) -> Reply:
        """``GET path``."""
        return self.request("GET", path)

    def post_json(self, path: str, payload: Any) -> Reply:
        """``POST path`` with a JSON body."""
        return self.request("POST", path, json.dumps(payload).encode(),
                            {"Content-Type": "application/json"})

    def post_form(self, path: str, fields: dict[str, str], files: dict[str, tuple[str, bytes, str]]
                  | None = None, timeout: float = 600) -> Reply:
        """``POST path`` as multipart/form-data; ``files`` maps a field to (file name, bytes, type)."""
        body, ctype = multipart(fields, files or {})
        return self.request("POST", path, body, {"Content-Type": ctype}, timeout=timeout)


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes, str]]) -> tuple[bytes, str]:
    """Encode a multipart/form-data body; return it and its Content-Type."""
    boundary = uuid.uuid4().hex
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
                     + value.encode() + b"\r\n")
    for name, (filename, data, ctype) in files.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}";'
                     f' filename="{filename}"\r\nContent-Type: {ctype}\r\n\r\n'.encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def server_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a server process: offline, this checkout first on the path."""
    env = dict(os.environ)
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
                "PYTHONUNBUFFERED": "1"})
    env.update(extra or {})
    return env


@contextlib.contextmanager
def pica_server(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> Iterator[PicaServer]:
    """``with pica_server("--max-upload-mb", "1") as server:`` a running ``pica serve``.

    Waits until ``GET /healthz`` answers (start-up builds the starter index on first use and
    loads the model); stops the process afterwards (terminate, then kill after 15 s).

    Raises:
        RuntimeError: the server exited or did not answer in time (with its log tail).
    """
    port = free_port()
    log_file = Path(tempfile.mkstemp(prefix="pica-serve-", suffix=".log")[1])
    with open(log_file, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "pica", "serve", "--port", str(port), *args],
                                   cwd=REPO, env=server_env(env), stdin=subprocess.DEVNULL,
                                   stdout=log, stderr=subprocess.STDOUT)
    server = PicaServer(f"http://127.0.0.1:{port}", port, process, log_file)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"pica serve exited with {process.returncode}:\n{server.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"pica serve did not answer within {timeout:g} s:\n{server.log()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{server.base_url}/healthz", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.25)  # readiness poll, not a retry
        yield server
    finally:
        stop_process(process, timeout=15)
        log_file.unlink(missing_ok=True)
