"""The ``pica`` command line: thin Typer commands over the library.

Each command builds the settings, calls one library function and prints. Errors from the
``PicaError`` family become one line on stderr and exit code 2 (bad input) or 1 (runtime).
The commands live in ``options`` (shared), ``index``, ``eval`` (``eval`` and ``report``),
``caption`` and ``plugins``;
``answer`` and ``serve`` here. Help is click's plain layout (``--json / --no-json``, no ``<bool>``
placeholders); ``pica eval report RUN`` is resolved to ``pica report RUN`` (:class:`PicaGroup`).
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from pica import __version__
from pica.cli.caption import caption
from pica.cli.compare import compare
from pica.cli.conventions import conventional
from pica.cli.eval import evaluate, report
from pica.cli.index import index_app
from pica.cli.options import (
    DATASET_ONLY,
    cached_captions,
    handle_errors,
    json_text,
    note,
    output_options,
    quiet,
    setting_options,
    settings_from,
)
from pica.cli.plugins import plugins
from pica.config import (
    DEFAULT_SERVE_HOST,
    DEFAULT_SERVE_MAX_CAPTION_CHARS,
    DEFAULT_SERVE_MAX_QUESTION_CHARS,
    DEFAULT_SERVE_MAX_QUEUE,
    DEFAULT_SERVE_MAX_UPLOAD_MB,
    DEFAULT_SERVE_MODEL_NAME,
    DEFAULT_SERVE_PORT,
    DEFAULT_SERVE_TIMEOUT,
    debug,
)
from pica.errors import InputError


class PicaGroup(TyperGroup):
    """The top-level group: ``pica eval report ...`` is an alias of ``pica report ...``; help
    follows click's conventions (:mod:`pica.cli.conventions`)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        conventional(self)

    def resolve_command(self, ctx, args):
        """Click's hook for finding the subcommand; maps the alias first."""
        if args[:2] == ["eval", "report"]:
            args = ["report", *args[2:]]
        return super().resolve_command(ctx, args)


