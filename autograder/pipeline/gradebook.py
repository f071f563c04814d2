"""The nbgrader gradebook the driver records the graded students in (`grade --db URL`).

Any database URL nbgrader's `Gradebook` accepts works (SQLAlchemy's: `sqlite:///PATH`,
`postgresql://USER@HOST/DB`, `postgresql://USER@/DB?host=/SOCKET/DIR`, ...; a bare
postgresql:// uses whichever of psycopg and psycopg2 is installed); the default is the
course directory's SQLite file, autograder/gradebook.db (autograder.pipeline.nbcourse). Before
grading starts, the schema and the
course's rows (the assignment, its notebooks, grade, solution, task and source cells with their
checksums) are created once, copied from the gradebook `nbgrader generate_assignment` made for
the run. Then the driver, the only writer, records each student as their record arrives: the
autograded cells' scores after the trusted judging, with hand-graded cells left to the
formgrader (a manual score given there survives a regrade, and `manual_grades` reads the
manual scores and comments back for the CSVs and the feedback).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import sys
import warnings
from pathlib import Path

from nbgrader.api import Comment, Grade, Gradebook, MissingEntry
from sqlalchemy.exc import SAWarning

from autograder.pipeline.coursedir import ASSIGNMENT
from autograder.pipeline.tasks import Result

UNGRADED = ("missing", "invalid")


class GradebookError(Exception):
    """The gradebook cannot be opened or written (a usage error: exit status 2)."""


def with_driver(url: str) -> str:
    """`url` with a PostgreSQL driver that is installed: SQLAlchemy 2.1 reads a bare
    postgresql:// as psycopg (3), the pinned set has psycopg2 (psycopg2-binary)."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme in ("postgresql", "postgres") and importlib.util.find_spec("psycopg") is None \
            and importlib.util.find_spec("psycopg2") is not None:
        return f"postgresql+psycopg2://{rest}"
    return url


def _show(url: str) -> str:
    """The URL without a password."""
    head, sep, tail = url.partition("@")
    if sep and ":" in head.partition("://")[2]:
        scheme, _, rest = head.partition("://")
        return f"{scheme}://{rest.partition(':')[0]}:***@{tail}"
    return url


@contextlib.contextmanager
def _alembic_on_path():
    """nbgrader runs the `alembic` command to stamp a new gradebook: this interpreter's one."""
    saved = os.environ.get("PATH", "")
    os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + saved
    try:
        yield
    finally:
        os.environ["PATH"] = saved


def _new_sqlite_file(url: str) -> Path | None:
    """The file of an sqlite:///PATH URL that does not exist yet, else None."""
    scheme, sep, rest = url.partition(":///")
    if not sep or scheme.partition("+")[0] != "sqlite" or not rest or rest == ":memory:":
        return None
    path = Path(rest.partition("?")[0])  # sqlite:///rel/path or sqlite:////abs/path
    return None if path.exists() else path


def _one_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


