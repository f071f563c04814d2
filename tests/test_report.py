"""`python -m autograder report GRADES`: the class report an instructor opens after grading.

A generated class of 60 students (CSV files as `grade` writes them) goes in; the report's tables
must agree with exercises.csv and grades.csv counted independently here, the same mistake shown
on different inputs must count once per student, every figure must carry alt text, and a folder
that `grade` did not write gets a one-line error (exit 2), with no report written.
"""

from __future__ import annotations

import csv
import random
import subprocess
import sys
from collections import Counter, defaultdict
from html.parser import HTMLParser
from pathlib import Path

import pytest

CELLS = {"02_relu": {"test_relu": 2, "test_relu_grad": 2},
         "05_softmax": {"test_softmax": 3, "test_cross_entropy": 2}}
STATUSES = ["ok"] * 8 + ["missing", "timeout", "flagged", "crashed"]
MISTAKES = {  # grade cell -> the same misconception, shown on different inputs
    "test_relu_grad": ["relu_grad is 1 for x < 0: relu_grad(-{v}) = 1, expected 0 (for random normal (3, 4))",
                       "relu_grad is 1 for x < 0: relu_grad(-{v}) = 1, expected 0 (for a list)"],
    "test_softmax": ["softmax overflows for large logits: subtract the maximum first "
                     "(e.g. softmax([{v}, 0]) = [nan, 0], expected [1, 0]; input: large logits)"],
}


def _write(path: Path, header: list[str], rows: list[list]) -> None:
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])


def make_class(folder: Path, students: int = 60, seed: int = 7) -> None:
    rng = random.Random(seed)
    grades, exercises, messages, timings = [], [], [], []
    for i in range(students):
        sid = f"student{i:03d}"
        for nb, cells in CELLS.items():
            status = rng.choice(STATUSES)
            total = 0.0
            for cell, top in cells.items():
                points = 0.0 if status == "missing" else float(rng.choice([0, top / 2, top, top]))
                total += points
                exercises.append([sid, nb, cell, f"{points:g}", top])
                if points < top and cell in MISTAKES and status != "missing":
                    for _ in range(rng.randint(1, 3)):  # one student, several inputs showing it
                        text = rng.choice(MISTAKES[cell]).format(v=rng.randint(1, 900))
                        messages.append([sid, nb, cell, text])
            grades.append([sid, nb, f"{total:g}", sum(cells.values()), status])
            if status != "missing":
                timings.append([sid, nb, f"{rng.uniform(2, 40):.2f}"])
    _write(folder / "grades.csv", ["student_id", "notebook", "score", "max_score", "status"], grades)
    _write(folder / "exercises.csv", ["student_id", "notebook", "grade_id", "points", "max_points"],
           exercises)
    _write(folder / "messages.csv", ["student_id", "notebook", "grade_id", "message"], messages)
    _write(folder / "timings.csv", ["student_id", "notebook", "seconds"], timings)


