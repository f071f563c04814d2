"""The trusted half of grading: judge what the sandboxed kernels recorded.

A grade cell's hidden tests call `grade_kernel("relu", relu)`. Inside the sandbox that call only
saves what the student's kernel returned (autograder.recorders.kernels.save_records); nothing the student's
code does in the kernel (monkeypatching numpy or our checks, IPython hooks, lying objects) can
change a verdict reached here, in the grader's own process, with its own numpy and the reference.
A cell keeps nbgrader's points only when every kernel its hidden tests name was judged correct.
Two model exercises (models.REPLAYABLE) are judged the same way: their check runs again
here on a recording of what the student's function returned.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import nbformat

from autograder.judging.judge import judge
from autograder.pipeline.feedback import hidden_lines
from autograder.recorders import kernels, models

HIDDEN_CALL = re.compile(r"""(grade_kernel|grade_function)\(\s*["'](\w+)["']""")


def hidden_kernels(solution: Path) -> dict[str, list[str]]:
    """grade_id -> the kernels its hidden tests judge (cells with none are left out)."""
    found = {}
    for cell in nbformat.read(solution, as_version=4).cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("grade"):
            calls = HIDDEN_CALL.findall("\n".join(hidden_lines(cell.source)))
            names = [name for func, name in calls
                     if func == "grade_kernel" or name in models.REPLAYABLE]
            if names:
                found[meta["grade_id"]] = names
    return found


@functools.cache
def _battery(name: str):
    return kernels.battery(name)


def judge_kernel(records: Path, name: str) -> str | None:
    """None if the records of kernel `name` in folder `records` pass, else the message."""
    if name in models.REPLAYABLE:  # a model exercise: its check replayed on the recording
        return models.replay(records, name)
    try:
        recs, speed = kernels.load_records(records, name)
    except kernels.RecordsError as err:
        return str(err)
    try:
        return judge(name, _battery(name), recs, speed)
    except Exception as err:  # noqa: BLE001 - records that break the judge are wrong records
        return f"the outputs of {name} could not be checked ({type(err).__name__}: {err})"


def judge_cells(records: Path, kernels: dict[str, list[str]]) -> dict[str, str | None]:
    """grade_id -> None (every kernel of the cell passed) or the first failure message."""
    verdicts = {}
    for grade_id, names in kernels.items():
        verdicts[grade_id] = next(
            (msg for msg in (judge_kernel(records, n) for n in names) if msg), None)
    return verdicts
