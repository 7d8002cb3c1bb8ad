"""``pica serve``: a web page and a JSON API over one warm pipeline.

- :mod:`~pica.serve.service`: :class:`~pica.serve.service.Service` — warm-up, upload checks, the
  answer gate and time-out; :class:`~pica.serve.service.ServeOptions`.
- :mod:`~pica.serve.app`: the FastAPI app (page, ``POST /v1/answer``, ``/healthz``, ``/docs``).
- :func:`serve`: load, warm up, listen.
"""

from __future__ import annotations

import logging
import socket

from pica.errors import InputError
from pica.pipeline import Pipeline
from pica.serve.app import create_app
from pica.serve.service import ServeOptions, Service

__all__ = ["ServeOptions", "Service", "check_port_free", "serve"]

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
    if options.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("listening on %s: the server is reachable from other machines", options.host)
    try:
        uvicorn.run(create_app(service), host=options.host, port=options.port, log_level=options.log_level,
                    timeout_graceful_shutdown=5)
    finally:
        service.close()