class CourseGradebook:
    """The run's gradebook: opened (schema and course rows created) before grading starts."""

    def __init__(self, url: str, template_db: Path):
        self.url = url
        new_file = _new_sqlite_file(url)
        if new_file is not None:
            # A copy of the run's own gradebook has the schema and the course's rows already
            # (creating them anew runs nbgrader's `alembic heads`: seconds per run).
            try:
                new_file.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(template_db, new_file)
            except OSError as err:
                raise GradebookError(f"cannot create the gradebook {new_file}: "
                                     f"{err.strerror or err}") from None
        try:
            with _alembic_on_path():
                self.gb = Gradebook(with_driver(url), course_id=ASSIGNMENT)
        except Exception as err:  # noqa: BLE001 - a bad URL, no driver, no server: say which
            raise GradebookError(f"cannot open the gradebook {_show(url)}: {_one_line(err)}") \
                from None
        try:
            with Gradebook(f"sqlite:///{template_db}", course_id=ASSIGNMENT) as source:
                self._copy_course(source)
            # nbgrader's hand-graded cells: grade cells that are also solution cells.
            assignment = self.gb.find_assignment(ASSIGNMENT)
            self.manual = {(nb.name, cell.name) for nb in assignment.notebooks
                           for cell in nb.solution_cells}
        except Exception as err:  # noqa: BLE001
            self.gb.close()
            raise GradebookError(f"cannot write the course into the gradebook {_show(url)}: "
                                 f"{_one_line(err)}") from None

    def _copy_course(self, source: Gradebook) -> None:
        assignment = source.find_assignment(ASSIGNMENT)
        self.gb.update_or_create_assignment(ASSIGNMENT)
        for nb in assignment.notebooks:
            self.gb.update_or_create_notebook(nb.name, ASSIGNMENT, kernelspec=nb.kernelspec)
            for cell in nb.grade_cells:
                self.gb.update_or_create_grade_cell(cell.name, nb.name, ASSIGNMENT,
                                                    max_score=cell.max_score,
                                                    cell_type=cell.cell_type)
            for cell in nb.solution_cells:
                self.gb.update_or_create_solution_cell(cell.name, nb.name, ASSIGNMENT)
            for cell in nb.task_cells:
                self.gb.update_or_create_task_cell(cell.name, nb.name, ASSIGNMENT,
                                                   max_score=cell.max_score,
                                                   cell_type=cell.cell_type)
            for cell in nb.source_cells:
                self.gb.update_or_create_source_cell(cell.name, nb.name, ASSIGNMENT,
                                                     cell_type=cell.cell_type, locked=cell.locked,
                                                     source=cell.source, checksum=cell.checksum)

    def record(self, student: str, results: list[Result]) -> None:
        """Write one student's scores (autograded cells; hand-graded cells need a grader)."""
        gb = self.gb
        try:
            gb.update_or_create_student(student)
            try:
                gb.find_submission(ASSIGNMENT, student)
            except MissingEntry:
                with warnings.catch_warnings():  # nbgrader's add_submission, as in its own use
                    warnings.simplefilter("ignore", SAWarning)
                    gb.add_submission(ASSIGNMENT, student)
            for r in results:
                for grade in gb.find_submission_notebook(r.notebook, ASSIGNMENT, student).grades:
                    if (r.notebook, grade.name) in self.manual:  # a manual score stays
                        grade.auto_score = None
                        grade.needs_manual_grade = r.status not in UNGRADED and \
                            grade.manual_score is None
                    else:
                        grade.auto_score = float(r.points.get(grade.name, 0.0))
                        grade.needs_manual_grade = False
            gb.db.commit()
        except Exception as err:  # noqa: BLE001
            gb.db.rollback()
            raise GradebookError(f"cannot record {student} in the gradebook {_show(self.url)}: "
                                 f"{_one_line(err)}") from None

    def manual_grades(self) -> tuple[dict[tuple[str, str, str], float],
                                     dict[tuple[str, str, str], str]]:
        """What graders gave in the formgrader: (student, notebook, grade_id) -> manual score
        (hand-graded cells, and autograded cells whose score a grader overrode), and ->
        manual comment."""
        try:
            scores = {(g.student.id, g.notebook.name, g.name): float(g.manual_score)
                      for g in self.gb.db.query(Grade).filter(Grade.manual_score.isnot(None))}
            comments = {(c.student.id, c.notebook.name, c.name): c.manual_comment.strip()
                        for c in self.gb.db.query(Comment).filter(
                            Comment.manual_comment.isnot(None))
                        if c.manual_comment.strip()}
        except Exception as err:  # noqa: BLE001
            raise GradebookError(f"cannot read the manual grades in {_show(self.url)}: "
                                 f"{_one_line(err)}") from None
        return scores, comments

    def close(self) -> None:
        self.gb.close()
