"""`python -m autograder grade SUBMISSIONS`: grade a whole class with nbgrader, safely.

Layout of a run (all in one temporary folder, removed at the end):

    template/        nbgrader course directory: source copied from solutions/, assignment
                     generated (gradebook with the grade cells and their checksums)
    worker-K/        a copy of template/ per worker: its own gradebook, so workers never share
                     an SQLite file ("database is locked"); worker-K/sandbox/<student>/<nb>/ is
                     the scratch folder of one kernel (its records, its files)
    library/         the grading modules a sandboxed kernel may import (autograder.pipeline.sandbox)
    submissions/     the extracted .zip, when SUBMISSIONS is an archive

Each student is one `nbgrader autograde --student S` process, whose kernels run in the sandbox
(autograder.pipeline.sandbox). When it fails (a kernel died, the budget ran out), nbgrader keeps nothing
of that student, so each notebook is graded again in a process of its own (`--notebook NB`): a
notebook that hangs or kills its kernel costs only that notebook.
Then the trusted side takes over (autograder.judging.trusted): the hidden tests' records are judged
against the reference outside the sandbox, and a cell keeps nbgrader's points only if they pass;
the student's own cells are scanned for tampering (autograder.judging.flags). The corrected scores go
into the worker's gradebook and the notebook, and feedback is nbgrader's generate_feedback on
notebooks whose hidden tests and tracebacks were removed first.
Finished students are remembered in OUT/.state/ (keyed by the submission's and the grader's
content), so an interrupted run picks up where it stopped; the CSVs are written once, at the end,
atomically.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import queue
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
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook, MissingEntry
from tqdm import tqdm

from autograder.judging import flags, trusted
from autograder.pipeline import feedback, sandbox
from autograder.pipeline.coursedir import (
    ASSIGNMENT,
    AUTOGRADER_DIR,
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
MAX_NOTEBOOK_BYTES = 20 * 2**20  # a larger .ipynb is refused as invalid (nothing is read)
_TOKEN_VAR = "AUTOGRADER_JOB"
STATUSES = ("ok", "missing", "invalid", "timeout", "crashed", "memory", "flagged", "error")


@dataclass
class Options:
    """How to grade: parallelism, limits, sandbox (each has a command-line flag)."""

    workers: int = 1
    timeout: int = 120  # per cell, seconds
    notebook_timeout: int | None = None  # per notebook; None: 60 s + timeout per code cell
    limits: sandbox.Limits = field(default_factory=sandbox.Limits)
    unsafe: bool = False  # run kernels without the sandbox
    fresh: bool = False  # ignore finished students remembered in OUT/.state
    progress: bool = True


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
    flags: list[str] = field(default_factory=list)  # why the notebook is flagged


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


def notebook_folder(student: Path) -> Path:
    """Where a student's notebooks are: their folder, or <student>/activations/ in nbgrader's
    own layout (`autograder/submitted/`, e.g. after `nbgrader zip_collect`)."""
    nested = student / ASSIGNMENT
    if nested.is_dir() and not any(student.glob("*.ipynb")):
        return nested
    return student


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
    """Whether `path` holds a readable Jupyter notebook of format 4 (and is not huge)."""
    try:
        if path.stat().st_size > MAX_NOTEBOOK_BYTES:
            return False
        with open(path, "rb") as f:
            raw = json.load(f)
        if not isinstance(raw, dict) or raw.get("nbformat") != 4:
            return False
        nb = nbformat.reads(json.dumps(raw), as_version=4)
    except Exception:  # noqa: BLE001 - anything unreadable is the student's invalid file
        return False
    return isinstance(nb.get("cells"), list)


# ---------------------------------------------------------------- one notebook


def _kill_job(token: str) -> None:
    """Kill every process (kernels and their sandboxes included) started for job `token`.

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


class Interrupted(Exception):
    """The instructor pressed Ctrl-C: running jobs were killed, nothing half-graded is kept."""


_STOP = threading.Event()  # set on Ctrl-C: no new jobs start
_RUNNING: set[str] = set()  # tokens of the jobs running now
_RUNNING_LOCK = threading.Lock()


