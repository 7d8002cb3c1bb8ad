"""What every ``pica`` command shares: one-line errors with exit codes, the settings options
(declared once, used by answer, eval, serve and index calibrate) and their merge into ``Settings``.
"""

from __future__ import annotations

import errno
import functools
import inspect
from pathlib import Path
from typing import Annotated, Any

import typer

from pica.config import CHOICES, debug
from pica.errors import CaptionError, InputError, PicaError, StorageError


def fail(message: str, code: int = 2) -> None:
    """Print ``error: message`` on one line to stderr and exit with ``code``."""
    typer.echo(f"error: {' '.join(str(message).split())}", err=True)
    raise typer.Exit(code)


def handle_errors(func):
    """Turn pica errors into one-line messages with exit codes; never show a traceback.

    SIGTERM is handled like SIGINT while the command runs (see :mod:`pica.util.signals`): locks
    are released and temporary files removed as the stack unwinds; the exit code is 143 (SIGINT:
    130), without waiting for requests still blocked in threads (``pica`` command only). A write
    that fails for lack of space or a storage fault exits 74 naming the path.
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from pica.util.signals import (
            SIGTERM_EXIT,
            Terminated,
            end_interrupted,
            terminate_as_interrupt,
        )

        try:
            with terminate_as_interrupt():
                return func(*args, **kwargs)
        except CaptionError as e:
            fail(e.with_hint(caption_hint(func.__name__)), e.exit_code)
        except PicaError as e:
            fail(str(e), e.exit_code)
        except Terminated:
            typer.echo("error: terminated (SIGTERM)", err=True)
            end_interrupted(SIGTERM_EXIT)  # requests still blocked in threads are not waited for
            raise typer.Exit(SIGTERM_EXIT) from None
        except KeyboardInterrupt:
            typer.echo("error: interrupted", err=True)
            end_interrupted(130)
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort):
            raise
        except Exception as e:  # a bug or an unforeseen library failure: still one line
            if debug():
                raise
            if isinstance(e, OSError) and e.errno in STORAGE_ERRNOS:  # a write pica did not wrap
                fail(f"cannot write {e.filename or 'a file'}: {e.strerror}", StorageError.exit_code)
            fail(f"unexpected {type(e).__name__}: {e} (set PICA_DEBUG=1 for a traceback)", 1)

    return wrapper


# What each command takes instead of a captioner model (CaptionError's advice), by the name of
# the command's function.
CAPTION_HINTS = {
    "answer": "pass --caption TEXT, --captions FILE or a local --captioner FOLDER",
    "evaluate": "pass --captions FILE (cached captions) or a local --captioner FOLDER",
    "index_build": "pass --captions FILE (cached captions) or a local --captioner FOLDER",
    "caption": "pass --captioner with a local model FOLDER, openai:MODEL or gguf:PATH",
    "index_calibrate": "pass --captioner FILE (cached captions) or a local --captioner FOLDER",
    "serve": "pass --captioner FILE (cached captions) or a local --captioner FOLDER;"
             " requests that carry a caption need neither",
}


def caption_hint(command: str) -> str:
    """What ``command`` (its function's name) takes when no caption can be had (:data:`CAPTION_HINTS`)."""
    return CAPTION_HINTS.get(command, "pass a local --captioner FOLDER or cached captions")


# Write failures that are the storage's, not the command's (any OSError with these numbers).
STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.EFBIG}



# -- output: --quiet / --verbose on every command, --json -----------------------------------------
_VERBOSITY = {"quiet": False, "verbose": False}


def quiet() -> bool:
    """Whether the running command was given ``--quiet``."""
    return _VERBOSITY["quiet"]


def note(message: str) -> None:
    """A note on stderr (``note: ...``), left out with ``--quiet``."""
    if not _VERBOSITY["quiet"]:
        typer.echo(f"note: {message}", err=True)


def verbose(message: str) -> None:
    """A detail on stderr, printed only with ``--verbose``."""
    if _VERBOSITY["verbose"]:
        typer.echo(message, err=True)


