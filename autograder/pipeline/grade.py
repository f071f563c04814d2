"""`python -m autograder grade SUBMISSIONS`: grade a whole class with nbgrader, safely, on Dask.

The driver (this module) does what needs the instructor's files and writes every result; the
grading itself runs as Dask tasks (autograder.pipeline.tasks), one per student, on a local
cluster of worker processes by default or on a running cluster (autograder.pipeline.cluster):

1. read the submissions (a folder, or a .zip extracted into a temporary folder) and the course;
   students finished by an earlier run of the same command are taken from OUT/.state/;
2. build the grading bundle once: an nbgrader course directory with the assignment generated
   (template/), the sandbox library, the course and the settings, packed as bytes and
   scattered to every worker (no shared file system); create the gradebook's schema and course
   rows (--db, autograder.pipeline.gradebook);
3. check each worker (autograder.pipeline.preflight) and submit one task per student, with the
   student's notebooks as bytes, to the workers that passed; a task whose worker dies runs
   again elsewhere (at most twice);
4. as records come back: write the student's feedback pages, remember the student in
   OUT/.state/ (keyed by the submission's and the grader's content, so an interrupted run picks
   up where it stopped; OUT/.state/graded.log says which run and worker graded whom), record
   the scores in the gradebook, and move the progress bar;
5. write the CSVs once, at the end, atomically (grades, exercises, flags, messages: why each
   graded cell lost its points, timings: seconds per notebook), then the class report
   (OUT/report.html, autograder.instructor.report; a failure there keeps the CSVs).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import nbformat
from tqdm import tqdm

from autograder.judging import trusted
from autograder.pipeline import cluster, feedback, nbcourse, preflight, sandbox, tasks
from autograder.pipeline.coursedir import (
    ASSIGNMENT,
    SOLUTIONS,
    NbgraderError,
    course_dir_from_cache,
    solution_notebooks,
)
from autograder.pipeline.gradebook import CourseGradebook, GradebookError
from autograder.pipeline.tasks import (
    MAX_NOTEBOOK_BYTES,
    STATUSES,
    Course,
    Interrupted,
    Result,
    StudentRecord,
    Submission,
    read_notebook,
)

__all__ = ["STATUSES", "Course", "Options", "Result", "UsageError", "grade", "main", "read_notebook"]

STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$")
LOST_WORKERS_WAIT_S = 120  # how long to wait for a checked worker when none is left
IN_FLIGHT_PER_WORKER = 3  # students submitted ahead, per worker
JOIN_POLL_S = 5  # how often the driver looks for workers that joined the cluster


@dataclass
class Options:
    """How to grade: where, parallelism, limits, sandbox (each has a command-line flag)."""

    workers: int = 1  # worker processes of the local cluster
    timeout: int = 120  # per cell, seconds
    notebook_timeout: int | None = None  # per notebook; None: 60 s + timeout per code cell
    limits: sandbox.Limits = field(default_factory=sandbox.Limits)
    unsafe: bool = False  # run kernels without the sandbox
    fresh: bool = False  # ignore finished students remembered in OUT/.state
    progress: bool = True
    scheduler: str | None = None  # tcp://HOST:PORT of a running Dask scheduler
    scheduler_file: str | None = None  # or its scheduler file
    db: str | None = None  # gradebook URL; None: sqlite:///COURSE_DIR/gradebook.db
    course_dir: str | None = None  # nbgrader course directory; None: autograder/ (nbcourse)
    students: list[str] | None = None  # regrade just these students (--student, forced)
    notebooks: list[str] | None = None  # regrade just these notebooks (--notebook, forced)
    client: object | None = None  # (Python only) a connected distributed.Client, e.g. Dask Gateway's


class UsageError(Exception):
    """A problem with the command line, the submissions or the cluster (exit status 2)."""


class ClusterLost(Exception):
    """Every checked worker left the cluster before the class was graded (exit status 1)."""


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
    grades, exercises, flagged, messages, timings = [], [], [], [], []
    for r in sorted(results, key=lambda r: (r.student, r.notebook)):
        cells = max_points[r.notebook]
        got = {gid: r.points.get(gid, 0.0) for gid in cells}
        grades.append([r.student, r.notebook, _num(sum(got.values())),
                       _num(sum(cells.values())), r.status])
        exercises += [[r.student, r.notebook, gid, _num(got[gid]), _num(cells[gid])]
                      for gid in cells]  # cells in notebook order
        flagged += [[r.student, r.notebook, reason] for reason in r.flags]
        messages += [[r.student, r.notebook, gid, r.messages[gid]] for gid in cells
                     if gid in r.messages and got[gid] < cells[gid]]
        if r.status not in ("missing", "invalid"):
            timings.append([r.student, r.notebook, f"{r.seconds:.2f}"])
    _write_atomic(out / "grades.csv",
                  _csv_text(["student_id", "notebook", "score", "max_score", "status"], grades))
    _write_atomic(out / "exercises.csv",
                  _csv_text(["student_id", "notebook", "grade_id", "points", "max_points"],
                            exercises))
    _write_atomic(out / "flags.csv", _csv_text(["student_id", "notebook", "reason"], flagged))
    _write_atomic(out / "messages.csv",
                  _csv_text(["student_id", "notebook", "grade_id", "message"], messages))
    _write_atomic(out / "timings.csv", _csv_text(["student_id", "notebook", "seconds"], timings))


def write_class_report(out: Path) -> None:
    """OUT/report.html from the CSVs just written; a failure here costs the report only."""
    from autograder.instructor import report

    try:
        report.write_report(out)
    except Exception as err:  # noqa: BLE001 - the grades are already safe in the CSVs
        print(f"warning: the class report was not written ({type(err).__name__}: {err}); "
              f"`python -m autograder report {out}` tries again", file=sys.stderr)


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
    settings = json.dumps([options.timeout, options.notebook_timeout, asdict(options.limits),
                           options.unsafe, preflight.code_hash()])
    return _digest(sources, settings)


class State:
    """OUT/.state/<student>.json: the results of a finished student, and what they were for;
    OUT/.state/graded.log: one line per student graded, with the run and the worker."""

    def __init__(self, out: Path, fingerprint: str, course: Course):
        self.folder = out / ".state"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.fingerprint = fingerprint
        self.course = course

    def key(self, student: Path) -> str:
        files = [notebook_folder(student) / f"{nb}.ipynb" for nb in self.course.notebooks]
        present = [p for p in files if p.is_file()]
        return _digest(present, self.fingerprint + "|" + ",".join(p.name for p in present))

    def load(self, student: Path, out: Path, *, any_key: bool = False) -> list[Result] | None:
        """The student's remembered results if they are for the submission and grader of now
        (`any_key`: whatever they were for), with their feedback pages; else None."""
        path = self.folder / f"{student.name}.json"
        try:
            saved = json.loads(path.read_text())
            if saved["key"] != self.key(student) and not any_key:
                return None
            results = [Result(**r) for r in saved["results"]]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        pages = [out / "feedback" / student.name / f"{r.notebook}.html" for r in results]
        if [r.notebook for r in results] != self.course.notebooks or \
                not all(p.is_file() for p in pages):
            return None
        return results

    def save(self, student: Path, results: list[Result], *, run: str, worker: str,
             stale: bool = False) -> None:
        """Remember `results`; `stale`: some of them are for an older submission or grader
        (a --notebook regrade of a student whose other notebooks changed), so the next plain
        run grades the student again."""
        key = "stale" if stale else self.key(student)
        _write_atomic(self.folder / f"{student.name}.json", json.dumps(
            {"key": key, "results": [asdict(r) for r in results]}))
        with open(self.folder / "graded.log", "a", encoding="utf-8") as log:
            log.write(json.dumps({"run": run, "student": student.name, "worker": worker}) + "\n")


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


def read_submission(student: Path, course: Course,
                    notebooks: list[str] | None = None) -> Submission:
    """The student's course notebooks as bytes (a notebook too large to grade is not read);
    `notebooks`: only these are read and graded."""
    files: dict[str, bytes | None] = {}
    for nb in notebooks or course.notebooks:
        path = notebook_folder(student) / f"{nb}.ipynb"
        if path.is_file():
            files[nb] = None if path.stat().st_size > MAX_NOTEBOOK_BYTES else path.read_bytes()
    return Submission(student.name, files, notebooks)


def _failed_record(student: str, course: Course, why: str,
                   notebooks: list[str] | None = None) -> StudentRecord:
    """A student whose task failed on every worker it was given: status error, score 0."""
    notebooks = notebooks or course.notebooks
    results = [Result(student, nb, "error") for nb in notebooks]
    pages = {nb: feedback.placeholder_page(student, nb, "error", 0,
                                           sum(course.max_points[nb].values()))
             for nb in notebooks}
    return StudentRecord(student, results, pages, [f"{student}: not graded ({why})"])


class Joining:
    """Workers that join the cluster during a run: each is checked (autograder.pipeline.preflight)
    before it gets work, as the ones there at the start were."""

    def __init__(self, client, bundle_future, seen: set[str]):
        self.client, self.bundle_future, self.seen = client, bundle_future, seen
        self.expected = preflight.versions()
        self.running: dict = {}  # check future -> (worker address, when the check started)
        self.last_look = time.monotonic()

    def checks(self) -> set:
        return set(self.running)

    def poll(self) -> list[tuple[str, str | None]]:
        """(address, None or why it gets no work) for each check that ended; starts the checks
        of workers seen for the first time (looking at most every JOIN_POLL_S)."""
        now = time.monotonic()
        if now - self.last_look >= JOIN_POLL_S:
            self.last_look = now
            for addr in sorted(set(self.client.scheduler_info(n_workers=-1)["workers"]) - self.seen):
                self.seen.add(addr)
                future = preflight.submit_check(self.client, self.bundle_future, addr,
                                                self.expected)
                self.running[future] = (addr, now)
        ended = []
        for future, (addr, started) in list(self.running.items()):
            late = now - started > preflight.PREFLIGHT_TIMEOUT_S
            if future.status in ("finished", "error") or late:
                ended.append((addr, preflight.verdict(future)))
                del self.running[future]
        return ended


class Run:
    """One grading run of the driver: the cluster, the output folder and the bookkeeping."""

    def __init__(self, out: Path, course: Course, state: State, book: CourseGradebook,
                 bar: tqdm, course_root: Path):
        self.id = uuid.uuid4().hex[:12]
        self.out, self.course, self.state, self.book, self.bar = out, course, state, book, bar
        self.course_root = course_root  # the nbgrader course directory (nbcourse)
        self.done: dict[str, list[Result]] = {}
        self.graded: set[str] = set()  # students graded in this run
        # A --notebook regrade: the student's other notebooks keep these results, and whether
        # they were for the submission of now.
        self.previous: dict[str, tuple[list[Result], bool]] = {}
        self.notebooks: list[str] | None = None  # the notebooks each task grades (None: all)

    def keep(self, student: Path, record: StudentRecord, *, finished: bool = True) -> None:
        """The driver writes one student's results: feedback, state, gradebook, progress."""
        dest = self.out / "feedback" / student.name
        dest.mkdir(parents=True, exist_ok=True)
        for nb, page in record.pages.items():
            _write_atomic(dest / f"{nb}.html", page)
        nbcourse.place(self.course_root, student.name, record.autograded, record.pages,
                       notebook_folder(student), [r.notebook for r in record.results])
        self.graded.add(student.name)
        results, current = record.results, True
        if student.name in self.previous:
            old, current = self.previous[student.name]
            new = {r.notebook: r for r in record.results}
            results = [new.get(r.notebook, r) for r in old]
        if finished:  # only now is the student finished: a rerun skips them
            self.state.save(student, results, run=self.id, worker=record.worker,
                            stale=not current)
        self.book.record(student.name, results)
        self.done[student.name] = results
        for note in record.notes:
            self.bar.write(note, file=sys.stderr)
        for r in record.results:
            if r.status not in ("ok", "missing"):
                self.bar.write(f"{r.student}/{r.notebook}: {r.status}", file=sys.stderr)
        self.bar.update(len(record.results))

    def grade_on(self, client, bundle: tasks.Bundle, todo: list[Path]) -> None:
        """Check the workers, submit one task per student, keep the records as they arrive."""
        from distributed import wait

        bundle_future = client.scatter(bundle, broadcast=True, hash=False)
        addresses = sorted(client.scheduler_info(n_workers=-1)["workers"])
        passed, failed = preflight.check_workers(client, bundle_future, addresses)
        if not passed:
            first = next(iter(failed.items()))
            raise UsageError(f"no usable Dask worker ({len(failed)} checked): "
                             f"{first[0]}: {first[1]}")
        for addr, why in failed.items():
            self.bar.write(f"worker {addr} gets no work: {why}", file=sys.stderr)
        self.bar.write(f"grading {len(todo)} of {len(todo) + len(self.done)} students on "
                       f"{len(passed)} Dask worker(s)", file=sys.stderr)
        # A bounded window of tasks in flight: the scheduler holds each waiting task's notebooks,
        # so a class of thousands is read and sent a few students ahead of the workers.
        waiting = list(reversed(todo))
        futures: dict = {}
        pending: set = set()
        joining = Joining(client, bundle_future, seen=set(passed) | set(failed))
        lonely_since = None
        try:
            while waiting or pending:
                while waiting and len(pending) < IN_FLIGHT_PER_WORKER * len(passed):
                    student = waiting.pop()
                    notebooks = self.notebooks if student.name in self.previous else None
                    future = client.submit(
                        tasks.grade_submission, bundle_future,
                        read_submission(student, self.course, notebooks), self.id,
                        key=f"grade-{student.name}-{self.id}", workers=list(passed),
                        allow_other_workers=False, retries=cluster.ALLOWED_FAILURES, pure=False)
                    futures[future] = student
                    pending.add(future)
                try:
                    finished, _ = wait(pending | joining.checks(), timeout=JOIN_POLL_S,
                                       return_when="FIRST_COMPLETED")
                except TimeoutError:
                    finished = set()
                for addr, why in joining.poll():  # workers that joined during the run
                    if why is None:
                        passed.append(addr)
                        self.bar.write(f"worker {addr} joined and passed its check: it grades "
                                       f"too", file=sys.stderr)
                    else:
                        self.bar.write(f"worker {addr} gets no work: {why}", file=sys.stderr)
                finished &= pending
                pending -= finished
                if not finished:
                    alive = set(client.scheduler_info(n_workers=-1)["workers"]) & set(passed)
                    lonely_since = None if alive else (lonely_since or time.monotonic())
                    if lonely_since and time.monotonic() - lonely_since > LOST_WORKERS_WAIT_S:
                        raise ClusterLost(f"every checked Dask worker left the cluster; "
                                          f"{len(pending) + len(waiting)} students not graded") \
                            from None
                    continue
                for future in finished:
                    student = futures.pop(future)
                    if future.status == "finished":
                        self.keep(student, future.result())
                    else:  # the machinery failed on every worker it had: say so, keep going
                        err = future.exception()
                        why = f"{type(err).__name__}: {(str(err).splitlines() or [''])[0]}"
                        notebooks = self.notebooks if student.name in self.previous else None
                        self.keep(student, _failed_record(student.name, self.course, why,
                                                          notebooks), finished=False)
        except BaseException:
            client.cancel(list(pending))
            try:
                client.run(tasks.stop_run, self.id, on_error="ignore")
            except Exception:  # noqa: BLE001 - workers that are gone run nothing any more
                pass
            raise


