"""`grade --db postgresql://...`: the class's scores in a PostgreSQL gradebook equal SQLite's.

The test starts its own PostgreSQL server (Debian's `postgresql` package; .ci/run installs it):
a cluster made by initdb in a temporary folder, listening on a unix socket in that folder only,
run as the `postgres` user when the tests run as root (the server refuses root). It is stopped
and removed at the end. A missing server is a failure that says what to install, not a skip.
"""

from __future__ import annotations

import csv
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from _small_class import build_small_class
from conftest import REPO, SOLUTION_NOTEBOOKS
from nbgrader.api import Gradebook

from autograder.pipeline.coursedir import ASSIGNMENT
from autograder.pipeline.gradebook import with_driver

pytestmark = pytest.mark.skipif(not SOLUTION_NOTEBOOKS, reason="no solution notebooks yet")

NOTEBOOK = SOLUTION_NOTEBOOKS[0] if SOLUTION_NOTEBOOKS else None
def server_binary(name: str) -> str:
    found = shutil.which(name) or next(
        (str(p) for p in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True)),
        None)
    if found is None:
        pytest.fail(f"PostgreSQL's {name} not found: install the Debian package `postgresql` "
                    "(bash .ci/run does)")
    return found


@pytest.fixture(scope="module")
def postgres():
    """URL of a fresh PostgreSQL server on a unix socket in a temporary folder."""
    folder = Path(tempfile.mkdtemp(prefix="pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail("the `postgres` user does not exist: install the Debian package "
                        "`postgresql` (bash .ci/run does)")
        os.chown(folder, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, log = folder / "data", folder / "server.log"
    initdb = subprocess.run([*as_user, server_binary("initdb"), "-D", str(data), "-A", "trust",
                             "-U", "postgres", "-E", "UTF8", "--no-sync"],
                            capture_output=True, text=True, timeout=300)
    assert initdb.returncode == 0, initdb.stderr[-2000:]
    pg_ctl = server_binary("pg_ctl")
    options = f"-k {folder} -c listen_addresses='' -c fsync=off"
    start = subprocess.run([*as_user, pg_ctl, "-D", str(data), "-l", str(log), "-o", options,
                            "-w", "-t", "120", "start"], capture_output=True, text=True,
                           timeout=180)
    assert start.returncode == 0, start.stderr[-2000:] + (log.read_text()[-2000:]
                                                          if log.is_file() else "")
    yield f"postgresql://postgres@/postgres?host={folder}"
    subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "-t", "60",
                    "stop"], capture_output=True, timeout=120)
    shutil.rmtree(folder, ignore_errors=True)


def build_class(root: Path) -> None:
    build_small_class(root, NOTEBOOK, correct=("amy",))


def run_grade(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autograder", "grade", *args, "--workers", "2",
                           "--timeout", "300", "--no-progress"],
                          capture_output=True, text=True, timeout=900, cwd=REPO)


def gradebook_scores(url: str) -> dict[tuple, tuple]:
    """(student, notebook, grade_id) -> (score, auto_score, needs_manual_grade)."""
    scores = {}
    with Gradebook(with_driver(url), course_id=ASSIGNMENT) as gb:
        for student in gb.students:
            sub = gb.find_submission(ASSIGNMENT, student.id)
            for nb in sub.notebooks:
                for grade in nb.grades:
                    scores[(student.id, nb.name, grade.name)] = (
                        grade.score, grade.auto_score, grade.needs_manual_grade)
    return scores


def test_postgres_gradebook_gets_the_same_grades_as_sqlite(postgres, tmp_path):
    subs = tmp_path / "subs"
    build_class(subs)
    pg = run_grade(str(subs), "--out", str(tmp_path / "pg"), "--db", postgres)
    assert pg.returncode == 0, pg.stderr[-3000:]
    assert not (tmp_path / "pg" / "gradebook.db").exists()  # --db replaces the default
    lite = run_grade(str(subs), "--out", str(tmp_path / "lite"),
                     "--db", f"sqlite:///{tmp_path / 'lite' / 'gradebook.db'}")
    assert lite.returncode == 0, lite.stderr[-3000:]

    for name in ("grades.csv", "exercises.csv"):
        assert (tmp_path / "pg" / name).read_bytes() == (tmp_path / "lite" / name).read_bytes()
    in_pg = gradebook_scores(postgres)
    in_sqlite = gradebook_scores(f"sqlite:///{tmp_path / 'lite' / 'gradebook.db'}")
    assert in_pg == in_sqlite
    with open(tmp_path / "pg" / "exercises.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(in_pg) == len(rows) > 0  # every student, every notebook, every grade cell
    for r in rows:
        assert in_pg[(r["student_id"], r["notebook"], r["grade_id"])][0] == float(r["points"]), r
    with Gradebook(with_driver(postgres), course_id=ASSIGNMENT) as gb:  # the course's rows
        notebooks = gb.find_assignment(ASSIGNMENT).notebooks
        assert sorted(nb.name for nb in notebooks) == [p.stem for p in SOLUTION_NOTEBOOKS]
        amy = gb.find_submission_notebook(NOTEBOOK.stem, ASSIGNMENT, "amy")
        assert amy.score == amy.max_score > 0
    again = run_grade(str(subs), "--out", str(tmp_path / "pg"), "--db", postgres)
    assert again.returncode == 0 and "3 student(s) already graded" in again.stderr, again.stderr
    assert gradebook_scores(postgres) == in_pg  # recording again changes nothing


def test_an_unreachable_database_is_a_usage_error(tmp_path):
    subs = tmp_path / "subs"
    build_class(subs)
    url = f"postgresql://postgres@/postgres?host={tmp_path / 'no-server-here'}"
    proc = run_grade(str(subs), "--out", str(tmp_path / "out"), "--db", url)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot open the gradebook"), proc.stderr
