"""RunLock: one writer per run folder, a one-line refusal naming the holder, no stale locks."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pica.errors import RunInUseError
from pica.evaluation.runlock import LOCK_FILE, RunLock, in_use_message, read_holder

ROOT = Path(__file__).resolve().parents[1]

HOLD = """
import sys, time
from pica.evaluation.runlock import RunLock
lock = RunLock(sys.argv[1]).acquire()
print("held", flush=True)
time.sleep(600)
"""


def test_lock_file_names_the_holder_and_is_cleared_on_release(tmp_path):
    with RunLock(tmp_path) as lock:
        assert lock.held
        holder = json.loads((tmp_path / LOCK_FILE).read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
        assert holder["started"][:2] == "20"
    assert not lock.held
    assert (tmp_path / LOCK_FILE).read_text() == ""  # kept (never unlinked), but empty
    assert read_holder(tmp_path) is None


def test_second_lock_is_refused_with_one_line_naming_the_pid(tmp_path):
    with RunLock(tmp_path):
        with pytest.raises(RunInUseError) as info:
            RunLock(tmp_path).acquire()
        message = str(info.value)
        assert "\n" not in message and info.value.exit_code == 2
        assert f"run folder {tmp_path} is in use by pid {os.getpid()} on host {socket.gethostname()}" in message
        assert "(started 20" in message and message.endswith("wait for it or use another run folder")
    with RunLock(tmp_path, hint="try later"):  # released: free again
        pass


def test_message_without_readable_holder_details(tmp_path):
    assert in_use_message(tmp_path, None, "try later") == (
        f"run folder {tmp_path} is in use by another pica process; try later")


@pytest.mark.slow
def test_sigkilled_holder_releases_the_lock_at_once(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held", proc.stderr.read()
        with pytest.raises(RunInUseError, match=f"in use by pid {proc.pid} "):
            RunLock(tmp_path).acquire()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert read_holder(tmp_path)["pid"] == proc.pid  # the dead holder's details stay behind ...
    with RunLock(tmp_path):  # ... but the kernel dropped its lock: no waiting, no stale-lock cleanup
        assert read_holder(tmp_path)["pid"] == os.getpid()
