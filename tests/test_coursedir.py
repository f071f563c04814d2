"""The generated nbgrader course directory that grading starts from, kept between runs.

A stale copy would grade students against old solutions or old points, so the cache must follow
every change of a solution notebook.
"""

from __future__ import annotations

import os
import shutil

import nbformat
from conftest import SOLUTIONS
from nbgrader.api import Gradebook

from autograder.pipeline.coursedir import (
    ASSIGNMENT,
    KEEP_TEMPLATES,
    course_dir_from_cache,
    make_course_dir,
)

NOTEBOOK = "01_linear_collapse"


def _max_scores(root) -> dict[str, float]:
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}", course_id=ASSIGNMENT) as gb:
        nb = gb.find_notebook(NOTEBOOK, ASSIGNMENT)
        return {cell.name: cell.max_score for cell in nb.grade_cells}


def test_a_cached_course_dir_follows_the_solutions(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOGRADER_CACHE", str(tmp_path / "cache"))
    solutions = tmp_path / "solutions"
    solutions.mkdir()
    shutil.copy(SOLUTIONS / f"{NOTEBOOK}.ipynb", solutions)

    fresh = tmp_path / "fresh"
    make_course_dir(fresh, solutions)
    first = tmp_path / "first"
    course_dir_from_cache(first, solutions)
    again = tmp_path / "again"
    release = course_dir_from_cache(again, solutions)
    assert _max_scores(first) == _max_scores(again) == _max_scores(fresh)
    assert (release / f"{NOTEBOOK}.ipynb").read_bytes() == \
        (fresh / "release" / ASSIGNMENT / f"{NOTEBOOK}.ipynb").read_bytes()
    assert str(again) in (again / "nbgrader_config.py").read_text()  # its own root, not the cache's

    # The instructor raises a grade cell's points: the next run must see them.
    path = solutions / f"{NOTEBOOK}.ipynb"
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")
                and c.cell_type == "code")
    gid, old = cell.metadata.nbgrader["grade_id"], cell.metadata.nbgrader["points"]
    cell.metadata.nbgrader["points"] = old + 5
    nbformat.write(nb, path)
    changed = tmp_path / "changed"
    course_dir_from_cache(changed, solutions)
    assert _max_scores(changed)[gid] == old + 5
    cache = tmp_path / "cache" / "course-templates"
    assert len(list(cache.iterdir())) == 2

    # Old versions do not pile up: only the most recently used few stay.
    for extra in range(KEEP_TEMPLATES):
        (cache / f"old{extra}").mkdir()
        os.utime(cache / f"old{extra}", (1 + extra, 1 + extra))
    course_dir_from_cache(tmp_path / "latest", solutions)
    assert sorted(p.name for p in cache.iterdir() if p.name.startswith("old")) == \
        [f"old{i}" for i in range(KEEP_TEMPLATES - 2, KEEP_TEMPLATES)]  # 2 real ones stay
