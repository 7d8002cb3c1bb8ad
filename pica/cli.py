"""The ``pica`` command line: thin Typer commands over the library.

Each command builds the settings, calls one library function and prints. Errors from the
``PicaError`` family become one line on stderr and exit code 2 (bad input) or 1 (runtime).
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer

from pica.config import (
    DEFAULT_BUILD_BATCH,
    DEFAULT_LOAD_WORKERS,
    DEFAULT_SERVE_HOST,
    DEFAULT_SERVE_MAX_UPLOAD_MB,
    DEFAULT_SERVE_PORT,
    DEFAULT_SERVE_TIMEOUT,
    debug,
)
from pica.errors import InputError, PicaError

app = typer.Typer(
    name="pica",
    help="Knowledge-based visual question answering: caption -> similar solved examples ->"
    " few-shot prompt -> LLM (PICa / PromptCap style).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
index_app = typer.Typer(help="Build, inspect and list example indexes.", no_args_is_help=True)
eval_app = typer.Typer(help="Batch OK-VQA evaluation (official VQA accuracy), resumable.",
                       invoke_without_command=True, no_args_is_help=True)
app.add_typer(index_app, name="index")
app.add_typer(eval_app, name="eval")


def fail(message: str, code: int = 2) -> None:
    """Print ``error: message`` on one line to stderr and exit with ``code``."""
    typer.echo(f"error: {' '.join(str(message).split())}", err=True)
    raise typer.Exit(code)


def handle_errors(func):
    """Turn pica errors into one-line messages with exit codes; never show a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except PicaError as e:
            fail(str(e), e.exit_code)
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except (typer.Exit, typer.Abort):
            raise
        except Exception as e:  # a bug or an unforeseen library failure: still one line
            if debug():
                raise
            fail(f"unexpected {type(e).__name__}: {e} (set PICA_DEBUG=1 for a traceback)", 1)

    return wrapper


# -- shared options (one definition, reused by answer and eval) ---------------------------------
Captioner = Annotated[str | None, typer.Option(
    help="HF image-to-text model id or folder (default Salesforce/blip-image-captioning-base),"
    " or a captions file (.tsv/.jsonl/.csv) keyed by image id.")]
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
Choose = Annotated[str | None, typer.Option(
    help="Pick the answer: auto (default: learned when the index has a chooser for this LLM,"
    " template and shots, else logprob) | learned (the index's calibrated chooser over greedy +"
    " neighbour candidates) | logprob (PICa) | vote (Prophet).")]
CandidateAnswers = Annotated[int | None, typer.Option(
    help="Learned choice: answers of the nearest examples added as candidates (M, default 8).")]
CandidateNeighbours = Annotated[int | None, typer.Option(
    help="Learned choice: nearest examples the candidates come from (K, default 32).")]
ExampleOrder = Annotated[str | None, typer.Option(
    help="similar (default) | answer-aware: prefer nearest examples whose answers are among the"
    " neighbours' top candidates (Prophet).")]
Selection = Annotated[str | None, typer.Option(
    help="Example selection: auto | random | question | image+question | caption+question.")]
Weights = Annotated[str | None, typer.Option(
    help="Similarity weights per vector kind (unnamed kinds weigh 1; default caption=0.5),"
    " e.g. 'question=1,caption=0.5'.")]
Candidates = Annotated[int | None, typer.Option(
    help="Answer candidates shown per example and query (templates with {candidates}).")]
Template = Annotated[str | None, typer.Option(
    help="Prompt template: pica, lean, prophet, or a .toml file.")]
Llm = Annotated[str | None, typer.Option(
    help="gemma3-270m (packaged), a .gguf path, ORG/REPO:FILE.gguf, or openai:MODEL.")]
ApiBase = Annotated[str | None, typer.Option(
    help="Base URL of an OpenAI-compatible API (else $PICA_API_BASE, then $OPENAI_BASE_URL).")]
ApiKeyEnv = Annotated[str | None, typer.Option(
    help="Environment variable holding the API key (default OPENAI_API_KEY).")]
NCtx = Annotated[int | None, typer.Option(help="Context window of a local model (tokens).")]
Threads = Annotated[int | None, typer.Option(help="CPU threads of a local model.")]
MaxTokens = Annotated[int | None, typer.Option(help="Answer tokens to generate.")]
Seed = Annotated[int | None, typer.Option(help="Seed of random example selection.")]
Device = Annotated[str | None, typer.Option(
    help="Where captioner and open_clip run: auto (CUDA, else MPS, else CPU) | cpu | cuda | cuda:N | mps.")]
