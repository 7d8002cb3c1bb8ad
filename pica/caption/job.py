"""``pica caption``: caption a folder of images, or the images (or questions) of a dataset, into a
captions file that ``--captions`` reads back.

The file is JSONL: a first line marking it as pica's, ``{"pica_captions": 1, "captioners":
[{"model", "max_side", "question_aware", ...}]}`` (what made it; readers skip it), then one
``{"image_id", "caption"}`` object per line, plus ``"question_id"`` for question-aware captions (one
per question). Lines are appended whole (all or nothing, :func:`pica.util.fileio.append_record`)
and fsync'd as soon as their captions arrive, so a job killed at any moment, or stopped by a full
disk, keeps everything finished; a re-run skips every key already in the file. Only a file with the
mark is ever appended to or repaired (a torn last line, from an older pica, is dropped and redone);
a re-run with another captioner is refused unless ``mix`` is given. A job that writes nothing
leaves no file. Captioners that take parallel requests (``openai:MODEL``) get ``concurrency``
requests in flight; the others get batches of ``batch_size`` while loader threads decode the
next ones.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pica.caption.base import Captioner
from pica.datasets.captions import CAPTIONS_MARK, ERROR_KEY
from pica.errors import InputError
from pica.types import Question, normalize_image_id
from pica.util.fileio import append_record, atomic_write_text, storage_error
from pica.util.loading import prefetch_map
from pica.util.progress import progress_bar


@dataclass(frozen=True)
class CaptionTask:
    """One caption to make: ``key`` is the image id, or the question id when question-aware."""

    key: str
    question: Question


def folder_tasks(images_dir: str | Path) -> list[CaptionTask]:
    """One task per image file in ``images_dir`` (image id = normalized file stem), sorted by id.

    Raises:
        InputError: the folder is missing or holds no images.
    """
    from pica.datasets.images import scan_images

    files = scan_images(images_dir, strict=True)
    if not files:
        raise InputError(f"no image files in {images_dir}; check --images")
    return [CaptionTask(i, Question(id=i, question="", image_id=i, image_path=files[i]))
            for i in sorted(files)]


def dataset_tasks(questions: Sequence[Question], question_aware: bool) -> list[CaptionTask]:
    """Tasks for a dataset's questions (images attached): one per distinct image, or one per
    question when ``question_aware``; sorted by key."""
    tasks: dict[str, CaptionTask] = {}
    for q in questions:
        key = str(q.id) if question_aware else normalize_image_id(q.image_id or q.id)
        tasks.setdefault(key, CaptionTask(key, q))
    return [tasks[k] for k in sorted(tasks)]


def captioner_record(settings) -> dict[str, Any]:
    """What makes the captions of ``settings`` (a :class:`pica.config.Settings`): the captioner,
    the image side sent to a vision-language one, question-aware mode and its prompt. Recorded in
    the captions file's mark; a re-run with another record is refused unless told."""
    record: dict[str, Any] = {"model": settings.captioner, "question_aware": settings.question_aware}
    if settings.captioner.startswith(("openai:", "gguf:")):
        record["max_side"] = settings.caption_max_side
    if settings.question_aware:
        record["prompt"] = settings.caption_prompt
    return record


def _header(captioners: list[dict[str, Any]]) -> str:
    return json.dumps({CAPTIONS_MARK: 1, "captioners": captioners}, ensure_ascii=False) + "\n"


def read_mark(out: Path) -> tuple[dict[str, Any] | None, bytes]:
    """The mark (first line) of ``out`` and the file's bytes; ``(None, b"")`` for a missing or
    empty file.

    Raises:
        InputError: ``out`` is a folder, or a file that ``pica caption`` did not write.
    """
    if out.is_dir():
        raise InputError(f"{out} is a folder; give the captions file to write, e.g. {out / 'captions.jsonl'}")
    if not out.exists():
        return None, b""
    try:
        data = out.read_bytes()
    except OSError as e:
        raise InputError(f"cannot read {out}: {e.strerror or e}") from e
    if not data:
        return None, b""
    first = data.split(b"\n", 1)[0]
    try:
        mark = json.loads(first)
    except ValueError:
        mark = None
    if not isinstance(mark, dict) or mark.get(CAPTIONS_MARK) != 1 or b"\n" not in data:
        raise InputError(f"{out} is not a captions file written by pica caption (it has no"
                         " pica_captions mark); it is left as it is: write to another file")
    return mark, data


