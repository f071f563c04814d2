"""`grade --scheduler-file` on a running Dask cluster, and what happens when parts of it fail.

The cluster runs on this machine: a `dask scheduler` and `dask worker` processes, each worker a
separate "node" with its own HOME, TMPDIR and --local-directory, all on 127.0.0.1. Every wait is
bounded. The class is small (notebook 01 only) to keep the suite short:

  amy, bob, eve  the solution of notebook 01
  cat            notebook 01 with collapse_linear broken (wrong values)
  dan            notebook 01 not JSON (graded without a kernel)

- a clean run on two good nodes gives the expected CSVs, graded by both; a third node, whose
  bubblewrap cannot make namespaces, is named in one line and gets no work;
- kill -9 the driver mid-run: the same command grades only the students not yet finished, and
  the CSVs equal the clean run's;
- a node that joins mid-run is checked and then gets work; SIGKILLed mid-task, its task runs
  again on the other node; every student is recorded exactly once, with the CSVs of the clean run;
- with no usable worker at all, `grade` exits 2 with one line. (The default local cluster shares the
  driver's machine, so there the driver checks bubblewrap itself first: tests/test_sandbox.py.)
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from _small_class import build_small_class
from conftest import REPO, SOLUTION_NOTEBOOKS

from autograder.pipeline.tasks import kill_processes_with_env

pytestmark = pytest.mark.skipif(not SOLUTION_NOTEBOOKS, reason="no solution notebooks yet")

NOTEBOOK = SOLUTION_NOTEBOOKS[0] if SOLUTION_NOTEBOOKS else None
DASK = [sys.executable, "-m", "dask"]
START_S = 90  # a scheduler or worker must be up within this
GRADE_S = 900
FAKE_BWRAP = """#!/bin/sh
echo "bwrap: No permissions to create new namespace, likely because the kernel does not \
allow non-privileged user namespaces." >&2
exit 1
"""
def build_class(root: Path) -> None:
    build_small_class(root, NOTEBOOK, correct=("amy", "bob", "eve"))


class Cluster:
    """A scheduler and named worker nodes on 127.0.0.1, each node with its own folders."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.scheduler_file = root / "scheduler.json"
        self.procs: list[subprocess.Popen] = []
        self.nodes: dict[str, dict] = {}
        self.scheduler = self._start(
            [*DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
             "--scheduler-file", str(self.scheduler_file)], dict(os.environ), root / "scheduler.log")
        deadline = time.monotonic() + START_S
        while not self.scheduler_file.is_file():
            assert time.monotonic() < deadline, self._log("scheduler")
            assert self.scheduler.poll() is None, self._log("scheduler")
            time.sleep(0.2)

    def _start(self, cmd, env, log: Path) -> subprocess.Popen:
        with open(log, "w") as out:
            proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True, cwd=self.root)
        self.procs.append(proc)
        return proc

    def _log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text()[-3000:]

    def add_node(self, name: str, *, broken_bwrap: bool = False) -> None:
        home = self.root / name / "home"
        local = self.root / name / "local"
        home.mkdir(parents=True)
        local.mkdir()
        tmp = tempfile.mkdtemp(prefix=f"node-{name}-")  # short: kernels' IPC sockets live there
        env = {**os.environ, "HOME": str(home), "TMPDIR": tmp}
        if broken_bwrap:
            fake = self.root / name / "bin"
            fake.mkdir()
            (fake / "bwrap").write_text(FAKE_BWRAP)
            (fake / "bwrap").chmod(0o755)
            env["PATH"] = f"{fake}:{env['PATH']}"
        proc = self._start(
            [*DASK, "worker", "--scheduler-file", str(self.scheduler_file), "--name", name,
             "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard", "--no-nanny",
             "--local-directory", str(local)], env, self.root / f"{name}.log")
        self.nodes[name] = {"proc": proc, "tmp": Path(tmp)}

    def wait_for_workers(self, count: int) -> dict[str, str]:
        """name -> address of the connected workers, once `count` are connected."""
        from distributed import Client

        with Client(scheduler_file=str(self.scheduler_file), timeout=START_S) as client:
            client.wait_for_workers(count, timeout=START_S)
            info = client.scheduler_info(n_workers=-1)["workers"]
        return {w["name"]: addr for addr, w in info.items()}

    def kill_node(self, name: str) -> None:
        os.killpg(self.nodes[name]["proc"].pid, signal.SIGKILL)
        self.nodes[name]["proc"].wait(timeout=30)

    def close(self) -> None:
        # SIGKILL at once: a graceful shutdown is not under test, and a worker in the middle of
        # a task takes its time over SIGTERM.
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
        for proc in self.procs:
            proc.wait(timeout=30)
        for node in self.nodes.values():
            kill_processes_with_env(f"TMPDIR={node['tmp']}")
            shutil.rmtree(node["tmp"], ignore_errors=True)


