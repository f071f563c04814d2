"""Feedback students may see: hidden-test source removed, hidden-test messages kept.

nbgrader writes the hidden tests back into the autograded notebook, and its HTML feedback
shows them (nbgrader issues #917, #1156); an IPython traceback also quotes the source lines of
every frame, hidden checks included. Before feedback is generated, every autograded notebook
goes through `redact_notebook`; every HTML page is then checked with `leaks`.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import nbformat

BEGIN_HIDDEN = "BEGIN HIDDEN TESTS"
END_HIDDEN = "END HIDDEN TESTS"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_TAG = re.compile(r"<[^>]*>")


def strip_hidden(source: str) -> str:
    """`source` without the lines from ### BEGIN HIDDEN TESTS to ### END HIDDEN TESTS."""
    kept, hidden = [], False
    for line in source.split("\n"):
        if BEGIN_HIDDEN in line:
            hidden = True
        elif END_HIDDEN in line:
            hidden = False
        elif not hidden:
            kept.append(line)
    return "\n".join(kept).rstrip("\n")


def hidden_lines(source: str) -> list[str]:
    """The non-blank lines inside hidden-test regions of `source`, stripped."""
    lines, hidden = [], False
    for line in source.split("\n"):
        if BEGIN_HIDDEN in line:
            hidden = True
        elif END_HIDDEN in line:
            hidden = False
        elif hidden and line.strip():
            lines.append(line.strip())
    return lines


def notebook_hidden_lines(path: Path) -> set[str]:
    """The hidden-test lines of the (solution) notebook at `path` that are not also visible."""
    nb = nbformat.read(path, as_version=4)
    hidden = {line for cell in nb.cells for line in hidden_lines(cell.source)}
    visible = {line.strip() for cell in nb.cells for line in strip_hidden(cell.source).split("\n")}
    return hidden - visible


def _short_error(output) -> list[str]:
    evalue = _ANSI.sub("", str(output.get("evalue", "")))
    return [f"{output.get('ename', 'Error')}: {evalue}"]


def redact_notebook(path: Path) -> None:
    """Rewrite the autograded notebook at `path` for feedback, in place.

    Hidden-test regions are removed from every code cell, and each error keeps only its
    name and message (a traceback quotes source lines of the hidden checks).
    """
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.source = strip_hidden(cell.source)
        for output in cell.get("outputs", []):
            if output.output_type == "error":
                output.traceback = _short_error(output)
    nbformat.write(nb, path)


def page_text(page: str) -> str:
    """The visible text of an HTML page (tags dropped, entities decoded)."""
    return html.unescape(_TAG.sub("", page))


def leaks(page: str, secret_lines: set[str]) -> list[str]:
    """Hidden-test markers or source lines that appear in the HTML `page`."""
    text = page_text(page)
    squashed = re.sub(r"\s+", "", text)
    found = [marker for marker in (BEGIN_HIDDEN, END_HIDDEN) if marker in text]
    found += sorted(line for line in secret_lines if re.sub(r"\s+", "", line) in squashed)
    return found


def placeholder_page(student: str, notebook: str, status: str, score: float,
                     max_score: float) -> str:
    """Feedback for a notebook that could not be graded, or whose page was withheld."""
    reasons = {
        "ok": "was graded; its detailed feedback page could not be produced",
        "missing": "was not submitted",
        "invalid": "is not a valid Jupyter notebook (not JSON, or not in notebook format)",
        "timeout": "ran past its time limit and was stopped",
        "crashed": "crashed the Python kernel (for example by exhausting memory)",
        "error": "could not be graded because of an error in the grading run",
    }
    why = reasons.get(status, status)
    title = html.escape(f"{notebook} - {student}")
    return (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        f"<title>{title}</title></head><body>\n"
        f"<h1>{html.escape(notebook)}</h1>\n"
        f"<p>Student: {html.escape(student)}</p>\n"
        f"<p>Score: {score:g} / {max_score:g}</p>\n"
        f"<p>This notebook {html.escape(why)}.</p>\n</body></html>\n"
    )
