"""The HTTP client every OpenAI-compatible component shares (the LLM backend, the vision captioner).

:class:`ApiClient` validates the base URL, reads the API key from the environment once (sent only in
the ``Authorization`` header, scrubbed from every message), keeps connections pooled, bounds the
requests in flight, and turns every failure into one line naming the server. The official ``openai``
client retries transient failures (HTTP 408/409/429/5xx, timeouts, refused or reset connections)
with exponential backoff and jitter, honouring ``Retry-After`` / ``retry-after-ms``;
:class:`_PicaClient` sets the backoff's first delay and cap.
"""

from __future__ import annotations

import json
import math
import os
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import openai

from pica.config import ENV_API_BASE, env_api_base
from pica.errors import BackendError, InputError
from pica.util.http import Secret, clip, display_url, network_failure, server_message

OPENAI_BASE_ENV = "OPENAI_BASE_URL"
# The client refuses to start without a key; local servers need none. Never sent: the client then
# omits the Authorization header.
NO_KEY = "not-needed"
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


class Refused(openai.APIConnectionError):
    """The server refused the connection (nothing listens on its port) past ``--api-wait``.

    An ``openai`` error raised inside the transport, so the client passes it on without its
    retries: a server that is down is reported at once, not after every backoff delay.
    """


def _http_module():
    """The HTTP library the installed ``openai`` client runs on (``httpx2`` from openai 3, else
    ``httpx``)."""
    try:
        import httpx2 as http
    except ImportError:  # openai 1.x / 2.x
        import httpx as http  # type: ignore[no-redef]
    return http


def _refused(error: BaseException) -> bool:
    """Whether ``error`` (or what caused it) is a refused TCP connection."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, ConnectionRefusedError):
            return True
        error = error.__cause__ or error.__context__
    return False


def _refusal_transport(wait: float):
    """The client's HTTP transport, retrying a refused connection for ``wait`` seconds (every
    0.25 s) and then raising :class:`Refused`; every other failure goes to the client's retries."""
    http = _http_module()

    class RefusalTransport(http.HTTPTransport):
        def handle_request(self, request):
            deadline = time.monotonic() + wait
            while True:
                try:
                    return super().handle_request(request)
                except http.ConnectError as e:
                    left = deadline - time.monotonic()
                    if not _refused(e):
                        raise
                    if left <= 0:
                        raise Refused(message="connection refused", request=request) from e
                    time.sleep(min(0.25, left))

    return RefusalTransport(limits=http.Limits(max_connections=1000, max_keepalive_connections=100))


class StatusError(Exception):
    """A non-retryable HTTP status (callers turn it into a fallback or a BackendError)."""

    def __init__(self, url: str, status: int, message: str) -> None:
        super().__init__(f"{url} answered HTTP {status}: {message}")
        self.url, self.status, self.message = url, status, message


