"""`make bench`, second half: grading throughput, ours against plain serial `nbgrader autograde`.

    python benchmarks/bench_grading.py [--students N] [--workers N] [--no-external] [--json PATH]

Generates one class from the solution notebooks: students cycle through
  correct   every solution notebook as written
  wrong     every notebook with its last kernel broken (wrong values, still runs)
  broken    notebook 1 not JSON, notebook 2 with a syntax error in its first solution cell,
            the rest missing
and grades it three times on this machine: plain `nbgrader autograde` (one process, serial, the
way nbgrader runs out of the box, unsandboxed); `python -m autograder grade --workers N`
(sandboxed, trusted judging, on its default in-process Dask LocalCluster, whose start is
timed with it); and the same command attached with --scheduler-file to an external cluster, a
`dask scheduler` and two `dask worker` processes started beforehand (their start is not timed,
as a cluster that is already running). Prints wall seconds, seconds per graded notebook, the
throughput ratios, and whether every (student, notebook, cell) score agrees with plain nbgrader.
"""

from __future__ import annotations

import argparse
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

import nbformat
from nbgrader.api import Gradebook

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autograder.pipeline.coursedir import ASSIGNMENT, make_course_dir, nbgrader_env, solution_notebooks  # noqa: E402

KINDS = ("correct", "wrong", "broken")
BREAK = '''

_correct_{k} = {k}


def {k}(*args, **kwargs):
    out = _correct_{k}(*args, **kwargs)
    if isinstance(out, tuple):
        return tuple(np.asarray(o) + 1 for o in out)
    return np.asarray(out) + 1
'''


def _solution_cells(nb):
    return [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")
            and c.cell_type == "code"]


def _last_kernel(nb) -> str | None:
    """The kernel of the last grade cell whose solution defines it (test_<kernel>)."""
    for cell in reversed(nb.cells):
        gid = cell.metadata.get("nbgrader", {}).get("grade_id", "")
        kernel = gid.removeprefix("test_")
        if cell.metadata.get("nbgrader", {}).get("grade") and any(
                f"def {kernel}(" in c.source for c in _solution_cells(nb)):
            return kernel
    return None


def make_class(root: Path, students: int) -> dict[str, str]:
    """Write `students` student folders into root; student -> kind."""
    sources = solution_notebooks()
    kinds = {}
    for i in range(students):
        kind = KINDS[i % len(KINDS)]
        sid = f"s{i:03d}_{kind}"
        kinds[sid] = kind
        folder = root / sid
        folder.mkdir(parents=True)
        for j, path in enumerate(sources):
            nb = nbformat.read(path, as_version=4)
            if kind == "wrong":
                kernel = _last_kernel(nb)
                if kernel:
                    cell = next(c for c in _solution_cells(nb) if f"def {kernel}(" in c.source)
                    cell.source += BREAK.format(k=kernel)
            elif kind == "broken":
                if j == 0:
                    (folder / path.name).write_text("{ not a notebook")
                    continue
                if j > 1:
                    continue
                _solution_cells(nb)[0].source += "\n\ndef oops(:\n    pass\n"
            nbformat.write(nb, folder / path.name)
    return kinds


def plain_nbgrader(class_dir: Path, work: Path, timeout: int) -> tuple[float, dict]:
    """Serial `nbgrader autograde` of the whole class; (seconds, {(sid, nb, cell): score})."""
    course = work / "plain"
    make_course_dir(course, timeout=timeout)
    for student in sorted(class_dir.iterdir()):
        dest = course / "submitted" / student.name / ASSIGNMENT
        shutil.copytree(student, dest)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "nbgrader", "autograde", ASSIGNMENT, "--force"],
                   cwd=course, env=nbgrader_env(), capture_output=True, text=True)
    seconds = time.perf_counter() - start
    scores = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", course_id=ASSIGNMENT) as gb:
        for student in sorted(class_dir.iterdir()):
            for path in solution_notebooks():
                if not (course / "autograded" / student.name / ASSIGNMENT / path.name).is_file():
                    continue
                try:
                    sub = gb.find_submission_notebook(path.stem, ASSIGNMENT, student.name)
                except Exception:  # noqa: BLE001 - not graded
                    continue
                for g in sub.grades:
                    scores[(student.name, path.stem, g.name)] = float(g.score or 0)
    return seconds, scores