def finished_keys(out: Path, question_aware: bool) -> set[str]:
    """Keys already captioned in ``out`` (a file with the mark); a torn last line is cut off.

    Raises:
        InputError: a file pica did not write, a line that is not a caption object, or a file of
            the other mode.
    """
    mark, data = read_mark(out)
    if mark is None:
        return set()
    if not data.endswith(b"\n"):
        keep = data.rfind(b"\n") + 1
        os.truncate(out, keep)
        data = data[:keep]
        print(f"note: {out}: dropped a torn last line (an interrupted write); it is redone",
              file=sys.stderr)
    done: set[str] = set()
    for number, line in enumerate(data.decode("utf-8", "replace").splitlines()[1:], 2):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            caption, image_id = row["caption"], row["image_id"]
        except (ValueError, KeyError, TypeError):
            raise InputError(f"{out} line {number} is not a caption object {{image_id, caption}};"
                             " is it a captions file written by pica caption?") from None
        has_question = row.get("question_id") not in (None, "")
        if has_question != question_aware:
            kind = "question-aware" if has_question else "plain"
            raise InputError(f"{out} holds {kind} captions; write"
                             f" {'plain' if has_question else 'question-aware'} ones to another file")
        if caption and ERROR_KEY not in row:
            done.add(str(row["question_id"]) if question_aware else normalize_image_id(image_id))
    return done


def _check_captioner(out: Path, mark: dict[str, Any] | None, record: dict[str, Any] | None,
                     mix: bool) -> list[dict[str, Any]]:
    """The captioners the file's mark will list; refuses another captioner unless ``mix``."""
    if record is None:
        return list((mark or {}).get("captioners") or [])
    if mark is None:
        return [record]
    known = list(mark.get("captioners") or [])
    if record in known:
        return known
    if not mix:
        then = known[-1] if known else {}
        differs = sorted(k for k in set(then) | set(record) if then.get(k) != record.get(k))
        shown = "; ".join(f"{k}: {then.get(k)!r} there, {record.get(k)!r} now" for k in differs)
        raise InputError(f"{out} holds captions of another captioner ({shown}); write to another"
                         " file, or pass --mix-captioners to add these to it")
    return [*known, record]


def run_caption_job(tasks: Sequence[CaptionTask], captioner: Captioner, out: str | Path, *,
                    question_aware: bool = False, concurrency: int = 1, batch_size: int = 8,
                    workers: int = 2, progress: bool = True, record: dict[str, Any] | None = None,
                    mix: bool = False, skip_bad: bool = False) -> tuple[int, int, int]:
    """Caption every task not yet in ``out``, appending one fsync'd JSONL line per caption.

    Args:
        tasks: What to caption (:func:`folder_tasks`, :func:`dataset_tasks`, a shard of them).
        captioner: Any captioner; a vision-language one (``caption_one``) gets ``concurrency``
            requests in flight (at most its own ``parallel``), the others batches of ``batch_size``.
        out: The captions file (created, or resumed when it carries pica's mark).
        question_aware: Write ``question_id`` on each line (tasks keyed by question id).
        concurrency: Requests in flight for parallel captioners.
        batch_size: Images per ``caption`` call for the others.
        workers: Loader threads decoding images ahead of a batching captioner.
        progress: Show a progress bar with ETA on stderr.
        record: What makes the captions (:func:`captioner_record`), kept in the file's mark and
            compared on resume (``None``: not checked).
        mix: Resume a file made by another captioner, adding ``record`` to its mark.
        skip_bad: Record an image that cannot be read as an error row and go on (else stop).

    Returns:
        ``(already_done, written, unreadable)``.

    Raises:
        InputError: a bad image (without ``skip_bad``), a file pica did not write, another
            captioner. StorageError: a line could not be written (the file ends with the last
            complete line). BackendError: the captioner failed; every caption finished before the
            failure is in the file.
    """
    out = Path(out)
    if concurrency < 1 or batch_size < 1 or workers < 0:
        raise InputError("--concurrency and --batch-size must be at least 1")
    mark, _ = read_mark(out)
    captioners = _check_captioner(out, mark, record, mix)
    done = finished_keys(out, question_aware)
    todo = [t for t in tasks if t.key not in done]
    if not todo:
        return len(tasks), 0, 0
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise storage_error(out, e) from e
    if mark is not None and captioners != mark.get("captioners"):
        text = out.read_text(encoding="utf-8")
        atomic_write_text(out, _header(captioners) + text.split("\n", 1)[1])
    state = {"fd": None, "bad": 0}
    with progress_bar(total=len(tasks), desc="captioning", unit="img", enabled=progress,
                      initial=len(tasks) - len(todo)) as bar:

        def write(results: Sequence[tuple[CaptionTask, str | InputError]]) -> None:
            """Append finished captions as one all-or-nothing record (one fsync)."""
            lines = []
            for task, caption in results:
                q = task.question
                row: dict[str, Any] = {"image_id": normalize_image_id(q.image_id or q.id),
                                       "caption": "" if isinstance(caption, Exception) else caption}
                if question_aware:
                    row = {"question_id": str(q.id), **row, "question": q.question}
                if isinstance(caption, Exception):
                    row[ERROR_KEY] = str(caption)
                    state["bad"] += 1
                lines.append(json.dumps(row, ensure_ascii=False) + "\n")
            if state["fd"] is None:  # the file is made with its first captions, never empty
                fresh = not out.exists() or out.stat().st_size == 0
                try:
                    state["fd"] = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                except OSError as e:
                    raise storage_error(out, e) from e
                if fresh:
                    lines.insert(0, _header(captioners))
            append_record(state["fd"], "".join(lines).encode("utf-8"), out)
            bar.update(len(results))

        try:
            if hasattr(captioner, "caption_one"):  # one image per request: each written as it arrives
                _in_flight(todo, captioner, min(concurrency, getattr(captioner, "parallel", 1)),
                           write, skip_bad)
            else:
                _batched(todo, captioner, batch_size, workers, write, skip_bad)
        finally:
            if state["fd"] is not None:
                os.close(state["fd"])
    return len(tasks) - len(todo), len(todo) - state["bad"], state["bad"]