Dtype = Annotated[str | None, typer.Option(
    help="Their precision: auto (float16 on a GPU, float32 on CPU) | float32 | float16 | bfloat16.")]
NGpuLayers = Annotated[int | None, typer.Option(
    help="llama.cpp layers on the GPU (-1 = all; default all with a GPU build, else 0).")]
Task = Annotated[str | None, typer.Option(
    help="da (direct answer), mc (multiple choice), both, or auto (default: both for A-OKVQA"
    " files with choices, else da).")]
McMethod = Annotated[str | None, typer.Option(
    help="Multiple choice by 'score' (log-prob of each listed choice) or 'generate' (a free"
    " answer mapped to the nearest choice); default auto: score when the LLM gives log-probs.")]
Rationale = Annotated[bool | None, typer.Option(
    "--rationale/--no-rationale",
    help="Show the examples' rationales and have the model explain its answer"
    " ('A: <answer> because <rationale>').")]
Config = Annotated[Path | None, typer.Option(
    help="TOML config file (default ./pica.toml or $PICA_CONFIG); CLI options win.")]


# The options every answering command shares, by Settings field name (plus the config file).
SETTING_OPTIONS: dict[str, Any] = {
    "captioner": Captioner, "question_aware": QuestionAware, "index": Index, "embedder": Embedder,
    "shots": Shots, "ensemble": Ensemble, "choose": Choose, "selection": Selection, "weights": Weights,
    "candidates": Candidates, "candidate_answers": CandidateAnswers,
    "candidate_neighbours": CandidateNeighbours, "example_order": ExampleOrder, "template": Template,
    "llm": Llm, "api_base": ApiBase, "api_key_env": ApiKeyEnv, "n_ctx": NCtx, "threads": Threads,
    "max_tokens": MaxTokens, "seed": Seed,
    "device": Device, "dtype": Dtype, "n_gpu_layers": NGpuLayers,
    "task": Task, "mc_method": McMethod, "rationale": Rationale, "config": Config,
}


def setting_options(func):
    """Give a command the shared settings options; it receives their values as ``options``.

    Typer reads a command's parameters from its signature, so the wrapper advertises the command's
    own parameters followed by :data:`SETTING_OPTIONS`, and folds the latter into one dict.
    """
    signature = inspect.signature(func, eval_str=True)
    own = [p for p in signature.parameters.values() if p.name != "options"]
    shared = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=kind)
              for name, kind in SETTING_OPTIONS.items()]

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        options = {name: kwargs.pop(name, None) for name in SETTING_OPTIONS}
        return func(*args, options=options, **kwargs)

    wrapper.__signature__ = signature.replace(parameters=own + shared)
    wrapper.__annotations__ = {**{p.name: p.annotation for p in own}, **SETTING_OPTIONS}
    return wrapper


def settings_from(options: dict[str, Any]):
    """Settings from the shared options over the config file over the defaults."""
    from pica.config import FIELDS, make_settings, parse_weights

    cli = {name: value for name, value in options.items() if name in FIELDS}
    cli["weights"] = parse_weights(cli.get("weights"))
    return make_settings(cli, options.get("config"))


def cached_captions(captions: Path | None, captioner: str | None) -> str | None:
    """``--captions FILE`` is the captioner: check it and return the captioner setting."""
    if captions is None:
        return captioner
    if captioner is not None:
        raise InputError("give either --captions FILE or --captioner MODEL, not both")
    if not captions.is_file():
        raise InputError(f"captions file not found: {captions}")
    return str(captions)


# -- answer -------------------------------------------------------------------------------------
@app.command()
@handle_errors
@setting_options
def answer(
    image: Annotated[Path, typer.Argument(help="Image file (JPEG, PNG, ...).")],
    question: Annotated[str, typer.Argument(help="The question about the image.")],
    caption: Annotated[str | None, typer.Option(help="Use this caption instead of captioning.")] = None,
    captions: Annotated[Path | None, typer.Option(
        help="Cached captions file keyed by image id; the id is read from the image file name"
        " (e.g. COCO_val2014_000000297147.jpg).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON object with details.")] = False,
    show_prompt: Annotated[bool, typer.Option(help="Print the prompt(s) before the answer.")] = False,
    *,
    options: dict[str, Any],
) -> None:
    """Answer a question about an image."""
    from pica.images import load_image
    from pica.pipeline import Pipeline
    from pica.types import Question

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
        typer.echo(json.dumps(result.to_dict(llm=pipeline.backend.id, index=index), ensure_ascii=False))
    else:
        typer.echo(result.answer)


