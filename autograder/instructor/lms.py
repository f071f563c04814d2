"""Grades for a learning-management system, as nbgrader exporter plugins.

From the course directory (`autograder/`), after grading:

    nbgrader export --exporter autograder.instructor.lms.CanvasExporter --to canvas.csv
    nbgrader export --exporter autograder.instructor.lms.LmsCsvExporter --to lms.csv

Both read nbgrader's gradebook, so hand-graded points entered in the formgrader count. A
student's LMS id is nbgrader's `lms_user_id` (`nbgrader db student import students.csv` with
columns `id,first_name,last_name,email,lms_user_id`); a student without one is exported with an
empty LMS id and named in a warning, so the upload cannot silently drop them.

- `CanvasExporter` writes Canvas's gradebook import format: `Student, ID, SIS User ID,
  SIS Login ID, Section`, then one column per notebook and a total, and a `Points Possible`
  row. ID is the Canvas user id (lms_user_id); SIS User ID is the course's student id.
- `LmsCsvExporter` writes a plain table: `student_id, lms_id`, one column per notebook, `total`.

A notebook the student did not submit scores 0 (an LMS has no "missing" cell to upload).
"""

from __future__ import annotations

import csv

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.plugins import ExportPlugin


def _number(x: float) -> str:
    return f"{x:g}"


class _NotebookTable(ExportPlugin):
    """Shared by the exporters: one row per student, one score per notebook of each assignment."""

    default_to = "grades.csv"

    def _columns(self, gb: Gradebook) -> list[tuple[str, str, float]]:
        """(assignment, notebook, max_score) for each notebook column, in course order."""
        columns = []
        for assignment in sorted(gb.assignments, key=lambda a: a.name):
            if self.assignment and assignment.name not in self.assignment:
                continue
            for nb in sorted(assignment.notebooks, key=lambda n: n.name):
                columns.append((assignment.name, nb.name, float(nb.max_score)))
        return columns

    def _rows(self, gb: Gradebook):
        """(student, [score per column], total) for each selected student, sorted by id."""
        columns = self._columns(gb)
        for student in sorted(gb.students, key=lambda s: s.id):
            if self.student and student.id not in self.student:
                continue
            scores = []
            for assignment, notebook, _ in columns:
                try:
                    sub = gb.find_submission_notebook(notebook, assignment, student.id)
                    scores.append(float(sub.score))
                except MissingEntry:
                    scores.append(0.0)
            yield student, scores, sum(scores)

    def _write(self, header: list[list[str]], body: list[list[str]]) -> None:
        dest = self.to or self.default_to
        with open(dest, "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows(header + body)
        self.log.info("Exported %d students to %s", len(body), dest)

    def _lms_id(self, student) -> str:
        if not student.lms_user_id:
            self.log.warning("student %s has no lms_user_id: set it with `nbgrader db student "
                             "add %s --lms-user-id ID` before uploading", student.id, student.id)
        return student.lms_user_id or ""


class CanvasExporter(_NotebookTable):
    """Canvas gradebook import CSV (Grades > Import)."""

    default_to = "canvas.csv"

    def export(self, gradebook: Gradebook) -> None:
        columns = self._columns(gradebook)
        names = [notebook for _, notebook, _ in columns]
        header = [["Student", "ID", "SIS User ID", "SIS Login ID", "Section", *names, "Total"],
                  ["Points Possible", "", "", "", "",
                   *(_number(m) for _, _, m in columns), _number(sum(m for _, _, m in columns))]]
        body = []
        for student, scores, total in self._rows(gradebook):
            name = ", ".join(p for p in (student.last_name, student.first_name) if p) or student.id
            body.append([name, self._lms_id(student), student.id, student.email or "", "",
                         *(_number(s) for s in scores), _number(total)])
        self._write(header, body)


class LmsCsvExporter(_NotebookTable):
    """A generic table for any LMS: student id, LMS id, each notebook, total."""

    default_to = "lms.csv"

    def export(self, gradebook: Gradebook) -> None:
        names = [notebook for _, notebook, _ in self._columns(gradebook)]
        body = [[student.id, self._lms_id(student), *(_number(s) for s in scores), _number(total)]
                for student, scores, total in self._rows(gradebook)]
        self._write([["student_id", "lms_id", *names, "total"]], body)
