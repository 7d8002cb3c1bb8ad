"""The FastAPI app of ``pica serve``: the page, ``POST /v1/answer``, ``/healthz``, JSON errors.

Every error is JSON ``{"error": "..."}``: 4xx for bad input, 5xx for failures, never a traceback
or an HTML debug page. Request bodies over the upload limit are refused with 413 as soon as the
limit is passed (by ``Content-Length`` or while streaming), before anything is decoded; the rest of
the body is read and discarded (within bounds) first, so that ordinary clients read the 413.
"""

from __future__ import annotations

import json
import logging
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from pica.config import DEFAULT_SERVE_BODY_SECONDS
from pica.serve.openai_api import add_openai_routes, is_openai_path, openai_error
from pica.serve.service import UPLOAD_FORMATS, RequestFailed, Service

log = logging.getLogger("pica.serve")

FIELDS = ("image", "question", "caption")
STATIC = {"serve.js": "text/javascript", "serve.css": "text/css"}
PAGE_CSP = ("default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self';"
            " connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
# Multipart boundaries and the text fields come on top of the image itself.
FORM_OVERHEAD = 64 * 1024


class AnswerRequest(BaseModel):
    """``POST /v1/answer`` as JSON: a question and a caption (no image; upload one as multipart)."""

    model_config = ConfigDict(extra="forbid")
    question: str
    caption: str | None = None


ANSWER_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {"schema": {
            "type": "object", "required": ["question"],
            "properties": {
                "image": {"type": "string", "format": "binary",
                          "description": "JPEG, PNG or WebP file (optional when a caption is given)"},
                "question": {"type": "string"},
                "caption": {"type": "string", "description": "Use instead of captioning the image"},
            }}},
        "application/json": {"schema": AnswerRequest.model_json_schema()},
    },
}
ERROR = {"content": {"application/json": {"example": {"error": "the question is empty"}}}}


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The JSON error response every failure gets."""
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class BodyTooLarge(HTTPException):
    """The request body passed the upload limit (raised from inside ``receive``)."""

    def __init__(self, limit_mb: float) -> None:
        super().__init__(413, f"the request is larger than the upload limit of {limit_mb:g} MB",
                         headers={"Connection": "close"})


class UploadLimit:
    """ASGI middleware: refuse bodies over ``max_bytes`` with 413, by header or while streaming.

    A client that sends its whole body before it reads the reply (Python urllib, http.client,
    requests) gets a connection reset instead of the 413 if the server answers and closes while
    body bytes are still arriving. So the rest of an over-limit body is read and discarded, up to
    ``drain_bytes`` and ``drain_seconds``, before the 413 goes out; beyond those bounds (a hostile
    client) the 413 is sent and the connection closed at once. A client that sent
    ``Expect: 100-continue`` (curl) is answered at once: it has not sent its body.
    """

    def __init__(self, app, max_bytes: int, limit_mb: float, drain_bytes: int,
                 drain_seconds: float = 30.0, path_limits: dict[str, int] | None = None,
                 stall_seconds: float = DEFAULT_SERVE_BODY_SECONDS) -> None:
        self.app = app
        self.stall_seconds = stall_seconds
        self.max_bytes = max_bytes
        self.path_limits = path_limits or {}
        self.limit_mb = limit_mb
        self.drain_bytes = drain_bytes
        self.drain_seconds = drain_seconds

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        length = headers.get(b"content-length", b"")
        max_bytes = self.path_limits.get(scope.get("path", "").rstrip("/"), self.max_bytes)
        if length.isdigit() and int(length) > max_bytes:
            waits = headers.get(b"expect", b"").lower() == b"100-continue"
            if not waits and int(length) <= self.drain_bytes:
                await self._drain(receive, int(length))
            return await _too_large(self.limit_mb, scope.get("path", ""))(scope, receive, send)
        seen = 0
        body_done = False

        async def limited_receive():
            nonlocal seen, body_done
            if body_done:  # after the body: a disconnect, which may come at any time
                return await receive()
            import asyncio

            try:
                message = await asyncio.wait_for(receive(), self.stall_seconds)
            except TimeoutError:
                raise HTTPException(408, f"the request body stalled (nothing for {self.stall_seconds:g} s)",
                                    headers={"Connection": "close"}) from None
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > max_bytes:
                    if message.get("more_body", False):
                        await self._drain(receive, self.drain_bytes - seen)
                    raise BodyTooLarge(self.limit_mb)
            return message

        await self.app(scope, limited_receive, send)

    async def _drain(self, receive, budget: int) -> None:
        """Read and drop body messages until the body ends, ``budget`` bytes or the time bound."""
        import asyncio

        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.drain_seconds
        while budget >= 0:
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                return
            if message["type"] != "http.request" or not message.get("more_body", False):
                return
            budget -= len(message.get("body", b""))


def _too_large(limit_mb: float, path: str = ""):
    async def app(scope, receive, send) -> None:
        too_large = BodyTooLarge(limit_mb)
        reply = openai_error if is_openai_path(path) else error
        await reply(413, too_large.detail, headers=too_large.headers)(scope, receive, send)
    return app


def create_app(service: Service) -> FastAPI:
    """The FastAPI app serving ``service`` (already warmed up)."""
    from fastapi_offline import FastAPIOffline

    # /docs with swagger-ui files from the package, so the API docs work without a network.
    app = FastAPIOffline(title="pica", version="1", redoc_url=None, static_url="/docs-assets",
                         description="Knowledge-based VQA: caption -> retrieved examples -> few-shot LLM.")
    _add_error_handlers(app)
    _add_routes(app, service)
    add_openai_routes(app, service)
    options = service.options
    # A chat request carries its image base64-encoded in JSON: 4/3 of the image's bytes.
    chat_limit = options.max_upload_bytes * 4 // 3 + FORM_OVERHEAD
    app.add_middleware(UploadLimit, max_bytes=options.max_upload_bytes + FORM_OVERHEAD,
                       limit_mb=options.max_upload_mb,
                       drain_bytes=max(int(options.drain_mb * 1024 * 1024), chat_limit),
                       path_limits={"/v1/chat/completions": chat_limit},
                       stall_seconds=options.body_seconds)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    # The OpenAI-compatible routes answer errors in OpenAI's shape, the others as {"error": "..."}.
    @app.exception_handler(RequestFailed)
    async def failed(request: Request, e: RequestFailed) -> JSONResponse:
        if is_openai_path(request.url.path):
            return openai_error(e.status, e.message, e.param, e.headers)
        return error(e.status, e.message, e.headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, e: HTTPException) -> JSONResponse:
        messages = {404: "not found", 405: "method not allowed"}
        message = messages.get(e.status_code) or str(e.detail)
        if is_openai_path(request.url.path):
            return openai_error(e.status_code, message, headers=e.headers)
        return JSONResponse({"error": message}, status_code=e.status_code, headers=e.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        if is_openai_path(request.url.path):
            return openai_error(400, _validation_message(e.errors()))
        return error(400, _validation_message(e.errors()))

    @app.exception_handler(Exception)
    async def internal(request: Request, e: Exception) -> JSONResponse:
        log.error("%s %s failed: %s", request.method, request.url.path, type(e).__name__, exc_info=e)
        message = f"internal error ({type(e).__name__}); see the server log"
        return openai_error(500, message) if is_openai_path(request.url.path) else error(500, message)


def _validation_message(errors: list[dict[str, Any]]) -> str:
    first = errors[0] if errors else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    return f"{where or 'request'}: {first.get('msg', 'invalid request')}"


def _add_routes(app: FastAPI, service: Service) -> None:
    demos = service.demo_images()
    suggestions = json.loads(resources.files("pica").joinpath("templates/serve_examples.json").read_text())

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        config = {
            "maxUploadMb": service.options.max_upload_mb, "captioning": service.captioner_error is None,
            "captionerError": service.captioner_error, "thumbnails": service.has_thumbnails,
            "choose": service.pipeline.settings.choose, "formats": sorted(UPLOAD_FORMATS.values()),
            "examples": [{"name": name, "url": f"/demo/{name}", **suggestions.get(name, {})}
                         for name in demos],
        }
        html = _render_page(config, service.health())
        return HTMLResponse(html, headers={"Content-Security-Policy": PAGE_CSP,
                                           "X-Content-Type-Options": "nosniff"})

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        if name not in STATIC:
            raise HTTPException(404)
        text = resources.files("pica").joinpath(f"templates/{name}").read_text(encoding="utf-8")
        return Response(text, media_type=STATIC[name], headers={"X-Content-Type-Options": "nosniff"})

    @app.get("/demo/{name}", include_in_schema=False)
    async def demo(name: str) -> Response:
        if name not in demos:  # only the files listed at start-up; a request never names a path
            raise HTTPException(404)
        return FileResponse(demos[name])

    @app.get("/healthz", summary="Liveness: the pipeline is loaded and answering")
    async def healthz() -> dict[str, Any]:
        return service.health()

    @app.post("/v1/answer", summary="Answer a question about an uploaded image or a caption",
              openapi_extra={"requestBody": ANSWER_BODY},
              responses={400: ERROR, 413: ERROR, 415: ERROR, 502: ERROR, 503: ERROR, 504: ERROR})
    async def answer(request: Request) -> dict[str, Any]:
        """The same object as ``pica answer --json``: answer, raw completion, caption, log-prob,
        example ids and examples, candidates, prompts, prompt tokens, seconds per stage, llm, index."""
        fields = await _read_answer_request(request, service.options.max_upload_bytes)
        return await service.answer(**fields)

    @app.get("/v1/examples/{example_id}/image", include_in_schema=False)
    async def example_image(example_id: str) -> Response:
        import asyncio

        data = await asyncio.to_thread(service.thumbnail, example_id)
        if data is None:
            raise HTTPException(404)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})


async def _read_answer_request(request: Request, max_bytes: int) -> dict[str, Any]:
    """Question, caption, image bytes and file name from a multipart, form or JSON request."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        try:
            body = AnswerRequest.model_validate(await request.json())
        except ValueError as e:  # bad JSON text, or a body that does not fit the schema
            errors = e.errors() if isinstance(e, ValidationError) else [{"msg": "not valid JSON"}]
            raise RequestFailed(400, _validation_message(errors)) from e
        return {"question": body.question, "caption": body.caption}
    if kind not in ("multipart/form-data", "application/x-www-form-urlencoded"):
        raise RequestFailed(415, "send multipart/form-data (image, question, caption) or JSON"
                                 " (question, caption)")
    if kind == "multipart/form-data":
        _check_text_parts(await request.body(), request.headers.get("content-type", ""))
    form = await request.form(max_files=1, max_fields=len(FIELDS))
    unknown = sorted(set(form.keys()) - set(FIELDS))
    if unknown:
        raise RequestFailed(400, f"unknown field '{unknown[0]}'; send {', '.join(FIELDS)}")
    fields: dict[str, Any] = {}
    for name in ("question", "caption"):
        value = form.get(name)
        if isinstance(value, UploadFile):
            raise RequestFailed(400, f"'{name}' must be text, not a file")
        fields[name] = value
    upload = form.get("image")
    if isinstance(upload, str) and upload:
        raise RequestFailed(400, "'image' must be an uploaded file (a server-side path is never read)")
    if isinstance(upload, UploadFile) and (upload.filename or upload.size):
        data = await upload.read(max_bytes + 1)
        fields.update(image=data, filename=upload.filename)
    return fields


def _check_text_parts(body: bytes, content_type: str) -> None:
    """Refuse a multipart body whose text fields (parts without a file name) are not UTF-8, as a
    JSON body is refused: Starlette would decode them as Latin-1, and mojibake would reach the
    prompt.

    Raises:
        RequestFailed: 400 naming the field.
    """
    boundary = next((p.split("=", 1)[1].strip().strip('"') for p in content_type.split(";")[1:]
                     if p.strip().lower().startswith("boundary=")), "")
    if not boundary:
        return  # the form parser reports it
    for part in body.split(b"--" + boundary.encode("latin-1")):
        head, sep, data = part.partition(b"\r\n\r\n")
        if not sep or b"filename=" in head.lower():
            continue
        try:
            data.removesuffix(b"\r\n").decode("utf-8")
        except UnicodeDecodeError:
            name = head.split(b'name="', 1)[-1].split(b'"', 1)[0].decode("latin-1")
            raise RequestFailed(400, f"'{name}' is not valid UTF-8 text") from None


def _render_page(config: dict[str, Any], health: dict[str, Any]) -> str:
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("pica", "templates"), autoescape=select_autoescape(["html"]))
    return env.get_template("serve.html").render(config=config, health=health, index_name=health["index"])
