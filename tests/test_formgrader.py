"""The instructor's side after grading, on one small class that went through nbgrader's exchange.

A throwaway nbgrader course directory and exchange: the course releases notebooks 1 and 4, the
students of tests/_small_class.py submit with `nbgrader submit` (amy the solutions of notebooks
1 and 4, whose written_04 is graded by hand; cat notebook 1 with collapse_linear broken, which
its visible check catches, and a wrong answer to q01_1, which only the judge outside the sandbox
catches; dan a file that is not JSON), the instructor collects, and `python -m autograder grade
COURSE/submitted --course-dir COURSE` grades them once (about a minute). The tests then run in
file order on that course:

- the course directory holds what nbgrader's tools read: every student and cell score in its
  gradebook, the autograded notebooks (with the failing check's message, without hidden tests)
  under autograded/<student>/activations/ (with the judge's message), and written_04 waits for
  a grader (needs_manual);
- nbgrader's feedback route: release_feedback, then each student's fetch_feedback, gets our
  feedback pages; OUT/feedback-zips/<student>.zip holds the same pages;
- a regrade request (--student dan --notebook 01_linear_collapse: dan hands in a readable
  notebook) grades dan's notebook 1 again and leaves amy's and cat's rows, state, pages,
  autograded notebooks and gradebook rows as they were, although amy's notebook changed
  meanwhile;
- a manual score and comment set through nbgrader's Gradebook API survive a regrade of the same
  submission and show in grades.csv, exercises.csv and the feedback pages;
- nbgrader's formgrader, in Chromium, lists the class with scores and opens cat's submission
  with the judge's message (screenshots build/screenshots/formgrader.png and
  formgrader-submission.png).
"""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
from _browser import browser, screenshot  # noqa: F401 - fixture
from _jupyter import jupyter_server
from _small_class import build_small_class
from conftest import COURSE, SOLUTION_NOTEBOOKS, SOLUTIONS
from nbgrader.api import Gradebook

from autograder.pipeline import nbcourse
from autograder.pipeline.coursedir import ASSIGNMENT, nbgrader_env
from autograder.pipeline.feedback import page_text

pytestmark = pytest.mark.skipif(not SOLUTION_NOTEBOOKS, reason="no solution notebooks yet")

FIRST = "01_linear_collapse"
WRITTEN = "04_sigmoid_tanh"  # has the hand-graded answer written_04 (2 points)
NOTEBOOKS = [p.stem for p in SOLUTION_NOTEBOOKS]
COMMENT = "Right idea; say where the 0.25 comes from."
JUDGED = "q01_1: 'b' is not the right choice"  # the judge's message for cat's answer


def nbgrader(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=cwd, env=nbgrader_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (args, proc.stderr[-2000:])
    return proc


def as_student(sid: str, home: Path, exchange: Path, *args: str) -> subprocess.CompletedProcess:
    """An nbgrader exchange command as student `sid` on a machine of their own (home, cache)."""
    return nbgrader([*args, ASSIGNMENT, "--course", ASSIGNMENT, "--student", sid,
                     f"--Exchange.root={exchange}", f"--Exchange.cache={home / 'cache'}"], home)


def run_grade(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autograder", "grade", *args, "--workers", "1",
                           "--timeout", "300", "--no-progress"],
                          capture_output=True, text=True, timeout=900)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def rows(out: Path, name: str) -> dict[tuple, dict[str, str]]:
    key = ("student_id", "notebook", "grade_id") if name in ("exercises.csv", "messages.csv") \
        else ("student_id", "notebook")
    return {tuple(r[k] for k in key): r for r in read_csv(out / name)}


