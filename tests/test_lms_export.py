"""LMS export: `nbgrader export --exporter autograder.instructor.lms.…` from the gradebook.

What an instructor uploads: Canvas's gradebook import CSV and a generic CSV, with one column per
notebook, hand-graded points included, a missing notebook as 0, and students without an LMS id
still listed (and warned about). Compared with golden files in tests/golden/.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from nbgrader.api import Gradebook

from autograder.pipeline.coursedir import nbgrader_env

GOLDEN = Path(__file__).parent / "golden"
NOTEBOOKS = {"01_linear_collapse": {"test_collapse": 3.0},
             "04_sigmoid_tanh": {"test_sigmoid": 2.0, "written_04": 2.0}}


@pytest.fixture
def course(tmp_path, monkeypatch):
    """A course directory whose gradebook holds three students, as after grading."""
    monkeypatch.setenv("PATH", nbgrader_env()["PATH"])  # nbgrader shells out to alembic
    db = f"sqlite:///{tmp_path / 'gradebook.db'}"
    with Gradebook(db, course_id="activations") as gb:
        gb.add_assignment("activations")
        for nb, cells in NOTEBOOKS.items():
            gb.add_notebook(nb, "activations")
            for cell, points in cells.items():
                gb.add_grade_cell(cell, nb, "activations", max_score=points,
                                  cell_type="markdown" if cell.startswith("written") else "code")
        gb.add_student("alice", first_name="Alice", last_name="Ng", email="alice@uni.example",
                       lms_user_id="1001")
        gb.add_student("bob", first_name="Bob", last_name="Okafor", lms_user_id="1002")
        gb.add_student("carol")  # no LMS id yet
        gb.add_submission("activations", "alice")
        gb.add_submission("activations", "bob")
        scores = {("alice", "test_collapse"): (3.0, None), ("alice", "test_sigmoid"): (2.0, None),
                  ("alice", "written_04"): (None, 1.5),  # graded by hand in the formgrader
                  ("bob", "test_collapse"): (1.0, None), ("bob", "test_sigmoid"): (0.0, None)}
        for (student, cell), (auto, manual) in scores.items():
            nb = next(n for n, cells in NOTEBOOKS.items() if cell in cells)
            grade = gb.find_grade(cell, nb, "activations", student)
            grade.auto_score, grade.manual_score = auto, manual
        gb.db.commit()
    (tmp_path / "nbgrader_config.py").write_text(
        f"c = get_config()\nc.CourseDirectory.course_id = 'activations'\nc.CourseDirectory.db_url = {db!r}\n")
    return tmp_path


def export(course: Path, exporter: str) -> subprocess.CompletedProcess:
    out = course / f"{exporter}.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "nbgrader", "export", "--exporter",
         f"autograder.instructor.lms.{exporter}", "--to", str(out)],
        cwd=course, capture_output=True, text=True, timeout=120, env=nbgrader_env())
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


@pytest.mark.parametrize("exporter, golden", [("CanvasExporter", "canvas.csv"),
                                              ("LmsCsvExporter", "lms.csv")])
def test_export_matches_the_golden_file(course, exporter, golden):
    proc = export(course, exporter)
    assert (course / f"{exporter}.csv").read_text() == (GOLDEN / golden).read_text()
    assert "student carol has no lms_user_id" in proc.stderr


def test_only_the_selected_students(course):
    out = course / "one.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "nbgrader", "export", "--exporter",
         "autograder.instructor.lms.LmsCsvExporter", "--to", str(out), "--student", "['bob']"],
        cwd=course, capture_output=True, text=True, timeout=120, env=nbgrader_env())
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert [line.split(",")[0] for line in out.read_text().splitlines()] == ["student_id", "bob"]