@pytest.fixture
def cluster(tmp_path):
    made = Cluster(tmp_path / "cluster")
    yield made
    made.close()


@pytest.fixture(scope="module")
def subs(tmp_path_factory):
    root = tmp_path_factory.mktemp("dask-class") / "subs"
    build_class(root)
    return root


def grade_args(subs: Path, out: Path, cluster: Cluster) -> list[str]:
    return [sys.executable, "-m", "autograder", "grade", str(subs), "--out", str(out),
            "--course-dir", str(course_dir(out)),
            "--scheduler-file", str(cluster.scheduler_file), "--timeout", "300", "--no-progress"]


def course_dir(out: Path) -> Path:
    """The nbgrader course directory of the run writing OUT (its gradebook, autograded/)."""
    return out.with_name(f"{out.name}-course")


def run_grade(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=GRADE_S, cwd=REPO)


def graded_log(out: Path) -> list[dict]:
    path = out / ".state" / "graded.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def csvs(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in ("grades.csv", "exercises.csv", "flags.csv")}


@pytest.fixture(scope="module")
def clean(subs, tmp_path_factory):
    """A clean run on two good nodes (and one whose bubblewrap cannot make namespaces): the CSVs
    every faulty run must reproduce."""
    root = tmp_path_factory.mktemp("dask-clean")
    made = Cluster(root / "cluster")
    try:
        made.add_node("alpha")
        made.add_node("beta")
        made.add_node("broken", broken_bwrap=True)
        names = made.wait_for_workers(3)
        proc = run_grade(grade_args(subs, root / "out", made))
    finally:
        made.close()
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"out": root / "out", "stderr": proc.stderr, "names": names}


def test_a_clean_run_grades_every_student_on_both_nodes(clean):
    out = clean["out"]
    with open(out / "grades.csv", newline="") as f:
        rows = {r["student_id"]: r for r in csv.DictReader(f) if r["notebook"] == NOTEBOOK.stem}
    for sid in ("amy", "bob", "eve"):
        assert rows[sid]["status"] == "ok" and rows[sid]["score"] == rows[sid]["max_score"], rows
    assert (rows["dan"]["status"], rows["dan"]["score"]) == ("invalid", "0")
    assert rows["cat"]["status"] == "ok" and rows["cat"]["score"] != rows["cat"]["max_score"]
    log = graded_log(out)
    assert sorted(e["student"] for e in log) == ["amy", "bob", "cat", "dan", "eve"]
    good = {clean["names"]["alpha"], clean["names"]["beta"]}
    assert {e["worker"] for e in log} == good, log  # both good nodes worked, the broken one not
    assert "grading 5 of 5 students on 2 Dask worker(s)" in clean["stderr"]
    named = [line for line in clean["stderr"].splitlines() if clean["names"]["broken"] in line]
    assert len(named) == 1 and "gets no work" in named[0] and "namespace" in named[0], \
        clean["stderr"]
    for sid in ("amy", "cat", "dan"):
        assert (out / "feedback" / sid / f"{NOTEBOOK.stem}.html").is_file()
    assert (course_dir(out) / "gradebook.db").is_file()
    assert sorted(p.name for p in (course_dir(out) / "autograded").iterdir()) == \
        ["amy", "bob", "cat", "eve"]  # dan's notebook is not JSON: nothing was autograded


