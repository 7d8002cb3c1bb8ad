"""``pica index build | info | calibrate | list``."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from pica.cli.options import (
    ApiBase,
    ApiKeyEnv,
    ApiRetries,
    ApiTimeout,
    ApiWait,
    AsJson,
    Captioner,
    CaptionerApiBase,
    CaptionMaxSide,
    Config,
    Device,
    Dtype,
    Mmproj,
    handle_errors,
    json_text,
    output_options,
    setting_options,
    settings_from,
)
from pica.config import DEFAULT_BUILD_BATCH, DEFAULT_CALIBRATION_QUESTIONS, DEFAULT_LOAD_WORKERS
from pica.errors import InputError


class ChooserModel(StrEnum):
    auto = "auto"
    logistic = "logistic"
    trees = "trees"


index_app = typer.Typer(help="Build, inspect and list example indexes.", no_args_is_help=True)


@index_app.command("build")
@handle_errors
@output_options
def index_build(
    out: Annotated[Path, typer.Argument(
        metavar="OUT", help="Index folder to create, e.g. indexes/okvqa-pool.")],
    dataset: Annotated[Path | None, typer.Option(
        help="Dataset JSON: LXMERT-style list, A-OKVQA list, or VQA questions (with --annotations).")] = None,
    questions: Annotated[Path | None, typer.Option(help="Official OK-VQA/VQA questions JSON.")] = None,
    annotations: Annotated[Path | None, typer.Option(help="Official OK-VQA/VQA annotations JSON.")] = None,
    aokvqa: Annotated[Path | None, typer.Option(help="A-OKVQA JSON (direct answers).")] = None,
    hf_dataset: Annotated[str | None, typer.Option(
        help="Hugging Face dataset: hub name or a save_to_disk folder.")] = None,
    scienceqa: Annotated[Path | None, typer.Option(
        help="ScienceQA problems.json (pid_splits.json beside it; --captions captions.json).")] = None,
    pid_splits: Annotated[Path | None, typer.Option(
        help="ScienceQA pid_splits.json when it is not beside problems.json.")] = None,
    split: Annotated[str, typer.Option(help="Split of the HF dataset or of ScienceQA.")] = "train",
    examples: Annotated[Path | None, typer.Option(
        help="JSONL of solved examples with inline captions (id, caption, question, answer).")] = None,
    captions: Annotated[Path | None, typer.Option(
        help="Captions file keyed by image id: PICa TSV, JSONL or CSV.")] = None,
    images: Annotated[Path | None, typer.Option(help="Folder of the dataset's images.")] = None,
    captioner: Captioner = None,
    captioner_api_base: CaptionerApiBase = None,
    api_base: ApiBase = None,
    api_key_env: ApiKeyEnv = None,
    api_timeout: ApiTimeout = None,
    api_retries: ApiRetries = None,
    api_wait: ApiWait = None,
    mmproj: Mmproj = None,
    caption_max_side: CaptionMaxSide = None,
    concurrency: Annotated[int | None, typer.Option(
        help="Requests in flight with an openai:MODEL captioner.")] = None,
    shard: Annotated[str | None, typer.Option(
        help="Build only part K of N (0-based, a contiguous block of the dataset); join the N"
        " shards with `pica index merge`.")] = None,
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
    from pica.retrieval.build import build_from_examples_file, build_index
    from pica.retrieval.writer import check_replaceable
    from pica.util.shards import parse_shard

    part = parse_shard(shard)
    settings = make_settings({
        "device": device, "dtype": dtype, "captioner": captioner,
        "captioner_api_base": captioner_api_base, "api_base": api_base, "api_key_env": api_key_env,
        "api_timeout": api_timeout, "api_retries": api_retries, "api_wait": api_wait,
        "mmproj": mmproj, "caption_max_side": caption_max_side, "concurrency": concurrency}, config)
    check_replaceable(out, overwrite)  # before any model loads
    if examples is not None:
        if any(v is not None for v in (dataset, questions, aokvqa, hf_dataset, scienceqa, part)):
            raise InputError("--examples cannot be combined with another dataset option or --shard")
        path = build_from_examples_file(examples, out, embedder=embedder, overwrite=overwrite,
                                        approximate=approximate)
    else:
        from pica.datasets import dataset_identity, load_questions, read_captions
        from pica.datasets.scienceqa import check_captions, splits_file

        science_captions = captions if captions is not None and (
            scienceqa is not None or (hf_dataset is not None and captions.suffix == ".json")) else None
        given = dict(dataset=dataset, questions=questions, annotations=annotations, aokvqa=aokvqa,
                     hf_dataset=hf_dataset, scienceqa=scienceqa, scienceqa_captions=science_captions,
                     pid_splits=splits_file(scienceqa, pid_splits))
        qs = load_questions(**given, split=split, images_dir=images, skip_missing=skip_missing,
                            limit=limit)
        science = bool(qs) and qs[0].scoring == "scienceqa"
        if science:
            check_captions(qs, captioner is not None)
        caption_map = read_captions(captions) if captions is not None and not science else None
        sources = dataset_identity(**{k: v for k, v in given.items() if k != "scienceqa_captions"},
                                   captions=captions, images_dir=images, split=split if science else None)
        path = build_index(out, qs, captions=caption_map, captioner=captioner, embedder=embedder,
                           approximate=approximate, overwrite=overwrite, skip_missing=skip_missing,
                           batch_size=batch_size, workers=workers, device=settings.device,
                           dtype=settings.dtype, sources=sources, shard=part,
                           captioner_settings=settings)
    _print_info(path)


@index_app.command("merge")
@handle_errors
@output_options
def index_merge(
    out: Annotated[Path, typer.Argument(help="Index folder to create from the shards.")],
    shards: Annotated[list[Path], typer.Argument(help="Every shard folder of one --shard K/N build.")],
    overwrite: Annotated[bool, typer.Option(help="Replace an existing index folder.")] = False,
) -> None:
    """Join the shards of `pica index build --shard K/N` into the index a one-shot build makes."""
    from pica.retrieval.merge import merge_indexes
    from pica.retrieval.writer import check_replaceable

    check_replaceable(out, overwrite)  # before the shards load
    _print_info(merge_indexes(out, shards, overwrite=overwrite))


def _print_info(path: Path, as_json: bool = False) -> None:
    from pica.retrieval.index import read_manifest

    m = read_manifest(path)
    if as_json:
        typer.echo(json_text(_info_json(path, m)))
        return
    kinds = ", ".join(f"{k} ({v['dim']})" for k, v in m["kinds"].items())
    lines = [
        ("index", str(path)), ("examples", str(m["count"])), ("embedder", m["embedder"]),
        ("vectors", kinds), ("search", m.get("search", {}).get("type", "flat")),
        ("built", f"{m.get('created', '?')} in {m.get('build_seconds', '?')} s"),
        ("sources", ", ".join(f"{k}={v}" for k, v in m.get("sources", {}).items()
                              if k != "content") or "-"),
    ]
    for key, value in lines:
        typer.echo(f"{key:9} {value}")
    from pica.choice.candidates import SCORING
    from pica.choice.chooser import calibrate_command, list_choosers

    for file, chooser, error in list_choosers(path):
        if chooser is None:
            typer.echo(f"chooser   {file.name}: BROKEN: {error}")
            continue
        f, t = chooser.fitted_for, chooser.training
        typer.echo(f"chooser   {chooser.model} for {f.get('llm')}, template {f.get('template')},"
                   f" {f.get('shots')} shots, M={f.get('candidate_answers')}"
                   f" K={f.get('candidate_neighbours')}: {t.get('questions')} questions;"
                   f" held back {t.get('heldout_questions')}: greedy"
                   f" {t.get('heldout_greedy_accuracy')}% -> chooser {t.get('heldout_chooser_accuracy')}%"
                   f" ({file.name})")
        if f.get("candidate_scoring") != SCORING:  # a file from before issue 22
            typer.echo(f"          never used: fitted on {f.get('candidate_scoring')} candidate scores and"
                       f" pica scores {SCORING}; re-fit with `{calibrate_command(path, f)}`")
            continue
        typer.echo(f"          {_verdict_line(chooser)}")


def _info_json(path: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """``index info --json``: the manifest (file hashes left out) with the folder and its choosers."""
    from pica.choice.chooser import list_choosers

    choosers = [{"file": file.name, "error": error} if chooser is None else
                {"file": file.name, "model": chooser.model, "fitted_for": chooser.fitted_for,
                 "training": chooser.training, "verdict": chooser.verdict, "trusted": chooser.trusted}
                for file, chooser, error in list_choosers(path)]
    return {"path": str(path), **{k: v for k, v in manifest.items() if k != "files"}, "choosers": choosers}


def _verdict_line(chooser) -> str:
    """Whether ``--choose auto`` uses the chooser, and why (numbers)."""
    v = chooser.verdict
    use = ("trusted: the --choose auto default" if chooser.trusted
           else "not trusted: kept for --choose learned only")
    return f"{use}; {v.get('reason')}"


@index_app.command("info")
@handle_errors
@output_options
def index_info(path: Annotated[str, typer.Argument(
        metavar="PATH", help="Index folder or name under indexes/ ('starter' = the starter index).")],
               as_json: AsJson = False) -> None:
    """Show an index's size, embedder, vector dims, build time and sources."""
    from pica.retrieval.build import build_starter
    from pica.retrieval.store import resolve_index

    _print_info(resolve_index(path, build_starter), as_json)