def select_students(students: list[Path], wanted: list[str] | None) -> set[str] | None:
    """The student ids of a regrade request (--student), each checked against SUBMISSIONS."""
    if not wanted:
        return None
    known = {s.name for s in students}
    unknown = [sid for sid in wanted if sid not in known]
    if unknown:
        raise UsageError(f"--student {unknown[0]}: no such student folder in the submissions")
    return set(wanted)


def select_notebooks(course: Course, wanted: list[str] | None) -> list[str] | None:
    """The notebooks of a regrade request (--notebook NAME, NAME.ipynb), in course order."""
    if not wanted:
        return None
    names = {name.removesuffix(".ipynb") for name in wanted}
    unknown = sorted(names - set(course.notebooks))
    if unknown:
        raise UsageError(f"--notebook {unknown[0]}: not a notebook of the course "
                         f"({', '.join(course.notebooks)})")
    return [nb for nb in course.notebooks if nb in names]


def grade(submissions: str, out: str = "grades", options: Options | None = None,
          solutions: Path = SOLUTIONS) -> list[Result]:
    """Grade every student in SUBMISSIONS; write the CSVs, feedback and gradebook."""
    options = options or Options()
    numbers = {"--workers": options.workers, "--timeout": options.timeout,
               "--notebook-timeout": options.notebook_timeout or 1,
               "--memory": options.limits.memory_mb, "--cpu-time": options.limits.cpu_s,
               "--processes": options.limits.processes}
    for flag, value in numbers.items():
        if value < 1:
            raise UsageError(f"{flag} must be at least 1 (got {value})")
    if options.scheduler and options.scheduler_file:
        raise UsageError("give --scheduler or --scheduler-file, not both")
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
        chosen = select_students(students, options.students)
        notebooks = select_notebooks(course, options.notebooks)
        library = sandbox.sandbox_library(tmp / "library")
        local = not (options.scheduler or options.scheduler_file or options.client)
        if local and not options.unsafe:  # the local workers share this machine: say it now
            try:
                (tmp / "probe").mkdir()
                sandbox.check_available(tmp / "probe", library)
            except sandbox.SandboxError as err:
                raise UsageError(str(err)) from None
        out_dir = Path(out)
        out_dir.mkdir(parents=True, exist_ok=True)
        state = State(out_dir, grader_fingerprint(sources, options), course)
        selective = chosen is not None or notebooks is not None
        remembered: dict[str, list[Result]] = {}
        previous: dict[str, tuple[list[Result], bool]] = {}
        never: list[str] = []  # (a regrade request) students not chosen and never graded
        for student in students:
            if not selective:
                results = None if options.fresh else state.load(student, out_dir)
                if results is not None:
                    remembered[student.name] = results
                continue
            old = state.load(student, out_dir, any_key=True)
            if chosen is None or student.name in chosen:  # regraded, whatever was remembered
                if notebooks is not None and old is not None:
                    previous[student.name] = (old, state.load(student, out_dir) is not None)
            elif old is not None:
                remembered[student.name] = old
            else:
                never.append(student.name)
        todo = [s for s in students if s.name not in remembered and s.name not in never]

        course_dir_from_cache(tmp / "template", solutions, timeout=options.timeout)
        course_root = nbcourse.prepare(
            Path(options.course_dir) if options.course_dir else nbcourse.default_course_dir(),
            timeout=options.timeout)
        db_url = options.db or nbcourse.default_url(course_root)
        try:
            book = CourseGradebook(db_url, tmp / "template" / "gradebook.db")
        except GradebookError as err:
            raise UsageError(str(err)) from None
        total = sum(len(notebooks) if s.name in previous else len(course.notebooks)
                    for s in todo) + len(remembered) * len(course.notebooks)
        bar = tqdm(total=total, unit="notebook", file=sys.stderr,
                   disable=not options.progress, desc="grading", dynamic_ncols=True)
        run = Run(out_dir, course, state, book, bar, course_root)
        run.previous, run.notebooks = previous, notebooks
        try:
            for sid, results in remembered.items():
                if not selective:  # a regrade request leaves the others' gradebook rows alone
                    book.record(sid, results)
                run.done[sid] = results
            bar.update(len(remembered) * len(course.notebooks))
            if remembered and selective:
                bar.write(f"regrade request: {len(todo)} student(s), "
                          f"{', '.join(notebooks) if notebooks else 'every notebook'}; "
                          f"{len(remembered)} other student(s) kept as they were",
                          file=sys.stderr)
            elif remembered:
                bar.write(f"{len(remembered)} student(s) already graded in {out} (kept; --fresh "
                          f"regrades)", file=sys.stderr)
            for sid in never:
                bar.write(f"{sid}: never graded in {out}, left out of this regrade request "
                          f"(run without --student to grade everyone)", file=sys.stderr)
            if todo:
                threads = max(1, (os.cpu_count() or 1) // options.workers) if local else 1
                bundle = tasks.make_bundle(tmp / "template", library, course, tasks.Settings(
                    timeout=options.timeout, notebook_timeout=options.notebook_timeout,
                    limits=options.limits, unsafe=options.unsafe, threads=threads))
                (tmp / "dask").mkdir()
                try:
                    with cluster.connect(workers=min(options.workers, len(todo)),
                                         scheduler=options.scheduler,
                                         scheduler_file=options.scheduler_file,
                                         local_directory=tmp / "dask",
                                         client=options.client) as client:
                        run.grade_on(client, bundle, todo)
                except cluster.ClusterError as err:
                    raise UsageError(str(err)) from None
            manual_scores, comments = book.manual_grades()
        except KeyboardInterrupt:
            raise Interrupted(f"{len(run.done)} of {len(students)} students finished") from None
        except GradebookError as err:
            raise UsageError(str(err)) from None
        finally:
            bar.close()
            book.close()
        results = with_manual([r for s in students for r in run.done.get(s.name, [])],
                              manual_scores, {(nb, gid) for nb, gid in book.manual
                                              if gid in course.max_points.get(nb, {})})
        write_csvs(out_dir, results, course.max_points)
        hand_graded = {s for s, _, _ in [*manual_scores, *comments]} & set(run.done)
        if selective:  # a regrade request leaves the others' feedback pages alone
            hand_graded &= {s.name for s in todo}
        for sid in sorted(hand_graded):
            _manual_feedback(run, sid, db_url, manual_scores, comments)
        for sid in run.done:
            if sid in run.graded or sid in hand_graded or \
                    not (out_dir / "feedback-zips" / f"{sid}.zip").is_file():
                nbcourse.zip_feedback(out_dir, sid)
    waiting = sum(r.status == "needs_manual" for r in results)
    if waiting:
        print(f"{waiting} notebook(s) have hand-graded answers without a score (status "
              f"needs_manual): grade them in the formgrader ({course_root}), then run the same "
              f"command again", file=sys.stderr)
    write_class_report(out_dir)
    return results


def with_manual(results: list[Result], scores: dict[tuple[str, str, str], float],
                manual_cells: set[tuple[str, str]]) -> list[Result]:
    """`results` as the CSVs show them: the graders' manual scores in (hand-graded cells, and
    autograded cells a grader overrode), and status needs_manual where a graded notebook's
    hand-graded cells still lack a score. The remembered results (OUT/.state) stay automatic."""
    given: dict[tuple[str, str], dict[str, float]] = {}
    for (sid, nb, gid), score in scores.items():
        given.setdefault((sid, nb), {})[gid] = score
    shown = []
    for r in results:
        mine = given.get((r.student, r.notebook), {})
        waiting = [gid for nb, gid in manual_cells if nb == r.notebook and gid not in mine]
        status = "needs_manual" if r.status == "ok" and waiting else r.status
        if mine or status != r.status:
            points = {**r.points, **mine} if r.status not in ("missing", "invalid") else r.points
            r = replace(r, points=points, status=status)
        shown.append(r)
    return shown


def _manual_feedback(run: Run, sid: str, db_url: str, scores: dict, comments: dict) -> None:
    """Make `sid`'s feedback pages again, with the manual scores and comments, when these
    changed since the pages were made (OUT/.state/<sid>.manual.json) or the student was graded."""
    given = sorted([[*k, "score", v] for k, v in scores.items() if k[0] == sid] +
                   [[*k, "comment", v] for k, v in comments.items() if k[0] == sid], key=str)
    memo = run.state.folder / f"{sid}.manual.json"
    if sid not in run.graded and memo.is_file() and json.loads(memo.read_text()) == given:
        return
    notebooks = sorted({nb for _, nb, *_ in given})
    pages, problem = nbcourse.manual_feedback(run.course_root, db_url, sid, notebooks,
                                              run.course.secrets)
    if problem:
        print(f"{sid}: feedback with the manual grades: {problem}", file=sys.stderr)
    for nb, page in pages.items():
        _write_atomic(run.out / "feedback" / sid / f"{nb}.html", page)
    nbcourse.update_feedback(run.course_root, sid, pages)
    if pages:
        _write_atomic(memo, json.dumps(given))


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
    except ClusterLost as err:
        print(f"error: {err}; no CSV written. Run the same command again to continue where it "
              f"stopped.", file=sys.stderr)
        return 1
    except NbgraderError as err:  # the course itself is broken, not the submissions
        print(f"error: {err}", file=sys.stderr)
        return 1
    students = len({r.student for r in results})
    print(f"graded {students} students, {len(results)} notebooks in "
          f"{time.monotonic() - start:.0f} s -> {out}", file=sys.stderr)
    return 0