def ours(class_dir: Path, out: Path, timeout: int, where: list[str]) -> tuple[float, dict, dict]:
    """`python -m autograder grade` with WHERE (--workers N, or --scheduler-file FILE)."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "autograder", "grade", str(class_dir), "--out",
                           str(out), *where, "--timeout", str(timeout), "--fresh",
                           "--course-dir", str(out.with_name(f"{out.name}-course")),
                           "--no-progress"], cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"grading failed: {proc.stderr.strip().splitlines()[-1:]}")
    with open(out / "exercises.csv") as f:
        scores = {(r["student_id"], r["notebook"], r["grade_id"]): float(r["points"])
                  for r in csv.DictReader(f)}
    with open(out / "grades.csv") as f:
        statuses = {(r["student_id"], r["notebook"]): r["status"] for r in csv.DictReader(f)}
    return seconds, scores, statuses


class ExternalCluster:
    """`dask scheduler` and two `dask worker` processes (one thread each) on 127.0.0.1, each
    worker with its own local directory and TMPDIR, as two nodes of a cluster would have."""

    def __init__(self, work: Path, workers: int = 2):
        self.file = work / "scheduler.json"
        self.procs = []
        dask = [sys.executable, "-m", "dask"]
        self._start([*dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                     "--scheduler-file", str(self.file)], dict(os.environ))
        self.tmps = []
        for k in range(workers):
            local = work / f"node{k}"
            local.mkdir()
            self.tmps.append(tempfile.mkdtemp(prefix=f"bench-node{k}-"))
            self._start([*dask, "worker", "--scheduler-file", str(self.file), "--nthreads", "1",
                         "--host", "127.0.0.1", "--no-dashboard", "--local-directory", str(local),
                         "--name", f"node{k}"], {**os.environ, "TMPDIR": self.tmps[-1]})
        from distributed import Client

        deadline = time.monotonic() + 120
        while not self.file.is_file():
            if time.monotonic() > deadline:
                raise SystemExit("the dask scheduler did not start within 120 s")
            time.sleep(0.2)
        with Client(scheduler_file=str(self.file), timeout=120) as client:
            client.wait_for_workers(workers, timeout=120)

    def _start(self, cmd: list[str], env: dict) -> None:
        self.procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL, start_new_session=True))

    def close(self) -> None:
        for proc in self.procs:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        for tmp in self.tmps:
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=6)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--timeout", type=int, default=300)
    parser.add_argument("--no-external", action="store_true",
                        help="skip the run on an external scheduler with two workers")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp_name:
        work = Path(tmp_name)
        kinds = make_class(work / "class", args.students)
        notebooks = len(solution_notebooks())
        print(f"class: {args.students} students x {notebooks} notebooks "
              f"({', '.join(f'{sum(k == kind for k in kinds.values())} {kind}' for kind in KINDS)})",
              flush=True)
        plain_s, plain_scores = plain_nbgrader(work / "class", work, args.timeout)
        print(f"plain nbgrader autograde (serial, unsandboxed): {plain_s:7.1f} s", flush=True)
        runs = {}
        local_s, local_scores, statuses = ours(work / "class", work / "local", args.timeout,
                                               ["--workers", str(args.workers)])
        runs[f"LocalCluster, {args.workers} workers"] = (local_s, local_scores)
        print(f"python -m autograder grade --workers {args.workers} (sandboxed, LocalCluster): "
              f"{local_s:7.1f} s", flush=True)
        if not args.no_external:
            external = ExternalCluster(work)
            try:
                ext_s, ext_scores, _ = ours(work / "class", work / "external", args.timeout,
                                            ["--scheduler-file", str(external.file)])
            finally:
                external.close()
            runs["external scheduler, 2 workers"] = (ext_s, ext_scores)
            print(f"python -m autograder grade --scheduler-file (2 dask workers): {ext_s:7.1f} s")

    graded = sum(1 for s in statuses.values() if s not in ("missing",))
    print(f"notebooks submitted: {graded}; plain nbgrader {plain_s / graded:.2f} s per notebook")
    report, failed = {}, False
    for name, (seconds, scores) in runs.items():
        # Compare on what both graded: plain nbgrader skips nothing it could read.
        shared = sorted(set(plain_scores) & set(scores))
        differ = [k for k in shared if plain_scores[k] != scores[k]]
        ratio = plain_s / seconds if seconds else float("nan")
        failed |= bool(differ)
        print(f"{name}: {seconds / graded:.2f} s per notebook, throughput {ratio:.2f}x plain; "
              f"cell scores compared {len(shared)}, different {len(differ)}"
              + (f" (first: {differ[0]})" if differ else ""))
        report[name] = {"seconds": seconds, "per_notebook": seconds / graded, "ratio": ratio,
                        "cells_compared": len(shared), "cells_different": [list(k) for k in differ]}
    if args.json:
        Path(args.json).write_text(json.dumps({
            "students": args.students, "workers": args.workers, "plain_s": plain_s,
            "notebooks": graded, "runs": report}, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