def _run_job(args: list[str], cwd: Path, budget: float,
             extra_env=lambda token: {}) -> tuple[int | None, str]:
    """Run nbgrader ARGS; (return code or None on timeout, output)."""
    if _STOP.is_set():
        raise Interrupted
    token = uuid.uuid4().hex
    env = nbgrader_env({_TOKEN_VAR: token, **extra_env(token)})
    with _RUNNING_LOCK:
        _RUNNING.add(token)
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
        with _RUNNING_LOCK:
            _RUNNING.discard(token)
        if _STOP.is_set():
            raise Interrupted


def _stop_all() -> None:
    _STOP.set()
    with _RUNNING_LOCK:
        tokens = list(_RUNNING)
    for token in tokens:
        _kill_job(token)


def _error_names(nb_path: Path) -> set[str]:
    try:
        nb = nbformat.read(nb_path, as_version=4)
    except Exception:  # noqa: BLE001
        return set()
    return {out.get("ename") for cell in nb.cells if cell.cell_type == "code"
            for out in cell.get("outputs", []) if out.get("output_type") == "error"}


def _status_of(graded: Path) -> str:
    names = _error_names(graded)
    if "CellTimeoutError" in names:
        return "timeout"
    if "MemoryError" in names:
        return "memory"
    return "ok"


def _crash_status(log: str) -> str:
    crash_words = ("DeadKernelError", "Kernel died", "kernel died", "UnresponsiveKernelError",
                   "MemoryError")
    return "crashed" if any(word in log for word in crash_words) else "error"


# ---------------------------------------------------------------- a worker


@dataclass
class Course:
    """What every worker needs to know about the course being graded."""

    notebooks: list[str]
    max_points: dict[str, dict[str, float]]  # notebook -> grade_id -> points
    code_cells: dict[str, int]
    checks: dict[str, dict[str, list]]  # notebook -> grade_id -> kernels and answer keys judged
    secrets: set[str]  # hidden-test lines that must not reach feedback