# -- index --------------------------------------------------------------------------------------
@index_app.command("build")
@handle_errors
def index_build(
    out: Annotated[Path, typer.Argument(help="Index folder to create, e.g. indexes/okvqa-pool.")],
    dataset: Annotated[Path | None, typer.Option(
        help="Dataset JSON: LXMERT-style list, A-OKVQA list, or VQA questions (with --annotations).")] = None,
    questions: Annotated[Path | None, typer.Option(help="Official OK-VQA/VQA questions JSON.")] = None,
    annotations: Annotated[Path | None, typer.Option(help="Official OK-VQA/VQA annotations JSON.")] = None,
    aokvqa: Annotated[Path | None, typer.Option(help="A-OKVQA JSON (direct answers).")] = None,
    hf_dataset: Annotated[str | None, typer.Option(
        help="Hugging Face dataset: hub name or a save_to_disk folder.")] = None,
    split: Annotated[str, typer.Option(help="Split of the HF dataset.")] = "train",
    examples: Annotated[Path | None, typer.Option(
        help="JSONL of solved examples with inline captions (id, caption, question, answer).")] = None,
    captions: Annotated[Path | None, typer.Option(
        help="Captions file keyed by image id: PICa TSV, JSONL or CSV.")] = None,
    images: Annotated[Path | None, typer.Option(help="Folder of the dataset's images.")] = None,
    captioner: Annotated[str | None, typer.Option(
        help="Captioner for images when no captions file is given.")] = None,
    embedder: Annotated[str | None, typer.Option(
        help="open_clip:ARCH@TAG | open_clip:hf-hub:ID | open_clip:FOLDER | sentence-transformers:NAME"
        " (default: open_clip ViT-B-32 with images, all-MiniLM-L6-v2 without).")] = None,
    approximate: Annotated[str | None, typer.Option(
        help="Also build an approximate search index: hnsw or ivf (default: exact only).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing index folder.")] = False,
    skip_missing: Annotated[bool, typer.Option(
        help="Leave out examples whose caption or image is missing instead of failing.")] = False,
    limit: Annotated[int | None, typer.Option(help="Index only the first N questions.")] = None,
    batch_size: Annotated[int, typer.Option(help="Examples per captioning/embedding batch.")
                          ] = DEFAULT_BUILD_BATCH,
    workers: Annotated[int, typer.Option(
        help="Image loader threads working ahead of the models (0 = load in turn).")] = DEFAULT_LOAD_WORKERS,
    device: Device = None,
    dtype: Dtype = None,
    config: Config = None,
) -> None:
    """Build an example index from a dataset."""
    from pica.config import make_settings
    from pica.index_build import build_from_examples_file, build_index

    settings = make_settings({"device": device, "dtype": dtype}, config)
    if out.exists() and not overwrite:
        raise InputError(f"index folder {out} already exists; pass --overwrite to replace it")
    if examples is not None:
        if any(v is not None for v in (dataset, questions, aokvqa, hf_dataset)):
            raise InputError("--examples cannot be combined with another dataset option")
        path = build_from_examples_file(examples, out, embedder=embedder, overwrite=overwrite,
                                        approximate=approximate)
    else:
        from pica.datasets import dataset_identity, load_questions, read_captions

        qs = load_questions(dataset=dataset, questions=questions, annotations=annotations,
                            aokvqa=aokvqa, hf_dataset=hf_dataset, split=split, images_dir=images,
                            skip_missing=skip_missing, limit=limit)
        caption_map = read_captions(captions) if captions is not None else None
        sources = dataset_identity(dataset=dataset, questions=questions, annotations=annotations,
                                   aokvqa=aokvqa, hf_dataset=hf_dataset, captions=captions,
                                   images_dir=images)
        path = build_index(out, qs, captions=caption_map, captioner=captioner, embedder=embedder,
                           approximate=approximate, overwrite=overwrite, skip_missing=skip_missing,
                           batch_size=batch_size, workers=workers, device=settings.device,
                           dtype=settings.dtype, sources=sources)
    _print_info(path)


