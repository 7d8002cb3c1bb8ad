"""Any OpenAI-compatible HTTP API: llama.cpp / llama-cpp-python servers, vLLM, OpenAI itself.

Requests go through the official ``openai`` client to ``{api_base}/completions`` (greedy,
``logprobs: 1``); a server that offers only chat completions is detected once and then used through
``{api_base}/chat/completions``, without log-probs unless it returns them.

The client keeps connections pooled and retries transient failures (HTTP 408/409/429/5xx,
timeouts, refused or reset connections) with exponential backoff and jitter, honouring
``Retry-After`` / ``retry-after-ms``; :class:`_PicaClient` sets the backoff's first delay and cap.
Anything else fails at once, in one line naming the server and the last status. The API key is read
from the environment once, sent only in the ``Authorization`` header, and scrubbed from every
message this module builds.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import openai

from pica.config import ENV_API_BASE, env_api_base
from pica.errors import BackendError, InputError
from pica.llm.base import Backend, cut_at_stop
from pica.llm.http import Secret, clip, display_url, network_failure, server_message
from pica.types import Completion

OPENAI_BASE_ENV = "OPENAI_BASE_URL"
# The client refuses to start without a key; local servers need none. Never sent: the backend then
# omits the Authorization header.
NO_KEY = "not-needed"
# Sampling parameters some servers need for true greedy decoding but others reject (OpenAI answers
# 400 "Unrecognized request argument"). llama-cpp-python defaults repeat_penalty to 1.1, which
# changes greedy answers that repeat a token. Sent as extra body; dropped for good after the first
# 400 naming them.
OPTIONAL_PARAMS: dict[str, dict[str, Any]] = {
    "completions": {"repeat_penalty": 1.0},
    "chat/completions": {"repeat_penalty": 1.0, "logprobs": True},
}
CHAT_ONLY_HINT = re.compile(r"chat|not supported|unsupported|does not support", re.IGNORECASE)
RETRY_COUNT_HEADER = "x-stainless-retry-count"  # set by the client on every attempt


class _PicaClient(openai.OpenAI):
    """``openai.OpenAI`` with pica's backoff: ``backoff`` doubling per retry, full jitter, every
    delay (``Retry-After`` included) capped at ``backoff_cap``.

    The client's own constants (0.5 s doubling to 8 s; a ``Retry-After`` over two minutes is not
    retried at all) are not settable through its public API, so this overrides two private methods.
    pyproject bounds the tested ``openai`` versions; tests/test_openai_client.py fails if the
    methods change.
    """

    def __init__(self, *, backoff: float, backoff_cap: float, **kwargs: Any) -> None:
        self._pica_backoff = backoff
        self._pica_backoff_cap = backoff_cap
        super().__init__(**kwargs)

    def _parse_retry_after_header(self, response_headers: Any = None) -> float | None:
        delay = super()._parse_retry_after_header(response_headers)
        if delay is None or math.isnan(delay):
            return None
        return min(max(delay, 0.0), self._pica_backoff_cap)

    def _calculate_retry_timeout(self, remaining_retries: int, options: Any,
                                 response_headers: Any = None) -> float:
        delay = self._parse_retry_after_header(response_headers)
        if delay is not None:
            return delay
        attempt = min(max(self.max_retries - remaining_retries, 0), 60)
        return min(self._pica_backoff_cap, self._pica_backoff * 2.0**attempt) * random.random()


class _StatusError(Exception):
    """A non-retryable HTTP status (internal: callers turn it into a fallback or a BackendError)."""

    def __init__(self, url: str, status: int, message: str) -> None:
        super().__init__(f"{url} answered HTTP {status}: {message}")
        self.url, self.status, self.message = url, status, message


class OpenAICompatBackend(Backend):
    """Completions from an OpenAI-compatible HTTP server.

    Args:
        model: Model name sent in every request (``openai:MODEL`` on the command line).
        api_base: Base URL used exactly as given, e.g. ``http://127.0.0.1:8080/v1``; requests go to
            ``{api_base}/completions``. Falls back to ``$PICA_API_BASE``, then ``$OPENAI_BASE_URL``.
        api_key_env: Name of the environment variable holding the API key; when it is unset no
            ``Authorization`` header is sent (fine for local servers).
        timeout: Seconds to wait for a connection or for each read of the answer.
        max_retries: Retries of a transient failure before giving up.
        backoff: First backoff delay in seconds; doubles on each retry (full jitter).
        backoff_cap: Upper bound of any single delay, ``Retry-After`` included.
        concurrency: Requests in flight at once, across every thread calling this backend.

    Raises:
        InputError: no API base, a malformed URL, or out-of-range settings.
    """

    thread_safe = True

    def __init__(self, model: str, api_base: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 timeout: float = 60.0, max_retries: int = 6, backoff: float = 0.5,
                 backoff_cap: float = 30.0, concurrency: int = 1) -> None:
        if not model:
            raise InputError("openai:MODEL needs a model name, e.g. openai:gpt-3.5-turbo-instruct")
        api_base = api_base or env_api_base() or os.environ.get(OPENAI_BASE_ENV)
        if not api_base:
            raise InputError(f"--api-base URL or {ENV_API_BASE} is required for openai:MODEL"
                             f" ({OPENAI_BASE_ENV} is read last)")
        parts = urlsplit(api_base.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InputError(f"--api-base must be an http(s) URL such as http://127.0.0.1:8080/v1,"
                             f" got '{display_url(api_base)}'")
        if timeout <= 0 or max_retries < 0 or backoff < 0 or backoff_cap < 0 or concurrency < 1:
            raise InputError("openai backend needs timeout > 0, max_retries >= 0, backoff >= 0,"
                             " backoff_cap >= 0 and concurrency >= 1")
        self.model = model
        self.api_base = api_base.strip().rstrip("/")
        self.api_key_env = api_key_env
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.concurrency = int(concurrency)
        self.server = display_url(self.api_base)
        self.id = f"openai:{model}@{parts.netloc.rpartition('@')[2]}"
        self._key = Secret(os.environ.get(api_key_env))
        self._client = _PicaClient(
            base_url=self.api_base, api_key=self._key.reveal() or NO_KEY, max_retries=self.max_retries,
            timeout=self.timeout, backoff=float(backoff), backoff_cap=float(backoff_cap),
            default_headers={"User-Agent": f"OpenAI/Python {openai.__version__}"},  # not the subclass
            http_client=openai.DefaultHttpxClient(event_hooks={"request": [_spell_authorization]}))
        # Without a key no Authorization header at all (the placeholder is never sent).
        self._headers = None if self._key else {"Authorization": openai.Omit()}
        self._lock = threading.Lock()
        self._in_flight = threading.BoundedSemaphore(self.concurrency)
        self._chat = False
        self._noted = False
        self._optional = {path: dict(params) for path, params in OPTIONAL_PARAMS.items()}

    @classmethod
    def from_settings(cls, model: str, settings) -> OpenAICompatBackend:
        """An API model with the settings' API base, key variable and concurrency."""
        return cls(model, api_base=settings.api_base, api_key_env=settings.api_key_env,
                   concurrency=settings.concurrency)

    def __repr__(self) -> str:
        return (f"OpenAICompatBackend(model={self.model!r}, api_base={self.server!r},"
                f" api_key_env={self.api_key_env!r}, key={self._key!r})")

    def close(self) -> None:
        """Close the client's pooled connections."""
        self._client.close()

    # -- public API ------------------------------------------------------------------------------

    def complete(self, prompts: Sequence[str], max_tokens: int = 5,
                 stop: Sequence[str] = ("\n",)) -> list[Completion]:
        """Greedy completion of every prompt, ``concurrency`` requests at a time, in input order.

        Raises:
            BackendError: a request failed for good (retries exhausted or a non-retryable status).
        """
        prompts = list(prompts)
        if self.concurrency == 1 or len(prompts) <= 1:
            return [self._complete_one(p, max_tokens, stop) for p in prompts]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(prompts)),
                                thread_name_prefix="pica-openai") as pool:
            futures = [pool.submit(self._complete_one, p, max_tokens, stop) for p in prompts]
            try:
                return [f.result() for f in futures]
            except BaseException:
                for f in futures:
                    f.cancel()
                raise

    def score(self, prompt: str, continuations: Sequence[str]) -> list[float]:
        """Summed log-prob of each continuation after ``prompt`` (``echo`` + ``logprobs``).

        Tokens are attributed to the continuation by their text offset, so a token that straddles
        the prompt/continuation boundary counts for the prompt.

        Raises:
            NotImplementedError: the server offers only chat completions or does not echo
                prompt log-probs.
            BackendError: a request failed for good.
        """
        if self._chat:
            raise NotImplementedError(f"{self.server} offers only chat completions; cannot score")
        scores = []
        for cont in continuations:
            body = {"model": self.model, "prompt": prompt + cont, "max_tokens": 1, "temperature": 0,
                    "logprobs": 1, "echo": True}
            try:
                data = self._call("completions", body)
            except _StatusError as e:
                if _means_chat_only(e):
                    raise NotImplementedError(f"{self.server} cannot score text: {e}") from None
                raise self._status_failure(e) from None
            logprobs = _first_choice(data, self.server).get("logprobs") or {}
            offsets, values = logprobs.get("text_offset"), logprobs.get("token_logprobs")
            if not offsets or not values or len(offsets) != len(values) or offsets[0] != 0:
                raise NotImplementedError(f"{self.server} does not echo prompt log-probs")
            start, end = len(prompt), len(prompt) + len(cont)
            scores.append(sum(float(v) for off, v in zip(offsets, values, strict=True)
                              if start <= off < end and v is not None))
        return scores

    # -- one prompt ------------------------------------------------------------------------------

    def _complete_one(self, prompt: str, max_tokens: int, stop: Sequence[str]) -> Completion:
        if not self._chat:
            try:
                return self._via_completions(prompt, max_tokens, stop)
            except _StatusError as e:
                if not _means_chat_only(e):
                    raise self._status_failure(e) from None
                first = e
            try:
                completion = self._via_chat(prompt, max_tokens, stop)
            except _StatusError as e:
                raise BackendError(
                    f"{first.url} answered HTTP {first.status} and {e.url} HTTP {e.status}:"
                    f" {self._scrub(e.message)}; check --api-base (does it need /v1?) and the model"
                    f" name '{self.model}'") from None
            self._enter_chat_mode(completion.logprob is not None)
            return completion
        try:
            return self._via_chat(prompt, max_tokens, stop)
        except _StatusError as e:
            raise self._status_failure(e) from None

    def _via_completions(self, prompt: str, max_tokens: int, stop: Sequence[str]) -> Completion:
        body: dict[str, Any] = {"model": self.model, "prompt": prompt, "max_tokens": max_tokens,
                                "temperature": 0, "logprobs": 1}
        if stop:
            body["stop"] = list(stop)
        data = self._call("completions", body)
        choice = _first_choice(data, self.server)
        text, _ = cut_at_stop(str(choice.get("text") or ""), stop)
        logprob = None
        logprobs = choice.get("logprobs") or {}
        values = logprobs.get("token_logprobs")
        if values is not None:
            offsets = logprobs.get("text_offset")
            if offsets and len(offsets) == len(values):
                # Servers report the token that hit the stop string too; keep the answer's tokens.
                values = [v for off, v in zip(offsets, values, strict=True)
                          if off - offsets[0] < len(text)]
            logprob = sum(float(v) for v in values if v is not None)
        return _completion(text, logprob, data)

    def _via_chat(self, prompt: str, max_tokens: int, stop: Sequence[str]) -> Completion:
        body: dict[str, Any] = {"model": self.model, "max_tokens": max_tokens, "temperature": 0,
                                "messages": [{"role": "user", "content": prompt}]}
        if stop:
            body["stop"] = list(stop)
        data = self._call("chat/completions", body)
        choice = _first_choice(data, self.server)
        text, _ = cut_at_stop(str((choice.get("message") or {}).get("content") or ""), stop)
        logprob = None
        content = (choice.get("logprobs") or {}).get("content")
        if content:
            logprob, offset = 0.0, 0
            for item in content:
                if offset < len(text) and item.get("logprob") is not None:
                    logprob += float(item["logprob"])
                offset += len(str(item.get("token", "")))
        return _completion(text, logprob, data)

    def _enter_chat_mode(self, has_logprobs: bool) -> None:
        with self._lock:
            self._chat = True
            if not has_logprobs:
                self.supports_logprobs = False
            if self._noted:
                return
            self._noted = True
        detail = ("log-probs are unavailable, ensembles fall back to a frequency vote"
                  if not has_logprobs else "using its log-probs")
        print(f"note: {self.server} offers only chat completions; {detail}", file=sys.stderr)

    # -- HTTP ------------------------------------------------------------------------------------

    def _call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST with this path's optional parameters, dropping any the server rejects by name."""
        while True:
            with self._lock:
                optional = dict(self._optional[path])
            try:
                return self._post(path, body, optional)
            except _StatusError as e:
                rejected = [k for k in optional if e.status in (400, 422) and k in e.message]
                if not rejected:
                    raise
                with self._lock:
                    for k in rejected:
                        self._optional[path].pop(k, None)

    def _post(self, path: str, body: dict[str, Any], optional: dict[str, Any]) -> dict[str, Any]:
        """One request through the client, which retries transient failures.

        Raises:
            _StatusError: a non-retryable HTTP status.
            BackendError: retries exhausted, or an unusable answer.
        """
        shown = f"{self.server}/{path}"
        create: Callable[..., Any] = (self._client.completions.create if path == "completions"
                                      else self._client.chat.completions.create)
        try:
            # At most `concurrency` requests in flight, however many threads call in (the pipeline
            # runs questions in parallel, and each may send an ensemble's prompts).
            with self._in_flight:
                answer = create(**body, extra_body=optional or None, extra_headers=self._headers)
        except openai.APIStatusError as e:
            message = self._scrub(server_message(e.body))
            if not _retryable(e.status_code, e.response.headers):
                raise _StatusError(shown, e.status_code, message) from None
            last = f"HTTP {e.status_code}" + (f" ({message})" if message else "")
            raise self._exhausted(shown, e.request.headers, last) from None
        except openai.APITimeoutError as e:
            raise self._exhausted(shown, e.request.headers, f"timed out after {self.timeout:g} s") from None
        except openai.APIConnectionError as e:
            raise self._exhausted(shown, e.request.headers, network_failure(e, shown)) from None
        except openai.APIError as e:
            raise BackendError(f"{shown} answered unusably: {self._scrub(clip(e.message))}") from None
        except json.JSONDecodeError:
            raise BackendError(f"{shown} did not answer valid JSON") from None
        if isinstance(answer, str):
            raise BackendError(f"{shown} did not answer JSON: {self._scrub(clip(answer))}")
        data = answer.to_dict() if isinstance(answer, openai.BaseModel) else answer
        if not isinstance(data, dict):
            raise BackendError(f"{shown} answered unexpected JSON: {self._scrub(clip(str(data)))}")
        return data

    def _exhausted(self, shown: str, headers: Mapping[str, str], last: str) -> BackendError:
        try:
            attempts = int(headers.get(RETRY_COUNT_HEADER, self.max_retries)) + 1
        except ValueError:
            attempts = self.max_retries + 1
        return BackendError(f"{shown} failed after {attempts} attempts (last: {last});"
                            " check that the server is up, or raise max_retries / timeout")

    def _status_failure(self, e: _StatusError) -> BackendError:
        if e.status in (401, 403):
            where = (f"check the API key in the environment variable {self.api_key_env}" if self._key
                     else f"the environment variable {self.api_key_env} is not set")
            return BackendError(f"{e.url} answered HTTP {e.status} ({e.message}); {where}")
        return BackendError(f"{e.url} answered HTTP {e.status}: {e.message}")

    def _scrub(self, text: str) -> str:
        """Remove the API key (and words quoting a part of it, as OpenAI's 401 does) from text."""
        key = self._key.reveal()
        if not key:
            return text
        text = text.replace(key, "***")
        if len(key) >= 12:
            head, tail = key[:8], key[-4:]
            text = " ".join("***" if head in w or tail in w else w for w in text.split(" "))
        return text


