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

import re
import sys
from collections.abc import Sequence
from typing import Any

from pica.errors import BackendError
from pica.llm.base import Backend, cut_at_stop
from pica.types import Completion
from pica.util.loading import parallel_map
from pica.util.openai_client import ApiClient, StatusError, _PicaClient, first_choice

__all__ = ["OpenAICompatBackend", "_PicaClient"]

REGISTER = {"backend": {"openai": "OpenAICompatBackend"}}

# Sampling parameters some servers need for true greedy decoding but others reject (OpenAI answers
# 400 "Unrecognized request argument"). llama-cpp-python defaults repeat_penalty to 1.1, which
# changes greedy answers that repeat a token. Sent as extra body; dropped for good after the first
# 400 naming them.
OPTIONAL_PARAMS: dict[str, dict[str, Any]] = {
    "completions": {"repeat_penalty": 1.0},
    "chat/completions": {"repeat_penalty": 1.0, "logprobs": True},
}
CHAT_ONLY_HINT = re.compile(r"chat|not supported|unsupported|does not support", re.IGNORECASE)
_first_choice = first_choice


class OpenAICompatBackend(ApiClient, Backend):
    """Completions from an OpenAI-compatible HTTP server.

    Args: as :class:`~pica.util.openai_client.ApiClient` (``model`` is ``openai:MODEL`` on the command
    line; requests go to ``{api_base}/completions``); ``concurrency`` counts requests in flight
    across every thread calling this backend.

    Raises:
        InputError: no API base, a malformed URL, or out-of-range settings.
    """

    thread_safe = True

    def __init__(self, model: str, api_base: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 timeout: float = 60.0, max_retries: int = 6, backoff: float = 0.5,
                 backoff_cap: float = 30.0, concurrency: int = 1, wait: float = 0.0) -> None:
        super().__init__(model, api_base, api_key_env, timeout, max_retries, backoff, backoff_cap,
                         concurrency, spec="openai:MODEL", base_option="--api-base", wait=wait)
        self.id = f"openai:{model}@{self.netloc}"
        self._chat = False
        self._noted = False
        self._optional = {path: dict(params) for path, params in OPTIONAL_PARAMS.items()}

    settings_fields = ("api_base", "api_key_env", "concurrency", *ApiClient.LIMIT_FIELDS)

    @classmethod
    def from_settings(cls, model: str, settings) -> OpenAICompatBackend:
        """An API model with the settings' API base, key variable, limits and concurrency."""
        return cls(model, api_base=settings.api_base, api_key_env=settings.api_key_env,
                   concurrency=settings.concurrency, **cls.limits(settings))

    def __repr__(self) -> str:
        return (f"OpenAICompatBackend(model={self.model!r}, api_base={self.server!r},"
                f" api_key_env={self.api_key_env!r}, key={self._key!r})")

    # -- public API ------------------------------------------------------------------------------

    def complete(self, prompts: Sequence[str], max_tokens: int = 5,
                 stop: Sequence[str] = ("\n",)) -> list[Completion]:
        """Greedy completion of every prompt, ``concurrency`` requests at a time, in input order.

        Raises:
            BackendError: a request failed for good (retries exhausted or a non-retryable status).
        """
        prompts = list(prompts)
        return parallel_map(self._complete_one, [(p, max_tokens, stop) for p in prompts],
                            self.concurrency, "pica-openai")

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
            except StatusError as e:
                if _means_chat_only(e):
                    raise NotImplementedError(f"{self.server} cannot score text: {e}") from None
                raise self._status_failure(e) from None
            logprobs = first_choice(data, self.server).get("logprobs") or {}
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
            except StatusError as e:
                if not _means_chat_only(e):
                    raise self._status_failure(e) from None
                first = e
            try:
                completion = self._via_chat(prompt, max_tokens, stop)
            except StatusError as e:
                raise BackendError(
                    f"{first.url} answered HTTP {first.status} and {e.url} HTTP {e.status}:"
                    f" {self._scrub(e.message)}; check --api-base (does it need /v1?) and the model"
                    f" name '{self.model}'") from None
            self._enter_chat_mode(completion.logprob is not None)
            return completion
        try:
            return self._via_chat(prompt, max_tokens, stop)
        except StatusError as e:
            raise self._status_failure(e) from None

    def _via_completions(self, prompt: str, max_tokens: int, stop: Sequence[str]) -> Completion:
        body: dict[str, Any] = {"model": self.model, "prompt": prompt, "max_tokens": max_tokens,
                                "temperature": 0, "logprobs": 1}
        if stop:
            body["stop"] = list(stop)
        data = self._call("completions", body)
        choice = first_choice(data, self.server)
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
        choice = first_choice(data, self.server)
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
            except StatusError as e:
                rejected = [k for k in optional if e.status in (400, 422) and k in e.message]
                if not rejected:
                    raise
                with self._lock:
                    for k in rejected:
                        self._optional[path].pop(k, None)


def _means_chat_only(e: StatusError) -> bool:
    """Whether a failed /completions request says the server offers only chat completions."""
    return e.status in (404, 405) or (e.status == 400 and bool(CHAT_ONLY_HINT.search(e.message)))


def _completion(text: str, logprob: float | None, data: dict[str, Any]) -> Completion:
    usage = data.get("usage") or {}
    return Completion(text=text, logprob=logprob, prompt_tokens=int(usage.get("prompt_tokens") or 0),
                      completion_tokens=int(usage.get("completion_tokens") or 0))
