"""The catalogue of student mistakes through the real grading pipeline.

Builds a class from the released notebooks (course/): each student's notebook has every
exercise cell filled with the instructor's solution except for one or more kernels, whose cells
hold catalogue entries (tests/catalogue.py). Kernels of one notebook share a student when no code
left in that notebook calls a replaced kernel (cross_entropy's solution calls log_softmax, so a
replaced log_softmax comes with a self-contained correct cross_entropy). The class is graded once
with `python -m autograder grade --workers 2`, then:

* every wrong entry loses points on the grade cell that names its mistake (`Entry.cell`: the
  kernel's mathematics cell `test_<kernel>`, or its going-deeper cell `test_<kernel>_deeper` for
  a numerics mistake), a numerics mistake keeps every mathematics point, a mathematics mistake
  may cost its own kernel's going-deeper cell too and nothing else; every correct entry keeps
  full marks (the catch rate must be 100 %, the false-fail rate 0 %);
* the student's feedback page shows the diagnostic message for each wrong entry: the visible
  check's (it runs first in the grade cell) when it catches the entry, else the hidden one's;
* (fast, no pipeline) the visible checks alone catch at least VISIBLE_FLOOR of the wrong entries.

Slow: 54 notebooks are executed (about 4 minutes on 2 idle cores).
"""
from __future__ import annotations

import io
import re
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import nbformat
import pytest
from catalogue import CATALOGUE, CORRECT, KERNELS, NOTEBOOK, WRONG, load
from conftest import COURSE, SOLUTIONS
from test_grading import grade_cells, read_csv, run_grade

from autograder.pipeline.feedback import page_text
from autograder.recorders.kernels import grade_kernel
from nonlinearity.checks import check_kernel

VISIBLE_FLOOR = 1.0  # share of wrong entries the visible checks alone must catch
NOTEBOOKS = sorted(set(NOTEBOOK.values()))


def _calls(code: str, kernel: str) -> bool:
    code = re.sub(r"#.*", "", code)
    return re.search(rf"(?<![.\w]){kernel}\(", code) is not None


def solution_bodies(nb) -> dict[str, str]:
    """kernel -> the code between BEGIN and END SOLUTION in its solution cell."""
    out = {}
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id", "")
        if cell.metadata.get("nbgrader", {}).get("solution") and gid.endswith("_solution"):
            body = cell.source.split("### BEGIN SOLUTION")[-1].split("### END SOLUTION")[0]
            out[gid.removesuffix("_solution")] = body
    return out


def _fits(slot: dict, entry, bodies: dict) -> bool:
    """Whether `entry` can join `slot` (kernel -> entry) without another kernel calling it."""
    k = entry.kernel
    if k in slot:
        return False
    replaced = {**slot, k: entry}
    for j, e in replaced.items():  # replaced code calling another replaced kernel
        if any(_calls(e.source, other) for other in replaced if other != j):
            return False
    return not any(_calls(body, r) for j, body in bodies.items() if j not in replaced
                   for r in replaced)


def plan_class() -> dict[str, tuple[str, dict]]:
    """student -> (notebook, {kernel: entry}); every catalogue entry in exactly one student,
    plus correct self-contained fillers where a solution would call a replaced kernel."""
    students = {}
    for notebook in NOTEBOOKS:
        bodies = solution_bodies(nbformat.read(SOLUTIONS / f"{notebook}.ipynb", as_version=4))
        slots: list[dict] = []
        # Callers first (cross_entropy before log_softmax): their entries that do not call the
        # kernel they depend on leave room for that kernel's entries.
        for entry in reversed(CATALOGUE):
            if NOTEBOOK[entry.kernel] != notebook:
                continue
            slot = next((s for s in slots if _fits(s, entry, bodies)), None)
            if slot is None:
                slot = {}
                callers = [j for j, b in bodies.items() if j != entry.kernel
                           and _calls(b, entry.kernel)]
                for j in callers:  # a correct, self-contained stand-in for each caller
                    filler = next(f for f in CORRECT if f.kernel == j
                                  and not any(_calls(f.source, k) for k in KERNELS if k != j))
                    slot[j] = filler
                assert _fits(slot, entry, bodies), entry.id
                slots.append(slot)
            slot[entry.kernel] = entry
        for i, slot in enumerate(slots):
            students[f"{notebook[:2]}-{i:02d}"] = (notebook, slot)
    return students


def write_notebook(notebook: str, slot: dict, dest: Path) -> None:
    """The released notebook, solved: solution cells from solutions/, catalogue entries for the
    kernels in `slot`."""
    solved = nbformat.read(SOLUTIONS / f"{notebook}.ipynb", as_version=4)
    answers = {c.metadata["nbgrader"]["grade_id"]: c.source for c in solved.cells
               if c.metadata.get("nbgrader", {}).get("solution")}
    nb = nbformat.read(COURSE / f"{notebook}.ipynb", as_version=4)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id", "")
        if not cell.metadata.get("nbgrader", {}).get("solution"):
            continue
        kernel = gid.removesuffix("_solution")
        cell.source = slot[kernel].source if kernel in slot else answers[gid]
    nbformat.write(nb, dest)