def _spell_authorization(request: Any) -> None:
    """Send the key's header as ``Authorization``, as pica always has: openai 3 sends header names in
    lower case, which some hand-written servers (tests/servers.py among them) do not look up."""
    value = request.headers.get("authorization")
    if value is not None:
        request.headers["Authorization"] = value


def _retryable(status: int, headers: Mapping[str, str]) -> bool:
    """Whether the client retried this status (its rule: 408, 409, 429, 5xx unless told otherwise)."""
    told = headers.get("x-should-retry")
    if told in ("true", "false"):
        return told == "true"
    return status in (408, 409, 429) or status >= 500


def _means_chat_only(e: _StatusError) -> bool:
    """Whether a failed /completions request says the server offers only chat completions."""
    return e.status in (404, 405) or (e.status == 400 and bool(CHAT_ONLY_HINT.search(e.message)))


def _completion(text: str, logprob: float | None, data: dict[str, Any]) -> Completion:
    usage = data.get("usage") or {}
    return Completion(text=text, logprob=logprob, prompt_tokens=int(usage.get("prompt_tokens") or 0),
                      completion_tokens=int(usage.get("completion_tokens") or 0))


def _first_choice(data: dict[str, Any], server: str) -> dict[str, Any]:
    choices = data.get("choices")
    if not choices or not isinstance(choices[0], dict):
        raise BackendError(f"{server} answered without choices: {clip(json.dumps(data, default=str))}")
    return choices[0]
