"""pica as an OpenAI-compatible vision model: ``POST /v1/chat/completions`` and ``GET /v1/models``.

lmms-eval (``--model openai``), VLMEvalKit (``GPT4V``), the official ``openai`` client and chat
front-ends talk to ``pica serve`` as to any vision model. A request runs through the same
:class:`~pica.serve.service.Service` as ``POST /v1/answer``: the same pipeline, answer slots, queue,
time-out and image guard.

What is read from a request:

- ``messages``: the **last user message** is the query. Its text parts (joined by newlines) are taken
  apart by :func:`pica.serve.harness.parse_prompt` into question, context, options and the harness's
  instructions; its one ``image_url`` part is the image. System and developer messages, assistant
  turns and earlier user turns are accepted and not shown to the pipeline, except that when the last
  user message has no image, the latest image of an earlier user message is used (a follow-up
  question about the same picture in a chat front-end). A question without any image (ScienceQA's
  text-only ones) is answered with the context, or ``N/A``, as its caption.
- ``stream``: ``true`` answers as server-sent events: one chunk holding the whole reply, then ``[DONE]``.
- ``max_tokens`` / ``max_completion_tokens``, ``temperature``, ``stop``, ``top_p``, ``seed`` and other
  sampling fields are accepted (pica decodes greedily and its answers are a few tokens; a ``stop``
  string cuts the reply); ``n > 1``, ``tools``/``functions`` and audio are refused with 400.

Every error on these routes is OpenAI's shape ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from pica.serve.harness import ParsedPrompt, parse_prompt
from pica.serve.image_urls import REFUSED, decode_data_url, fetch_image
from pica.serve.service import RequestFailed, Service

OPENAI_PATHS = ("/v1/chat/completions", "/v1/models")
ROLES = {"system", "developer", "user", "assistant", "tool", "function"}
AUDIO_PARTS = {"input_audio", "audio_url", "audio"}
CODES = {400: "invalid_request", 401: "invalid_api_key", 404: "not_found", 405: "method_not_allowed",
         413: "request_too_large", 415: "unsupported_media_type", 429: "rate_limit_exceeded",
         502: "llm_failed", 503: "unavailable", 504: "timeout"}


def is_openai_path(path: str) -> bool:
    """Whether ``path`` belongs to the OpenAI-compatible API (its errors take OpenAI's shape)."""
    path = path.rstrip("/")
    return path in OPENAI_PATHS or path.startswith("/v1/models/")


def openai_error(status: int, message: str, param: str | None = None,
                 headers: dict[str, str] | None = None) -> JSONResponse:
    """An error in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``."""
    kind = ("authentication_error" if status == 401 else "rate_limit_error" if status == 429
            else "server_error" if status >= 500 else "invalid_request_error")
    body = {"error": {"message": message, "type": kind, "param": param,
                      "code": CODES.get(status, "internal_error")}}
    return JSONResponse(body, status_code=status, headers=headers)


@dataclass
class ChatRequest:
    """The parts of a chat-completions body pica uses.

    Attributes:
        text: The last user message's text parts, joined by newlines.
        image_url: The image's URL (a data URL or http(s)), or ``None``.
        image_param: Where the image sits in the body (for error messages).
        stream: Answer as server-sent events.
        stop: Strings that cut the reply.
        include_usage: ``stream_options.include_usage``.
    """

    text: str
    image_url: str | None
    image_param: str | None
    stream: bool = False
    stop: tuple[str, ...] = ()
    include_usage: bool = False


def read_chat_request(body: Any) -> ChatRequest:
    """Check a chat-completions body and pick out the query.

    Raises:
        RequestFailed: 400 naming the field at fault.
    """
    if not isinstance(body, dict):
        raise RequestFailed(400, "the body must be a JSON object", param=None)
    _refuse_unsupported(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestFailed(400, "'messages' must be a non-empty list", param="messages")
    users = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise RequestFailed(400, f"messages[{i}] must be an object with a role"
                                     f" ({', '.join(sorted(ROLES))})", param=f"messages[{i}]")
        if message["role"] == "user":
            users.append(i)
    if not users:
        raise RequestFailed(400, "no user message: the last user message is the question", param="messages")
    last = users[-1]
    text, images = _content(messages[last].get("content"), f"messages[{last}].content")
    if len(images) > 1:
        raise RequestFailed(400, f"pica answers about one image; messages[{last}] has {len(images)}",
                            param=f"messages[{last}].content")
    for earlier in reversed(users[:-1]):
        if images:
            break
        images = _content(messages[earlier].get("content"), f"messages[{earlier}].content")[1][-1:]
    if not text.strip():
        raise RequestFailed(400, "the last user message has no text: ask a question in a text part"
                            + ("" if images else " (and send the image as an image_url part with a"
                                                 " base64 data URL)"), param=f"messages[{last}].content")
    stop = body.get("stop")
    stops = (stop,) if isinstance(stop, str) else tuple(stop or ())
    if not all(isinstance(s, str) for s in stops):
        raise RequestFailed(400, "'stop' must be a string or a list of strings", param="stop")
    stream = body.get("stream") or False
    if not isinstance(stream, bool):
        raise RequestFailed(400, "'stream' must be true or false", param="stream")
    options = body.get("stream_options") or {}
    image_url, image_param = images[0] if images else (None, None)
    return ChatRequest(text=text, image_url=image_url, image_param=image_param, stream=stream,
                       stop=tuple(s for s in stops if s),
                       include_usage=bool(isinstance(options, dict) and options.get("include_usage")))


def _refuse_unsupported(body: dict[str, Any]) -> None:
    n = body.get("n")
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n != 1):
        raise RequestFailed(400, "pica returns one answer per request; 'n' must be 1", param="n")
    for name in ("tools", "functions"):
        if body.get(name):
            raise RequestFailed(400, f"pica does not call tools; leave out '{name}'", param=name)
    if body.get("tool_choice") not in (None, "none"):
        raise RequestFailed(400, "pica does not call tools; leave out 'tool_choice'", param="tool_choice")
    modalities = body.get("modalities") or []
    if body.get("audio") is not None or "audio" in modalities:
        raise RequestFailed(400, "pica answers in text only; audio output is not supported",
                            param="audio" if body.get("audio") is not None else "modalities")
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise RequestFailed(400, f"'{name}' must be a positive integer", param=name)
    temperature = body.get("temperature")
    if temperature is not None and (isinstance(temperature, bool) or not isinstance(temperature, int | float)
                                    or not 0 <= temperature <= 2):
        raise RequestFailed(400, "'temperature' must be a number from 0 to 2", param="temperature")


def _content(content: Any, where: str) -> tuple[str, list[tuple[str, str]]]:
    """Text (parts joined by newlines) and ``(url, param)`` of every image of one message."""
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise RequestFailed(400, f"{where} must be a string or a list of parts", param=where)
    texts, images = [], []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str) or not url:
                raise RequestFailed(400, f"{where}[{j}].image_url needs a url",
                                    param=f"{where}[{j}].image_url")
            images.append((url, f"{where}[{j}].image_url.url"))
        elif kind in AUDIO_PARTS:
            raise RequestFailed(400, "pica answers about images; audio input is not supported",
                                param=f"{where}[{j}]")
        else:
            raise RequestFailed(400, f"{where}[{j}]: parts must be 'text' or 'image_url', got {kind!r}",
                                param=f"{where}[{j}]")
    return "\n".join(texts), images


