"""pica's own thread pools are bounded: the CPU budget, the cgroup quota, threadpoolctl."""

import json
import os
import subprocess
import sys

from pica.util import threads


def test_the_budget_is_threads_when_given_else_the_cores_the_process_may_use():
    assert threads.cpu_budget(3) == 3
    assert 1 <= threads.cpu_budget() <= len(os.sched_getaffinity(0))


def test_cgroup_quota_is_read_from_v2_and_v1_files(tmp_path):
    assert threads.cgroup_cpus(tmp_path) is None  # no cgroup files
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert threads.cgroup_cpus(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert threads.cgroup_cpus(tmp_path) is None
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("200000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert threads.cgroup_cpus(tmp_path) == 2.0
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert threads.cgroup_cpus(tmp_path) is None


def test_per_question_work_uses_one_thread_unless_an_api_run_asks_for_more():
    assert threads.per_question_threads(None, local_model=True) == 1
    assert threads.per_question_threads(4, local_model=True) == 1  # llama.cpp's threads, not pica's
    assert threads.per_question_threads(None, local_model=False) == 1
    assert threads.per_question_threads(3, local_model=False) == 3


def test_bound_threads_caps_numpys_blas_and_libraries_loaded_later():
    code = ("import json, os, numpy; from threadpoolctl import threadpool_info; "
            "from pica.util.threads import bound_threads, bound; bound_threads(1); "
            "print(json.dumps([bound(), os.environ['OMP_NUM_THREADS'],"
            " [p['num_threads'] for p in threadpool_info() if p['user_api'] == 'blas']]))")
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    n, omp, blas = json.loads(out.stdout)
    assert n == 1 and omp == "1" and blas and set(blas) == {1}
