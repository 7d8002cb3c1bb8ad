"""Faults a long evaluation run meets, with real files, a real full tmpfs and real signals:
datasets identified by content, torn and corrupt result lines, checked writes on a full disk,
outputs on a full disk, SIGTERM. The ``pica eval`` subprocess cases are in test_evaluation.py."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from pica.datasets import dataset_identity, identity_key
from pica.errors import RunConfigError, StorageError
from pica.evaluation.outputs import write_outputs
from pica.evaluation.results import RESULTS_FILE, read_results
from pica.evaluation.runlock import RunLock, read_holder
from pica.evaluation.runner import open_run
from pica.util.fileio import GroupAppender, append_record, atomic_write_text


# -- a real tmpfs ------------------------------------------------------------------------------
@contextlib.contextmanager
def tmpfs(folder: Path, size: str = "1m"):
    """Mount a fresh tmpfs of ``size`` at ``folder`` (skips the test where mounting is refused)."""
    folder.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None:
        pytest.skip("no mount command: cannot make a small filesystem to fill")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path) -> Path:
    """Fill the filesystem of ``folder`` to the last byte with a filler file; return it."""
    filler = folder / f"filler-{uuid.uuid4().hex}"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for size in (1 << 16, 1 << 12, 1 << 8, 1):
            while True:
                try:
                    if os.write(fd, b"\0" * size) < size:
                        break
                except OSError as e:
                    assert e.errno == errno.ENOSPC
                    break
    finally:
        os.close(fd)
    return filler


def row(qid: str, score: float = 1.0) -> dict:
    return {"question_id": qid, "answer": "x", "score": score, "seconds": 0.1, "prompt_tokens": 10,
            "question": f"q{qid}?", "gold": {"x": 1.0}}


def line(qid: str, score: float = 1.0) -> bytes:
    return (json.dumps(row(qid, score)) + "\n").encode()


# -- 1. datasets are identified by content -----------------------------------------------------
def config_for(path: Path, **extra) -> dict:
    return {"settings": {"shots": 4}, "dataset": dataset_identity(dataset=path, **extra)}


def claim(out):
    """A result in the run folder: only then does it hold a run that others are compared with."""
    (out / "results.jsonl").write_text('{"question_id": "1"}\n')


def test_a_folder_without_results_takes_any_configuration(tmp_path):
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    one.write_text('[{"sent": "a?", "question_id": 1, "img_id": "1"}]')
    two.write_text('[{"sent": "b?", "question_id": 2, "img_id": "2"}]')
    out = tmp_path / "run"
    open_run(out, config_for(one), force_new=False)
    (out / "results.jsonl").write_text("")  # an empty file is no result either
    open_run(out, config_for(two), force_new=False)
    assert json.loads((out / "run.json").read_text())["config"] == config_for(two)
    (out / "run.json").write_text("{not json")  # nor is a run.json no result depends on
    open_run(out, config_for(one), force_new=False)
    assert json.loads((out / "run.json").read_text())["config"] == config_for(one)


def test_same_file_under_another_path_resumes_and_other_content_is_refused(tmp_path):
    data = json.dumps([{"sent": "What is it?", "question_id": 1, "img_id": "1", "label": {"a": 1}}])
    (tmp_path / "a").mkdir()
    first, copy = tmp_path / "q.json", tmp_path / "a" / "q.json"
    first.write_text(data)
    copy.write_text(data)
    assert identity_key(dataset_identity(dataset=first)) == identity_key(dataset_identity(dataset=copy))
    out = tmp_path / "run"
    open_run(out, config_for(first), force_new=False)
    claim(out)
    open_run(out, config_for(copy), force_new=False)  # same content by another path: resumes
    # Another file under the first path: refused, naming both paths and both digests.
    first.write_text(data.replace("What is it?", "What is that?"))
    with pytest.raises(RunConfigError) as refused:
        open_run(out, config_for(first), force_new=False)
    message = str(refused.value)
    old_digest = dataset_identity(dataset=copy)["content"]["dataset"].split(":")[1][:12]
    new_digest = dataset_identity(dataset=first)["content"]["dataset"].split(":")[1][:12]
    assert "another dataset" in message and old_digest in message and new_digest in message
    assert message.count(str(first)) == 2 and "--force-new" in message
    assert "different configuration" not in message


def test_path_settings_spelled_another_way_resume_and_other_files_are_refused(tmp_path, monkeypatch):
    # A run started with relative paths resumes with absolute ones (or through a symlink) naming
    # the same captions file and index folder; another file is still another configuration.
    monkeypatch.chdir(tmp_path)
    data = json.dumps([{"sent": "What is it?", "question_id": 1, "img_id": "1", "label": {"a": 1}}])
    (tmp_path / "q.json").write_text(data)
    (tmp_path / "caps.tsv").write_text("1\ta dog\n")
    (tmp_path / "other.tsv").write_text("1\ta dog\n")
    (tmp_path / "idx").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "idx")

    def config(captioner: str, index: str) -> dict:
        return {"settings": {"shots": 4, "captioner": captioner, "index": index},
                "dataset": dataset_identity(dataset=tmp_path / "q.json")}

    out = tmp_path / "run"
    open_run(out, config("caps.tsv", "idx"), force_new=False)
    claim(out)
    open_run(out, config(str(tmp_path / "caps.tsv"), str(tmp_path / "link")), force_new=False)
    with pytest.raises(RunConfigError, match="settings.captioner: 'caps.tsv' -> 'other.tsv'"):
        open_run(out, config("other.tsv", "idx"), force_new=False)
    with pytest.raises(RunConfigError, match="settings.index: 'idx' -> 'missing'"):
        open_run(out, config("caps.tsv", "missing"), force_new=False)
    # From another working directory the relative path names nothing, but the dataset's captions
    # file is identified by its digest: the same content under another path resumes.
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "copy.tsv").write_text("1\ta dog\n")
    (tmp_path / "elsewhere" / "changed.tsv").write_text("1\ta cat\n")

    def captioned(captions: str) -> dict:
        return {"settings": {"shots": 4, "captioner": captions},
                "dataset": dataset_identity(dataset=tmp_path / "q.json", captions=captions)}

    out = tmp_path / "run2"
    open_run(out, captioned("caps.tsv"), force_new=False)
    claim(out)
    monkeypatch.chdir(tmp_path / "elsewhere")  # where caps.tsv names nothing
    open_run(out, captioned("copy.tsv"), force_new=False)
    with pytest.raises(RunConfigError, match="another dataset"):
        open_run(out, captioned("changed.tsv"), force_new=False)


def test_run_file_is_written_once_and_only_when_it_changes(tmp_path, monkeypatch):
    import pica.evaluation.runner as runner

    (tmp_path / "q.json").write_text("[]")
    config = {"settings": {"shots": 4}, "dataset": dataset_identity(dataset=tmp_path / "q.json")}
    writes = []
    real = runner.atomic_write_text
    monkeypatch.setattr(runner, "atomic_write_text", lambda path, text: (writes.append(path), real(path, text)))
    out = tmp_path / "run"
    open_run(out, config, force_new=False, choice={"method": "logprob"})
    first = json.loads((out / "run.json").read_text())
    assert len(writes) == 1 and first["choice"] == {"method": "logprob"} and first["config"] == config
    open_run(out, config, force_new=False, choice={"method": "logprob"})  # a resume: nothing changes
    assert len(writes) == 1
    open_run(out, config, force_new=False, choice={"method": "logprob", "note": "x"})
    second = json.loads((out / "run.json").read_text())
    assert len(writes) == 2 and second["choice"]["note"] == "x"
    assert (second["created"], second["pica_version"]) == (first["created"], first["pica_version"])


def test_two_datasets_into_one_run_folder_are_refused(tmp_path):
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    one.write_text('[{"sent": "a?", "question_id": 1, "img_id": "1"}]')
    two.write_text('[{"sent": "b?", "question_id": 2, "img_id": "2"}]')
    out = tmp_path / "run"
    open_run(out, config_for(one), force_new=False)
    claim(out)
    with pytest.raises(RunConfigError, match=f"{one} \\(sha256 .*{two} \\(sha256 "):
        open_run(out, config_for(two), force_new=False)


def test_an_old_run_folder_without_digests_resumes_by_path_and_records_them(tmp_path):
    q = tmp_path / "q.json"
    q.write_text('[{"sent": "a?", "question_id": 1, "img_id": "1"}]')
    out = tmp_path / "run"
    out.mkdir()
    legacy = {"settings": {"shots": 4}, "dataset": {"dataset": str(q)}}
    (out / "run.json").write_text(json.dumps({"config": legacy}))
    claim(out)
    open_run(out, config_for(q), force_new=False)
    recorded = json.loads((out / "run.json").read_text())["config"]["dataset"]
    assert recorded["content"]["dataset"].startswith("sha256:")
    q.write_text('[{"sent": "b?", "question_id": 1, "img_id": "1"}]')  # now the digest decides
    with pytest.raises(RunConfigError, match="another dataset"):
        open_run(out, config_for(q), force_new=False)


def test_folders_are_identified_by_names_and_sizes(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    (images / "1.jpg").write_bytes(b"x" * 10)
    before = dataset_identity(aokvqa=tmp_path / "missing.json", images_dir=images)
    assert before["content"]["images"].startswith("tree:") and "aokvqa" not in before["content"]
    (images / "2.jpg").write_bytes(b"y")
    assert identity_key(dataset_identity(images_dir=images)) != identity_key(before)
    hub = dataset_identity(hf_dataset="org/name", split="val")
    assert identity_key(hub) == {"hf_dataset": "org/name", "split": "val"}


# -- 2. torn and corrupt lines -----------------------------------------------------------------
def test_bad_lines_are_reported_moved_aside_and_good_rows_after_them_kept(tmp_path, capsys):
    path = tmp_path / RESULTS_FILE
    bad = [b"{}\n", b"null\n", b'{"question_id": "9"}\n', b'{"question_id": "8", "sco\n',
           b'[1, 2]\n', b'{"question_id": "7", "score": "1"}\n']
    path.write_bytes(line("1") + bad[0] + line("2") + bad[1] + bad[2] + line("3") + bad[3]
                     + bad[4] + bad[5] + line("4") + b'{"question_id": "5", "sc')  # torn last line
    rows = read_results(path, repair=True)
    assert [r["question_id"] for r in rows] == ["1", "2", "3", "4"]
    assert path.read_bytes() == line("1") + line("2") + line("3") + line("4")
    err = capsys.readouterr().err
    for number in (2, 4, 5, 7, 8, 9, 11):
        assert f"{path}:{number}: " in err
    assert "torn last line" in err and "not valid JSON" in err and "no score" in err
    assert "score is not a number or null" in err
    sidecars = list(tmp_path.glob(f"{RESULTS_FILE}.bad-*"))
    assert len(sidecars) == 1
    assert sidecars[0].read_bytes() == b"".join(bad) + b'{"question_id": "5", "sc\n'
    assert read_results(path, repair=True) == rows and not capsys.readouterr().err  # clean now


def test_reading_without_repair_skips_bad_lines_and_changes_nothing(tmp_path, capsys):
    path = tmp_path / RESULTS_FILE
    path.write_bytes(line("1") + b"{}\n" + line("2"))
    assert [r["question_id"] for r in read_results(path)] == ["1", "2"]
    assert path.read_bytes() == line("1") + b"{}\n" + line("2")
    assert f"{path}:2: no question_id; skipped" in capsys.readouterr().err


# -- 3. checked writes -------------------------------------------------------------------------
def test_a_short_then_failing_write_is_rolled_back_to_the_last_complete_line(tmp_path, monkeypatch):
    path = tmp_path / RESULTS_FILE
    path.write_bytes(line("1"))
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    real_write, calls = os.write, []

    def short_then_full(f, data):
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(f, data[:7])  # a short write: 7 bytes land
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", short_then_full)
    try:
        with pytest.raises(StorageError, match=f"cannot write {path}: No space left on device"):
            append_record(fd, line("2"), path)
    finally:
        monkeypatch.undo()
        os.close(fd)
    assert calls[1] == len(line("2")) - 7  # the rest was retried, not dropped
    assert path.read_bytes() == line("1")


def test_full_tmpfs_append_and_atomic_writes_leave_no_fragment_and_no_temp_file(tmp_path):
    with tmpfs(tmp_path / "disk", "64k") as disk:
        path = disk / RESULTS_FILE
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            append_record(fd, line("1"), path)
            filler = fill(disk)
            big = (json.dumps({**row("2"), "prompt": "p" * 20000}) + "\n").encode()
            with pytest.raises(StorageError, match=f"cannot write {path}: No space left"):
                append_record(fd, big, path)
            assert path.read_bytes() == line("1")
            with pytest.raises(StorageError, match=f"cannot write {disk / 'summary.json'}: No space"):
                atomic_write_text(disk / "summary.json", "x" * 20000)
            assert sorted(p.name for p in disk.iterdir()) == sorted([RESULTS_FILE, filler.name])
            filler.unlink()  # space is back: the same calls now work
            append_record(fd, big, path)
            assert [r["question_id"] for r in read_results(path)] == ["1", "2"]
        finally:
            os.close(fd)


def test_rows_written_together_share_one_fsync_and_close_makes_the_rest_durable(tmp_path, monkeypatch):
    path = tmp_path / RESULTS_FILE
    real_fsync, synced = os.fsync, []
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.fstat(fd).st_size), real_fsync(fd)))
    results = GroupAppender(path, window=60.0)  # no group is due during the test: close syncs
    try:
        for qid in "123":
            results.append(line(qid))
            assert path.read_bytes().endswith(line(qid))  # in the file (a SIGKILL keeps it) at once
        assert synced == []
    finally:
        results.close()
    assert synced == [len(line("1")) * 3]  # one fsync for the three rows
    fast = GroupAppender(path, window=0.01)  # a group closes 10 ms after its first row
    try:
        fast.append(line("4"))
        for _ in range(500):
            if len(synced) == 2:
                break
            time.sleep(0.01)
        assert synced[1] == path.stat().st_size  # the flusher thread made it durable
    finally:
        fast.close()
    assert len(synced) == 2  # nothing left to sync at close


def test_a_failed_group_fsync_rolls_back_to_the_last_durable_row_and_raises(tmp_path, monkeypatch):
    path = tmp_path / RESULTS_FILE
    results = GroupAppender(path, window=60.0)
    results.append(line("1"))
    results.close()  # row 1 durable
    results = GroupAppender(path, window=60.0)
    results.append(line("2"))
    results.append(line("3"))

    def failing(fd):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing)
    with pytest.raises(StorageError, match=f"cannot write {path}: Input/output error"):
        results.close()
    monkeypatch.undo()
    assert path.read_bytes() == line("1")  # rows 2 and 3 are redone on resume, never counted twice


def test_a_row_appended_before_sigkill_is_kept_whole(tmp_path):
    path = tmp_path / RESULTS_FILE
    code = ("import os, signal, sys; from pica.util.fileio import GroupAppender; "
            "r = GroupAppender(sys.argv[1], window=60.0); "
            "[r.append(b'{\"question_id\": \"%d\", \"score\": 1}\\n' % i) for i in range(50)]; "
            "os.kill(os.getpid(), signal.SIGKILL)")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert [r["question_id"] for r in read_results(path)] == [str(i) for i in range(50)]


def test_outputs_on_a_full_disk_fail_naming_the_path_then_succeed_once_space_is_back(tmp_path):
    with tmpfs(tmp_path / "disk", "256k") as disk:
        out = disk / "run"
        out.mkdir()
        (out / "run.json").write_text(json.dumps({"config": {"settings": {}, "dataset": {}}}))
        (out / RESULTS_FILE).write_bytes(b"".join(line(str(i), i % 2) for i in range(40)))
        before = {p.name: p.read_bytes() for p in out.iterdir()}
        filler = fill(disk)
        with pytest.raises(StorageError, match=f"cannot write {out}/.*: No space left on device"):
            write_outputs(out)
        after = {p.name: p.read_bytes() for p in out.iterdir()}
        assert {k: v for k, v in after.items() if k != ".lock"} == {k: v for k, v in before.items()}
        assert not [p for p in out.iterdir() if ".tmp" in p.name]
        assert read_holder(out) is None  # the lock was released
        filler.unlink()
        summary = write_outputs(out)
        assert summary["n"] == 40 and (out / "results.parquet").is_file()
        assert not [p for p in out.iterdir() if ".tmp" in p.name]


# -- 4. SIGTERM --------------------------------------------------------------------------------
SIGTERM_CHILD = """
import time
import typer
from pica.cli.options import handle_errors
from pica.evaluation.runlock import RunLock

