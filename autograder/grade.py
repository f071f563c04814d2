"""`python -m autograder grade SUBMISSIONS`: grade a whole class with nbgrader.

Layout of a run (all in one temporary folder, removed at the end):

    template/        nbgrader course directory: source copied from solutions/, assignment
                     generated (gradebook with the grade cells and their checksums)
    worker-K/        a copy of template/ per worker: its own gradebook, so workers never share
                     an SQLite file ("database is locked")
    submissions/     the extracted .zip, when SUBMISSIONS is an archive

Each student is one `nbgrader autograde --student S` process with a wall-clock budget. When
it fails (a kernel died, the budget ran out), nbgrader keeps nothing of that student, so each
notebook is graded again in a process of its own (`--notebook NB`): a notebook that hangs or
kills its kernel costs only that notebook.
Scores are read back from the workers' gradebooks; feedback is nbgrader's generate_feedback
on autograded notebooks whose hidden tests and tracebacks were removed first.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook, MissingEntry

from autograder import feedback
from autograder.coursedir import (
    ASSIGNMENT,
    SOLUTIONS,
    NbgraderError,
    make_course_dir,
    nbgrader_env,
    solution_notebooks,
    write_config,
)

STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$")
# Kernel start-up plus imports, on top of the per-cell timeout, for a notebook's wall budget.
STARTUP_BUDGET_S = 60
_TOKEN_VAR = "AUTOGRADER_JOB"


class UsageError(Exception):
    """A problem with the command line or the submissions themselves (exit status 2)."""


@dataclass
class Result:
    """What grading one notebook of one student gave."""

    student: str
    notebook: str
    status: str = "ok"
    points: dict[str, float] = field(default_factory=dict)  # grade_id -> points
    seconds: float = 0.0


# ---------------------------------------------------------------- submissions


def _safe_extract(archive: zipfile.ZipFile, dest: Path) -> None:
    """Extract regular files only, refusing paths that leave `dest`."""
    root = dest.resolve()
    for info in archive.infolist():
        if info.is_dir():
            continue
        mode = info.external_attr >> 16
        if mode and (mode & 0o170000) == 0o120000:  # symlink
            continue
        target = (dest / info.filename).resolve()
        if not target.is_relative_to(root):
            raise UsageError(f"archive member leaves the archive: {info.filename}")
        target.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(info) as src, open(target, "wb") as out:
            shutil.copyfileobj(src, out)


def _student_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir()
                  if p.is_dir() and not p.name.startswith((".", "__MACOSX")))


def open_submissions(path: str, scratch: Path) -> Path:
    """The folder holding one sub-folder per student (extracting a .zip into `scratch`)."""
    src = Path(path)
    if not src.exists():
        raise UsageError(f"submissions not found: {path}")
    if src.is_file():
        try:
            with zipfile.ZipFile(src) as archive:
                dest = scratch / "submissions"
                dest.mkdir()
                _safe_extract(archive, dest)
        except (zipfile.BadZipFile, OSError, EOFError) as err:
            raise UsageError(f"cannot read archive {path}: {err}") from None
        # Accept an archive of the folder itself (submissions/<student>/...) as well.
        inner = _student_dirs(dest)
        if len(inner) == 1 and not list(inner[0].glob("*.ipynb")) and _student_dirs(inner[0]):
            dest = inner[0]
        src = dest
    if not src.is_dir():
        raise UsageError(f"not a folder or .zip archive: {path}")
    if not _student_dirs(src):
        raise UsageError(f"no student folders in {path} (expected {path}/<student_id>/NN.ipynb)")
    return src


def read_notebook(path: Path) -> bool:
    """Whether `path` holds a readable Jupyter notebook."""
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception:  # noqa: BLE001 - anything unreadable is the student's invalid file
        return False
    return isinstance(nb.get("cells"), list)


# ---------------------------------------------------------------- one notebook


def _kill_job(token: str) -> None:
    """Kill every process (kernels included) started for job `token`.

    jupyter_client starts kernels in their own session, so killing nbgrader's process group
    can leave a runaway kernel behind; they all carry the job's token in their environment.
    """
    needle = f"{_TOKEN_VAR}={token}".encode()
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if needle in (proc / "environ").read_bytes().split(b"\0"):
                os.kill(int(proc.name), signal.SIGKILL)
        except (OSError, ValueError):
            continue


def _run_job(args: list[str], cwd: Path, budget: float) -> tuple[int | None, str]:
    """Run nbgrader ARGS; (return code or None on timeout, stderr)."""
    token = uuid.uuid4().hex
    env = nbgrader_env({_TOKEN_VAR: token})
    proc = subprocess.Popen(
        [sys.executable, "-m", "nbgrader", *args], cwd=cwd, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=budget)
        return proc.returncode, out
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return None, out
    finally:
        _kill_job(token)


def _cell_timed_out(nb_path: Path) -> bool:
    try:
        nb = nbformat.read(nb_path, as_version=4)
    except Exception:  # noqa: BLE001
        return False
    return any(out.get("ename") == "CellTimeoutError"
               for cell in nb.cells if cell.cell_type == "code"
               for out in cell.get("outputs", []))


def _crash_status(log: str) -> str:
    crash_words = ("DeadKernelError", "Kernel died", "kernel died", "UnresponsiveKernelError",
                   "MemoryError")
    return "crashed" if any(word in log for word in crash_words) else "error"


# ---------------------------------------------------------------- a worker


class Worker:
    """An nbgrader course directory of its own, grading its share of students serially."""

    def __init__(self, root: Path, template: Path, timeout: int, cells: dict[str, int],
                 report):
        shutil.copytree(template, root)
        write_config(root, timeout=timeout)
        self.root = root
        self.timeout = timeout
        self.cells = cells  # notebook -> number of code cells (for the wall budget)
        self.report = report

    def grade_student(self, student: Path, notebooks: list[str]) -> list[Result]:
        sid = student.name
        submitted = self.root / "submitted" / sid / ASSIGNMENT
        submitted.mkdir(parents=True)
        results = {}
        for nb in notebooks:
            path = student / f"{nb}.ipynb"
            if not path.is_file():
                results[nb] = Result(sid, nb, "missing")
            elif not read_notebook(path):
                results[nb] = Result(sid, nb, "invalid")
            else:
                shutil.copyfile(path, submitted / path.name)
        todo = [nb for nb in notebooks if nb not in results]
        if todo:
            results.update(self._autograde_all(sid, todo))
        for nb in notebooks:
            self.report(results[nb])
        self._read_points(sid, results)
        return [results[nb] for nb in notebooks]

    def _budget(self, nb: str) -> float:
        return STARTUP_BUDGET_S + self.timeout * max(1, self.cells[nb])

    def _autograde_all(self, sid: str, notebooks: list[str]) -> dict[str, Result]:
        """All of a student's notebooks in one nbgrader run (one start-up instead of one per
        notebook); if that run fails, nbgrader keeps nothing, so grade them one by one."""
        start = time.monotonic()
        rc, _ = _run_job(["autograde", ASSIGNMENT, "--student", sid, "--force"], self.root,
                         sum(self._budget(nb) for nb in notebooks))
        graded = self.root / "autograded" / sid / ASSIGNMENT
        if rc == 0 and all((graded / f"{nb}.ipynb").is_file() for nb in notebooks):
            seconds = (time.monotonic() - start) / len(notebooks)
            return {nb: Result(sid, nb, "timeout" if _cell_timed_out(graded / f"{nb}.ipynb")
                               else "ok", seconds=seconds) for nb in notebooks}
        return {nb: self._autograde(sid, nb) for nb in notebooks}

    def _autograde(self, sid: str, nb: str) -> Result:
        start = time.monotonic()
        rc, log = _run_job(["autograde", ASSIGNMENT, "--student", sid, "--notebook", nb,
                            "--force"], self.root, self._budget(nb))
        graded = self.root / "autograded" / sid / ASSIGNMENT / f"{nb}.ipynb"
        if rc is None:
            status = "timeout"
        elif rc != 0 or not graded.is_file():
            status = _crash_status(log)
        elif _cell_timed_out(graded):
            status = "timeout"
        else:
            status = "ok"
        if status not in ("ok", "timeout") or rc is None:
            graded.unlink(missing_ok=True)
        return Result(sid, nb, status, seconds=time.monotonic() - start)

    def _read_points(self, sid: str, results: dict[str, Result]) -> None:
        graded_dir = self.root / "autograded" / sid / ASSIGNMENT
        with Gradebook(f"sqlite:///{self.root / 'gradebook.db'}", course_id=ASSIGNMENT) as gb:
            for nb, result in results.items():
                if not (graded_dir / f"{nb}.ipynb").is_file():
                    continue  # nothing graded: every cell scores 0
                try:
                    sub = gb.find_submission_notebook(nb, ASSIGNMENT, sid)
                except MissingEntry:
                    continue
                result.points = {g.name: float(g.score or 0) for g in sub.grades}

    def write_feedback(self, results: list[Result], out: Path,
                       max_points: dict[str, dict[str, float]], secrets: set[str]) -> None:
        """feedback/<student>/<notebook>.html for `results`, one generate_feedback run."""
        def graded(r: Result) -> Path:
            return self.root / "autograded" / r.student / ASSIGNMENT / f"{r.notebook}.ipynb"

        for r in results:
            if graded(r).is_file():
                feedback.redact_notebook(graded(r))
        if any(graded(r).is_file() for r in results):
            _run_job(["generate_feedback", ASSIGNMENT, "--force"], self.root,
                     STARTUP_BUDGET_S + 10 * len(results))
        for r in results:
            page_path = self.root / "feedback" / r.student / ASSIGNMENT / f"{r.notebook}.html"
            page = page_path.read_text() if graded(r).is_file() and page_path.is_file() else None
            leaked = feedback.leaks(page, secrets) if page is not None else []
            if leaked:
                print(f"{r.student}/{r.notebook}: feedback page withheld, it shows hidden-test "
                      f"source ({leaked[0]!r})", file=sys.stderr)
            if page is None or leaked:
                page = feedback.placeholder_page(r.student, r.notebook, r.status,
                                                 sum(r.points.values()),
                                                 sum(max_points[r.notebook].values()))
            dest = out / "feedback" / r.student
            dest.mkdir(parents=True, exist_ok=True)
            _write_atomic(dest / f"{r.notebook}.html", page)


# ---------------------------------------------------------------- output


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _csv_text(header: list[str], rows: list[list]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def _num(x: float) -> str:
    return f"{x:g}"


def write_csvs(out: Path, results: list[Result], max_points: dict[str, dict[str, float]]) -> None:
    grades, exercises = [], []
    for r in sorted(results, key=lambda r: (r.student, r.notebook)):
        cells = max_points[r.notebook]
        got = {gid: r.points.get(gid, 0.0) for gid in cells}
        grades.append([r.student, r.notebook, _num(sum(got.values())),
                       _num(sum(cells.values())), r.status])
        exercises += [[r.student, r.notebook, gid, _num(got[gid]), _num(cells[gid])]
                      for gid in cells]  # cells in notebook order
    _write_atomic(out / "grades.csv",
                  _csv_text(["student_id", "notebook", "score", "max_score", "status"], grades))
    _write_atomic(out / "exercises.csv",
                  _csv_text(["student_id", "notebook", "grade_id", "points", "max_points"],
                            exercises))


def _grade_cells(source: Path) -> dict[str, float]:
    """grade_id -> points of the autograded cells of a solution notebook, in cell order."""
    nb = nbformat.read(source, as_version=4)
    cells = {}
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade"):
            cells[meta["grade_id"]] = float(meta.get("points", 0))
    return cells


# ---------------------------------------------------------------- the command


def grade(submissions: str, out: str = "grades", workers: int = 1, timeout: int = 120,
          solutions: Path = SOLUTIONS) -> list[Result]:
    """Grade every student in SUBMISSIONS; write the CSVs and feedback into `out`."""
    sources = solution_notebooks(solutions)
    if not sources:
        raise UsageError(f"no solution notebooks in {solutions}")
    if workers < 1 or timeout < 1:
        raise UsageError("--workers and --timeout must be at least 1")
    notebooks = [p.stem for p in sources]
    max_points = {p.stem: _grade_cells(p) for p in sources}
    code_cells = {p.stem: sum(c.cell_type == "code" for c in nbformat.read(p, 4).cells)
                  for p in sources}
    secrets = set().union(*(feedback.notebook_hidden_lines(p) for p in sources))

    with tempfile.TemporaryDirectory(prefix="autograder-grade-") as tmp_name:
        tmp = Path(tmp_name)
        root = open_submissions(submissions, tmp)
        students = []
        for d in _student_dirs(root):
            if STUDENT_ID.match(d.name):
                students.append(d)
            else:
                print(f"skipping {d.name!r}: not a usable student id", file=sys.stderr)
        if not students:
            raise UsageError(f"no student folders in {submissions}")
        out_dir = Path(out)
        out_dir.mkdir(parents=True, exist_ok=True)

        make_course_dir(tmp / "template", solutions, timeout=timeout)
        total = len(students) * len(notebooks)
        done = [0]
        lock = threading.Lock()

        def report(r: Result) -> None:
            with lock:
                done[0] += 1
                print(f"[{done[0]}/{total}] {r.student}/{r.notebook}: {r.status}"
                      f" ({r.seconds:.1f} s)", file=sys.stderr, flush=True)

        n = min(workers, len(students))
        pool = [Worker(tmp / f"worker-{k}", tmp / "template", timeout, code_cells, report)
                for k in range(n)]

        def run_share(k: int) -> list[Result]:
            worker, results = pool[k], []
            for student in students[k::n]:
                results += worker.grade_student(student, notebooks)
            worker.write_feedback(results, out_dir, max_points, secrets)
            return results

        with ThreadPoolExecutor(max_workers=n) as executor:
            results = [r for share in executor.map(run_share, range(n)) for r in share]
        write_csvs(out_dir, results, max_points)
    return results


def main(submissions: str, out: str = "grades", workers: int = 1, timeout: int = 120) -> int:
    start = time.monotonic()
    try:
        results = grade(submissions, out=out, workers=workers, timeout=timeout)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except NbgraderError as err:  # the course itself is broken, not the submissions
        print(f"error: {err}", file=sys.stderr)
        return 1
    students = len({r.student for r in results})
    print(f"graded {students} students, {len(results)} notebooks in "
          f"{time.monotonic() - start:.0f} s -> {out}", file=sys.stderr)
    return 0
