"""`python -m autograder grade` on broken and dishonest submissions (tests/submissions.py).

One class, graded once per module: one student per case of submissions.CASES (student id = case
name) plus `honest` (01_linear_collapse and 02_relu solved). Every case must get its expected
status per notebook, score 0 on the cells its trick or breakage concerns and full marks on the
cells it left correct; honest keeps full marks; the submissions come back byte-identical and
nothing outside the output folder changes (the gradebook_write case tries hard).

Cases marked `sandbox_only` (fork bomb, memory bombs, gradebook writer, 300 MB files) must never
run outside the grading sandbox; `python -m autograder grade` refuses to run without it.
HARDENED_CASES=a,b,c grades only those cases (and honest), for debugging. Slow: about 45
notebooks of 10-30 s each, several of which run into the timeout on purpose.
"""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from submissions import (
    CASES,
    HONEST,
    RELU,
    REPO,
    STATUSES,
    _hardcoded_relu,
    build_honest,
    grade_cells,
)

TIMEOUT_S = 15  # per cell: every cell of a correct 02_relu / 01_linear_collapse takes under 3 s
WORKERS = 2
DECOYS = ("gradebook.db", "grades.csv", "exercises.csv")  # beside the submissions folder


_ONLY = {n for n in os.environ.get("HARDENED_CASES", "").split(",") if n}  # a developer's pick
ACTIVE = [c for c in CASES if not _ONLY or c.name in _ONLY]


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(2**20):
            h.update(chunk)
    return h.hexdigest()


def tree_digest(root: Path, skip: tuple[Path, ...] = ()) -> dict[str, str]:
    """relative path -> sha256 of every file under ROOT (streamed), and '<dir>' for folders."""
    digest = {}
    for p in sorted(root.rglob("*")):
        if any(p == s or s in p.parents for s in skip) or "__pycache__" in p.parts:
            continue
        if p.is_symlink():
            digest[str(p.relative_to(root))] = "<link> " + os.readlink(p)
        elif p.is_file():
            digest[str(p.relative_to(root))] = _file_digest(p)
        elif p.is_dir():
            digest[str(p.relative_to(root))] = "<dir>"
    return digest