def _print_info(path: Path) -> None:
    from pica.index import read_manifest

    m = read_manifest(path)
    kinds = ", ".join(f"{k} ({v['dim']})" for k, v in m["kinds"].items())
    lines = [
        ("index", str(path)), ("examples", str(m["count"])), ("embedder", m["embedder"]),
        ("vectors", kinds), ("search", m.get("search", {}).get("type", "flat")),
        ("built", f"{m.get('created', '?')} in {m.get('build_seconds', '?')} s"),
        ("sources", ", ".join(f"{k}={v}" for k, v in m.get("sources", {}).items()) or "-"),
    ]
    for key, value in lines:
        typer.echo(f"{key:9} {value}")
    from pica.chooser import list_choosers

    for file, chooser, error in list_choosers(path):
        if chooser is None:
            typer.echo(f"chooser   {file.name}: BROKEN: {error}")
            continue
        f, t = chooser.fitted_for, chooser.training
        typer.echo(f"chooser   {f.get('llm')}, template {f.get('template')}, {f.get('shots')} shots,"
                   f" M={f.get('candidate_answers')} K={f.get('candidate_neighbours')}: {t.get('questions')}"
                   f" questions; held back {t.get('heldout_questions')}: greedy"
                   f" {t.get('heldout_greedy_accuracy')}% -> chooser {t.get('heldout_chooser_accuracy')}%"
                   f" ({file.name})")


@index_app.command("info")
@handle_errors
def index_info(path: Annotated[str, typer.Argument(help="Index folder or name under indexes/.")]) -> None:
    """Show an index's size, embedder, vector dims, build time and sources."""
    from pica.index_store import resolve_index

    _print_info(resolve_index(path))


@index_app.command("calibrate")
@handle_errors
@setting_options
def index_calibrate(
    path: Annotated[str, typer.Argument(help="Index folder or name under indexes/.")],
    n: Annotated[int, typer.Option(help="Index examples to ask (leave-one-image-out).")] = 500,
    heldout: Annotated[float, typer.Option(help="Share of the sampled images held back to report"
                                                 " greedy vs chooser accuracy.")] = 0.25,
    calibration_seed: Annotated[int, typer.Option(help="Seed of the sample and the split.")] = 0,
    overwrite: Annotated[bool, typer.Option(help="Re-fit a chooser that exists.")] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    *,
    options: dict[str, Any],
) -> None:
    """Fit the learned answer chooser on the index's own examples, for the LLM, template and shots
    in use; written to INDEX/choosers/."""
    from pica.calibrate import calibrate
    from pica.index_store import resolve_index
    from pica.pipeline import Pipeline

    if n < 20 or not 0 < heldout < 1:
        raise InputError("--n must be at least 20 and --heldout between 0 and 1")
    options["index"] = str(resolve_index(path))
    settings = settings_from(options)
    file, chooser = calibrate(Pipeline(settings), n=n, heldout=heldout, seed=calibration_seed,
                              overwrite=overwrite, progress=progress)
    t = chooser.training
    typer.echo(f"chooser  {file}")
    typer.echo(f"fitted   {t['questions']} questions in {t['seconds']} s"
               f" ({t['seconds_per_question']} s/question)")
    if "heldout_chooser_accuracy" in t:
        typer.echo(f"held back {t['heldout_questions']} questions: greedy {t['heldout_greedy_accuracy']}%,"
                   f" chooser {t['heldout_chooser_accuracy']}% (paired SE {t['heldout_difference_se']}),"
                   f" oracle {t['heldout_oracle_accuracy']}%")


@index_app.command("list")
@handle_errors
def index_list(root: Annotated[Path | None, typer.Option(
        help="Folder to list (default ./indexes or $PICA_INDEX_DIR).")] = None) -> None:
    """List the indexes under indexes/."""
    from pica.config import index_root
    from pica.index_store import list_indexes

    rows = list_indexes(root)
    if not rows:
        typer.echo(f"no indexes under {root or index_root()}; build one with `pica index build`")
        return
    for r in rows:
        if r["error"]:
            typer.echo(f"{r['name']:24} BROKEN: {r['error']}")
        else:
            typer.echo(f"{r['name']:24} {r['count']:>8} examples  {r['embedder']}"
                       f"  [{r['kinds']}; {r['search']}]")