def output_options(func):
    """Give a command ``--quiet/-q`` (no progress bars, no notes: only the result and errors) and
    ``--verbose/-v`` (what pica resolved, library warnings and log lines on stderr)."""
    signature = inspect.signature(func, eval_str=True)
    extra = [
        inspect.Parameter("quiet", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=Annotated[
            bool, typer.Option("--quiet", "-q", help="Print only the result and errors: no progress"
                               " bars or notes.")]),
        inspect.Parameter("verbose", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=Annotated[
            bool, typer.Option("--verbose", "-v", help="Also print what pica resolved, library"
                               " warnings and log messages (stderr).")]),
    ]
    params = list(signature.parameters.values())
    keyword = [p for p in params if p.kind == inspect.Parameter.KEYWORD_ONLY]
    positional = [p for p in params if p.kind != inspect.Parameter.KEYWORD_ONLY]

    @functools.wraps(func)
    def wrapper(*args, quiet: bool = False, verbose: bool = False, **kwargs):
        import logging
        import warnings

        from pica.util.progress import set_quiet

        if quiet and verbose:
            raise InputError("give --quiet or --verbose, not both")
        before = dict(_VERBOSITY)
        _VERBOSITY.update(quiet=quiet, verbose=verbose)
        was_quiet = set_quiet(quiet)
        try:
            if verbose:
                warnings.simplefilter("default")
                logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
            return func(*args, **kwargs)
        finally:
            _VERBOSITY.update(before)
            set_quiet(was_quiet)

    wrapper.__signature__ = signature.replace(parameters=positional + keyword + extra)
    wrapper.__annotations__ = {p.name: p.annotation for p in positional + keyword + extra}
    return wrapper


def json_text(data: Any, indent: int | None = None) -> str:
    """``data`` as JSON: indented by ``indent`` spaces, or, when ``None``, by 2 on a terminal and
    on one line otherwise (pipes, files)."""
    import json
    import sys

    if indent is None:
        indent = 2 if sys.stdout.isatty() else None
    return json.dumps(data, ensure_ascii=False, indent=indent or None, default=str)


AsJson = Annotated[bool, typer.Option("--json/--no-json", help="Print the result as one JSON object.")]


def choice_metavar(name: str, *extra: str) -> str:
    """``[auto|learned|logprob]``: the values of an enumerated setting (:data:`pica.config.CHOICES`)
    for its option's help, as click lists a ``Choice``; ``extra`` adds open-ended forms."""
    return "[" + "|".join((*CHOICES.get(name, ()), *extra)) + "]"


# -- shared options (one definition, reused by answer and eval) ---------------------------------
def _captioner_help() -> str:
    """``--captioner``'s help: the kinds the registry holds (built-ins, read without an import)."""
    from pica.registry import captioners

    return ("HF image-to-text model id or folder (default Salesforce/blip-image-captioning-base),"
            " a captions file (.tsv/.jsonl/.csv/.json) keyed by image id, or KIND:ARG with KIND one"
            f" of {', '.join(captioners.builtins())} (openai:MODEL a served vision model,"
            " gguf:PATH a local GGUF vision model with --mmproj) or a plugin's (pica plugins).")


def _choose_metavar() -> str:
    """``--choose``'s values: every answer-choice rule of the registry, as click lists a choice."""
    from pica.registry import choice_rules

    return "[" + "|".join(choice_rules.names()) + "]"


def _choose_help() -> str:
    """``--choose``'s help: every answer-choice rule of the registry with its summary."""
    from pica.registry import choice_rules

    rules = " | ".join(f"{e.name} ({e.summary.rstrip('.')})" for e in choice_rules.entries())
    return f"Pick the answer: {rules}."


# The one --captioner option (answer, eval, serve, index calibrate, index build, caption).
Captioner = Annotated[str | None, typer.Option(help=_captioner_help())]
CaptionerApiBase = Annotated[str | None, typer.Option(
    help="Base URL of the openai:MODEL captioner's server (default: --api-base).")]
Mmproj = Annotated[str | None, typer.Option(
    help="Vision projector GGUF of a gguf: captioner (path or ORG/REPO:FILE.gguf).")]
CaptionMaxSide = Annotated[int | None, typer.Option(
    help="Longest image side sent to a vision-language captioner, in pixels (default 768).")]
QuestionAware = Annotated[bool | None, typer.Option(
    "--question-aware/--no-question-aware", help="PromptCap-style caption conditioned on the question.")]
Index = Annotated[str | None, typer.Option(
    help="Example index folder or name under indexes/ ('starter' = built-in examples,"
    " 'none' = zero-shot).")]
Embedder = Annotated[str | None, typer.Option(
    help="Insist on this embedder (default: the one the index was built with).")]
