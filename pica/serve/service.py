"""``pica serve``: one pipeline, loaded and warmed up at start-up, behind a web page and a JSON API.

:class:`Service` is the part without HTTP: it checks requests, decodes uploads with the same guard
as ``pica answer`` (format, size, decompression bombs), and runs answers through a gate — one at a
time for the local llama.cpp model (not thread-safe; requests queue), up to ``concurrency`` at once
for an API backend — each within a per-request timeout. :mod:`pica.serve.app` puts it behind
FastAPI; :func:`serve` is what ``pica serve`` calls.
"""

from __future__ import annotations

import asyncio
import io
import logging
import math
import os
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pica.config import (
    DEFAULT_SERVE_BODY_SECONDS,
    DEFAULT_SERVE_DRAIN_MB,
    DEFAULT_SERVE_HEAD_SECONDS,
    DEFAULT_SERVE_HOST,
    DEFAULT_SERVE_MAX_CAPTION_CHARS,
    DEFAULT_SERVE_MAX_QUESTION_CHARS,
    DEFAULT_SERVE_MAX_QUEUE,
    DEFAULT_SERVE_MAX_UPLOAD_MB,
    DEFAULT_SERVE_MODEL_NAME,
    DEFAULT_SERVE_PORT,
    DEFAULT_SERVE_TIMEOUT,
)
from pica.errors import BackendError, CaptionError, InputError, ModelLoadError, PicaError
from pica.types import Question

log = logging.getLogger("pica.serve")

# What a client can do when the server cannot caption (the API's own field, not a CLI option).
SERVE_CAPTION_HINT = "send a caption with the image (the caption field)"

# Upload formats the page and the API accept, by PIL format name.
UPLOAD_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
WARMUP_QUESTION = "Which city is famous for these buses?"
WARMUP_CAPTION = "a red double decker bus driving down a city street"
# Demo photos of the shared workspace (README's example), offered on the page when present.
SHARED_IMAGES = Path(__file__).resolve().parents[3] / "shared" / "images"


