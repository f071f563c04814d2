"""Shared fixtures: where the course lives and which notebooks exist."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SOLUTIONS = REPO / "solutions"
COURSE = REPO / "course"

SOLUTION_NOTEBOOKS = sorted(SOLUTIONS.glob("*.ipynb"))
STUDENT_NOTEBOOKS = sorted(COURSE.glob("*.ipynb"))

# `grade` records into the course's nbgrader course directory, autograder/ by default: every
# grading run of the tests goes to a throwaway one instead (a test that needs its own passes
# --course-dir), so no test writes the repository's autograder/gradebook.db or autograded/.
COURSE_DIR_VAR = "AUTOGRADER_COURSE_DIR"
SESSION_COURSE_DIR = Path(tempfile.mkdtemp(prefix="autograder-course-"))
os.environ[COURSE_DIR_VAR] = str(SESSION_COURSE_DIR)


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(SESSION_COURSE_DIR, ignore_errors=True)


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