def first_message(entry) -> str:
    """The message a student sees first in the cell that names the mistake: the visible
    check's, else the hidden check's."""
    fn = load(entry)
    with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
        try:
            check_kernel(entry.kernel, fn, part=entry.part)
        except Exception as exc:  # noqa: BLE001 - any failure of the visible check is shown
            return str(exc)
        try:
            grade_kernel(entry.kernel, fn, part=entry.part)
        except AssertionError as exc:
            return str(exc)
    return ""


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    if not all((COURSE / f"{nb}.ipynb").is_file() for nb in NOTEBOOKS):
        pytest.fail("course/ notebooks missing: run make release")
    root = tmp_path_factory.mktemp("catalogue")
    subs = root / "submissions"
    plan = plan_class()
    for student, (notebook, slot) in plan.items():
        (subs / student).mkdir(parents=True)
        write_notebook(notebook, slot, subs / student / f"{notebook}.ipynb")
    proc = run_grade(str(subs), "--out", str(root / "out"), "--workers", "2", "--timeout", "300")
    assert proc.returncode == 0, proc.stderr[-3000:]
    cells = {(r["student_id"], r["notebook"], r["grade_id"]): float(r["points"])
             for r in read_csv(root / "out/exercises.csv")}
    maxima = {nb: grade_cells(nbformat.read(SOLUTIONS / f"{nb}.ipynb", as_version=4))
              for nb in NOTEBOOKS}
    return {"plan": plan, "cells": cells, "max": maxima, "out": root / "out",
            "stderr": proc.stderr}


def _allowed(entry) -> set[str]:
    """The cells a wrong entry may cost: the one naming its mistake, and for a mathematics
    mistake its kernel's going-deeper cell (a wrong formula is wrong at the extremes too)."""
    if entry.kind != "wrong":
        return set()
    return {entry.cell} | ({f"test_{entry.kernel}_deeper"} if entry.part == "math" else set())


def _outcomes(graded):
    """entry id -> (lost points on its own cell(s), cells elsewhere that lost points)."""
    result = {}
    for student, (notebook, slot) in graded["plan"].items():
        full = graded["max"][notebook]
        lost = {gid for gid, pts in full.items()
                if graded["cells"].get((student, notebook, gid), 0.0) < pts}
        expected = set().union(*(_allowed(e) for e in slot.values()))
        for entry in slot.values():
            own = entry.cell if entry.kind == "wrong" else f"test_{entry.kernel}"
            if entry.kind == "correct":  # a correct entry loses nothing of its own kernel
                own_lost = bool({own, f"{own}_deeper"} & lost)
            else:
                own_lost = own in lost
            result.setdefault(entry.id, []).append((own_lost, sorted(lost - expected)))
    return result


def test_every_entry_is_graded(graded):
    outcomes = _outcomes(graded)
    assert {e.id for e in CATALOGUE} <= set(outcomes)


def test_catch_rate_and_false_fail_rate(graded):
    outcomes = _outcomes(graded)
    missed = [e.id for e in WRONG if not all(own for own, _ in outcomes[e.id])]
    false_fails = [e.id for e in CORRECT if any(own for own, _ in outcomes[e.id])]
    collateral = sorted({(e.id, tuple(other)) for e in CATALOGUE
                         for _, other in outcomes[e.id] if other})
    catch = 1 - len(missed) / len(WRONG)
    false_fail = len(false_fails) / len(CORRECT)
    print(f"\ncatalogue: {len(CATALOGUE)} entries ({len(WRONG)} wrong, {len(CORRECT)} correct) "
          f"in {len(graded['plan'])} graded notebooks")
    print(f"catch rate: {catch:.1%} ({len(WRONG) - len(missed)}/{len(WRONG)}); "
          f"false-fail rate: {false_fail:.1%} ({len(false_fails)}/{len(CORRECT)})")
    assert not missed, f"wrong entries that kept their points: {missed}"
    assert not false_fails, f"correct entries that lost points: {false_fails}"
    assert not collateral, f"points lost on other exercises: {collateral}"


@pytest.mark.parametrize("entry", WRONG, ids=lambda e: e.id)
def test_feedback_names_the_misconception(graded, entry):
    student = next(s for s, (_, slot) in graded["plan"].items() if slot.get(entry.kernel) is entry)
    notebook = NOTEBOOK[entry.kernel]
    page = graded["out"] / "feedback" / student / f"{notebook}.html"
    text = " ".join(page_text(page.read_text()).split())
    shown = first_message(entry)
    assert shown, entry.id
    first_line = " ".join(shown.splitlines()[0].split())[:120]
    assert first_line in text, (entry.id, first_line)
    if entry.visible:
        assert entry.visible in shown, (entry.id, shown)
    else:
        assert entry.message in shown, (entry.id, shown)


def visible_catches(entry) -> bool:
    fn = load(entry)
    with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
        try:
            check_kernel(entry.kernel, fn)
        except Exception:  # noqa: BLE001 - any failure counts as caught
            return True
    return False


def test_visible_share():
    caught = [e.id for e in WRONG if visible_catches(e)]
    share = len(caught) / len(WRONG)
    print(f"\nvisible checks alone catch {share:.1%} of the wrong entries "
          f"({len(caught)}/{len(WRONG)}); missed: {sorted(set(e.id for e in WRONG) - set(caught))}")
    assert share >= VISIBLE_FLOOR