class RequestFailed(Exception):
    """A request that gets an HTTP error: ``status`` and a one-line ``message`` for the client."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None,
                 param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = " ".join(str(message).split())
        self.headers = headers
        self.param = param  # the request field at fault (OpenAI-style errors name it)


@dataclass
class ServeOptions:
    """How the server listens and what it accepts (the pipeline's settings are separate).

    Attributes:
        host: Interface to bind; ``127.0.0.1`` keeps the server private to this machine.
        port: TCP port.
        max_upload_mb: Largest accepted request body (an image upload), in MB.
        timeout: Seconds a request may take, queueing included, before it gets HTTP 504.
        examples_dir: Folder of example images shown on the page (default: the shared demo
            photos when they exist); chosen by whoever starts the server, never by a request.
        max_question_chars: Longest accepted question; longer ones get 400 before they queue.
        max_caption_chars: Longest accepted caption; longer ones get 400 before they queue.
        drain_mb: Over-limit bodies up to this size are read and discarded before the 413, so
            clients that send the whole body before reading the reply get the 413.
        head_seconds: A request's line and headers must arrive within this many seconds (of the
            connection or the previous answer), else the connection is dropped.
        body_seconds: A body that sends nothing for this long gets 408.
        max_queue: Requests that may wait for a busy answer slot; more get 429 with Retry-After.
        model_name: The model id ``/v1/models`` lists and chat completions report.
        api_key: When set, the OpenAI-compatible routes want ``Authorization: Bearer <key>``
            (read from ``--require-key-env``; never logged or returned).
        allow_image_urls: Fetch ``http(s)`` image URLs named in chat messages (default: refused).
        allow_private_image_urls: Let those fetches reach loopback and private addresses.
        log_level: ``info`` (start-up and one line per request) or ``warning`` (``--quiet``).
    """

    host: str = DEFAULT_SERVE_HOST
    port: int = DEFAULT_SERVE_PORT
    max_upload_mb: float = DEFAULT_SERVE_MAX_UPLOAD_MB
    timeout: float = DEFAULT_SERVE_TIMEOUT
    examples_dir: Path | None = None
    max_question_chars: int = DEFAULT_SERVE_MAX_QUESTION_CHARS
    max_caption_chars: int = DEFAULT_SERVE_MAX_CAPTION_CHARS
    drain_mb: float = DEFAULT_SERVE_DRAIN_MB
    head_seconds: float = DEFAULT_SERVE_HEAD_SECONDS
    body_seconds: float = DEFAULT_SERVE_BODY_SECONDS
    max_queue: int = DEFAULT_SERVE_MAX_QUEUE
    model_name: str = DEFAULT_SERVE_MODEL_NAME
    api_key: str | None = field(default=None, repr=False)
    allow_image_urls: bool = False
    allow_private_image_urls: bool = False
    log_level: str = "info"

    def validate(self) -> ServeOptions:
        """Check ranges; return ``self``. Raises ``InputError`` naming the option."""
        if not 0 <= self.port <= 65535:
            raise InputError(f"--port must be between 0 and 65535, got {self.port}")
        if self.max_upload_mb <= 0:
            raise InputError("--max-upload-mb must be positive")
        if self.timeout <= 0:
            raise InputError("--timeout must be positive")
        if self.max_question_chars < 1:
            raise InputError("--max-question-chars must be at least 1")
        if self.max_caption_chars < 1:
            raise InputError("--max-caption-chars must be at least 1")
        if self.drain_mb < 0:
            raise InputError("drain_mb must not be negative")
        if self.max_queue < 0:
            raise InputError("--max-queue must not be negative")
        if not self.model_name.strip():
            raise InputError("--model-name must not be empty")
        if self.api_key is not None and not self.api_key.strip():
            raise InputError("--require-key-env names an empty environment variable")
        if self.allow_private_image_urls and not self.allow_image_urls:
            raise InputError("--allow-private-image-urls needs --allow-image-urls")
        if self.examples_dir is not None and not Path(self.examples_dir).is_dir():
            raise InputError(f"--examples-dir {self.examples_dir} is not a folder")
        return self

    @property
    def max_upload_bytes(self) -> int:
        """The upload limit in bytes."""
        return int(self.max_upload_mb * 1024 * 1024)


class Service:
    """Answers requests with one long-lived pipeline.

    Args:
        pipeline: The pipeline (its components are loaded by :meth:`warm_up`).
        options: Limits and listening options.
    """

    def __init__(self, pipeline, options: ServeOptions | None = None) -> None:
        self.pipeline = pipeline
        self.options = (options or ServeOptions()).validate()
        self.captioner_error: str | None = None
        self._slots = 1
        self._gate: asyncio.Semaphore | None = None
        self._waiting = 0  # requests waiting for a slot
        self._seconds = 1.0  # running mean of seconds per answer (for Retry-After)
        self._executor: ThreadPoolExecutor | None = None
        self._thumbnails: dict[str, Path] | None = None
        self._thumb_lock = threading.Lock()
        # Uploads are checked (fully decoded) at most two at a time, outside the answer queue.
        self._decoder = ThreadPoolExecutor(max_workers=2, thread_name_prefix="pica-decode")

    # -- start-up -------------------------------------------------------------------------------
    def warm_up(self) -> float:
        """Load index, embedder and LLM by answering a fixed question; try to load the captioner.

        A captioner that cannot load (e.g. no weights offline) is not fatal: requests that carry
        a caption still work, the others get HTTP 503 naming the problem.

        Returns:
            Seconds the warm-up answer took.

        Raises:
            PicaError: the index, embedder or LLM cannot be loaded.
        """
        t0 = time.perf_counter()
        self.pipeline.answer(Question(id="warm-up", question=WARMUP_QUESTION, caption=WARMUP_CAPTION))
        seconds = time.perf_counter() - t0
        self._seconds = seconds
        backend = self.pipeline.backend
        self._slots = self.pipeline.settings.concurrency if getattr(backend, "thread_safe", False) else 1
        self._executor = ThreadPoolExecutor(max_workers=self._slots, thread_name_prefix="pica-answer")
        try:
            self.pipeline.captioner  # noqa: B018 - builds the captioner once, now
        except PicaError as e:
            self.captioner_error = e.problem if isinstance(e, CaptionError) else str(e)
            log.warning("captioning is unavailable (%s); requests must carry a caption",
                        self.captioner_error)
        return seconds

    @property
    def slots(self) -> int:
        """Answers that may run at the same time (1 for the local model)."""
        return self._slots

    @property
    def index_path(self) -> str | None:
        """The index folder, or ``None`` when answering zero-shot (for the server's own log)."""
        index = self.pipeline.index
        return str(index.path) if index is not None else None

    @property
    def index_name(self) -> str | None:
        """The index folder's name (what clients see: never the server's path), or ``None``."""
        index = self.pipeline.index
        return Path(index.path).name if index is not None else None

    def health(self) -> dict[str, Any]:
        """What ``GET /healthz`` returns."""
        return {"status": "ok", "llm": self.pipeline.backend.id, "index": self.index_name,
                "captioning": self.captioner_error is None, "slots": self._slots}

    # -- answering ------------------------------------------------------------------------------
    async def answer(self, question: str, caption: str | None = None, image: bytes | None = None,
                     filename: str | None = None, *, choices: Sequence[str] = (),
                     context: str | None = None) -> dict[str, Any]:
        """Answer one request; return the object ``pica answer --json`` prints.

        Args:
            question: The question text.
            caption: A caption to use instead of captioning (empty = none).
            image: The uploaded image file's bytes, if any.
            filename: The upload's file name (only its base name is used, as an image id for
                captions files and for keeping the photo's own examples out).
            choices: Options to choose from: the question is asked as multiple choice (``mc``,
                pica's scoring of each choice); without them, a direct answer (the settings' task).
            context: Text shown to the LLM after the caption (a harness's hint, e.g. ScienceQA's),
                never used for retrieval or captioning; ``answer["caption"]`` stays the caption.

        Raises:
            RequestFailed: 400 bad input, 413 too large, 415 unsupported format, 429 slots and
                queue full, 502 LLM failure, 503 captioning unavailable, 504 timeout, 500 anything else.
        """
        question = (question or "").strip()
        caption = (caption or "").strip() or None
        if not question:
            raise RequestFailed(400, "the question is empty; ask something about the image")
        if len(question) > self.options.max_question_chars:
            raise RequestFailed(400, f"the question is too long ({len(question)} characters;"
                                     f" at most {self.options.max_question_chars})")
        if caption is not None and len(caption) > self.options.max_caption_chars:
            raise RequestFailed(400, f"the caption is too long ({len(caption)} characters;"
                                     f" at most {self.options.max_caption_chars})")
        if image is None and caption is None:
            raise RequestFailed(400, "send an image, a caption, or both")
        if image is not None:
            # Check now (a bad image is a 400 even with a caption), then let the decoded pixels go:
            # a queued request holds only the compressed upload, and the pipeline decodes it again
            # only if it needs the pixels (captioning, image retrieval).
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._decoder, self.decode_image, image)
            if caption is None and self.captioner_error is not None:
                raise RequestFailed(503, f"captioning is unavailable on this server"
                                         f" ({self.captioner_error}); {SERVE_CAPTION_HINT}")
        image_id = None
        if filename:
            from pica.datasets import normalize_image_id

            image_id = normalize_image_id(Path(filename.replace("\\", "/")).name)
        context = (context or "").strip() or None
        if context is not None and len(context) > self.options.max_caption_chars:
            raise RequestFailed(400, f"the context is too long ({len(context)} characters;"
                                     f" at most {self.options.max_caption_chars})")
        q = Question(id="request", question=question, caption=caption, image_id=image_id,
                     image=(lambda: self.decode_image(image)) if image is not None else None,
                     choices=list(choices))
        task = "mc" if choices else None
        result = await self._run(lambda: self._respond(q, task, context))
        return {**result.to_dict(llm=self.pipeline.backend.id, index=self.index_name), "choice": self.choice}

    def _respond(self, q: Question, task: str | None, context: str | None):
        """The pipeline's answer; with a context, the LLM sees it after the caption (retrieval and
        captioning ran on the question and image alone)."""
        if context is None:
            return self.pipeline.answer(q, task=task)
        item = self.pipeline.prepare([q])[0]
        caption = item.caption
        shown = f"{caption.rstrip(' .')}. {context}" if caption.strip() else context
        answer = self.pipeline.respond(replace(item, caption=shown), task)
        answer.caption = caption
        return answer

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` by the LLM's tokenizer (usage figures), or its word count when the
        backend cannot count."""
        try:
            return int(self.pipeline.backend.count_tokens(text))
        except (PicaError, NotImplementedError, ValueError, TypeError):
            return len(text.split())

    @property
    def choice(self) -> dict[str, Any]:
        """The answer choice in use, as ``pica answer --json`` states it, with chooser files by
        name only (clients never see the server's paths)."""
        info = dict(self.pipeline.choice_info)
        for key in ("chooser", "untrusted_chooser"):
            if info.get(key):
                info[key] = Path(info[key]).name
        return info

    def decode_image(self, data: bytes):
        """Check and decode an uploaded image; return it as RGB PIL.

        Raises:
            RequestFailed: 400 empty, not an image, corrupt or a decompression bomb; 413 larger
                than the upload limit; 415 not JPEG, PNG or WebP.
        """
        from PIL import Image, UnidentifiedImageError

        from pica.util.images import load_image

        if not data:
            raise RequestFailed(400, "the image is empty (0 bytes)")
        if len(data) > self.options.max_upload_bytes:
            raise RequestFailed(413, f"the image is larger than {self.options.max_upload_mb:g} MB")
        try:
            with Image.open(io.BytesIO(data)) as probe:
                kind = probe.format
        except Image.DecompressionBombError as e:  # not an OSError: PIL refuses it at open
            raise RequestFailed(400, "the image is too large (possible decompression bomb)") from e
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
            raise RequestFailed(400, "the upload is not an image (unrecognised format)") from e
        if kind not in UPLOAD_FORMATS:
            raise RequestFailed(415, f"{kind} images are not accepted; send JPEG, PNG or WebP")
        fd, name = tempfile.mkstemp(prefix="pica-upload-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            return load_image(name)  # the decompression-bomb and truncation guard of `pica answer`
        except InputError as e:
            raise RequestFailed(400, str(e).replace(name, "the upload")) from e
        finally:
            os.unlink(name)

    async def _run(self, work: Callable[[], Any]) -> Any:
        """Run ``work`` in a free slot within the timeout; map failures to :class:`RequestFailed`.

        A timed-out answer keeps its slot until its thread finishes, so the local model is never
        entered twice; the client gets 504 at once.
        """
        if self._executor is None:
            raise RequestFailed(503, "the server is still starting")
        if self._gate is None:
            self._gate = asyncio.Semaphore(self._slots)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.timeout
        if self._gate.locked() and self._waiting >= self.options.max_queue:
            wait = max(1, math.ceil(self._seconds * (self._waiting + 1) / self._slots))
            raise RequestFailed(429, f"all {self._slots} answer slot(s) are busy and {self._waiting}"
                                     f" request(s) are waiting; retry in {wait} s",
                                headers={"Retry-After": str(wait)})
        self._waiting += 1
        try:
            await asyncio.wait_for(self._gate.acquire(), self.options.timeout)
        except TimeoutError as e:
            raise RequestFailed(504, f"no answer within {self.options.timeout:g} s (queued)") from e
        finally:
            self._waiting -= 1
        started = time.perf_counter()

        def done(_) -> None:
            self._gate.release()
            self._seconds = 0.8 * self._seconds + 0.2 * (time.perf_counter() - started)

        future = loop.run_in_executor(self._executor, work)
        future.add_done_callback(done)
        try:
            return await asyncio.wait_for(asyncio.shield(future), max(0.0, deadline - loop.time()))
        except TimeoutError as e:
            raise RequestFailed(504, f"no answer within {self.options.timeout:g} s") from e
        except CaptionError as e:
            raise RequestFailed(503, e.with_hint(SERVE_CAPTION_HINT)) from e
        except ModelLoadError as e:
            raise RequestFailed(503, str(e)) from e
        except InputError as e:
            raise RequestFailed(400, str(e)) from e
        except BackendError as e:
            raise RequestFailed(502, f"the LLM failed: {e}") from e
        except PicaError as e:
            raise RequestFailed(500, str(e)) from e

    # -- page extras ----------------------------------------------------------------------------
    @property
    def has_thumbnails(self) -> bool:
        """Whether the index names an images folder that exists (example thumbnails)."""
        folder = self._images_folder()
        return folder is not None and folder.is_dir()

    def thumbnail(self, example_id: str, size: int = 192) -> bytes | None:
        """A JPEG thumbnail of an index example's image, or ``None`` when it has none."""
        index = self.pipeline.index
        if index is None or not self.has_thumbnails:
            return None
        with self._thumb_lock:
            if self._thumbnails is None:
                from pica.datasets import normalize_image_id, scan_images

                by_image = scan_images(self._images_folder())
                ids = index.examples["id"].astype(str)
                self._thumbnails = {i: by_image[normalize_image_id(m)]
                                    for i, m in zip(ids, index.examples["image_id"])
                                    if m is not None and normalize_image_id(m) in by_image}
        path = self._thumbnails.get(example_id)
        if path is None:
            return None
        from pica.util.images import load_image

        try:
            img = load_image(path)
        except InputError:
            return None
        img.thumbnail((size, size))
        out = io.BytesIO()
        img.save(out, format="JPEG", quality=80)
        return out.getvalue()

    def _images_folder(self) -> Path | None:
        index = self.pipeline.index
        folder = index.manifest.get("sources", {}).get("images") if index is not None else None
        return Path(folder) if folder else None

    def demo_images(self) -> dict[str, Path]:
        """Example images offered on the page, by file name (only JPEG, PNG, WebP files)."""
        folder = self.options.examples_dir or (SHARED_IMAGES if SHARED_IMAGES.is_dir() else None)
        if folder is None:
            return {}
        suffixes = {".jpg", ".jpeg", ".png", ".webp"}
        return {p.name: p for p in sorted(Path(folder).iterdir())
                if p.is_file() and p.suffix.lower() in suffixes and not p.name.startswith(".")}

    def close(self) -> None:
        """Stop the answer threads and release the model."""
        self._decoder.shutdown(wait=False, cancel_futures=True)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self.pipeline.backend.close()
