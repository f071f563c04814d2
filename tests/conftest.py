"""Shared fixtures: where the course lives and which notebooks exist."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SOLUTIONS = REPO / "solutions"
COURSE = REPO / "course"

SOLUTION_NOTEBOOKS = sorted(SOLUTIONS.glob("*.ipynb"))
STUDENT_NOTEBOOKS = sorted(COURSE.glob("*.ipynb"))


def nb_ids(paths):
    return [p.stem for p in paths]


@pytest.fixture(scope="session")
def kernel_env():
    """Environment for notebook kernels started by tests: no GUI backend for matplotlib."""
    saved = os.environ.get("MPLBACKEND")
    os.environ["MPLBACKEND"] = "Agg"
    yield os.environ
    if saved is None:
        os.environ.pop("MPLBACKEND", None)
    else:
        os.environ["MPLBACKEND"] = saved


@pytest.fixture(scope="session")
def built_site(tmp_path_factory):
    """The self-study site, built once for the book and browser-site tests (which only read it)."""
    from _site import build_site

    return build_site(tmp_path_factory)