def test_a_killed_driver_resumes_with_the_students_not_yet_finished(subs, clean, cluster, tmp_path):
    cluster.add_node("alpha")
    cluster.add_node("beta")
    cluster.wait_for_workers(2)
    out = tmp_path / "out"
    args = grade_args(subs, out, cluster)
    driver = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    deadline = time.monotonic() + GRADE_S
    while not list((out / ".state").glob("*.json")):
        assert driver.poll() is None, "the driver ended before any student finished"
        assert time.monotonic() < deadline, "no student finished in time"
        time.sleep(0.1)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait(timeout=30)
    finished = {p.stem for p in (out / ".state").glob("*.json")}
    assert finished and finished != {"amy", "bob", "cat", "dan", "eve"}, finished
    assert not (out / "grades.csv").exists()
    first_run = {e["run"] for e in graded_log(out)}
    assert len(first_run) == 1 and {e["student"] for e in graded_log(out)} == finished

    resumed = run_grade(args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    rest = {"amy", "bob", "cat", "dan", "eve"} - finished
    assert f"{len(finished)} student(s) already graded" in resumed.stderr
    assert f"grading {len(rest)} of 5 students" in resumed.stderr
    second = [e["student"] for e in graded_log(out) if e["run"] not in first_run]
    assert sorted(second) == sorted(rest)  # only the unfinished students, each once
    assert csvs(out) == csvs(clean["out"])


def test_a_node_that_joins_mid_run_is_checked_and_a_killed_nodes_task_runs_again(subs, clean,
                                                                                 cluster, tmp_path):
    """beta joins after grading started: it is checked, then gets work; SIGKILLed in the middle
    of a task, that task runs again on alpha, and every student is recorded exactly once."""
    cluster.add_node("alpha")
    cluster.wait_for_workers(1)
    out = tmp_path / "out"
    driver = subprocess.Popen(grade_args(subs, out, cluster), cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    alpha_tmp = cluster.nodes["alpha"]["tmp"]
    deadline = time.monotonic() + GRADE_S
    while not list(alpha_tmp.glob("ag-*/course/k/*")):  # grading has started, on alpha alone
        assert driver.poll() is None, driver.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "alpha never started a task"
        time.sleep(0.1)
    cluster.add_node("beta")
    names = cluster.wait_for_workers(2)
    beta_tmp = cluster.nodes["beta"]["tmp"]
    while not list(beta_tmp.glob("ag-*/course/k/*")):  # a kernel of beta's is running
        assert driver.poll() is None, driver.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "beta never started a task"
        time.sleep(0.1)
    victim = next(beta_tmp.glob("ag-*/course/submitted/*")).name
    cluster.kill_node("beta")
    _, err = driver.communicate(timeout=GRADE_S)
    assert driver.returncode == 0, err[-3000:]
    assert f"worker {names['beta']} joined and passed its check" in err, err[-3000:]
    log = graded_log(out)
    assert sorted(e["student"] for e in log) == ["amy", "bob", "cat", "dan", "eve"], log
    by_student = {e["student"]: e["worker"] for e in log}
    assert by_student[victim] == names["alpha"], (victim, log)  # retried on the other node
    assert csvs(out) == csvs(clean["out"])


def test_no_usable_worker_exits_2_with_one_line(subs, cluster, tmp_path):
    cluster.add_node("broken", broken_bwrap=True)
    names = cluster.wait_for_workers(1)
    proc = run_grade(grade_args(subs, tmp_path / "out", cluster))
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"error: no usable Dask worker (1 checked): {names['broken']}: ")
    assert "namespace" in lines[0]
    assert not (tmp_path / "out" / "grades.csv").exists()