# -- eval ---------------------------------------------------------------------------------------
@eval_app.callback()
@handle_errors
@setting_options
def evaluate(
    ctx: typer.Context,
    dataset: Annotated[Path | None, typer.Option(
        help="Dataset JSON: LXMERT-style list, A-OKVQA list, or VQA questions (with --annotations).")] = None,
    questions: Annotated[Path | None, typer.Option(help="Official OK-VQA/VQA questions JSON.")] = None,
    annotations: Annotated[Path | None, typer.Option(help="Official OK-VQA/VQA annotations JSON.")] = None,
    aokvqa: Annotated[Path | None, typer.Option(help="A-OKVQA JSON (direct answers).")] = None,
    hf_dataset: Annotated[str | None, typer.Option(help="Hugging Face dataset name or folder.")] = None,
    split: Annotated[str, typer.Option(help="Split of the HF dataset.")] = "validation",
    images: Annotated[Path | None, typer.Option(help="Folder of the dataset's images.")] = None,
    captions: Annotated[Path | None, typer.Option(
        help="Cached captions file (PICa TSV, JSONL, CSV) keyed by image id.")] = None,
    out: Annotated[Path | None, typer.Option(help="Run folder (created; resumed if it exists).")] = None,
    limit: Annotated[int | None, typer.Option(help="Evaluate only the first N questions.")] = None,
    force_new: Annotated[bool, typer.Option(
        help="Start over in a run folder made with another configuration.")] = False,
    concurrency: Annotated[int | None, typer.Option(
        help="Parallel requests for API backends.")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    split_name: Annotated[str | None, typer.Option(
        help="Split in the official A-OKVQA prediction file names (predictions_SPLIT-da.json);"
        " default from the file name (aokvqa_v1p0_val.json -> val).")] = None,
    *,
    options: dict[str, Any],
) -> None:
    """Evaluate on a dataset: `pica eval --dataset D --out RUN ...`; `pica eval report RUN`."""
    if ctx.invoked_subcommand is not None:
        return
    from pica.datasets import dataset_identity, load_questions
    from pica.evaluation import evaluate as run_evaluation

    if out is None:
        raise InputError("--out RUN_FOLDER is required (e.g. --out runs/dev)")
    options["captioner"] = cached_captions(captions, options["captioner"])
    settings = settings_from({**options, "concurrency": concurrency})
    qs = load_questions(dataset=dataset, questions=questions, annotations=annotations, aokvqa=aokvqa,
                        hf_dataset=hf_dataset, split=split, images_dir=images, limit=limit)
    identity = dataset_identity(dataset=dataset, questions=questions, annotations=annotations,
                                aokvqa=aokvqa, hf_dataset=hf_dataset, split=split, images_dir=images)
    from pica.pipeline import Pipeline

    pipeline = Pipeline(settings)
    if pipeline.zero_shot:
        typer.echo("note: no example index; answering zero-shot", err=True)
    summary = run_evaluation(settings, qs, out, dataset=identity, force_new=force_new,
                             progress=progress, pipeline=pipeline, split=split_name)
    _print_summary(summary, out)


def _print_summary(summary: dict[str, Any], out: Path) -> None:
    accuracy = summary["accuracy"]
    shown = "-" if accuracy is None else f"{accuracy:.2f}"
    typer.echo(f"accuracy {shown}  n={summary['n']}  "
               f"{summary['seconds_per_question']:.3f} s/question  -> {out}")
    if "da" in summary:
        da = summary["da"]
        typer.echo(f"  direct answer (A-OKVQA)  {da['accuracy']}  (n={da['n']};"
                   f" {da['difficult_left_out']} difficult left out)")
    if "mc" in summary:
        typer.echo(f"  multiple choice          {summary['mc']['accuracy']}  (n={summary['mc']['n']})")
    for category, row in summary["per_category"].items():
        label = f"{category:>2} {row['name']}" if row.get("name") else category
        typer.echo(f"  {label:<44} {row['accuracy']:6.2f}  (n={row['n']})")


@eval_app.command("report")
@handle_errors
def eval_report(run: Annotated[Path, typer.Argument(help="Run folder of `pica eval`.")]) -> None:
    """(Re)write predictions, summary and report.html of a run folder from its results."""
    from pica.evaluation import write_outputs

    summary = write_outputs(run)
    _print_summary(summary, run)
    typer.echo(f"report: {run / 'report.html'}")


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
    *,
    options: dict[str, Any],
) -> None:
    """Serve a web page and a JSON API (POST /v1/answer) with the same settings as `answer`."""
    from pica.serve import ServeOptions
    from pica.serve import serve as run_server

    settings = settings_from({**options, "concurrency": concurrency})
    run_server(settings, ServeOptions(host=host, port=port, max_upload_mb=max_upload_mb,
                                      timeout=timeout, examples_dir=examples_dir))


def main() -> None:
    """Console-script entry point."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not debug():
        warnings.filterwarnings("ignore")
    app(prog_name="pica")


if __name__ == "__main__":
    sys.exit(main())
