"""HTTP plumbing for API backends, standard library only: secrets, URLs, error messages, Retry-After.

Nothing here knows about any particular API; :mod:`pica.backends.openai_compat` builds on it.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import urllib.error
from datetime import UTC, datetime
from urllib.parse import urlsplit

MESSAGE_CHARS = 200


class Secret:
    """A string that never shows itself in repr/str (the API key)."""

    def __init__(self, value: str | None) -> None:
        self._value = value or None

    def reveal(self) -> str | None:
        return self._value

    def __bool__(self) -> bool:
        return self._value is not None

    def __repr__(self) -> str:
        return "<secret>" if self._value else "<unset>"

    __str__ = __repr__


def error_message(e: urllib.error.HTTPError) -> str:
    """The server's error message: OpenAI ``{"error": {"message"}}``, FastAPI ``detail``, or text."""
    try:
        raw = e.read().decode("utf-8", "replace")
    except (OSError, http.client.HTTPException):
        return ""
    try:
        data = json.loads(raw)
    except ValueError:
        return clip(raw)
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            error = error.get("message")
        found = error or data.get("detail") or data.get("message")
        if found:
            return clip(found if isinstance(found, str) else json.dumps(found))
    return clip(raw)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date), or ``None``."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


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