class Worker:
    """An nbgrader course directory of its own, grading one student at a time."""

    def __init__(self, index: int, root: Path, template: Path, library: Path, course: Course,
                 options: Options):
        shutil.copytree(template, root)
        write_config(root, timeout=options.timeout, sandboxed=True)
        self.index = index
        self.root = root
        self.library = library
        self.course = course
        self.options = options

    # -- running nbgrader

    def _sandbox_env(self, sid: str):
        threads = max(1, (os.cpu_count() or 1) // self.options.workers)
        uid = sandbox.FIRST_UID + self.index if os.geteuid() == 0 else None

        def env(token: str) -> dict[str, str]:
            return {sandbox.SANDBOX_ENV: sandbox.settings(
                self.root / "sandbox" / sid, self.library, self.options.limits, uid=uid,
                threads=threads, unsafe=self.options.unsafe, token=token)}
        return env

    def _budget(self, nb: str) -> float:
        if self.options.notebook_timeout:
            return self.options.notebook_timeout
        return STARTUP_BUDGET_S + self.options.timeout * max(1, self.course.code_cells[nb])

    def _graded(self, sid: str, nb: str) -> Path:
        return self.root / "autograded" / sid / ASSIGNMENT / f"{nb}.ipynb"

    def grade_student(self, student: Path) -> list[Result]:
        sid = student.name
        submitted = self.root / "submitted" / sid / ASSIGNMENT
        submitted.mkdir(parents=True)
        results = {}
        for nb in self.course.notebooks:
            path = notebook_folder(student) / f"{nb}.ipynb"
            if not path.is_file():
                results[nb] = Result(sid, nb, "missing")
            elif not read_notebook(path):
                results[nb] = Result(sid, nb, "invalid")
            else:
                shutil.copyfile(path, submitted / path.name)
        todo = [nb for nb in self.course.notebooks if nb not in results]
        if todo:
            results.update(self._autograde_all(sid, todo))
        self._read_points(sid, results)
        for nb in todo:
            self._trust(sid, results[nb], submitted / f"{nb}.ipynb")
        return [results[nb] for nb in self.course.notebooks]

    def _autograde_all(self, sid: str, notebooks: list[str]) -> dict[str, Result]:
        """All of a student's notebooks in one nbgrader run (one start-up instead of one per
        notebook); if that run fails, nbgrader keeps nothing, so grade them one by one."""
        start = time.monotonic()
        rc, _ = _run_job(["autograde", ASSIGNMENT, "--student", sid, "--force"], self.root,
                         sum(self._budget(nb) for nb in notebooks), self._sandbox_env(sid))
        if rc == 0 and all(self._graded(sid, nb).is_file() for nb in notebooks):
            seconds = (time.monotonic() - start) / len(notebooks)
            return {nb: Result(sid, nb, _status_of(self._graded(sid, nb)), seconds=seconds)
                    for nb in notebooks}
        return {nb: self._autograde(sid, nb) for nb in notebooks}

    def _autograde(self, sid: str, nb: str) -> Result:
        start = time.monotonic()
        rc, log = _run_job(["autograde", ASSIGNMENT, "--student", sid, "--notebook", nb,
                            "--force"], self.root, self._budget(nb), self._sandbox_env(sid))
        graded = self._graded(sid, nb)
        if rc is None:
            status = "timeout"
        elif rc != 0 or not graded.is_file():
            status = _crash_status(log)
        else:
            status = _status_of(graded)
        if status not in ("ok", "timeout", "memory") or rc is None:
            graded.unlink(missing_ok=True)
        return Result(sid, nb, status, seconds=time.monotonic() - start)

    def _read_points(self, sid: str, results: dict[str, Result]) -> None:
        with Gradebook(f"sqlite:///{self.root / 'gradebook.db'}", course_id=ASSIGNMENT) as gb:
            for nb, result in results.items():
                if not self._graded(sid, nb).is_file():
                    continue  # nothing graded: every cell scores 0
                try:
                    sub = gb.find_submission_notebook(nb, ASSIGNMENT, sid)
                except MissingEntry:
                    continue
                result.points = {g.name: float(g.score or 0) for g in sub.grades}

    # -- the trusted side

    def _trust(self, sid: str, result: Result, submitted: Path) -> None:
        """Judge the records outside the sandbox, flag tampering, and write the corrected scores
        into the gradebook and the notebook (which the feedback is made from)."""
        nb = result.notebook
        result.flags = flags.scan(submitted)
        if result.flags and result.status == "ok":
            result.status = "flagged"
        graded = self._graded(sid, nb)
        if not graded.is_file():
            result.points = {}
            return
        records = self.root / "sandbox" / sid / nb / "records"
        if not records.parent.is_dir():  # nbgrader ignores a config file that fails to load
            raise NbgraderError(f"{sid}/{nb} was executed outside the grading sandbox: "
                                f"{self.root / 'nbgrader_config.py'} did not take effect")
        verdicts = trusted.judge_cells(records, self.course.checks[nb])
        failed = {gid: msg for gid, msg in verdicts.items() if msg}
        # The student needs the judge's message where the kernel's own run looked fine; a cell
        # whose visible check already failed keeps that message alone (its hidden checks never ran).
        news = {gid: msg for gid, msg in failed.items() if result.points.get(gid, 0) > 0}
        for gid in failed:
            result.points[gid] = 0.0
        if not news:
            return
        with Gradebook(f"sqlite:///{self.root / 'gradebook.db'}", course_id=ASSIGNMENT) as gb:
            for gid in news:
                try:
                    gb.find_grade(gid, nb, ASSIGNMENT, sid).auto_score = 0.0
                except MissingEntry:
                    continue
            gb.db.commit()
        notebook = nbformat.read(graded, as_version=4)
        for cell in notebook.cells:
            gid = cell.metadata.get("nbgrader", {}).get("grade_id")
            if gid in news:
                cell.outputs.append(nbformat.v4.new_output(
                    "error", ename="AssertionError", evalue=news[gid],
                    traceback=[f"AssertionError: {news[gid]}"]))
        nbformat.write(notebook, graded)

    # -- feedback

    def write_feedback(self, results: list[Result], out: Path) -> None:
        """feedback/<student>/<notebook>.html for `results` (one student), one nbgrader run."""
        sid = results[0].student
        for r in results:
            if self._graded(sid, r.notebook).is_file():
                feedback.redact_notebook(self._graded(sid, r.notebook))
        if any(self._graded(sid, r.notebook).is_file() for r in results):
            _run_job(["generate_feedback", ASSIGNMENT, "--student", sid, "--force"], self.root,
                     STARTUP_BUDGET_S + 10 * len(results))
        dest = out / "feedback" / sid
        dest.mkdir(parents=True, exist_ok=True)
        for r in results:
            page_path = self.root / "feedback" / sid / ASSIGNMENT / f"{r.notebook}.html"
            graded = self._graded(sid, r.notebook).is_file()
            page = page_path.read_text() if graded and page_path.is_file() else None
            leaked = feedback.leaks(page, self.course.secrets) if page is not None else []
            if leaked:
                print(f"{sid}/{r.notebook}: feedback page withheld, it shows hidden-test "
                      f"source ({leaked[0]!r})", file=sys.stderr)
            if page is None or leaked:
                page = feedback.placeholder_page(
                    sid, r.notebook, r.status, sum(r.points.values()),
                    sum(self.course.max_points[r.notebook].values()))
            _write_atomic(dest / f"{r.notebook}.html", page)


# ---------------------------------------------------------------- output


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
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
    grades, exercises, flagged = [], [], []
    for r in sorted(results, key=lambda r: (r.student, r.notebook)):
        cells = max_points[r.notebook]
        got = {gid: r.points.get(gid, 0.0) for gid in cells}
        grades.append([r.student, r.notebook, _num(sum(got.values())),
                       _num(sum(cells.values())), r.status])
        exercises += [[r.student, r.notebook, gid, _num(got[gid]), _num(cells[gid])]
                      for gid in cells]  # cells in notebook order
        flagged += [[r.student, r.notebook, reason] for reason in r.flags]
    _write_atomic(out / "grades.csv",
                  _csv_text(["student_id", "notebook", "score", "max_score", "status"], grades))
    _write_atomic(out / "exercises.csv",
                  _csv_text(["student_id", "notebook", "grade_id", "points", "max_points"],
                            exercises))
    _write_atomic(out / "flags.csv", _csv_text(["student_id", "notebook", "reason"], flagged))


def _grade_cells(source: Path) -> dict[str, float]:
    """grade_id -> points of the autograded cells of a solution notebook, in cell order."""
    nb = nbformat.read(source, as_version=4)
    cells = {}
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade"):
            cells[meta["grade_id"]] = float(meta.get("points", 0))
    return cells


# ---------------------------------------------------------------- remembering finished students


def _digest(paths: list[Path], extra: str = "") -> str:
    h = hashlib.sha256(extra.encode())
    for path in paths:
        h.update(path.name.encode() + b"\0")
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(2**20), b""):
                h.update(block)
    return h.hexdigest()


