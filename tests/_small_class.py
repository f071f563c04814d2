"""A small class on one notebook (notebook 1) for the Dask and PostgreSQL tests: students who
submit the solution, cat with `collapse_linear` broken, dan with a file that is not JSON."""

from __future__ import annotations

from pathlib import Path

import nbformat

BREAK = """

_correct_collapse_linear = collapse_linear


def collapse_linear(weights, biases):
    W, b = _correct_collapse_linear(weights, biases)
    return np.asarray(W) + 1, np.asarray(b)
"""


def build_small_class(root: Path, notebook: Path, correct: tuple[str, ...]) -> None:
    for sid in (*correct, "cat", "dan"):
        (root / sid).mkdir(parents=True)
    for sid in correct:
        (root / sid / notebook.name).write_bytes(notebook.read_bytes())
    nb = nbformat.read(notebook, as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")
                and "def collapse_linear(" in c.source)
    cell.source += BREAK
    nbformat.write(nb, root / "cat" / notebook.name)
    (root / "dan" / notebook.name).write_text("{ not a notebook")
