"""The ``pica`` command line: thin Typer commands over the library.

Each command builds the settings, calls one library function and prints. Errors from the
``PicaError`` family become one line on stderr and exit code 2 (bad input) or 1 (runtime).
The commands live in ``options`` (shared), ``index``, ``eval`` (``eval`` and ``report``),
``caption`` and ``plugins``;
``answer`` and ``serve`` here. Help is click's plain layout (``--json / --no-json``, no ``<bool>``
placeholders); ``pica eval report RUN`` is resolved to ``pica report RUN`` (:class:`PicaGroup`).
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from pica import __version__
from pica.cli.caption import caption
from pica.cli.eval import evaluate, report
from pica.cli.index import index_app
from pica.cli.options import cached_captions, handle_errors, setting_options, settings_from
from pica.cli.plugins import plugins
from pica.config import (
    DEFAULT_SERVE_HOST,
    DEFAULT_SERVE_MAX_CAPTION_CHARS,
    DEFAULT_SERVE_MAX_QUESTION_CHARS,
    DEFAULT_SERVE_MAX_UPLOAD_MB,
    DEFAULT_SERVE_PORT,
    DEFAULT_SERVE_TIMEOUT,
    debug,
)


class PicaGroup(TyperGroup):
    """The top-level group: ``pica eval report ...`` is an alias of ``pica report ...``."""

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


def json_text(data: Any, indent: int | None) -> str:
    """``data`` as JSON: indented by ``indent`` spaces, or, when ``None``, by 2 on a terminal and
    on one line otherwise (pipes, files)."""
    if indent is None:
        indent = 2 if sys.stdout.isatty() else None
    return json.dumps(data, ensure_ascii=False, indent=indent or None)


# -- answer -------------------------------------------------------------------------------------
@app.command()
@handle_errors
@setting_options
def answer(
    image: Annotated[Path, typer.Argument(metavar="IMAGE", help="Image file (JPEG, PNG, ...).")],
    question: Annotated[str, typer.Argument(metavar="QUESTION", help="The question about the image.")],
    caption: Annotated[str | None, typer.Option(help="Use this caption instead of captioning.")] = None,
    captions: Annotated[Path | None, typer.Option(
        help="Cached captions file keyed by image id; the id is read from the image file name"
        " (e.g. COCO_val2014_000000297147.jpg).")] = None,
    as_json: Annotated[bool, typer.Option(
        "--json/--no-json", help="Print a JSON object with details.")] = False,
    indent: Annotated[int | None, typer.Option(
        min=0, help="Indent --json by N spaces (0 = one line; default 2 on a terminal, else one line).")
    ] = None,
    show_prompt: Annotated[bool, typer.Option(help="Print the prompt(s) before the answer.")] = False,
    *,
    options: dict[str, Any],
) -> None:
    """Answer a question about an image."""
    from pica.pipeline import Pipeline
    from pica.types import Question
    from pica.util.images import load_image

    query = Question.from_image(image, question, caption=caption)
    options["captioner"] = cached_captions(captions, options["captioner"])
    settings = settings_from(options)
    load_image(image)  # validate early: a bad image is an input error even with --caption
    pipeline = Pipeline(settings)
    if pipeline.zero_shot:
        typer.echo("note: no example index; answering zero-shot", err=True)
    result = pipeline.answer(query)
    if show_prompt:
        for i, prompt in enumerate(result.prompts, 1):
            typer.echo(f"----- prompt {i}/{len(result.prompts)} -----\n{prompt}\n-----")
    if as_json:
        index = str(pipeline.index.path) if pipeline.index is not None else None
        data = {**result.to_dict(llm=pipeline.backend.id, index=index), "choice": pipeline.choice_info}
        typer.echo(json_text(data, indent))
    else:
        typer.echo(result.answer)
        if result.rationale:
            typer.echo(f"because {result.rationale}")


# -- serve --------------------------------------------------------------------------------------
@app.command()
@handle_errors
@setting_options
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
    *,
    options: dict[str, Any],
) -> None:
    """Serve a web page and a JSON API (POST /v1/answer) with the same settings as `answer`."""
    from pica.serve import ServeOptions
    from pica.serve import serve as run_server

    settings = settings_from({**options, "concurrency": concurrency})
    run_server(settings, ServeOptions(host=host, port=port, max_upload_mb=max_upload_mb,
                                      timeout=timeout, examples_dir=examples_dir,
                                      max_question_chars=max_question_chars,
                                      max_caption_chars=max_caption_chars))


app.command("eval", no_args_is_help=True)(evaluate)
app.command("report")(report)
app.add_typer(index_app, name="index")
app.command("caption")(caption)
app.command("plugins")(plugins)


def main() -> None:
    """Console-script entry point."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not debug():
        warnings.filterwarnings("ignore")
    app(prog_name="pica")


if __name__ == "__main__":
    sys.exit(main())