def grader_fingerprint(sources: list[Path], options: Options) -> str:
    """Changes when the solutions, the grading code or the grading settings change."""
    code = sorted(AUTOGRADER_DIR.glob("*.py")) + sorted(sandbox.NONLINEARITY.glob("*.py"))
    settings = json.dumps([options.timeout, options.notebook_timeout, asdict(options.limits),
                           options.unsafe])
    return _digest(sources + code, settings)


class State:
    """OUT/.state/<student>.json: the results of a finished student, and what they were for."""

    def __init__(self, out: Path, fingerprint: str, course: Course):
        self.folder = out / ".state"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.fingerprint = fingerprint
        self.course = course

    def key(self, student: Path) -> str:
        files = [notebook_folder(student) / f"{nb}.ipynb" for nb in self.course.notebooks]
        present = [p for p in files if p.is_file()]
        return _digest(present, self.fingerprint + "|" + ",".join(p.name for p in present))

    def load(self, student: Path, out: Path) -> list[Result] | None:
        path = self.folder / f"{student.name}.json"
        try:
            saved = json.loads(path.read_text())
            if saved["key"] != self.key(student):
                return None
            results = [Result(**r) for r in saved["results"]]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        pages = [out / "feedback" / student.name / f"{r.notebook}.html" for r in results]
        if [r.notebook for r in results] != self.course.notebooks or \
                not all(p.is_file() for p in pages):
            return None
        return results

    def save(self, student: Path, results: list[Result]) -> None:
        _write_atomic(self.folder / f"{student.name}.json", json.dumps(
            {"key": self.key(student), "results": [asdict(r) for r in results]}))


# ---------------------------------------------------------------- the command


def load_course(solutions: Path) -> tuple[Course, list[Path]]:
    sources = solution_notebooks(solutions)
    if not sources:
        raise UsageError(f"no solution notebooks in {solutions}")
    course = Course(
        notebooks=[p.stem for p in sources],
        max_points={p.stem: _grade_cells(p) for p in sources},
        code_cells={p.stem: sum(c.cell_type == "code" for c in nbformat.read(p, 4).cells)
                    for p in sources},
        checks={p.stem: trusted.hidden_checks(p) for p in sources},
        secrets=set().union(*(feedback.notebook_hidden_lines(p) for p in sources)),
    )
    return course, sources


