"""The trusted half of grading: judge what the sandboxed kernels recorded.

A grade cell's hidden tests call `grade_kernel("relu", relu)`, or `grade_kernel("relu", relu,
part="math")` / `part="deeper"` for one part of the battery (the mathematics, or the numerics of
a *going deeper* section); the part is read here from the solution notebook's source, so the
trusted side judges the same subset the cell asks for. Inside the sandbox that call only
saves what the student's kernel returned (autograder.recorders.kernels.save_records); nothing the student's
code does in the kernel (monkeypatching numpy or our checks, IPython hooks, lying objects) can
change a verdict reached here, in the grader's own process, with its own numpy and the reference.
A cell keeps nbgrader's points only when every kernel its hidden tests name was judged correct.
Two model exercises (recorders.replayable.REPLAYABLE) are judged the same way: their check runs again
here on a recording of what the student's function returned. Graded answers to *check your
understanding* questions (`grade_answer("q04_1", ..., expected="b")`) are compared here with
the `expected` written in the solution notebook's hidden tests (autograder.recorders.answers).
"""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path
from typing import NamedTuple

import nbformat

from autograder.judging.judge import judge
from autograder.pipeline.feedback import hidden_lines
from autograder.recorders import answers, kernels
from autograder.recorders.replayable import REPLAYABLE

HIDDEN_CALL = re.compile(r"""(grade_kernel|grade_function)\(\s*["'](\w+)["']""")
PART = re.compile(r"""\bpart\s*=\s*["'](\w+)["']""")


class Kernel(NamedTuple):
    """A kernel check of a grade cell: `grade_kernel(name, fn, part=part)` (part None: all)."""

    name: str
    part: str | None = None


def _kernel_checks(hidden: str) -> list[Kernel]:
    """The `grade_kernel(...)` calls in hidden test lines, with the part each one asks for."""
    found = []
    for line in hidden.splitlines():
        for func, name in HIDDEN_CALL.findall(line):
            if func == "grade_kernel":
                part = PART.search(line)
                found.append(Kernel(name, part.group(1) if part else None))
    return found


class Answer(NamedTuple):
    """A graded answer's key, read from the solution notebook (never from the kernel)."""

    question: str
    expected: str | float
    rel_tol: float | None = None
    abs_tol: float | None = None


def _answer_keys(hidden: str) -> list[Answer]:
    """The `grade_answer(...)` calls in hidden test lines, with their literal arguments."""
    keys = []
    for node in ast.walk(ast.parse(hidden)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id == "grade_answer"):
            kw = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
            keys.append(Answer(ast.literal_eval(node.args[0]), kw["expected"],
                               kw.get("rel_tol"), kw.get("abs_tol")))
    return keys


def hidden_checks(solution: Path) -> dict[str, list[Kernel | str | Answer]]:
    """grade_id -> what its hidden tests judge: kernels (with their part), model-exercise names,
    and answer keys (cells with none are left out)."""
    found = {}
    for cell in nbformat.read(solution, as_version=4).cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("grade"):
            hidden = "\n".join(hidden_lines(cell.source))
            names = [name for func, name in HIDDEN_CALL.findall(hidden)
                     if func == "grade_function" and name in REPLAYABLE]
            checks = _kernel_checks(hidden) + names + _answer_keys(hidden)
            if checks:
                found[meta["grade_id"]] = checks
    return found


@functools.cache
def _battery(name: str, part: str | None = None):
    return kernels.battery(name, part)


def judge_kernel(records: Path, name: str, part: str | None = None) -> str | None:
    """None if the records of kernel `name` (for `part`, None: all) in folder `records` pass,
    else the message."""
    if name in REPLAYABLE:  # a model exercise: its check replayed on the recording
        from autograder.recorders import models  # torch: imported only where it is needed

        return models.replay(records, name)
    try:
        bat = _battery(name, part)
        recs, speed = kernels.load_records(records, kernels.record_name(name, part))
    except (kernels.RecordsError, ValueError) as err:
        return str(err)
    if len(recs) != len(bat.cases):
        return f"the hidden checks of {name} recorded {len(recs)} results for {len(bat.cases)} inputs"
    try:
        return judge(name, bat, recs, speed)
    except Exception as err:  # noqa: BLE001 - records that break the judge are wrong records
        return f"the outputs of {name} could not be checked ({type(err).__name__}: {err})"


def judge_answer(records: Path, key: Answer) -> str | None:
    """None if the answer recorded in folder `records` matches the key, else the message."""
    try:
        answer = answers.load_answer(records, key.question)
    except kernels.RecordsError as err:
        return str(err)
    return answers.compare(key.question, answer, key.expected, key.rel_tol, key.abs_tol)


def judge_check(records: Path, check: Kernel | str | Answer) -> str | None:
    if isinstance(check, Answer):
        return judge_answer(records, check)
    if isinstance(check, Kernel):
        return judge_kernel(records, check.name, check.part)
    return judge_kernel(records, check)


def judge_cells(records: Path, checks: dict[str, list[Kernel | str | Answer]]) -> dict[str, str | None]:
    """grade_id -> None (every check of the cell passed) or the first failure message."""
    verdicts = {}
    for grade_id, cell_checks in checks.items():
        verdicts[grade_id] = next(
            (msg for msg in (judge_check(records, c) for c in cell_checks) if msg), None)
    return verdicts