def repo_digest() -> dict[str, str]:
    """What a student must never touch in the repository: the solutions, the released course,
    the instructor's gradebook, and any grade file lying around."""
    digest = {}
    for sub in ("solutions", "course"):
        digest.update({f"{sub}/{k}": v for k, v in tree_digest(REPO / sub).items()
                       if ".ipynb_checkpoints" not in k})
    for path in [REPO / "autograder" / "gradebook.db", *REPO.glob("*.csv"), *REPO.glob("*.db")]:
        if path.is_file():
            digest[str(path.relative_to(REPO))] = _file_digest(path)
    return digest


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("hardened")
    subs, out = root / "submissions", root / "out"
    for case in ACTIVE:
        case.build(subs / case.name)
    build_honest(subs / "honest")
    for name in DECOYS:  # where ../../gradebook.db and friends may point
        (root / name).write_text(f"decoy {name}\n")
    before = tree_digest(subs)
    outside_before = tree_digest(root, skip=(out,))
    repo_before = repo_digest()
    proc = subprocess.run(
        [sys.executable, "-m", "autograder", "grade", str(subs), "--out", str(out),
         "--workers", str(WORKERS), "--timeout", str(TIMEOUT_S)],
        capture_output=True, text=True, timeout=7200, cwd=root,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    yield {
        "root": root, "subs": subs, "out": out, "stderr": proc.stderr,
        "before": before, "outside_before": outside_before, "repo_before": repo_before,
        "grades": {(r["student_id"], r["notebook"]): r for r in read_csv(out / "grades.csv")},
        "cells": {(r["student_id"], r["notebook"], r["grade_id"]): r
                  for r in read_csv(out / "exercises.csv")},
    }
    for case in ACTIVE:  # the 300 MB files: pytest keeps its last temporary folders
        if case.name.startswith("huge"):
            shutil.rmtree(subs / case.name, ignore_errors=True)


def _check_student(graded, student: str, expected: dict) -> list[str]:
    """Every mismatch between grades.csv / exercises.csv and `expected` (stem -> Expect)."""
    problems = []
    rows = {nb: r for (s, nb), r in graded["grades"].items() if s == student}
    if not rows:
        return [f"{student}: no rows in grades.csv"]
    for nb, row in rows.items():
        want = expected.get(nb)
        if want is None:  # a notebook the case does not write
            if (row["status"], float(row["score"])) != ("missing", 0):
                problems.append(f"{nb}: expected missing with 0, got {row['status']} "
                                f"{row['score']}")
            continue
        if row["status"] not in want.status:
            problems.append(f"{nb}: status {row['status']!r}, expected {' or '.join(want.status)}")
        cells = {gid: graded["cells"].get((student, nb, gid)) for gid in grade_cells(nb)}
        problems += [f"{nb}/{gid}: no row in exercises.csv" for gid, r in cells.items() if r is None]
        points = {gid: float(r["points"]) if r else -1.0 for gid, r in cells.items()}
        for gid in sorted(want.zero_cells(nb)):
            if points[gid] != 0:
                problems.append(f"{nb}/{gid}: {points[gid]:g} points, expected 0")
        for gid in sorted(want.full_cells(nb)):
            if points[gid] != grade_cells(nb)[gid]:
                problems.append(f"{nb}/{gid}: {points[gid]:g} points, expected full "
                                f"({grade_cells(nb)[gid]:g})")
    missing = set(expected) - set(rows)
    problems += [f"{nb}: no row in grades.csv" for nb in sorted(missing)]
    return problems


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case_outcome(graded, case):
    if case not in ACTIVE:
        pytest.skip("not in HARDENED_CASES")
    problems = _check_student(graded, case.name, case.expect)
    assert not problems, f"{case.name} ({case.description}):\n  " + "\n  ".join(problems)


def test_honest_full_marks(graded):
    assert not _check_student(graded, "honest", HONEST)
    rows = [r for (s, _), r in graded["grades"].items() if s == "honest" and r["status"] == "ok"]
    assert len(rows) == len(HONEST)
    assert all(float(r["score"]) == float(r["max_score"]) > 0 for r in rows)


def test_every_student_and_notebook_graded_once(graded):
    students = {c.name for c in ACTIVE} | {"honest"}
    assert {s for s, _ in graded["grades"]} == students
    per_student = {s: sum(1 for t, _ in graded["grades"] if t == s) for s in students}
    assert len(set(per_student.values())) == 1, per_student


def test_scores_within_bounds(graded):
    """No tampering with points reaches the CSVs: cell points between 0 and the solution's,
    notebook scores the sum of their cells, known statuses only."""
    for (student, nb), row in graded["grades"].items():
        assert row["status"] in STATUSES, (student, nb, row["status"])
        cells = grade_cells(nb)
        assert float(row["max_score"]) == sum(cells.values()), (student, nb)
        got = [float(graded["cells"][(student, nb, gid)]["points"]) for gid in cells]
        assert all(0 <= g <= cells[gid] for g, gid in zip(got, cells, strict=True)), (student, nb)
        assert float(row["score"]) == pytest.approx(sum(got)), (student, nb)


def test_submissions_are_byte_identical(graded):
    assert tree_digest(graded["subs"]) == graded["before"]


def test_nothing_outside_the_output_folder_changed(graded):
    """gradebook_write looks for gradebook.db and grades.csv everywhere and deletes files in
    parent folders: the decoys beside the submissions, the class folder and the repository's
    solutions, course and gradebook must come through untouched."""
    after = tree_digest(graded["root"], skip=(graded["out"],))
    assert after == graded["outside_before"]
    assert repo_digest() == graded["repo_before"]
    for name in DECOYS:
        assert (graded["root"] / name).read_text() == f"decoy {name}\n"


def test_outputs_are_well_formed(graded):
    header = ["student_id", "notebook", "score", "max_score", "status"]
    with open(graded["out"] / "grades.csv", newline="") as f:
        assert next(csv.reader(f)) == header
    assert "tampered" not in (graded["out"] / "grades.csv").read_text()
    assert "1000" not in {r["score"] for r in graded["grades"].values()}


def test_feedback_shows_the_message_judged_outside_the_sandbox(graded):
    """hardcode_visible passes the visible checks in its kernel; the hidden checks, judged outside
    the sandbox, fail it, and that message (not hidden-test source) is on the student's page."""
    if "hardcode_visible" not in {c.name for c in ACTIVE}:
        pytest.skip("hardcode_visible is not in HARDENED_CASES")
    import numpy as np

    from autograder.judging.judge import judge
    from autograder.pipeline.feedback import page_text
    from autograder.recorders import kernels as hidden

    space = {"np": np}
    exec(_hardcoded_relu(), space)  # the student's relu, here in the trusted process
    bat = hidden.battery("relu")
    message = judge("relu", bat, *hidden.run(space["relu"], bat))
    assert message
    page = page_text((graded["out"] / "feedback" / "hardcode_visible" / f"{RELU}.html").read_text())
    assert " ".join(message.split()) in " ".join(page.split()), message
    assert "grade_kernel" not in page and "HIDDEN TESTS" not in page