def _attempt(fn, task: CaptionTask, skip_bad: bool):
    """``fn(task.question)``; with ``skip_bad`` an unreadable image gives its ``InputError``."""
    try:
        return fn(task.question)
    except InputError as e:
        if not skip_bad:
            raise InputError(f"{e} (pass --skip-bad to record such images and go on)") from None
        return e


def _in_flight(todo: Sequence[CaptionTask], captioner, concurrency: int, write,
               skip_bad: bool) -> None:
    """Keep ``concurrency`` single-image requests going; write the captions as they arrive (those
    finishing together share one fsync). On a failure nothing new starts, the requests in flight
    finish and are written, then it raises. On an interrupt (Ctrl-C, SIGTERM) nothing more is
    waited for: requests in flight are abandoned (their threads end with the process)."""
    one = captioner.caption_one
    pending: dict[Future, CaptionTask] = {}
    queue = iter(todo)
    error: BaseException | None = None
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="pica-caption-job")
    try:
        def refill() -> None:
            while len(pending) < concurrency and (task := next(queue, None)) is not None:
                pending[pool.submit(_attempt, one, task, skip_bad)] = task

        while True:
            if error is None:
                refill()
            if not pending:
                break
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            results = []
            for future in finished:
                task = pending.pop(future)
                try:
                    results.append((task, future.result()))
                except Exception as e:  # noqa: BLE001 - re-raised once the others are in
                    error = error or e
            if error is None:
                refill()  # before writing, so the fsync never holds a slot empty
            if results:
                write(results)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    if error is not None:
        raise error


def _batched(todo: Sequence[CaptionTask], captioner: Captioner, batch_size: int, workers: int,
             write, skip_bad: bool) -> None:
    """Batches through ``captioner.caption``, loader threads decoding the next batches ahead."""
    batches = [todo[i:i + batch_size] for i in range(0, len(todo), batch_size)]

    def load(task: CaptionTask):
        if not captioner.reads_pixels:
            return None
        return _attempt(lambda q: captioner.preprocess(q.load_image()), task, skip_bad)

    for batch, images in prefetch_map(load, batches, workers):
        good = [(t, image) for t, image in zip(batch, images, strict=True)
                if not isinstance(image, InputError)]
        texts = captioner.caption([t.question for t, _ in good],
                                  images=[image for _, image in good]) if good else []
        captions = iter(texts)
        write([(t, image if isinstance(image, InputError) else next(captions))
               for t, image in zip(batch, images, strict=True)])
