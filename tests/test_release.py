"""course/ is generated from solutions/ and gives nothing of the solutions or the grader away."""

from __future__ import annotations

import re

import nbformat
import pytest
from conftest import COURSE, SOLUTION_NOTEBOOKS, STUDENT_NOTEBOOKS, nb_ids

from autograder.pipeline import release
from autograder.pipeline.feedback import hidden_lines

pytestmark = pytest.mark.skipif(not SOLUTION_NOTEBOOKS, reason="no solution notebooks yet")


@pytest.fixture(scope="module")
def expected():
    """The student notebooks a fresh release would write (released in a temporary folder)."""
    return release.render_in_tempdir()


def test_course_is_up_to_date(expected):
    stale = release.stale_files(expected)
    assert not stale, f"course/ is out of date ({', '.join(stale)}): run make release"


def test_release_is_deterministic(expected):
    assert release.render_in_tempdir() == expected


def test_check_names_stale_files_and_writes_nothing(expected, tmp_path, capsys):
    (tmp_path / "nonlinearity").mkdir()
    (tmp_path / "nonlinearity" / "__init__.py").write_text("# helper package\n")
    first = sorted(expected)[0]
    (tmp_path / first).write_text("{}")
    (tmp_path / "99_withdrawn.ipynb").write_text("{}")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}

    assert release.main(check=True, course=tmp_path) == 1
    message = capsys.readouterr().err.strip()
    assert "\n" not in message and "run make release" in message
    assert first in message and "99_withdrawn.ipynb" in message
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_write_course_replaces_stale_and_keeps_helper_package(expected, tmp_path):
    helper = tmp_path / "nonlinearity" / "__init__.py"
    helper.parent.mkdir()
    helper.write_text("# helper package\n")
    (tmp_path / "99_withdrawn.ipynb").write_text("{}")

    release.write_course(expected, tmp_path)
    assert sorted(p.name for p in tmp_path.glob("*.ipynb")) == sorted(expected)
    assert all((tmp_path / name).read_text() == text for name, text in expected.items())
    assert helper.read_text() == "# helper package\n"
    assert release.stale_files(expected, tmp_path) == []


@pytest.mark.parametrize("path", STUDENT_NOTEBOOKS, ids=nb_ids(STUDENT_NOTEBOOKS))
def test_student_notebook_has_no_outputs(path):
    nb = nbformat.read(path, as_version=4)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {index} has outputs"
            assert cell.execution_count is None, f"{path.name} cell {index} was executed"


def _solution_lines(source: str) -> set[str]:
    """Lines only found inside ### BEGIN/END SOLUTION regions of `source`."""
    inside, outside, solution = set(), set(), False
    for line in source.split("\n"):
        if "BEGIN SOLUTION" in line:
            solution = True
        elif "END SOLUTION" in line:
            solution = False
        elif line.strip():
            (inside if solution else outside).add(line.strip())
    return inside - outside - {"pass", "return", "raise NotImplementedError()"}


@pytest.mark.parametrize("path", SOLUTION_NOTEBOOKS, ids=nb_ids(SOLUTION_NOTEBOOKS))
def test_no_solution_or_hidden_test_left(path):
    student = COURSE / path.name
    assert student.is_file(), f"course/{path.name} is missing: run make release"
    text = student.read_text()
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
        assert marker not in text, f"{student.name} still contains {marker!r}"
    released = {c.get("id"): c.source for c in nbformat.read(student, as_version=4).cells}
    for cell in nbformat.read(path, as_version=4).cells:
        for line in hidden_lines(cell.source):
            assert line not in text, f"{student.name} contains hidden-test line {line!r}"
        if cell.metadata.get("nbgrader", {}).get("solution"):
            student_lines = {ln.strip() for ln in released.get(cell.get("id"), "").split("\n")}
            leaked = _solution_lines(cell.source) & student_lines
            assert not leaked, f"{student.name}: solution lines left in the student cell: {leaked}"


IMPORT_INSTRUCTOR = re.compile(
    r"^\s*(from|import)\s+(autograder|solutions)\b"
    r"|import_module\(\s*['\"](autograder|solutions)"
    r"|__import__\(\s*['\"](autograder|solutions)",
    re.MULTILINE,
)


def test_course_does_not_import_instructor_code():
    offenders = []
    for path in STUDENT_NOTEBOOKS:
        for index, cell in enumerate(nbformat.read(path, as_version=4).cells):
            if cell.cell_type == "code" and IMPORT_INSTRUCTOR.search(cell.source):
                offenders.append(f"{path.name} cell {index}")
    for path in sorted((COURSE / "nonlinearity").rglob("*.py")):
        if IMPORT_INSTRUCTOR.search(path.read_text()):
            offenders.append(str(path.relative_to(COURSE)))
    assert not offenders, f"course/ imports from autograder/ or solutions/: {offenders}"
