"""The grading task a Dask worker runs: (the grading bundle, one student's submission) -> a record.

The driver (autograder.pipeline.grade) packs everything a worker needs into one *bundle*, a
tar archive in memory that travels to the workers with the tasks (no shared file system):

    template/     nbgrader course directory: source copied from solutions/, the assignment
                  generated (gradebook with the grade cells and their checksums)
    library/      the modules a sandboxed kernel may import (autograder.pipeline.sandbox)
    course.pickle the course (notebooks, points, checks judged, hidden-test lines) and the
                  grading settings (timeouts, limits)

A worker unpacks a bundle once, into its local directory, cached by the bundle's hash. Each task
then grades one student in a course directory of its own (a copy of template/, removed at the
end): one `nbgrader autograde --student S` process whose kernels run in the sandbox. When that
fails (a kernel died, the budget ran out), nbgrader keeps nothing of the student, so each notebook
is graded again in a process of its own (`--notebook NB`): a notebook that hangs or kills its
kernel costs only that notebook. Then the trusted side takes over (autograder.judging.trusted):
the hidden tests' records are judged against the reference outside the sandbox, and a cell keeps
nbgrader's points only if they pass; the student's own cells are scanned for tampering
(autograder.judging.flags). Feedback is nbgrader's generate_feedback on notebooks whose hidden
tests and tracebacks were removed first.

A student's timeout, crash or memory error is a result (a status in the record), never an
exception: an exception means the grading machinery failed, and Dask may retry the task on
another worker. The task writes nothing the driver reads: the record carries the scores, the
statuses and the feedback pages, and the driver alone writes results.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook, MissingEntry

from autograder.judging import flags, trusted
from autograder.pipeline import feedback, sandbox
from autograder.pipeline.coursedir import ASSIGNMENT, NbgraderError, nbgrader_env, write_config

# Kernel start-up plus imports, on top of the per-cell timeout, for a notebook's wall budget.
STARTUP_BUDGET_S = 60
MAX_NOTEBOOK_BYTES = 20 * 2**20  # a larger .ipynb is refused as invalid (nothing is read)
_TOKEN_VAR = "AUTOGRADER_JOB"
_RUN_VAR = "AUTOGRADER_RUN"
STATUSES = ("ok", "missing", "invalid", "timeout", "crashed", "memory", "flagged", "error",
            "needs_manual")  # the last: set by the driver from the gradebook
# Where the workers of one machine take their kernel uids from (when they run as root): one
# lock file per uid, held for the worker process's life.
UID_SLOTS = Path("/tmp/autograder-kernel-uids")
UID_SLOT_COUNT = 1000
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass
class Result:
    """What grading one notebook of one student gave."""

    student: str
    notebook: str
    status: str = "ok"
    points: dict[str, float] = field(default_factory=dict)  # grade_id -> points
    seconds: float = 0.0
    flags: list[str] = field(default_factory=list)  # why the notebook is flagged
    messages: dict[str, str] = field(default_factory=dict)  # grade_id -> why it lost points


@dataclass
class Course:
    """What every worker needs to know about the course being graded."""

    notebooks: list[str]
    max_points: dict[str, dict[str, float]]  # notebook -> grade_id -> points
    code_cells: dict[str, int]
    checks: dict[str, dict[str, list]]  # notebook -> grade_id -> kernels and answer keys judged
    secrets: set[str]  # hidden-test lines that must not reach feedback


@dataclass
class Settings:
    """How to grade, the same on every worker (part of the bundle)."""

    timeout: int = 120  # per cell, seconds
    notebook_timeout: int | None = None  # per notebook; None: 60 s + timeout per code cell
    limits: sandbox.Limits = field(default_factory=sandbox.Limits)
    unsafe: bool = False  # run kernels without the sandbox
    threads: int = 1  # BLAS/OpenMP threads of a kernel


@dataclass(frozen=True)
class Bundle:
    """The grading bundle: a tar archive of template/, library/ and course.pickle, and its hash."""

    digest: str
    data: bytes


@dataclass
class Submission:
    """One student's notebooks as bytes (None: larger than MAX_NOTEBOOK_BYTES, not read)."""

    student: str
    files: dict[str, bytes | None]  # notebook (released name without .ipynb) -> content
    notebooks: list[str] | None = None  # grade only these (a regrade request); None: all