class Tables(HTMLParser):
    """The report's tables (by their data-table key) and its images' alt texts."""

    def __init__(self, text: str):
        super().__init__()
        self.tables, self.alts, self._table, self._row, self._cell = {}, [], None, None, None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._table = self.tables.setdefault(attrs.get("data-table"), [])
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = ""
        elif tag == "img":
            self.alts.append(attrs.get("alt") or "")

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append(self._cell.strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self._table.append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


def run_report(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autograder", "report", *args],
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("grades")
    make_class(folder)
    proc = run_report(str(folder))
    assert proc.returncode == 0, proc.stderr[-2000:]
    return folder, Tables((folder / "report.html").read_text())


def _rows(folder: Path, name: str) -> list[dict[str, str]]:
    with open(folder / name, newline="") as f:
        return list(csv.DictReader(f))


def test_points_per_exercise_agree_with_exercises_csv(report):
    folder, page = report
    by_cell = defaultdict(list)
    for r in _rows(folder, "exercises.csv"):
        by_cell[(r["notebook"], r["grade_id"])].append((float(r["points"]), float(r["max_points"])))
    header, *rows = page.tables["exercises"]
    assert header == ["notebook", "graded cell", "mean points", "max points", "full points", "zero",
                      "students"]
    assert len(rows) == len(by_cell) == 4
    for nb, cell, mean, top, full, zero, n in rows:
        pts = by_cell[(nb, cell)]
        assert float(mean) == pytest.approx(sum(p for p, _ in pts) / len(pts), abs=1e-3)
        assert float(top) == max(m for _, m in pts)
        assert int(full) == sum(p >= m for p, m in pts)
        assert int(zero) == sum(p == 0 for p, _ in pts)
        assert int(n) == len(pts) == 60


def test_statuses_agree_with_grades_csv(report):
    folder, page = report
    counts = Counter((r["notebook"], r["status"]) for r in _rows(folder, "grades.csv"))
    header, *rows = page.tables["statuses"]
    for row in rows:
        for status, n in zip(header[1:], row[1:], strict=True):
            assert int(n) == counts[(row[0], status)], (row[0], status)
    assert sum(int(n) for row in rows for n in row[1:]) == 120


def test_a_mistake_counts_once_per_student_whatever_input_showed_it(report):
    folder, page = report
    students = defaultdict(set)
    for r in _rows(folder, "messages.csv"):
        students[r["grade_id"]].add(r["student_id"])
    header, *rows = page.tables["mistakes"]
    found = {(kernel, what): int(n) for kernel, what, n in rows}
    assert found == {("relu_grad", "relu_grad is 1 for x < 0"): len(students["test_relu_grad"]),
                     ("softmax", "softmax overflows for large logits: subtract the maximum first"):
                         len(students["test_softmax"])}


def test_slowest_notebooks_are_the_slowest(report):
    folder, page = report
    seconds = sorted((float(r["seconds"]) for r in _rows(folder, "timings.csv")), reverse=True)
    header, *rows = page.tables["slowest"]
    assert [float(r[2]) for r in rows] == pytest.approx([round(s, 1) for s in seconds[:10]])


def test_every_figure_has_alt_text_that_says_what_it_shows(report):
    _, page = report
    assert len(page.alts) == 4
    assert all(len(alt) > 60 for alt in page.alts)
    assert any("Medians: 02" in alt for alt in page.alts)


def _foreign_csvs(folder: Path) -> None:
    (folder / "grades.csv").write_text("a,b\n1,2\n")
    (folder / "exercises.csv").write_text("x\n")


@pytest.mark.parametrize("make, message", [
    (lambda d: None, "grades.csv is missing"),
    (_foreign_csvs, "has no column"),
])
def test_a_folder_grade_did_not_write_is_refused_in_one_line(tmp_path, make, message):
    make(tmp_path)
    proc = run_report(str(tmp_path))
    assert proc.returncode == 2
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "report.html").exists()


def test_grade_keeps_its_csvs_when_the_report_fails(tmp_path, monkeypatch, capsys):
    """`grade` draws the report after the CSVs are written: a report that fails costs a warning,
    never the grades."""
    from autograder.instructor import report
    from autograder.pipeline import grade
    from autograder.pipeline.tasks import Result

    results = [Result("amy", "02_relu", "ok", {"test_relu": 2.0, "test_relu_grad": 0.0},
                      seconds=3.5, messages={"test_relu_grad": "relu_grad is 1 for x < 0",
                                             "test_relu": "not shown: full points"}),
               Result("bob", "02_relu", "missing")]
    grade.write_csvs(tmp_path, results, {"02_relu": CELLS["02_relu"]})

    def broken(folder, out=None):
        raise RuntimeError("no figures today")

    monkeypatch.setattr(report, "write_report", broken)
    grade.write_class_report(tmp_path)
    assert "class report was not written" in capsys.readouterr().err
    assert not (tmp_path / "report.html").exists()
    assert _rows(tmp_path, "messages.csv") == [
        {"student_id": "amy", "notebook": "02_relu", "grade_id": "test_relu_grad",
         "message": "relu_grad is 1 for x < 0"}]
    assert _rows(tmp_path, "timings.csv") == [
        {"student_id": "amy", "notebook": "02_relu", "seconds": "3.50"}]
    monkeypatch.undo()
    grade.write_class_report(tmp_path)
    assert "relu_grad is 1 for x &lt; 0" in (tmp_path / "report.html").read_text()
