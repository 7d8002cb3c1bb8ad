"""A vision-language model behind any OpenAI-compatible chat-completions server as captioner:
vLLM, llama-server (``--mmproj``), Ollama, LM Studio, or a hosted API (``--captioner openai:MODEL``).

Each image goes as a base64 data URL in ``image_url`` content (downscaled to ``max_side``), with
the instruction from ``pica/templates/caption/instructions.toml``. Requests share the LLM backend's client
(:class:`pica.util.openai_client.ApiClient`): the same key handling, retries, backoff, time-outs and
one-line failures.
"""

from __future__ import annotations

import re
from typing import Any

from pica.caption.vlm import DEFAULT_CAPTION_TOKENS, VisionChatCaptioner, vlm_prompt
from pica.config import DEFAULT_API_KEY_ENV
from pica.config import DEFAULT_CAPTION_MAX_SIDE as DEFAULT_MAX_SIDE
from pica.errors import BackendError
from pica.util.openai_client import ApiClient, StatusError, first_choice

REGISTER = {"captioner": {"openai": "OpenAICaptioner"}}

# What servers say when the model takes no images: llama-server without --mmproj ("image input is
# not supported - hint: ... mmproj"), vLLM with a text model ("... is not a multimodal model"),
# OpenAI ("image_url is only supported by certain models").
REFUSES_IMAGES = re.compile(r"image|multimodal|multi-modal|vision|mmproj", re.IGNORECASE)
IMAGES_HINT = ("serve a vision model (vLLM with a VLM, llama-server --mmproj FILE, an Ollama vision"
               " model) or use another --captioner")


class OpenAICaptioner(ApiClient, VisionChatCaptioner):
    """Captions from a served vision-language model.

    Args:
        model: Model name sent in every request (``openai:MODEL``).
        api_base: Base URL (``--captioner-api-base``, else ``--api-base``, ``$PICA_API_BASE``,
            ``$OPENAI_BASE_URL``), e.g. ``http://127.0.0.1:8000/v1``.
        api_key_env: Environment variable holding the API key (unset = no Authorization header).
        question_aware: Ask the question-aware instruction with each question (PromptCap-style).
        prompt: Replaces the template's question-aware instruction (with ``{question}``).
        max_side: Longest image side sent, in pixels.
        max_tokens: Caption length limit in tokens.
        concurrency: Requests in flight at once.
        timeout: Seconds to wait for a connection or each read.
        max_retries: Retries of a transient failure.
        wait: Seconds to keep trying a server that refuses connections (0 = fail at once).

    Raises:
        InputError: no model or API base, a malformed URL, out-of-range settings.
    """

    def __init__(self, model: str, api_base: str | None = None,
                 api_key_env: str = DEFAULT_API_KEY_ENV, question_aware: bool = False,
                 prompt: str | None = None, max_side: int = DEFAULT_MAX_SIDE,
                 max_tokens: int = DEFAULT_CAPTION_TOKENS, concurrency: int = 1,
                 timeout: float = 120.0, max_retries: int = 6, backoff: float = 0.5,
                 backoff_cap: float = 30.0, wait: float = 0.0) -> None:
        ApiClient.__init__(self, model, api_base, api_key_env, timeout, max_retries, backoff,
                           backoff_cap, concurrency, spec="--captioner openai:MODEL",
                           base_option="--captioner-api-base", wait=wait)
        VisionChatCaptioner.__init__(self, question_aware, prompt, max_side, concurrency)
        self.max_tokens = int(max_tokens)
        self.id = f"openai:{model}@{self.netloc}"

    settings_fields = ("captioner_api_base", "api_base", "api_key_env", "question_aware",
                       "caption_prompt", "caption_max_side", "concurrency", *ApiClient.LIMIT_FIELDS)

    @classmethod
    def from_settings(cls, name: str, settings) -> OpenAICaptioner:
        """The served model ``name`` on ``captioner_api_base`` (else ``api_base``); a
        ``caption_prompt`` changed from the default replaces the template's question-aware one."""
        s = settings
        return cls(name, api_base=s.captioner_api_base or s.api_base, api_key_env=s.api_key_env,
                   question_aware=s.question_aware, prompt=vlm_prompt(s.caption_prompt),
                   max_side=s.caption_max_side, concurrency=s.concurrency, **cls.limits(s))

    def __repr__(self) -> str:
        return (f"OpenAICaptioner(model={self.model!r}, api_base={self.server!r},"
                f" api_key_env={self.api_key_env!r}, key={self._key!r})")

    def chat(self, messages: list[dict[str, Any]]) -> str:
        """POST one chat completion; the reply's text.

        Raises:
            BackendError: the server is down (after retries), refuses images, or fails otherwise.
        """
        body = {"model": self.model, "messages": messages, "max_tokens": self.max_tokens,
                "temperature": 0}
        try:
            data = self._post("chat/completions", body)
        except StatusError as e:
            if e.status in (400, 415, 422, 500, 501) and REFUSES_IMAGES.search(e.message):
                raise BackendError(f"{e.url} refuses images (HTTP {e.status}: {e.message});"
                                   f" {IMAGES_HINT}") from None
            raise self._status_failure(e) from None
        except BackendError as e:
            # llama-server answers a missing --mmproj with HTTP 500, which is retried first.
            text = str(e)
            if "(last: HTTP 500" in text and REFUSES_IMAGES.search(text.partition("(last:")[2]):
                raise BackendError(f"{self.server} refuses images: {text}; {IMAGES_HINT}") from None
            raise
        message = first_choice(data, self.server).get("message") or {}
        content = message.get("content")
        if isinstance(content, list):  # some servers answer content parts
            content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        return str(content or "")