async def load_image(service: Service, url: str, param: str | None) -> bytes:
    """The image bytes a chat message names: a data URL, or a fetched URL when the server allows it.

    Raises:
        RequestFailed: 400 (refused URL, bad data), 413, 504.
    """
    options = service.options
    if url[:5].lower() == "data:":
        return decode_data_url(url, options.max_upload_bytes, param)
    if url.split(":", 1)[0].lower() in ("http", "https"):
        if not options.allow_image_urls:
            raise RequestFailed(400, REFUSED, param=param)
        return await asyncio.to_thread(fetch_image, url, options.max_upload_bytes,
                                       options.allow_private_image_urls, param)
    raise RequestFailed(400, "image URLs must be base64 data URLs (or http(s) with --allow-image-urls)",
                        param=param)


def check_key(service: Service, request: Request) -> None:
    """Refuse a request without ``Authorization: Bearer <key>`` when the server has a key.

    Raises:
        RequestFailed: 401 (the key itself is never part of the message).
    """
    key = service.options.api_key
    if key is None:
        return
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), key.encode()):
        raise RequestFailed(401, "missing or wrong API key: send 'Authorization: Bearer <key>' with the"
                                 " key of the variable pica serve's --require-key-env names",
                            headers={"WWW-Authenticate": "Bearer"})