Shots = Annotated[int | None, typer.Option(help="In-context examples per prompt (default 4).")]
Ensemble = Annotated[int | None, typer.Option(
    help="Prompts per question from disjoint slices of the nearest examples (PICa).")]
Choose = Annotated[str | None, typer.Option(metavar=_choose_metavar(), help=_choose_help())]
CandidateAnswers = Annotated[int | None, typer.Option(
    help="Learned choice: answers of the nearest examples added as candidates (M, default 8).")]
CandidateNeighbours = Annotated[int | None, typer.Option(
    help="Learned choice: nearest examples the candidates come from (K, default 32).")]
ExampleOrder = Annotated[str | None, typer.Option(
    metavar=choice_metavar("example_order"),
    help="similar (default) | answer-aware: prefer nearest examples whose answers are among the"
    " neighbours' top candidates (Prophet).")]
Selection = Annotated[str | None, typer.Option(
    metavar=choice_metavar("selection"),
    help="Example selection: auto | random | question | image+question | caption+question.")]
Weights = Annotated[str | None, typer.Option(
    help="Similarity weights per vector kind (unnamed kinds weigh 1; default caption=0.5),"
    " e.g. 'question=1,caption=0.5'.")]
Candidates = Annotated[int | None, typer.Option(
    help="Answer candidates shown per example and query (templates with {candidates}; default 10,"
    " Prophet's k, with --candidates-file, else 5).")]
CandidatesFile = Annotated[str | None, typer.Option(
    help="Answer candidates per question id: Prophet's {question_id: [{answer, confidence}]} JSON"
    " or pica's JSONL; shown for the query and every example (an example without an entry shows"
    " none); makes --template default to prophet.")]
ExamplesFile = Annotated[str | None, typer.Option(
    help="Prophet's answer-aware examples {question_id: [example ids]}: the first shots x ensemble"
    " ids, shuffled (seeded), split across the ensemble's prompts.")]
Template = Annotated[str | None, typer.Option(
    metavar="[pica|lean|prophet|FILE.toml]",
    help="Prompt template: pica (default), lean, prophet (default with --candidates-file), or a .toml file.")]
Llm = Annotated[str | None, typer.Option(
    help="gemma3-270m (packaged), a .gguf path, ORG/REPO:FILE.gguf, or openai:MODEL.")]
ApiBase = Annotated[str | None, typer.Option(
    help="Base URL of an OpenAI-compatible API (else $PICA_API_BASE, then $OPENAI_BASE_URL).")]
ApiKeyEnv = Annotated[str | None, typer.Option(
    help="Environment variable holding the API key (default OPENAI_API_KEY).")]
ApiTimeout = Annotated[float | None, typer.Option(
    help="Seconds an API server (LLM or openai:MODEL captioner) may take to connect or to send"
    " each part of an answer (default 60 for the LLM, 120 for the captioner).")]
ApiRetries = Annotated[int | None, typer.Option(
    help="Retries of a transient API failure: HTTP 408/409/429/5xx, time-out, reset (default 6).")]
ApiWait = Annotated[float | None, typer.Option(
    help="Seconds to keep trying an API server that refuses connections, e.g. one still starting"
    " (default 0: a refused connection fails at once).")]
NCtx = Annotated[int | None, typer.Option(help="Context window of a local model (tokens).")]
Threads = Annotated[int | None, typer.Option(help="CPU threads of a local model.")]
MaxTokens = Annotated[int | None, typer.Option(help="Answer tokens to generate.")]
Seed = Annotated[int | None, typer.Option(help="Seed of random example selection.")]
Device = Annotated[str | None, typer.Option(
    metavar="[auto|cpu|cuda|cuda:N|mps]",
    help="Where captioner and open_clip run: auto (CUDA, else MPS, else CPU) | cpu | cuda | cuda:N | mps.")]
Dtype = Annotated[str | None, typer.Option(
    metavar=choice_metavar("dtype"),
    help="Their precision: auto (float16 on a GPU, float32 on CPU) | float32 | float16 | bfloat16.")]
NGpuLayers = Annotated[int | None, typer.Option(
    help="llama.cpp layers on the GPU (-1 = all; default all with a GPU build, else 0).")]
Task = Annotated[str | None, typer.Option(
    metavar=choice_metavar("task"),
    help="da (direct answer), mc (multiple choice), both, or auto (default: both for A-OKVQA"
    " files with choices, else da).")]
