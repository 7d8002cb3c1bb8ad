"""``pica serve``: a web page and a JSON API over one warm pipeline.

- :mod:`~pica.serve.service`: :class:`~pica.serve.service.Service` — warm-up, upload checks, the
  answer gate and time-out; :class:`~pica.serve.service.ServeOptions`.
- :mod:`~pica.serve.app`: the FastAPI app (page, ``POST /v1/answer``, ``/healthz``, ``/docs``).
- :mod:`~pica.serve.openai_api`: ``POST /v1/chat/completions`` and ``GET /v1/models`` (pica as an
  OpenAI-compatible vision model); :mod:`~pica.serve.harness` takes harness prompts apart;
  :mod:`~pica.serve.image_urls` reads data URLs and, when allowed, fetches image URLs.
- :func:`serve`: load, warm up, listen.
"""

from __future__ import annotations

import logging
import os
import socket

from pica.errors import InputError
from pica.pipeline import Pipeline
from pica.serve.app import create_app
from pica.serve.service import ServeOptions, Service

__all__ = ["ServeOptions", "Service", "check_port_free", "key_from_env", "serve", "uvicorn_config"]

log = logging.getLogger("pica.serve")


def check_port_free(host: str, port: int) -> None:
    """Fail early (before loading models) when the port cannot be bound.

    Raises:
        InputError: the address is in use or cannot be bound.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            raise InputError(f"cannot listen on {host}:{port} ({e.strerror}); pick another --port"
                             " or --host") from e


def key_from_env(name: str | None) -> str | None:
    """The API key held by the environment variable ``name`` (``--require-key-env``), or ``None``.

    Raises:
        InputError: the variable is not set or empty (the message names it, never a value).
    """
    if name is None:
        return None
    key = os.environ.get(name, "").strip()
    if not key:
        raise InputError(f"--require-key-env {name}: the environment variable {name} is not set or empty")
    return key


def serve(settings, options: ServeOptions) -> None:
    """Load the pipeline, answer a warm-up question, then serve until interrupted.

    Args:
        settings: The pipeline's :class:`~pica.config.Settings` (as for ``pica answer``).
        options: Where to listen and the request limits.

    Raises:
        InputError: bad options, the port is taken, the index or LLM cannot be loaded.
    """
    import uvicorn

    options.validate()
    check_port_free(options.host, options.port)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    log.setLevel(logging.getLevelName(options.log_level.upper()))
    service = Service(Pipeline(settings), options)
    seconds = service.warm_up()
    log.info("pica serve: llm %s, index %s; warm-up answer in %.2f s; %d answer slot(s)",
             service.pipeline.backend.id, service.index_path or "none (zero-shot)", seconds,
             service.slots)
    log.info("OpenAI-compatible API: model %r at http://%s:%d/v1 (%s; image URLs %s)", options.model_name,
             options.host, options.port, "API key required" if options.api_key else "no API key",
             "fetched" if options.allow_image_urls else "refused")
    if options.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("listening on %s: the server is reachable from other machines", options.host)
    try:
        server = uvicorn.Server(uvicorn_config(create_app(service), options))
        server.run()
        if not server.started:
            raise InputError(f"cannot serve on {options.host}:{options.port} (see the log above)")
    finally:
        service.close()


def uvicorn_config(app, options: ServeOptions, log_level: str | None = None):
    """uvicorn's configuration for ``pica serve``: h11 with a deadline for each request's head
    (:func:`head_deadline_protocol`, ``options.head_seconds``), 5 s to finish requests in progress
    on shutdown, ``options.log_level`` unless ``log_level`` is given."""
    import uvicorn

    return uvicorn.Config(app, host=options.host, port=options.port, log_level=log_level or options.log_level,
                          timeout_graceful_shutdown=5, http=head_deadline_protocol(options.head_seconds))


def head_deadline_protocol(seconds: float):
    """uvicorn's h11 protocol, dropping a connection whose request line and headers are not all
    in ``seconds`` after it opened or after the previous answer (uvicorn sets no such deadline, so a
    client stalling in its headers held a connection indefinitely). ``H11Protocol`` is uvicorn's private
    class: pyproject bounds uvicorn to the releases this was tested with."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeadDeadlineProtocol(H11Protocol):
        _pica_timer = None

        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._pica_arm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._pica_arm()

        def connection_lost(self, exc) -> None:
            if self._pica_timer is not None:
                self._pica_timer.cancel()
            super().connection_lost(exc)

        def _pica_arm(self) -> None:
            if self._pica_timer is not None:
                self._pica_timer.cancel()
            self._pica_timer = self.loop.call_later(seconds, self._pica_expired)

        def _pica_expired(self) -> None:
            self._pica_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                log.info("dropped %s: no complete request head within %g s", self.client, seconds)
                self.transport.close()

    return HeadDeadlineProtocol