def grade(submissions: str, out: str = "grades", options: Options | None = None,
          solutions: Path = SOLUTIONS) -> list[Result]:
    """Grade every student in SUBMISSIONS; write the CSVs and feedback into `out`."""
    options = options or Options()
    _STOP.clear()
    numbers = {"--workers": options.workers, "--timeout": options.timeout,
               "--notebook-timeout": options.notebook_timeout or 1,
               "--memory": options.limits.memory_mb, "--cpu-time": options.limits.cpu_s,
               "--processes": options.limits.processes}
    for flag, value in numbers.items():
        if value < 1:
            raise UsageError(f"{flag} must be at least 1 (got {value})")
    course, sources = load_course(solutions)

    with tempfile.TemporaryDirectory(prefix="autograder-grade-") as tmp_name:
        tmp = Path(tmp_name)
        os.chmod(tmp, 0o711)  # the kernels' uids must reach their scratch folders
        root = open_submissions(submissions, tmp)
        students = []
        for d in _student_dirs(root):
            if STUDENT_ID.match(d.name):
                students.append(d)
            else:
                print(f"skipping {d.name!r}: not a usable student id", file=sys.stderr)
        if not students:
            raise UsageError(f"no student folders in {submissions}")
        library = sandbox.sandbox_library(tmp / "library")
        if not options.unsafe:
            try:
                (tmp / "probe").mkdir()
                sandbox.check_available(tmp / "probe", library)
            except sandbox.SandboxError as err:
                raise UsageError(str(err)) from None
        out_dir = Path(out)
        out_dir.mkdir(parents=True, exist_ok=True)
        state = State(out_dir, grader_fingerprint(sources, options), course)

        done: dict[str, list[Result]] = {}
        if not options.fresh:
            for student in students:
                remembered = state.load(student, out_dir)
                if remembered is not None:
                    done[student.name] = remembered
        todo = [s for s in students if s.name not in done]
        bar = tqdm(total=len(students) * len(course.notebooks), unit="notebook", file=sys.stderr,
                   disable=not options.progress, desc="grading", dynamic_ncols=True)
        bar.update(len(done) * len(course.notebooks))
        if done:
            bar.write(f"{len(done)} student(s) already graded in {out} (kept; --fresh regrades)",
                      file=sys.stderr)
        lock = threading.Lock()

        if todo:
            make_course_dir(tmp / "template", solutions, timeout=options.timeout)
            n = min(options.workers, len(todo))
            idle: queue.Queue[Worker] = queue.Queue()
            for k in range(n):
                idle.put(Worker(k, tmp / f"worker-{k}", tmp / "template", library, course,
                                options))

            def grade_one(student: Path) -> None:
                worker = idle.get()
                try:
                    results = worker.grade_student(student)
                    worker.write_feedback(results, out_dir)
                    state.save(student, results)  # only now is the student finished
                finally:
                    idle.put(worker)
                with lock:
                    done[student.name] = results
                    for r in results:
                        if r.status not in ("ok", "missing"):
                            bar.write(f"{r.student}/{r.notebook}: {r.status}", file=sys.stderr)
                    bar.update(len(results))

            executor = ThreadPoolExecutor(max_workers=n)
            futures = [executor.submit(grade_one, s) for s in todo]
            try:
                for future in futures:
                    future.result()
            except (KeyboardInterrupt, Interrupted):
                _stop_all()
                executor.shutdown(wait=True, cancel_futures=True)
                bar.close()
                raise Interrupted(f"{len(done)} of {len(students)} students finished") from None
            executor.shutdown()
        bar.close()
        results = [r for s in students for r in done[s.name]]
        write_csvs(out_dir, results, course.max_points)
    return results


def main(submissions: str, out: str = "grades", options: Options | None = None) -> int:
    start = time.monotonic()
    try:
        results = grade(submissions, out=out, options=options)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (Interrupted, KeyboardInterrupt) as err:
        print(f"interrupted: {err or 'before grading started'}; no CSV written. Run the same "
              f"command again to continue where it stopped.", file=sys.stderr)
        return 130
    except NbgraderError as err:  # the course itself is broken, not the submissions
        print(f"error: {err}", file=sys.stderr)
        return 1
    students = len({r.student for r in results})
    print(f"graded {students} students, {len(results)} notebooks in "
          f"{time.monotonic() - start:.0f} s -> {out}", file=sys.stderr)
    return 0