@handle_errors
def job(folder: str):
    with RunLock(folder):
        print("locked", flush=True)
        time.sleep(60)

typer.run(job)
"""


def test_sigterm_unwinds_like_sigint_releases_the_lock_and_exits_143(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", SIGTERM_CHILD, str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        assert read_holder(tmp_path)["pid"] == proc.pid
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143
    assert err.strip() == "error: terminated (SIGTERM)"
    assert read_holder(tmp_path) is None  # holder details cleared: released, not just dead
    with RunLock(tmp_path):
        pass


def test_an_interrupt_after_the_record_is_written_keeps_it(tmp_path, monkeypatch):
    path = tmp_path / RESULTS_FILE
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def interrupted_fsync(f):
        raise KeyboardInterrupt  # what SIGTERM's handler raises when it runs during fsync

    monkeypatch.setattr(os, "fsync", interrupted_fsync)
    try:
        with pytest.raises(KeyboardInterrupt):
            append_record(fd, line("1"), path)
    finally:
        monkeypatch.undo()
        os.close(fd)
    assert path.read_bytes() == line("1")  # finished work is never taken back


def test_a_row_without_gold_has_a_null_score_and_is_a_good_line(tmp_path, capsys):
    """Where runs without annotations (score null) meet the bad-line check: kept, not moved."""
    path = tmp_path / RESULTS_FILE
    path.write_bytes(line("1") + b'{"question_id": "2", "score": null}\n')
    rows = read_results(path, repair=True)
    assert [r["question_id"] for r in rows] == ["1", "2"] and rows[1]["score"] is None
    assert capsys.readouterr().err == ""
    assert not list(tmp_path.glob(f"{RESULTS_FILE}.bad-*"))
