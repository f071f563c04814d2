"""Graded *check your understanding* answers: a choice letter or a number.

A grade cell's hidden tests call `grade_answer("q04_1", answer_q04_1, expected="b")`.
Inside the grading sandbox (RECORDS_ENV set) that call only records what the student answered,
as plain JSON; the trusted side (autograder.judging.trusted) reads `expected` from the solution
notebook's own source and compares there, so nothing the student's code does in the kernel
(an object whose `__eq__` says yes, a patched `grade_answer`) can turn a wrong answer into a
right one. Outside the sandbox (plain nbgrader, the Validate button on the solutions) the
comparison runs in the kernel and a wrong answer raises AssertionError.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from pathlib import Path

from autograder.recorders.kernels import RECORDS_ENV, RecordsError

MAX_TEXT = 200  # characters of a text answer kept; a choice is one letter


def record_name(question: str) -> str:
    return f"answer_{question}"


def plain_answer(value):
    """The student's answer as a plain str, float or None (None: neither text nor a number)."""
    if isinstance(value, str):
        return value[:MAX_TEXT]
    if isinstance(value, bool):  # True is an int to Python, not a number to us
        return None
    if isinstance(value, numbers.Real):
        return float(value)
    try:  # a numpy scalar or a 0-d array
        import numpy as np

        if isinstance(value, np.ndarray | np.generic) and np.ndim(value) == 0:
            if np.issubdtype(np.asarray(value).dtype, np.number):
                return float(value)
    except (ImportError, TypeError, ValueError):
        pass
    return None


def _normal_text(text: str) -> str:
    return text.strip().strip("()").strip().lower()


def compare(question: str, answer, expected, rel_tol: float | None = None,
            abs_tol: float | None = None) -> str | None:
    """None when `answer` (a plain answer) matches `expected`, else the student's message.

    Text answers compare without case, spaces or brackets ("(B)" is "b"); numbers within
    rel_tol / abs_tol (exactly, when neither is given)."""
    if isinstance(expected, str):
        if not isinstance(answer, str):
            return f"{question}: answer with the letter of your choice, as a string such as \"a\""
        if _normal_text(answer) != _normal_text(expected):
            return f"{question}: {answer!r} is not the right choice"
        return None
    if answer is None or isinstance(answer, str):
        return f"{question}: answer with a number"
    if not math.isfinite(answer):
        return f"{question}: {answer!r} is not a finite number"
    if not math.isclose(answer, float(expected), rel_tol=rel_tol or 0.0, abs_tol=abs_tol or 0.0):
        return f"{question}: {answer:g} is not the right value"
    return None


def save_answer(folder, question: str, value) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"name": record_name(question), "answer": plain_answer(value)})
    (folder / f"{record_name(question)}.json").write_text(text)


def load_answer(folder, question: str):
    """The plain answer recorded for `question`; RecordsError when absent or malformed."""
    path = Path(folder) / f"{record_name(question)}.json"
    if not path.is_file():
        raise RecordsError(f"{question}: the check of this answer did not run to the end")
    if path.stat().st_size > 4 * MAX_TEXT + 200:
        raise RecordsError(f"{question}: the recorded answer is too large")
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise RecordsError(f"{question}: unreadable answer record ({err})") from None
    if not isinstance(meta, dict) or meta.get("name") != record_name(question):
        raise RecordsError(f"{question}: malformed answer record")
    answer = meta.get("answer")
    if not isinstance(answer, str | float | int | type(None)) or isinstance(answer, bool):
        raise RecordsError(f"{question}: malformed answer record")
    return answer if isinstance(answer, str | type(None)) else float(answer)


def grade_answer(question: str, value, *, expected, rel_tol: float | None = None,
                 abs_tol: float | None = None) -> None:
    """Record (in the sandbox) or check (elsewhere) the answer to question `question`."""
    folder = os.environ.get(RECORDS_ENV)
    if folder:
        save_answer(folder, question, value)
        return
    message = compare(question, plain_answer(value), expected, rel_tol, abs_tol)
    if message:
        raise AssertionError(message)