@index_app.command("calibrate")
@handle_errors
@output_options
@setting_options(leave_out=("index",))
def index_calibrate(
    path: Annotated[str, typer.Argument(metavar="PATH", help="Index folder or name under indexes/.")],
    n: Annotated[int, typer.Option(
        help="Index examples to ask (leave-one-image-out).")] = DEFAULT_CALIBRATION_QUESTIONS,
    heldout: Annotated[float, typer.Option(help="Share of the sampled images held back to report"
                                                 " greedy vs chooser accuracy.")] = 0.25,
    calibration_seed: Annotated[int, typer.Option(help="Seed of the sample and the split.")] = 0,
    overwrite: Annotated[bool, typer.Option(help="Re-fit a chooser that exists.")] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    model: Annotated[ChooserModel, typer.Option(
        help="Chooser model: auto (cross-validate logistic and boosted trees, keep the better),"
             " logistic or trees.")] = ChooserModel.auto,
    *,
    options: dict[str, Any],
) -> None:
    """Fit the learned answer chooser on the index's own examples, for the LLM, template and shots
    in use; written to INDEX/choosers/."""
    from pica.choice.calibrate import calibrate
    from pica.pipeline import Pipeline
    from pica.retrieval.build import build_starter
    from pica.retrieval.store import resolve_index

    if n < 20 or not 0 < heldout < 1:
        raise InputError("--n must be at least 20 and --heldout between 0 and 1")
    options["index"] = str(resolve_index(path, build_starter))
    settings = settings_from(options)
    file, chooser = calibrate(Pipeline(settings), n=n, heldout=heldout, seed=calibration_seed,
                              overwrite=overwrite, progress=progress, model=model.value)
    t = chooser.training
    typer.echo(f"chooser  {file} ({chooser.model})")
    typer.echo(f"fitted   {t['questions']} questions in {t['seconds']} s"
               f" ({t['seconds_per_question']} s/question)")
    if "heldout_chooser_accuracy" in t:
        typer.echo(f"held back {t['heldout_questions']} questions: greedy {t['heldout_greedy_accuracy']}%,"
                   f" chooser {t['heldout_chooser_accuracy']}% (paired SE {t['heldout_difference_se']}),"
                   f" oracle {t['heldout_oracle_accuracy']}%")
    typer.echo(f"verdict  {_verdict_line(chooser)}")
    typer.echo(f"rule     {chooser.verdict.get('rule')}")