def gradebook_scores(db: Path) -> dict[tuple, tuple]:
    """(student, notebook, grade_id) -> (auto, manual, needs_manual_grade)."""
    with Gradebook(f"sqlite:///{db}", course_id=ASSIGNMENT) as gb:
        return {(g.student.id, g.notebook.name, g.name):
                (g.auto_score, g.manual_score, g.needs_manual_grade)
                for s in gb.students for sub in gb.find_submission(ASSIGNMENT, s.id).notebooks
                for g in sub.grades}


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = tmp_path_factory.mktemp("instructor")
    course, exchange, out, homes = (root / n for n in ("course", "exchange", "out", "homes"))
    nbcourse.prepare(course)
    with open(course / "nbgrader_config.py", "a") as f:
        f.write(f"c.Exchange.root = {str(exchange)!r}\n")
    release = course / "release" / ASSIGNMENT
    release.mkdir(parents=True)
    for nb in (FIRST, WRITTEN):
        shutil.copyfile(COURSE / f"{nb}.ipynb", release / f"{nb}.ipynb")
    nbgrader(["release_assignment", ASSIGNMENT, "--course", ASSIGNMENT], course)

    build_small_class(root / "class", SOLUTIONS / f"{FIRST}.ipynb", correct=("amy",))
    cat = nbformat.read(root / "class" / "cat" / f"{FIRST}.ipynb", as_version=4)
    answer = next(c for c in cat.cells if c.metadata.get("nbgrader", {}).get("solution")
                  and "answer_q01_1 =" in c.source)
    answer.source = re.sub(r"answer_q01_1 = .*", 'answer_q01_1 = "b"', answer.source)
    nbformat.write(cat, root / "class" / "cat" / f"{FIRST}.ipynb")
    shutil.copyfile(SOLUTIONS / f"{WRITTEN}.ipynb", root / "class" / "amy" / f"{WRITTEN}.ipynb")
    for student in sorted((root / "class").iterdir()):
        home = homes / student.name
        shutil.copytree(student, home / ASSIGNMENT)
        as_student(student.name, home, exchange, "submit")
    nbgrader(["collect", ASSIGNMENT, "--CollectApp.check_owner=False"], course)

    proc = run_grade(str(course / "submitted"), "--out", str(out), "--course-dir", str(course))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"root": root, "course": course, "exchange": exchange, "out": out, "homes": homes,
            "class": root / "class", "stderr": proc.stderr}


def test_the_course_directory_holds_the_graded_class(course):
    out, root = course["out"], course["course"]
    cells = rows(out, "exercises.csv")
    book = gradebook_scores(root / "gradebook.db")
    graded = {(s, nb) for (s, nb), r in rows(out, "grades.csv").items()
              if r["status"] not in ("missing", "invalid")}
    assert graded == {("amy", FIRST), ("amy", WRITTEN), ("cat", FIRST)}
    for (sid, nb, gid), r in cells.items():
        if (sid, nb) in graded and not gid.startswith("written_"):
            assert book[(sid, nb, gid)][0] == float(r["points"]), (sid, nb, gid)
    for sid in ("amy", "cat", "dan"):
        for nb in NOTEBOOKS:
            path = root / "autograded" / sid / ASSIGNMENT / f"{nb}.ipynb"
            assert path.is_file() == ((sid, nb) in graded), path
    notebook = (root / "autograded" / "cat" / ASSIGNMENT / f"{FIRST}.ipynb").read_text()
    message = rows(out, "messages.csv")[("cat", FIRST, "test_collapse_linear")]["message"]
    assert message.split(": ", 1)[1][:60] in notebook
    assert JUDGED in notebook and JUDGED in {r["message"].removeprefix("AssertionError: ")
                                             for r in read_csv(out / "messages.csv")}
    assert "HIDDEN TESTS" not in notebook and "grade_kernel" not in notebook
    amy = rows(out, "grades.csv")[("amy", WRITTEN)]
    assert (amy["status"], float(amy["score"])) == ("needs_manual", float(amy["max_score"]) - 2)
    assert book[("amy", WRITTEN, "written_04")] == (None, None, True)
    assert "hand-graded answers without a score" in course["stderr"]