class ApiClient:
    """One OpenAI-compatible server: validated URL, key, pooled client, bounded requests in flight.

    Args:
        model: Model name sent in every request.
        api_base: Base URL used exactly as given, e.g. ``http://127.0.0.1:8080/v1``. Falls back to
            ``$PICA_API_BASE``, then ``$OPENAI_BASE_URL``.
        api_key_env: Name of the environment variable holding the API key; when it is unset no
            ``Authorization`` header is sent (fine for local servers).
        timeout: Seconds to wait for a connection or for each read of the answer.
        max_retries: Retries of a transient failure before giving up.
        wait: Seconds to keep trying a server that refuses connections (one still starting); 0 =
            a refused connection fails at once.
        backoff: First backoff delay in seconds; doubles on each retry (full jitter).
        backoff_cap: Upper bound of any single delay, ``Retry-After`` included.
        concurrency: Requests in flight at once, across every thread calling this client.
        spec: How the user named the component (``openai:MODEL``), for messages.
        base_option: The command-line option that sets ``api_base``, for messages.

    Raises:
        InputError: no model or API base, a malformed URL, or out-of-range settings.
    """

    # The Settings fields :meth:`limits` reads (part of a component's ``settings_fields``).
    LIMIT_FIELDS = ("api_timeout", "api_retries", "api_wait")

    @staticmethod
    def limits(settings) -> dict[str, Any]:
        """The client limits ``settings`` set, as keyword arguments: ``--api-retries``,
        ``--api-wait`` and, when given, ``--api-timeout`` (else the component's own default)."""
        limits: dict[str, Any] = {"max_retries": settings.api_retries, "wait": settings.api_wait}
        if settings.api_timeout:
            limits["timeout"] = settings.api_timeout
        return limits

    def __init__(self, model: str, api_base: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 timeout: float = 60.0, max_retries: int = 6, backoff: float = 0.5,
                 backoff_cap: float = 30.0, concurrency: int = 1, *, spec: str = "openai:MODEL",
                 base_option: str = "--api-base", wait: float = 0.0) -> None:
        if not model:
            raise InputError(f"{spec} needs a model name, e.g. openai:gpt-4o-mini")
        api_base = api_base or env_api_base() or os.environ.get(OPENAI_BASE_ENV)
        if not api_base:
            raise InputError(f"{base_option} URL or {ENV_API_BASE} is required for {spec}"
                             f" ({OPENAI_BASE_ENV} is read last)")
        parts = urlsplit(api_base.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InputError(f"{base_option} must be an http(s) URL such as http://127.0.0.1:8080/v1,"
                             f" got '{display_url(api_base)}'")
        if timeout <= 0 or max_retries < 0 or wait < 0:
            raise InputError("--api-timeout must be positive; --api-retries and --api-wait must not"
                             " be negative")
        if backoff < 0 or backoff_cap < 0 or concurrency < 1:
            raise InputError(f"{spec} needs backoff >= 0, backoff_cap >= 0 and --concurrency >= 1")
        self.model = model
        self.api_base = api_base.strip().rstrip("/")
        self.api_key_env = api_key_env
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.wait = float(wait)
        self.concurrency = int(concurrency)
        self.server = display_url(self.api_base)
        self.netloc = parts.netloc.rpartition("@")[2]
        self._key = Secret(os.environ.get(api_key_env))
        self._client = _PicaClient(
            base_url=self.api_base, api_key=self._key.reveal() or NO_KEY, max_retries=self.max_retries,
            timeout=self.timeout, backoff=float(backoff), backoff_cap=float(backoff_cap),
            default_headers={"User-Agent": f"OpenAI/Python {openai.__version__}"},  # not the subclass
            http_client=openai.DefaultHttpxClient(event_hooks={"request": [_spell_authorization]},
                                                  transport=_refusal_transport(self.wait)))
        # Without a key no Authorization header at all (the placeholder is never sent).
        self._headers = None if self._key else {"Authorization": openai.Omit()}
        self._lock = threading.Lock()
        self._in_flight = threading.BoundedSemaphore(self.concurrency)

    def close(self) -> None:
        """Close the client's pooled connections."""
        self._client.close()

    def _post(self, path: str, body: dict[str, Any], optional: dict[str, Any] | None = None
              ) -> dict[str, Any]:
        """One request to ``completions`` or ``chat/completions``; the client retries transient
        failures.

        Raises:
            StatusError: a non-retryable HTTP status.
            BackendError: retries exhausted, or an unusable answer.
        """
        shown = f"{self.server}/{path}"
        create: Callable[..., Any] = (self._client.completions.create if path == "completions"
                                      else self._client.chat.completions.create)
        try:
            # At most `concurrency` requests in flight, however many threads call in.
            with self._in_flight:
                answer = create(**body, extra_body=optional or None, extra_headers=self._headers)
        except Refused:
            waited = f" (tried for {self.wait:g} s)" if self.wait else ""
            raise BackendError(f"{shown}: connection refused{waited}; is the server up? For a"
                               " server still starting, pass --api-wait SECONDS") from None
        except openai.APIStatusError as e:
            message = self._scrub(server_message(e.body))
            if not _retryable(e.status_code, e.response.headers):
                raise StatusError(shown, e.status_code, message) from None
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
                            " check that the server is up, or raise --api-retries / --api-timeout")

    def _status_failure(self, e: StatusError) -> BackendError:
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


def first_choice(data: dict[str, Any], server: str) -> dict[str, Any]:
    """The first choice of a completions answer.

    Raises:
        BackendError: the answer has no choices.
    """
    choices = data.get("choices")
    if not choices or not isinstance(choices[0], dict):
        raise BackendError(f"{server} answered without choices: {clip(json.dumps(data, default=str))}")
    return choices[0]