@index_app.command("list")
@handle_errors
@output_options
def index_list(root: Annotated[Path | None, typer.Option(
        help="Folder to list (default ./indexes or $PICA_INDEX_DIR).")] = None,
               as_json: AsJson = False) -> None:
    """List the indexes under indexes/, and the cached starter index (--index starter)."""
    from pica.config import index_root
    from pica.retrieval.store import MANIFEST, index_summary, list_indexes, starter_path

    rows = list_indexes(root)
    starter = starter_path()
    built = (starter / MANIFEST).is_file()
    if built:
        rows.append(index_summary(starter, "starter"))
    if as_json:
        missing = [] if built else [{"name": "starter", "path": str(starter), "count": None, "built": False}]
        typer.echo(json_text([*({**r, "built": True} for r in rows), *missing]))
        return
    if not rows or (built and len(rows) == 1):
        typer.echo(f"no indexes under {root or index_root()}; build one with `pica index build`")
    for r in rows:
        if r["error"]:
            typer.echo(f"{r['name']:24} BROKEN: {r['error']}")
        else:
            typer.echo(f"{r['name']:24} {r['count']:>8} examples  {r['embedder']}"
                       f"  [{r['kinds']}; {r['search']}]  {r['path']}")
    if not built:
        typer.echo(f"{'starter':24} not built yet; built into {starter} on first use (--index starter)")