def test_feedback_goes_back_through_the_exchange_and_as_zips(course):
    out = course["out"]
    nbgrader(["release_feedback", ASSIGNMENT], course["course"])
    for sid, notebooks in (("amy", (FIRST, WRITTEN)), ("cat", (FIRST,))):
        home = course["homes"] / sid
        as_student(sid, home, course["exchange"], "fetch_feedback")
        for nb in notebooks:
            fetched = list((home / ASSIGNMENT / "feedback").glob(f"*/{nb}.html"))
            assert len(fetched) == 1, (sid, nb)
            assert fetched[0].read_bytes() == (out / "feedback" / sid / f"{nb}.html").read_bytes()
    for sid in ("amy", "cat", "dan"):
        with zipfile.ZipFile(out / "feedback-zips" / f"{sid}.zip") as archive:
            assert sorted(archive.namelist()) == [f"{sid}/{nb}.html" for nb in NOTEBOOKS]
            for nb in NOTEBOOKS:
                page = (out / "feedback" / sid / f"{nb}.html").read_bytes()
                assert archive.read(f"{sid}/{nb}.html") == page


def _snapshot(course, students: tuple[str, ...]) -> dict:
    out, root = course["out"], course["course"]
    files = [out / ".state" / f"{s}.json" for s in students]
    files += [p for s in students for p in sorted((out / "feedback" / s).glob("*.html"))]
    files += [p for s in students for p in sorted((root / "autograded" / s).rglob("*.ipynb"))]
    return {
        "files": {str(p): (p.read_bytes(), p.stat().st_mtime_ns) for p in files},
        "grades": {k: r for k, r in rows(out, "grades.csv").items() if k[0] in students},
        "cells": {k: r for k, r in rows(out, "exercises.csv").items() if k[0] in students},
        "book": {k: v for k, v in gradebook_scores(root / "gradebook.db").items()
                 if k[0] in students},
    }


def test_a_regrade_request_leaves_everyone_else_alone(course):
    out, submitted = course["out"], course["course"] / "submitted"
    before = _snapshot(course, ("amy", "cat"))
    dan_before = {k: r for k, r in rows(out, "grades.csv").items() if k[0] == "dan"}
    log_before = (out / ".state" / "graded.log").read_text().splitlines()
    # dan hands in a notebook that opens; amy's changes too, but amy is not asked for
    solution = (SOLUTIONS / f"{FIRST}.ipynb").read_bytes()
    broken = (submitted / "cat" / ASSIGNMENT / f"{FIRST}.ipynb").read_bytes()
    (submitted / "dan" / ASSIGNMENT / f"{FIRST}.ipynb").write_bytes(solution)
    (submitted / "amy" / ASSIGNMENT / f"{FIRST}.ipynb").write_bytes(broken)

    proc = run_grade(str(submitted), "--out", str(out), "--course-dir", str(course["course"]),
                     "--student", "dan", "--notebook", FIRST)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "regrade request: 1 student(s), 01_linear_collapse; 2 other student(s) kept" \
        in proc.stderr
    assert _snapshot(course, ("amy", "cat")) == before
    log = (out / ".state" / "graded.log").read_text().splitlines()
    assert len(log) == len(log_before) + 1 and '"student": "dan"' in log[-1]
    after = {k: r for k, r in rows(out, "grades.csv").items() if k[0] == "dan"}
    assert dan_before[("dan", FIRST)]["status"] == "invalid"
    assert (after[("dan", FIRST)]["score"], after[("dan", FIRST)]["status"]) == ("4", "ok")
    after.pop(("dan", FIRST)), dan_before.pop(("dan", FIRST))
    assert after == dan_before  # dan's other notebooks: as they were
    book = gradebook_scores(course["course"] / "gradebook.db")
    assert book[("dan", FIRST, "test_collapse_linear")][0] > 0
    assert (course["course"] / "autograded" / "dan" / ASSIGNMENT / f"{FIRST}.ipynb").is_file()
    assert "Score: 4" in (out / "feedback" / "dan" / f"{FIRST}.html").read_text()