def cut_at_stop(text: str, stops: tuple[str, ...]) -> str:
    """``text`` up to the first ``stop`` string it contains (OpenAI's ``stop``)."""
    cut = min((text.find(s) for s in stops if s in text), default=len(text))
    return text[:cut]


def completion(reply: str, result: dict[str, Any], parsed: ParsedPrompt, model: str,
               completion_tokens: int, *, chunk: bool = False) -> dict[str, Any]:
    """An OpenAI ``chat.completion`` (or one ``chat.completion.chunk``) with pica's answer object."""
    prompt_tokens = int(result.get("prompt_tokens") or 0)
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
             "total_tokens": prompt_tokens + completion_tokens}
    message = {"role": "assistant", "content": reply}
    choice = {"index": 0, ("delta" if chunk else "message"): message, "logprobs": None,
              "finish_reason": "stop"}
    kind = "chat.completion.chunk" if chunk else "chat.completion"
    return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": kind,
            "created": int(time.time()), "model": model, "system_fingerprint": None,
            "choices": [choice], "usage": usage, "pica": {**result, "parsed": parsed.to_dict()}}


def add_openai_routes(app: FastAPI, service: Service) -> None:
    """``POST /v1/chat/completions``, ``GET /v1/models`` and ``GET /v1/models/{id}`` on ``app``."""
    name = service.options.model_name
    created = int(time.time())
    card = {"id": name, "object": "model", "created": created, "owned_by": "pica"}

    @app.get("/v1/models", summary="The model this server answers as (OpenAI-compatible)")
    async def models(request: Request) -> dict[str, Any]:
        check_key(service, request)
        return {"object": "list", "data": [card]}

    @app.get("/v1/models/{model_id}", include_in_schema=False)
    async def model(model_id: str, request: Request) -> dict[str, Any]:
        check_key(service, request)
        if model_id != name:
            raise RequestFailed(404, f"no model {model_id!r}; this server answers as {name!r}", param="model")
        return card

    @app.post("/v1/chat/completions", summary="Answer an OpenAI chat-completions request with an image")
    async def chat(request: Request):
        """The answer as ``choices[0].message.content`` (the option letter for a multiple-choice
        prompt that asks for it, else pica's short answer); pica's whole answer object, with the
        parsed question, context and options, under ``pica``."""
        check_key(service, request)
        try:
            body = json.loads(await request.body())
        except ValueError as e:
            raise RequestFailed(400, "the body is not valid JSON") from e
        chat_request = read_chat_request(body)
        image = None
        if chat_request.image_url is not None:
            image = await load_image(service, chat_request.image_url, chat_request.image_param)
        parsed = parse_prompt(chat_request.text)
        # Without an image (ScienceQA's text-only questions) the context stands for the caption,
        # "N/A" when there is none, as the ScienceQA paper's prompts have it.
        caption = None if image is not None else (parsed.context or "N/A")
        try:
            result = await service.answer(parsed.question, caption=caption, image=image,
                                          choices=parsed.options,
                                          context=parsed.context if image is not None else None)
        except RequestFailed as e:
            if e.status == 415:  # OpenAI answers a bad image with 400
                raise RequestFailed(400, e.message, param=chat_request.image_param) from e
            if e.status in (400, 413) and "image" in e.message and e.param is None:
                e.param = chat_request.image_param
            raise
        chosen = (result.get("mc") or {}).get("index")
        reply = cut_at_stop(parsed.answer_text(result["answer"], chosen), chat_request.stop)
        tokens = await asyncio.to_thread(service.count_tokens, reply)
        payload = completion(reply, result, parsed, name, tokens, chunk=chat_request.stream)
        if not chat_request.stream:
            return JSONResponse(payload)
        if not chat_request.include_usage:
            payload["usage"] = None

        async def events():
            yield f"data: {json.dumps(payload)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})