app = typer.Typer(
    name="pica",
    cls=PicaGroup,
    rich_markup_mode=None,
    help="Knowledge-based visual question answering: caption -> similar solved examples ->"
    " few-shot prompt -> LLM (PICa / PromptCap style).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"pica {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print pica's version and exit.")] = False,
          ) -> None:
    """Options of ``pica`` itself (the app's help text is the group's)."""


# -- answer -------------------------------------------------------------------------------------
@app.command()
@handle_errors
@output_options
@setting_options(leave_out=DATASET_ONLY)
def answer(
    image: Annotated[Path, typer.Argument(metavar="IMAGE", show_default=False,
                                          help="Image file (JPEG, PNG, ...).")],
    question: Annotated[str, typer.Argument(metavar="QUESTION", show_default=False,
                                            help="The question about the image.")],
    caption: Annotated[str | None, typer.Option(
        metavar="TEXT", help="Use this caption instead of captioning.")] = None,
    captions: Annotated[Path | None, typer.Option(
        metavar="FILE", help="Cached captions file keyed by image id; the id is read from the image"
        " file name (e.g. COCO_val2014_000000297147.jpg).")] = None,
    choices: Annotated[str | None, typer.Option(
        metavar="'A|B|C|D'", help="Ask it as multiple choice (A-OKVQA style): the choices,"
        " separated by |; --task mc answers with a choice only.")] = None,
    as_json: Annotated[bool, typer.Option(
        "--json/--no-json", help="Print a JSON object with details.")] = False,
    indent: Annotated[int | None, typer.Option(
        min=0, metavar="N",
        help="Indent --json by N spaces (0 = one line; default 2 on a terminal, else one line).")
    ] = None,
    show_prompt: Annotated[bool, typer.Option(help="Print the prompt(s) before the answer.")] = False,
    *,
    options: dict[str, Any],
) -> None:
    """Answer a question about an image."""
    from pica.pipeline import Pipeline
    from pica.types import Question
    from pica.util.images import load_image

    listed = choices.split("|") if choices is not None else []
    if options["task"] in ("mc", "both") and not listed:
        raise InputError(f"--task {options['task']} needs the choices: pass --choices 'A|B|C|D'")
    query = Question.from_input(image, question, caption=caption, choices=listed)
    options["captioner"] = cached_captions(captions, options["captioner"])
    settings = settings_from(options)
    load_image(image)  # validate early: a bad image is an input error even with --caption
    pipeline = Pipeline(settings)
    if pipeline.zero_shot:
        note("no example index; answering zero-shot")
    result = pipeline.answer(query)
    if show_prompt:
        for i, prompt in enumerate(result.prompts, 1):
            typer.echo(f"----- prompt {i}/{len(result.prompts)} -----\n{prompt}\n-----")
    if as_json:
        typer.echo(json_text(pipeline.to_json(result), indent))
    else:
        typer.echo(result.answer)
        if result.mc is not None and result.mc.get("chosen") not in (None, result.answer):
            typer.echo(f"choice: {result.mc['chosen']}")
        if result.rationale:
            typer.echo(f"because {result.rationale}")


# -- serve --------------------------------------------------------------------------------------
@app.command()
@handle_errors
@output_options
@setting_options(leave_out=DATASET_ONLY)
def serve(
    host: Annotated[str, typer.Option(
        help="Interface to listen on (127.0.0.1 = this machine only; 0.0.0.0 = every interface).")
    ] = DEFAULT_SERVE_HOST,
    port: Annotated[int, typer.Option(help="TCP port.")] = DEFAULT_SERVE_PORT,
    max_upload_mb: Annotated[float, typer.Option(
        help="Largest accepted upload, in MB.")] = DEFAULT_SERVE_MAX_UPLOAD_MB,
    concurrency: Annotated[int | None, typer.Option(
        help="Answers in parallel with an API backend (the local model answers one at a time).")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds per request, queueing included (then 504).")
    ] = DEFAULT_SERVE_TIMEOUT,
    examples_dir: Annotated[Path | None, typer.Option(
        help="Folder of example images offered on the page.")] = None,
    max_question_chars: Annotated[int, typer.Option(
        help="Longest accepted question (characters; longer ones get 400 at once).")
    ] = DEFAULT_SERVE_MAX_QUESTION_CHARS,
    max_caption_chars: Annotated[int, typer.Option(
        help="Longest accepted caption (characters; longer ones get 400 at once).")
    ] = DEFAULT_SERVE_MAX_CAPTION_CHARS,
    max_queue: Annotated[int, typer.Option(
        help="Requests that may wait for a busy answer slot (more get 429 with Retry-After).")
    ] = DEFAULT_SERVE_MAX_QUEUE,
    model_name: Annotated[str, typer.Option(
        help="Model id of the OpenAI-compatible API (/v1/models, /v1/chat/completions).")
    ] = DEFAULT_SERVE_MODEL_NAME,
    require_key_env: Annotated[str | None, typer.Option(
        metavar="VAR", help="Environment variable holding a key the OpenAI-compatible API requires"
        " as 'Authorization: Bearer <key>' (--api-key-env is the LLM API's own key).")] = None,
    allow_image_urls: Annotated[bool, typer.Option(
        help="Fetch http(s) image URLs named in chat messages (default: only base64 data URLs).")
    ] = False,
    allow_private_image_urls: Annotated[bool, typer.Option(
        help="With --allow-image-urls, also fetch from loopback and private addresses.")] = False,
    *,
    options: dict[str, Any],
) -> None:
    """Serve a web page, a JSON API (POST /v1/answer) and an OpenAI-compatible one
    (POST /v1/chat/completions, GET /v1/models) with the same settings as `answer`."""
    from pica.serve import ServeOptions, key_from_env
    from pica.serve import serve as run_server

    settings = settings_from({**options, "concurrency": concurrency})
    run_server(settings, ServeOptions(host=host, port=port, max_upload_mb=max_upload_mb,
                                      timeout=timeout, examples_dir=examples_dir,
                                      max_question_chars=max_question_chars,
                                      max_caption_chars=max_caption_chars, max_queue=max_queue,
                                      model_name=model_name, api_key=key_from_env(require_key_env),
                                      allow_image_urls=allow_image_urls,
                                      allow_private_image_urls=allow_private_image_urls,
                                      log_level="warning" if quiet() else "info"))


app.command("eval", no_args_is_help=True)(evaluate)
app.command("report")(report)
app.add_typer(index_app, name="index")
app.command("caption")(caption)
app.command("plugins")(plugins)
app.command("compare")(compare)


def main() -> None:
    """Console-script entry point."""
    from pica.util.signals import leave_stuck_threads_on_interrupt

    leave_stuck_threads_on_interrupt()  # Ctrl-C / SIGTERM never wait on a server that hangs
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not debug():
        warnings.filterwarnings("ignore")
    app(prog_name="pica")


if __name__ == "__main__":
    sys.exit(main())