@dataclass
class StudentRecord:
    """What a task sends back: the results, the feedback pages, and lines for the instructor."""

    student: str
    results: list[Result]
    pages: dict[str, str]  # notebook -> feedback HTML
    notes: list[str] = field(default_factory=list)
    worker: str = ""
    # notebook -> the autograded notebook (JSON; hidden tests and tracebacks removed, the
    # judge's messages in), for the course's autograded/ folder, which the formgrader reads
    autograded: dict[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------- the bundle


def make_bundle(template: Path, library: Path, course: Course, settings: Settings) -> Bundle:
    """Pack the course directory, the sandbox library, the course and the settings."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, path in (("template", template), ("library", library)):
            tar.add(path, arcname=name, filter=_no_caches)
        # Pickled: the answer keys are trusted.Answer tuples; the driver made it, workers trust it.
        described = pickle.dumps((course, settings))
        info = tarfile.TarInfo("course.pickle")
        info.size = len(described)
        tar.addfile(info, io.BytesIO(described))
    data = buf.getvalue()
    return Bundle(hashlib.sha256(data).hexdigest(), data)


def _no_caches(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    return None if "__pycache__" in info.name or info.name.endswith(".pyc") else info


_UNPACK_LOCK = threading.Lock()


def worker_directory() -> Path:
    """This Dask worker's local directory (a temporary folder outside a worker)."""
    try:
        from distributed import get_worker

        return Path(get_worker().local_directory)
    except ValueError:  # not on a worker (tests, a plain function call)
        return Path(os.environ.get("TMPDIR", "/tmp"))


def _extract(tar: tarfile.TarFile, dest: Path) -> None:
    """Extract the bundle with tarfile's "data" filter; Pythons before 3.11.4 (Debian 12 has
    3.11.2) have no filters, so there the same rules are checked here: regular files and
    folders only, every path inside dest."""
    if hasattr(tarfile, "data_filter"):
        tar.extractall(dest, filter="data")
        return
    members = tar.getmembers()
    for member in members:
        target = (dest / member.name).resolve()
        if not (member.isfile() or member.isdir()) or not target.is_relative_to(dest.resolve()):
            raise ValueError(f"refusing bundle member {member.name!r}")
    tar.extractall(dest, members=members)


def unpack(bundle: Bundle) -> Path:
    """The folder holding `bundle`'s files on this worker, unpacked on first use."""
    cache = worker_directory() / "autograder" / "bundles"
    root = cache / bundle.digest[:32]
    with _UNPACK_LOCK:
        if (root / "course.pickle").is_file():
            return root
        cache.mkdir(parents=True, exist_ok=True)
        partial = cache / f".{root.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        with tarfile.open(fileobj=io.BytesIO(bundle.data), mode="r:gz") as tar:
            _extract(tar, partial)
        os.chmod(partial, 0o755)  # kernels of other uids read the library
        if root.exists():
            shutil.rmtree(root)
        os.replace(partial, root)
    return root


def read_course(root: Path) -> tuple[Course, Settings]:
    with open(root / "course.pickle", "rb") as f:
        return pickle.load(f)


# ---------------------------------------------------------------- running nbgrader


class Interrupted(Exception):
    """The driver stopped the run: running jobs were killed, nothing half-graded is kept."""


_STOPPED_RUNS: set[str] = set()  # runs the driver stopped (Ctrl-C): no new jobs start
_RUNNING: dict[str, str] = {}  # token -> run, of the nbgrader jobs running now
_RUNNING_LOCK = threading.Lock()


def _kill_job(token: str) -> None:
    """Kill every process (kernels and their sandboxes included) started for job `token`.

    jupyter_client starts kernels in their own session, so killing nbgrader's process group
    can leave a runaway kernel behind; they all carry the job's token in their environment.
    """
    kill_processes_with_env(f"{_TOKEN_VAR}={token}")


def kill_processes_with_env(entry: str) -> None:
    """SIGKILL every process whose environment holds `entry` (NAME=value)."""
    needle = entry.encode()
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if needle in (proc / "environ").read_bytes().split(b"\0"):
                os.kill(int(proc.name), signal.SIGKILL)
        except (OSError, ValueError):
            continue


def stop_run(run: str) -> int:
    """Run on every worker when the driver is interrupted: no new job of `run` starts, and the
    running ones are killed. Returns how many were running."""
    _STOPPED_RUNS.add(run)
    with _RUNNING_LOCK:
        tokens = [token for token, of in _RUNNING.items() if of == run]
    for token in tokens:
        _kill_job(token)
    return len(tokens)


def _run_job(args: list[str], cwd: Path, budget: float, run: str,
             extra_env=lambda token: {}) -> tuple[int | None, str]:
    """Run nbgrader ARGS; (return code or None on timeout, output)."""
    if run in _STOPPED_RUNS:
        raise Interrupted
    token = uuid.uuid4().hex
    env = nbgrader_env({_TOKEN_VAR: token, _RUN_VAR: run, **extra_env(token)})
    with _RUNNING_LOCK:
        _RUNNING[token] = run
    try:
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
            _RUNNING.pop(token, None)
        if run in _STOPPED_RUNS:
            raise Interrupted


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
    """The status of a notebook whose nbgrader run failed, from nbgrader's log."""
    crash_words = ("DeadKernelError", "Kernel died", "kernel died", "UnresponsiveKernelError",
                   "MemoryError")
    if any(word in log for word in crash_words):
        return "crashed"
    # nbclient raises (instead of recording a cell error) when a cell's output stops coming, for
    # instance after a fork loop has filled the kernel's process cap with clones.
    if "CellTimeoutError" in log:
        return "timeout"
    return "error"


def cell_errors(graded: Path) -> dict[str, str]:
    """grade_id -> "Name: message" of the first error each grade cell of the autograded
    notebook at `graded` shows (the failing check's message; no traceback)."""
    try:
        nb = nbformat.read(graded, as_version=4)
    except Exception:  # noqa: BLE001
        return {}
    errors = {}
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if not gid or cell.cell_type != "code" or gid in errors:
            continue
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                text = _ANSI.sub("", f"{out.get('ename', 'Error')}: {out.get('evalue', '')}")
                errors[gid] = " ".join(text.split())[:1000]
                break
    return errors


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


_UID_SLOT: tuple[int, object] | None = None


def _uid_in_use(uid: int) -> bool:
    """Whether a process of this machine runs as `uid`."""
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if proc.stat().st_uid == uid:
                return True
        except OSError:
            continue
    return False


def kernel_uid() -> int | None:
    """The unprivileged uid this worker's kernels run as when the worker is root (so the process
    cap means something): a uid no other worker on this machine holds. None when not root."""
    global _UID_SLOT
    if os.geteuid() != 0:
        return None
    if _UID_SLOT is None:
        UID_SLOTS.mkdir(mode=0o700, exist_ok=True)
        for k in range(UID_SLOT_COUNT):
            handle = open(UID_SLOTS / str(k), "w")  # noqa: SIM115 - held while the worker lives
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                continue
            if _uid_in_use(sandbox.FIRST_UID + k):  # a grader that takes no lock, an orphan
                handle.close()
                continue
            _UID_SLOT = (sandbox.FIRST_UID + k, handle)
            break
        else:
            raise RuntimeError(f"all {UID_SLOT_COUNT} kernel uids of this machine are taken")
    return _UID_SLOT[0]


# ---------------------------------------------------------------- one student


class Job:
    """An nbgrader course directory of its own, grading one student."""

    def __init__(self, root: Path, bundle_root: Path, run: str):
        self.course, self.settings = read_course(bundle_root)
        shutil.copytree(bundle_root / "template", root)
        os.chmod(root.parent, 0o711)
        os.chmod(root, 0o711)  # the kernels' uids must reach their scratch folders
        write_config(root, timeout=self.settings.timeout, sandboxed=True)
        self.root = root
        self.library = bundle_root / "library"
        self.run = run
        self.uid = kernel_uid()
        self.notes: list[str] = []

    # -- running nbgrader

    def _sandbox_env(self, sid: str):
        def env(token: str) -> dict[str, str]:
            return {sandbox.SANDBOX_ENV: sandbox.settings(
                self.root / "k", self.library, self.settings.limits, uid=self.uid,
                threads=self.settings.threads, unsafe=self.settings.unsafe, token=token)}
        return env

    def _budget(self, nb: str) -> float:
        if self.settings.notebook_timeout:
            return self.settings.notebook_timeout
        return STARTUP_BUDGET_S + self.settings.timeout * max(1, self.course.code_cells[nb])

    def _graded(self, sid: str, nb: str) -> Path:
        return self.root / "autograded" / sid / ASSIGNMENT / f"{nb}.ipynb"

    def grade(self, submission: Submission) -> list[Result]:
        sid = submission.student
        submitted = self.root / "submitted" / sid / ASSIGNMENT
        submitted.mkdir(parents=True)
        notebooks = submission.notebooks or self.course.notebooks
        results = {}
        for nb in notebooks:
            content = submission.files.get(nb, b"")
            path = submitted / f"{nb}.ipynb"
            if nb not in submission.files:
                results[nb] = Result(sid, nb, "missing")
                continue
            if content is not None:
                path.write_bytes(content)
            if content is None or not read_notebook(path):
                path.unlink(missing_ok=True)
                results[nb] = Result(sid, nb, "invalid")
        todo = [nb for nb in notebooks if nb not in results]
        if todo:
            results.update(self._autograde_all(sid, todo))
        self._read_points(sid, results)
        for nb in todo:
            self._trust(sid, results[nb], submitted / f"{nb}.ipynb")
        return [results[nb] for nb in notebooks]

    def _autograde_all(self, sid: str, notebooks: list[str]) -> dict[str, Result]:
        """All of a student's notebooks in one nbgrader run (one start-up instead of one per
        notebook); if that run fails, nbgrader keeps nothing, so grade them one by one."""
        start = time.monotonic()
        rc, _ = _run_job(["autograde", ASSIGNMENT, "--student", sid, "--force"], self.root,
                         sum(self._budget(nb) for nb in notebooks), self.run,
                         self._sandbox_env(sid))
        if rc == 0 and all(self._graded(sid, nb).is_file() for nb in notebooks):
            seconds = (time.monotonic() - start) / len(notebooks)
            return {nb: Result(sid, nb, _status_of(self._graded(sid, nb)), seconds=seconds)
                    for nb in notebooks}
        return {nb: self._autograde(sid, nb) for nb in notebooks}

    def _autograde(self, sid: str, nb: str) -> Result:
        start = time.monotonic()
        rc, log = _run_job(["autograde", ASSIGNMENT, "--student", sid, "--notebook", nb,
                            "--force"], self.root, self._budget(nb), self.run,
                           self._sandbox_env(sid))
        graded = self._graded(sid, nb)
        if rc is None:
            status = "timeout"
        elif rc != 0 or not graded.is_file():
            status = _crash_status(log)
        else:
            status = _status_of(graded)
        if status not in ("ok", "timeout", "memory") or rc is None:
            graded.unlink(missing_ok=True)
        if status == "error":  # not the student's doing: the instructor needs nbgrader's words
            last = [line for line in log.strip().splitlines() if line.strip()][-1:] or ["no output"]
            self.notes.append(f"{sid}/{nb}: nbgrader failed: {last[0][:300]}")
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
        records = self.root / "k" / nb / "records"
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
        result.messages = {**cell_errors(graded), **news}  # for the instructor: messages.csv
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

    def feedback_pages(self, results: list[Result]) -> dict[str, str]:
        """notebook -> feedback HTML for `results` (one student), from one nbgrader run."""
        sid = results[0].student
        for r in results:
            if self._graded(sid, r.notebook).is_file():
                feedback.redact_notebook(self._graded(sid, r.notebook))
        if any(self._graded(sid, r.notebook).is_file() for r in results):
            _run_job(["generate_feedback", ASSIGNMENT, "--student", sid, "--force"], self.root,
                     STARTUP_BUDGET_S + 10 * len(results), self.run)
        pages = {}
        for r in results:
            page_path = self.root / "feedback" / sid / ASSIGNMENT / f"{r.notebook}.html"
            graded = self._graded(sid, r.notebook).is_file()
            page = page_path.read_text() if graded and page_path.is_file() else None
            leaked = feedback.leaks(page, self.course.secrets) if page is not None else []
            if leaked:
                self.notes.append(f"{sid}/{r.notebook}: feedback page withheld, it shows "
                                  f"hidden-test source ({leaked[0]!r})")
            if page is None or leaked:
                page = feedback.placeholder_page(
                    sid, r.notebook, r.status, sum(r.points.values()),
                    sum(self.course.max_points[r.notebook].values()))
            pages[r.notebook] = page
        return pages


def _job_folder() -> Path:
    """A fresh folder for one task, on a short path: the kernel's ZeroMQ IPC sockets live in
    it (JOB/k/<notebook>/kernel-ipc-N), and a socket path may not exceed 107 bytes."""
    parent = tempfile.gettempdir()
    if len(parent) > 40:
        parent = "/tmp"
    return Path(tempfile.mkdtemp(prefix="ag-", dir=parent))


def grade_submission(bundle: Bundle, submission: Submission, run: str) -> StudentRecord:
    """The Dask task: grade one student's submission with `bundle`, in a folder of its own
    (removed afterwards); `run` names the grading run."""
    bundle_root = unpack(bundle)
    root = _job_folder() / "course"
    try:
        job = Job(root, bundle_root, run)
        results = job.grade(submission)
        pages = job.feedback_pages(results)
        autograded = {r.notebook: job._graded(r.student, r.notebook).read_text(encoding="utf-8")
                      for r in results if job._graded(r.student, r.notebook).is_file()}
        return StudentRecord(submission.student, results, pages, job.notes, _worker_address(),
                             autograded)
    finally:
        shutil.rmtree(root.parent, ignore_errors=True)


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except ValueError:
        return ""
