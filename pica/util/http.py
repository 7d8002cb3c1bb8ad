"""What OpenAI-compatible components need beyond the ``openai`` client: the key, URLs and messages
fit for logs.

Nothing here knows about any particular API; :mod:`pica.util.openai_client` builds on it (the LLM
backend and the vision captioner use both).
"""

from __future__ import annotations

import json
import socket
import ssl
from urllib.parse import urlsplit

from pica.errors import BackendError

MESSAGE_CHARS = 200


class Secret:
    """A string that never shows itself in repr/str (the API key)."""

    def __init__(self, value: str | None) -> None:
        self._value = value or None

    def reveal(self) -> str | None:
        """The value itself (to hand to the HTTP client, never to a message)."""
        return self._value

    def __bool__(self) -> bool:
        return self._value is not None

    def __repr__(self) -> str:
        return "<secret>" if self._value else "<unset>"

    __str__ = __repr__


def server_message(body: object) -> str:
    """The message of an error body, one line: OpenAI ``{"error": {"message"}}``, FastAPI ``detail``, or text.

    Args:
        body: The parsed error body (the ``openai`` client already unwraps ``{"error": ...}``), a
            string when it was not JSON, or ``None``.
    """
    if body is None:
        return ""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            error = error.get("message")
        found = body.get("message") or error or body.get("detail")
        if found:
            return clip(found if isinstance(found, str) else json.dumps(found))
        return clip(json.dumps(body))
    return clip(str(body))


def display_url(url: str) -> str:
    """``url`` without user:password and query string (neither belongs in logs)."""
    parts = urlsplit(url.strip())
    host = parts.netloc.rpartition("@")[2]
    if not parts.scheme:
        return url.strip().rpartition("@")[2].split("?")[0]
    return f"{parts.scheme}://{host}{parts.path}".rstrip("/")


def clip(text: str) -> str:
    """``text`` on one line, cut to :data:`MESSAGE_CHARS` characters (``...`` marks a cut)."""
    text = " ".join(text.split())
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 3] + "..."


def network_failure(error: BaseException, shown: str) -> str:
    """Describe a retryable network failure from ``error``'s chain of causes, for a one-line message.

    Args:
        error: The client's exception; its ``__cause__`` / ``__context__`` chain holds the socket error.
        shown: The URL to name in messages (already passed through :func:`display_url`).

    Raises:
        BackendError: a permanent failure (unknown host, TLS certificate rejected).
    """
    causes: list[BaseException] = []
    cause: BaseException | None = error
    while cause is not None and len(causes) < 10:
        causes.append(cause)
        cause = cause.__cause__ or cause.__context__
    for c in causes:
        if isinstance(c, socket.gaierror):
            raise BackendError(f"cannot resolve the host of {shown}; check --api-base") from None
        if isinstance(c, ssl.SSLCertVerificationError):
            raise BackendError(f"TLS certificate of {shown} failed verification: {c.verify_message}"
                               ) from None
    text = " ".join(str(c) for c in causes).lower()
    if any(isinstance(c, ConnectionRefusedError) for c in causes) or "refused" in text:
        return "connection refused"
    if any(isinstance(c, ConnectionResetError | ConnectionAbortedError | BrokenPipeError) for c in causes
           ) or "reset" in text:
        return "connection reset"
    return f"connection error ({type(causes[-1]).__name__})"