McMethod = Annotated[str | None, typer.Option(
    metavar=choice_metavar("mc_method"),
    help="Multiple choice by 'score' (log-prob of each listed choice) or 'generate' (a free"
    " answer mapped to the nearest choice); default auto: score when the LLM gives log-probs.")]
McScore = Annotated[str | None, typer.Option(
    metavar=choice_metavar("mc_score"),
    help="How --mc-method score ranks the choices: auto (default: calibrated when the index has no"
    " choices of its own, else sum) | sum (summed log-prob) | mean (per token) | calibrated (minus"
    " the log-prob under a content-free query, N/A).")]
Rationale = Annotated[bool | None, typer.Option(
    "--rationale/--no-rationale",
    help="Show the examples' rationales and have the model explain its answer"
    " ('A: <answer> because <rationale>').")]
Config = Annotated[Path | None, typer.Option(
    help="TOML config file (default ./pica.toml or $PICA_CONFIG); CLI options win.")]


# The options every answering command shares, by Settings field name (plus the config file).
SETTING_OPTIONS: dict[str, Any] = {
    "captioner": Captioner, "captioner_api_base": CaptionerApiBase, "mmproj": Mmproj,
    "caption_max_side": CaptionMaxSide, "question_aware": QuestionAware, "index": Index, "embedder": Embedder,
    "shots": Shots, "ensemble": Ensemble, "choose": Choose, "selection": Selection, "weights": Weights,
    "candidates": Candidates, "candidates_file": CandidatesFile, "examples_file": ExamplesFile,
    "candidate_answers": CandidateAnswers,
    "candidate_neighbours": CandidateNeighbours, "example_order": ExampleOrder, "template": Template,
    "llm": Llm, "api_base": ApiBase, "api_key_env": ApiKeyEnv,
    "api_timeout": ApiTimeout, "api_retries": ApiRetries, "api_wait": ApiWait,
    "n_ctx": NCtx, "threads": Threads,
    "max_tokens": MaxTokens, "seed": Seed,
    "device": Device, "dtype": Dtype, "n_gpu_layers": NGpuLayers,
    "task": Task, "mc_method": McMethod, "mc_score": McScore,
    "rationale": Rationale, "config": Config,
}


# Settings keyed by a dataset's question ids: no use to a command that answers one question.
DATASET_ONLY = ("candidates_file", "examples_file")


def setting_options(func=None, *, leave_out: tuple[str, ...] = ()):
    """Give a command the shared settings options; it receives their values as ``options``.

    Typer reads a command's parameters from its signature, so the wrapper advertises the command's
    own parameters followed by :data:`SETTING_OPTIONS`, and folds the latter into one dict.
    ``@setting_options(leave_out=(...))`` leaves some out of the command (``options`` has them as
    ``None``; a config file may still set them).
    """
    if func is None:
        return functools.partial(setting_options, leave_out=leave_out)
    signature = inspect.signature(func, eval_str=True)
    own = [p for p in signature.parameters.values() if p.name != "options"]
    kinds = {name: kind for name, kind in SETTING_OPTIONS.items() if name not in leave_out}
    shared = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=kind)
              for name, kind in kinds.items()]

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        options = {name: kwargs.pop(name, None) for name in SETTING_OPTIONS}
        return func(*args, options=options, **kwargs)

    wrapper.__signature__ = signature.replace(parameters=own + shared)
    wrapper.__annotations__ = {**{p.name: p.annotation for p in own}, **kinds}
    return wrapper


def settings_from(options: dict[str, Any], say: bool = True):
    """Settings from the shared options over the config file over the defaults (``say``: printed
    with ``--verbose``; ``False`` for an early check of values that are built again later)."""
    from pica.config import FIELDS, make_settings, parse_weights

    cli = {name: value for name, value in options.items() if name in FIELDS}
    cli["weights"] = parse_weights(cli.get("weights"))
    settings = make_settings(cli, options.get("config"))
    if say:
        verbose(f"settings: {json_text(settings.fingerprint(), 0)}")
    return settings


def cached_captions(captions: Path | None, captioner: str | None) -> str | None:
    """``--captions FILE`` is the captioner: check it and return the captioner setting."""
    if captions is None:
        return captioner
    if captioner is not None:
        raise InputError("give either --captions FILE or --captioner MODEL, not both")
    if not captions.is_file():
        raise InputError(f"captions file not found: {captions}")
    return str(captions)


