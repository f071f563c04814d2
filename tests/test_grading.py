"""`python -m autograder grade` end to end, on a small class built from the course itself.

Students (in a temporary SUBMISSIONS folder):
  solution       every solution notebook as the instructor wrote it
  blank          the first BLANK_NOTEBOOKS course/ notebooks untouched (that every grade cell
                 of every blank notebook fails is checked in test_notebooks_execute.py)
  one_wrong      every solution notebook with exactly one kernel broken (its mathematics and
                 going-deeper cells lose their points; the kernel of the last
                 grade cell; relu_grad returns 1 for x < 0)
  other_correct  02_relu with relu written differently from the solution (when 02 exists)
  partial        the first notebook not JSON, the second a solution (with three or more
                 notebooks), the rest missing

One class is graded once per module; plain `nbgrader autograde` grades one_wrong's first
PLAIN_NOTEBOOKS notebooks again for comparison. Slow: solution and one_wrong run every notebook,
so the time grows with the heaviest notebooks (training in 06-08).
"""

from __future__ import annotations

import csv
import hashlib
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import nbformat
import pytest
from conftest import COURSE, REPO, SOLUTION_NOTEBOOKS
from nbgrader.api import Gradebook

from autograder.pipeline.coursedir import ASSIGNMENT, make_course_dir, run_nbgrader
from autograder.pipeline.feedback import notebook_hidden_lines, page_text

pytestmark = pytest.mark.skipif(not SOLUTION_NOTEBOOKS, reason="no solution notebooks yet")

NOTEBOOKS = [p.stem for p in SOLUTION_NOTEBOOKS]
BLANK_NOTEBOOKS = 2
PLAIN_NOTEBOOKS = 3

# A correct relu written differently from the solution (NaN propagates, -inf gives 0).
OTHER_RELU = '''

def relu(x):
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    return np.where(x < 0, x.dtype.type(0), x)
'''

# Wrap kernel K so that it gives wrong values (and keeps working for the notebook's plots).
BREAK_TEMPLATE = '''

_correct_{k} = {k}


def {k}(*args, **kwargs):
    out = _correct_{k}(*args, **kwargs)
    if isinstance(out, tuple):
        return tuple(np.asarray(o) + 1 for o in out)
    return np.asarray(out) + 1
'''
BREAK_RELU_GRAD = '''

_correct_relu_grad = relu_grad


def relu_grad(x):
    out = _correct_relu_grad(x)
    return np.where(np.asarray(x) < 0, out.dtype.type(1), out)
'''


