"""Every solution notebook runs top to bottom without a single error, hidden tests included
(kernel python3, cwd course/): what an instructor's Validate runs.

The student notebooks (course/) are run by tests/test_browser_lab.py, in JupyterLab as a student
runs them, with the same rules (tests/_student_run.py): errors only where an exercise is still
a stub.

The notebooks are executed once per session, two at a time (this machine has 2 cores), and
the tests then inspect the executed copies. Slow: about the time of the slowest notebooks.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import nbformat
import pytest
from conftest import COURSE, SOLUTION_NOTEBOOKS, nb_ids
from nbclient import NotebookClient

CELL_TIMEOUT_S = 600
PARALLEL = 2
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _execute(path):
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
        resources={"metadata": {"path": str(COURSE)}},
    )
    try:
        client.execute()
    except Exception as err:  # noqa: BLE001 - reported by the test that reads it
        return nb, _ANSI.sub("", str(err))[-1500:]
    return nb, None


@pytest.fixture(scope="session")
def executed(kernel_env):
    """file name -> (executed notebook, error message or None), run two at a time."""
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        futures = {p.name: pool.submit(_execute, p) for p in SOLUTION_NOTEBOOKS}
        return {name: future.result() for name, future in futures.items()}


def _errors(cell):
    return [out for out in cell.get("outputs", []) if out.output_type == "error"]


@pytest.mark.parametrize("path", SOLUTION_NOTEBOOKS, ids=nb_ids(SOLUTION_NOTEBOOKS))
def test_solution_notebook_runs_without_error(executed, path):
    nb, err = executed[path.name]
    assert err is None, f"{path.name} failed:\n{err}"
    for index, cell in enumerate(nb.cells):
        assert not _errors(cell), f"{path.name} cell {index} raised an error"