def test_manual_scores_and_comments_survive_a_regrade(course):
    out, root = course["out"], course["course"]
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}", course_id=ASSIGNMENT) as gb:
        grade = gb.find_grade("written_04", WRITTEN, ASSIGNMENT, "amy")
        grade.manual_score, grade.needs_manual_grade = 1.5, False
        gb.find_comment("written_04", WRITTEN, ASSIGNMENT, "amy").manual_comment = COMMENT
        gb.db.commit()
    auto_before = {k: v[0] for k, v in gradebook_scores(root / "gradebook.db").items()
                   if k[:2] == ("amy", WRITTEN)}

    proc = run_grade(str(root / "submitted"), "--out", str(out), "--course-dir", str(root),
                     "--student", "amy", "--notebook", WRITTEN)
    assert proc.returncode == 0, proc.stderr[-3000:]
    book = gradebook_scores(root / "gradebook.db")
    assert book[("amy", WRITTEN, "written_04")] == (None, 1.5, False)
    assert {k: v[0] for k, v in book.items() if k[:2] == ("amy", WRITTEN)} == auto_before
    row = rows(out, "grades.csv")[("amy", WRITTEN)]
    assert (row["status"], float(row["score"])) == ("ok", float(row["max_score"]) - 0.5)
    assert rows(out, "exercises.csv")[("amy", WRITTEN, "written_04")]["points"] == "1.5"
    page = (out / "feedback" / "amy" / f"{WRITTEN}.html").read_text()
    assert COMMENT in page_text(page) and "17.5 / 18" in page_text(page)
    with zipfile.ZipFile(out / "feedback-zips" / "amy.zip") as archive:
        assert archive.read(f"amy/{WRITTEN}.html").decode() == page
    released = root / "feedback" / "amy" / ASSIGNMENT / f"{WRITTEN}.html"
    assert released.read_text() == page  # what release_feedback sends now


@pytest.fixture(scope="module")
def formgrader(course):
    """(base URL, token) of a Jupyter server on the course directory, nbgrader's formgrader in."""
    root, home = course["course"], course["root"] / "jupyter"
    env = dict(nbgrader_env(), JUPYTER_CONFIG_DIR=str(home / "config"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"), JUPYTER_DATA_DIR=str(home / "data"))
    with jupyter_server("server", root, env, course["root"] / "server.log") as (base, token):
        yield base, token


def test_formgrader_lists_the_class_and_opens_a_submission(course, formgrader, browser):  # noqa: F811
    base, token = formgrader
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        page.goto(f"{base}/formgrader/manage_students?token={token}")
        page.wait_for_selector("td:has-text('cat')", timeout=30_000)
        table = page.locator("table").inner_text()
        for sid in ("amy", "cat", "dan"):
            assert sid in table, table
        total = sum(float(r["score"]) for (s, _), r in rows(course["out"], "grades.csv").items()
                    if s == "amy")
        assert f"{total:g} / " in table, table

        page.goto(f"{base}/formgrader/gradebook/{ASSIGNMENT}/{FIRST}?token={token}")
        page.wait_for_selector("td.score:has-text(' / ')", timeout=30_000)
        scores = page.locator("td.score").all_inner_texts()
        assert sorted(scores) == ["0 / 4", "4 / 4", "4 / 4"], scores  # cat, amy, dan
        screenshot(page, "formgrader")

        cat = page.locator("tr", has=page.locator("td.score", has_text="0 / 4"))
        cat.locator("a[href*='/formgrader/submissions/']").first.click()
        page.wait_for_selector(".cell", timeout=60_000)
        message = rows(course["out"], "messages.csv")[("cat", FIRST, "test_collapse_linear")]
        text = " ".join(page.inner_text("body").split())
        assert " ".join(message["message"].split())[:80] in text
        assert JUDGED in text
        assert "HIDDEN TESTS" not in text and "grade_kernel" not in text
        page.get_by_text(JUDGED).first.scroll_into_view_if_needed()
        screenshot(page, "formgrader-submission")
    finally:
        context.close()