def grade_cells(nb):
    """grade_id -> points of the autograded cells (code), in notebook order."""
    return {c.metadata["nbgrader"]["grade_id"]: float(c.metadata["nbgrader"].get("points", 0))
            for c in nb.cells
            if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")}


def manual_points(nb) -> float:
    """Points of the hand-graded answers (markdown grade cells): 0 until an instructor grades."""
    return sum(float(c.metadata["nbgrader"].get("points", 0)) for c in nb.cells
               if c.cell_type == "markdown" and c.metadata.get("nbgrader", {}).get("grade"))


def broken_kernel(nb) -> str | None:
    """The kernel one_wrong breaks: the last graded function no other solution code calls
    (None where the graded cells check values and answers, not functions)."""
    code = "\n".join(c.source for c in nb.cells
                     if c.metadata.get("nbgrader", {}).get("solution"))
    kernels = [k for k in dict.fromkeys(_kernel_of(gid) for gid in grade_cells(nb))
               if f"def {k}(" in code]
    for kernel in reversed(kernels):
        if len(re.findall(rf"\b{kernel}\(", code)) == 1:  # its own def only
            return kernel
    return kernels[-1] if kernels else None


def _kernel_of(grade_id: str) -> str:
    """test_gelu and test_gelu_deeper (its going-deeper part) both grade gelu."""
    return grade_id.removeprefix("test_").removesuffix("_deeper")


def append_to_cell_defining(nb, kernel: str, code: str) -> None:
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("solution") and f"def {kernel}(" in cell.source:
            cell.source += code
            return
    raise AssertionError(f"no solution cell defines {kernel}")


def build_class(root: Path) -> dict[str, dict]:
    """Write the class into `root`; per notebook, its grade cells and the broken kernel."""
    built = {}
    for student in ("solution", "blank", "one_wrong", "partial"):
        (root / student).mkdir(parents=True)
    for i, path in enumerate(SOLUTION_NOTEBOOKS):
        name = path.name
        (root / "solution" / name).write_bytes(path.read_bytes())
        if i < BLANK_NOTEBOOKS:
            if not (COURSE / name).is_file():
                pytest.fail(f"course/{name} is missing: run make release")
            (root / "blank" / name).write_bytes((COURSE / name).read_bytes())

        nb = nbformat.read(path, as_version=4)
        kernel = broken_kernel(nb)
        cells = grade_cells(nb)
        built[path.stem] = {"cells": cells, "manual": manual_points(nb),
                            "broken": {gid for gid in cells if _kernel_of(gid) == kernel}}
        if kernel:
            code = BREAK_RELU_GRAD if kernel == "relu_grad" else BREAK_TEMPLATE.format(k=kernel)
            append_to_cell_defining(nb, kernel, code)
        nbformat.write(nb, root / "one_wrong" / name)

        if i == 0:
            (root / "partial" / name).write_text("this is not JSON {")
        elif i == 1 and len(SOLUTION_NOTEBOOKS) > 2:
            (root / "partial" / name).write_bytes(path.read_bytes())
    relu = [p for p in SOLUTION_NOTEBOOKS if p.stem == "02_relu"]
    if relu:
        (root / "other_correct").mkdir()
        nb = nbformat.read(relu[0], as_version=4)
        append_to_cell_defining(nb, "relu", OTHER_RELU)
        nbformat.write(nb, root / "other_correct" / relu[0].name)
    return built


def tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def run_grade(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autograder", "grade", *args],
                          capture_output=True, text=True, timeout=900)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("class")
    subs = root / "submissions"
    built = build_class(subs)
    before = tree_digest(subs)
    proc = run_grade(str(subs), "--out", str(root / "out"), "--workers", "2", "--timeout", "300",
                     "--course-dir", str(root / "course"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {
        "subs": subs, "before": before, "built": built, "out": root / "out", "stderr": proc.stderr,
        "course": root / "course",
        "grades": {(r["student_id"], r["notebook"]): r for r in read_csv(root / "out/grades.csv")},
        "cells": {(r["student_id"], r["notebook"], r["grade_id"]): r
                  for r in read_csv(root / "out/exercises.csv")},
    }


def students(graded):
    return sorted({s for s, _ in graded["grades"]})


def test_one_row_per_student_and_notebook(graded):
    expected = {(s, nb) for s in students(graded) for nb in NOTEBOOKS}
    assert set(graded["grades"]) == expected
    keys = [(r["student_id"], r["notebook"]) for r in read_csv(graded["out"] / "grades.csv")]
    assert keys == sorted(keys)


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_solution_gets_full_marks(graded, notebook):
    row = graded["grades"][("solution", notebook)]
    # max_score counts the hand-graded answers too; they count 0 until a grader scores them,
    # and the status says that they wait (never a silent zero).
    manual = graded["built"][notebook]["manual"]
    assert row["status"] == ("needs_manual" if manual else "ok"), graded["stderr"][-2000:]
    assert float(row["score"]) == float(row["max_score"]) - manual > 0


@pytest.mark.parametrize("notebook", NOTEBOOKS[:BLANK_NOTEBOOKS])
def test_blank_scores_zero_on_every_cell(graded, notebook):
    assert graded["grades"][("blank", notebook)]["status"] == "ok"
    cells = {k: r for k, r in graded["cells"].items() if k[:2] == ("blank", notebook)}
    assert cells and all(float(r["points"]) == 0 for r in cells.values())


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_one_wrong_kernel_loses_exactly_its_cell(graded, notebook):
    built = graded["built"][notebook]
    for grade_id, points in built["cells"].items():
        got = float(graded["cells"][("one_wrong", notebook, grade_id)]["points"])
        assert got == (0 if grade_id in built["broken"] else points), grade_id
    status = "needs_manual" if built["manual"] else "ok"
    assert graded["grades"][("one_wrong", notebook)]["status"] == status


def test_other_correct_keeps_full_marks(graded):
    if ("other_correct", "02_relu") not in graded["grades"]:
        pytest.skip("no 02_relu notebook")
    row = graded["grades"][("other_correct", "02_relu")]
    assert (row["status"], row["score"]) == ("ok", row["max_score"])
    assert all(graded["grades"][("other_correct", nb)]["status"] == "missing"
               for nb in NOTEBOOKS if nb != "02_relu")


def test_partial_missing_and_invalid(graded):
    g = graded["grades"]
    first, last = NOTEBOOKS[0], NOTEBOOKS[-1]
    assert (g[("partial", first)]["status"], g[("partial", first)]["score"]) == ("invalid", "0")
    if len(NOTEBOOKS) > 1:
        assert (g[("partial", last)]["status"], g[("partial", last)]["score"]) == ("missing", "0")
    if len(NOTEBOOKS) > 2:  # still graded although another notebook is broken
        second = g[("partial", NOTEBOOKS[1])]
        assert (second["status"], second["score"]) == ("ok", second["max_score"])


def test_feedback_shows_messages_but_never_hidden_tests(graded):
    secrets = set().union(*(notebook_hidden_lines(p) for p in SOLUTION_NOTEBOOKS))
    assert secrets
    for student, notebook in graded["grades"]:
        page = graded["out"] / "feedback" / student / f"{notebook}.html"
        assert page.is_file(), page
        text = page_text(page.read_text())
        assert "HIDDEN TESTS" not in text and "grade_kernel(" not in text, page
        assert not [s for s in secrets if s in text], page
    wrong = page_text((graded["out"] / "feedback/one_wrong" / f"{NOTEBOOKS[-1]}.html").read_text())
    assert "Error" in wrong  # the failing check's message reaches the student


def test_unsafe_mode_grades_the_same(graded, tmp_path):
    """--unsafe-no-sandbox (for machines without bubblewrap) still judges outside the kernel."""
    if ("one_wrong", "02_relu") not in graded["grades"]:
        pytest.skip("no 02_relu notebook")
    subs = tmp_path / "subs" / "one_wrong"
    subs.mkdir(parents=True)
    (subs / "02_relu.ipynb").write_bytes((graded["subs"] / "one_wrong/02_relu.ipynb").read_bytes())
    proc = run_grade(str(tmp_path / "subs"), "--out", str(tmp_path / "out"), "--unsafe-no-sandbox")
    assert proc.returncode == 0, proc.stderr[-2000:]
    cells = {r["grade_id"]: r["points"] for r in read_csv(tmp_path / "out/exercises.csv")
             if r["notebook"] == "02_relu"}
    assert cells == {gid: r["points"] for (s, nb, gid), r in graded["cells"].items()
                     if (s, nb) == ("one_wrong", "02_relu")}


def test_submissions_are_not_modified(graded):
    assert tree_digest(graded["subs"]) == graded["before"]


def test_progress_on_stderr(graded):
    """A progress bar that reaches every notebook, and a line for each notebook in trouble."""
    total = len(students(graded)) * len(NOTEBOOKS)
    assert f"{total}/{total}" in graded["stderr"]
    n = len(students(graded))
    assert f"grading {n} of {n} students on 2 Dask worker(s)" in graded["stderr"]  # LocalCluster
    assert f"partial/{NOTEBOOKS[0]}: invalid" in graded["stderr"]


def test_gradebook_holds_every_cell_score(graded):
    """The course directory's gradebook.db (the default --db) has each student's scores, as
    exercises.csv, and its autograded/ folder each graded notebook, as the formgrader reads
    them; hand-graded cells wait for a grader there."""
    course = graded["course"]
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", course_id=ASSIGNMENT) as gb:
        assert sorted(s.id for s in gb.students) == students(graded)
        for (student, nb, gid), row in graded["cells"].items():
            grade = gb.find_grade(gid, nb, ASSIGNMENT, student)
            assert grade.score == float(row["points"])
            if gid.startswith("written_") and graded["grades"][(student, nb)]["status"] == \
                    "needs_manual":
                assert grade.needs_manual_grade and grade.manual_score is None
    for (student, nb), row in graded["grades"].items():
        path = course / "autograded" / student / ASSIGNMENT / f"{nb}.ipynb"
        assert path.is_file() == (row["status"] not in ("missing", "invalid")), path


def test_messages_timings_and_report(graded):
    """messages.csv says why each cell lost its points (one_wrong's broken kernel: the judge's
    or the failing check's message), timings.csv times each graded notebook, and the class
    report is drawn from them."""
    out = graded["out"]
    messages = {(r["student_id"], r["notebook"], r["grade_id"]): r["message"]
                for r in read_csv(out / "messages.csv")}
    for nb, built in graded["built"].items():
        for gid in built["broken"]:
            assert messages.get(("one_wrong", nb, gid)), (nb, gid)
    assert not [k for k in messages if k[0] == "solution"], messages
    for key in messages:  # only cells that lost points
        row = graded["cells"][key]
        assert float(row["points"]) < float(row["max_points"]), key
    timed = {(r["student_id"], r["notebook"]): float(r["seconds"])
             for r in read_csv(out / "timings.csv")}
    assert set(timed) == {k for k, r in graded["grades"].items()
                          if r["status"] not in ("missing", "invalid")}
    assert all(t > 0 for t in timed.values()), timed
    page = (out / "report.html").read_text()
    assert "Class report" in page and "No timings were recorded" not in page
    assert "No messages were recorded" not in page


def test_plain_nbgrader_gives_the_same_cell_scores(graded, tmp_path):
    """nbgrader autograde, serially, in a course directory of its own, on one_wrong.

    one_wrong has full and zero cells in every notebook; a few notebooks keep this test short.
    """
    course = tmp_path / "course"
    make_course_dir(course)
    for student in ("one_wrong",):
        dest = course / "submitted" / student / ASSIGNMENT
        dest.mkdir(parents=True)
        for nb in NOTEBOOKS[:PLAIN_NOTEBOOKS]:
            path = graded["subs"] / student / f"{nb}.ipynb"
            dest.joinpath(path.name).write_bytes(path.read_bytes())
    proc = run_nbgrader(["autograde", ASSIGNMENT], cwd=course, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", course_id=ASSIGNMENT) as gb:
        for student in ("one_wrong",):
            for nb in NOTEBOOKS[:PLAIN_NOTEBOOKS]:
                sub = gb.find_submission_notebook(nb, ASSIGNMENT, student)
                for grade in sub.grades:
                    ours = graded["cells"][(student, nb, grade.name)]["points"]
                    assert float(ours) == float(grade.score or 0), (student, nb, grade.name)


def test_zip_archive(tmp_path):
    archive = tmp_path / "class.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr(f"class/zoe/{NOTEBOOKS[0]}.ipynb", "not a notebook")
    proc = run_grade(str(archive), "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {r["notebook"]: r["status"] for r in read_csv(tmp_path / "out/grades.csv")
            if r["student_id"] == "zoe"}
    assert rows.pop(NOTEBOOKS[0]) == "invalid"
    assert set(NOTEBOOKS[1:]) <= set(rows) and set(rows.values()) == {"missing"}


def test_regrading_an_unchanged_class_keeps_the_csvs(graded):
    """Running the same command again reuses the finished students: same bytes, in seconds."""
    before = {name: (graded["out"] / name).read_bytes() for name in ("grades.csv", "exercises.csv")}
    proc = run_grade(str(graded["subs"]), "--out", str(graded["out"]), "--workers", "2",
                     "--timeout", "300", "--course-dir", str(graded["course"]))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "already graded" in proc.stderr
    assert {name: (graded["out"] / name).read_bytes() for name in before} == before


def test_an_interrupted_run_leaves_no_csv_and_resumes(graded, tmp_path):
    """Ctrl-C after the first student: no CSV is half-written, and the same command then
    finishes with exactly the rows the class run gave these students (that run used two
    workers, this one one: parallel and serial grading agree)."""
    subs = tmp_path / "subs"
    students = ("blank", "partial")  # three notebooks to execute between them
    for student in students:
        shutil.copytree(graded["subs"] / student, subs / student)
    args = ["--workers", "1", "--timeout", "300", "--no-progress"]

    out = tmp_path / "cut"
    proc = subprocess.Popen([sys.executable, "-m", "autograder", "grade", str(subs), "--out",
                             str(out), *args], cwd=REPO, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600
    while not list((out / ".state").glob("*.json")) and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Run the same command again" in err, err[-2000:]
    assert list((out / ".state").glob("*.json")), "no student finished within 10 minutes"
    assert not (out / "grades.csv").exists() and not (out / "exercises.csv").exists()

    resumed = run_grade(str(subs), "--out", str(out), *args)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "already graded" in resumed.stderr
    for name in ("grades.csv", "exercises.csv", "flags.csv"):
        whole = [r for r in read_csv(graded["out"] / name) if r["student_id"] in students]
        assert read_csv(out / name) == whole, name


def test_nbgrader_submitted_layout(tmp_path):
    """<student>/activations/NN.ipynb, as `nbgrader zip_collect` leaves it, is read too."""
    nested = tmp_path / "submitted" / "zoe" / ASSIGNMENT
    nested.mkdir(parents=True)
    (nested / f"{NOTEBOOKS[0]}.ipynb").write_text("not a notebook")
    proc = run_grade(str(tmp_path / "submitted"), "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {r["notebook"]: r["status"] for r in read_csv(tmp_path / "out/grades.csv")}
    assert rows[NOTEBOOKS[0]] == "invalid" and rows[NOTEBOOKS[-1]] == "missing"


@pytest.mark.parametrize("case", ["missing", "empty", "bad_zip"])
def test_usage_errors_exit_2_with_one_line(tmp_path, case):
    target = tmp_path / "submissions"
    if case == "empty":
        target.mkdir()
    elif case == "bad_zip":
        target = tmp_path / "class.zip"
        target.write_text("not a zip")
    proc = run_grade(str(target), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flag, value", [("--student", "nobody"), ("--notebook", "99_nothing")])
def test_a_regrade_request_for_what_does_not_exist_exits_2(tmp_path, flag, value):
    (tmp_path / "subs" / "zoe").mkdir(parents=True)
    (tmp_path / "subs" / "zoe" / f"{NOTEBOOKS[0]}.ipynb").write_text("not a notebook")
    proc = run_grade(str(tmp_path / "subs"), "--out", str(tmp_path / "out"), flag, value)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {flag} {value}:"), proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("log, status", [
    ("nbclient.exceptions.DeadKernelError: Kernel died", "crashed"),
    ("nbclient.exceptions.CellTimeoutError: A cell timed out while it was being executed, after 4 "
     "seconds.\nThe message was: Timeout waiting for IOPub output.", "timeout"),
    ("sqlite3.OperationalError: unable to open database file", "error"),
])
def test_a_failed_nbgrader_run_gets_the_status_its_log_names(log, status):
    """A fork loop fills the kernel's process cap with clones and the next cell's output stops
    coming: nbclient raises instead of recording a cell error, and that is a timeout of the
    student's making, not a grader error."""
    from autograder.pipeline import tasks

    assert tasks._crash_status(log) == status


@pytest.mark.parametrize("filters", [True, False], ids=["tarfile filters", "Python < 3.11.4"])
def test_the_bundle_unpacks_safely_with_and_without_tarfile_filters(tmp_path, monkeypatch, filters):
    """Debian 12's python3.11 (3.11.2) has no tarfile extraction filters: a worker there still
    unpacks the bundle, and a member that would land outside its folder is refused."""
    import io
    import tarfile

    from autograder.pipeline import tasks

    if not filters:
        monkeypatch.delattr(tarfile, "data_filter", raising=False)

    def bundle(name: str) -> tarfile.TarFile:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            info = tarfile.TarInfo(name)
            info.size = 5
            tar.addfile(info, io.BytesIO(b"hello"))
        return tarfile.open(fileobj=io.BytesIO(buf.getvalue()), mode="r:gz")

    with bundle("course/a.txt") as tar:
        tasks._extract(tar, tmp_path / "ok")
    assert (tmp_path / "ok" / "course" / "a.txt").read_text() == "hello"
    with bundle("../evil.txt") as tar, pytest.raises(Exception, match="evil"):
        tasks._extract(tar, tmp_path / "bad")
    assert not (tmp_path / "evil.txt").exists()
