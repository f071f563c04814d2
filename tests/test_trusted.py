"""The trusted side of grading: records that cross the sandbox, and the tampering flags.

What an instructor relies on: a correct kernel's records pass and a wrong one's fail when
judged outside the kernel; records that are missing, forged into pickles, oversized or renamed
give no points; the course's own solutions and the catalogue's correct implementations are
never flagged, and each kind of tampering is.
"""

from __future__ import annotations

import json

import nbformat
import numpy as np
import pytest
from catalogue import C
from conftest import SOLUTION_NOTEBOOKS

from autograder.judging import flags, reference, trusted
from autograder.recorders import kernels as hidden


def record(folder, name, fn):
    recs, speed = hidden.run(fn, hidden.battery(name))
    hidden.save_records(folder, name, recs, speed)


def test_records_round_trip_and_are_judged_outside(tmp_path):
    record(tmp_path, "sigmoid", reference.sigmoid)
    assert trusted.judge_kernel(tmp_path, "sigmoid") is None
    record(tmp_path, "sigmoid", lambda x: 1 / (1 + np.exp(-np.asarray(x, dtype=float))))
    message = trusted.judge_kernel(tmp_path, "sigmoid")
    assert message and "sigmoid" in message


def test_grade_kernel_only_records_when_told_to(tmp_path, monkeypatch):
    monkeypatch.setenv(hidden.RECORDS_ENV, str(tmp_path))
    hidden.grade_kernel("relu", lambda x: x)  # wrong, but nothing is judged in the kernel
    assert (tmp_path / "relu.json").is_file() and (tmp_path / "relu.npz").is_file()
    assert "relu" in trusted.judge_kernel(tmp_path, "relu")


def test_missing_records_score_nothing(tmp_path):
    assert "did not run to the end" in trusted.judge_kernel(tmp_path, "relu")


def test_pickled_records_are_refused(tmp_path):
    record(tmp_path, "relu", reference.relu)
    np.savez(tmp_path / "relu.npz", v0=np.array([object()], dtype=object), allow_pickle=True)
    assert "unreadable records" in trusted.judge_kernel(tmp_path, "relu")


def test_records_under_another_name_are_refused(tmp_path):
    record(tmp_path, "relu", reference.relu)
    (tmp_path / "relu_grad.json").write_text((tmp_path / "relu.json").read_text())
    (tmp_path / "relu_grad.npz").write_bytes((tmp_path / "relu.npz").read_bytes())
    assert "saved as" in trusted.judge_kernel(tmp_path, "relu_grad")


def test_malformed_and_oversized_records_are_refused(tmp_path, monkeypatch):
    record(tmp_path, "relu", reference.relu)
    meta = json.loads((tmp_path / "relu.json").read_text())
    meta["records"][0]["error"] = 42
    (tmp_path / "relu.json").write_text(json.dumps(meta))
    assert "malformed" in trusted.judge_kernel(tmp_path, "relu")
    record(tmp_path, "relu", reference.relu)
    monkeypatch.setattr(hidden, "MAX_RECORD_BYTES", 100)
    assert "too large" in trusted.judge_kernel(tmp_path, "relu")


def test_lying_objects_are_recorded_as_what_they_are(tmp_path):
    class Liar:
        def __eq__(self, other):
            return True

        __hash__ = object.__hash__

    class Sly(np.ndarray):
        def __eq__(self, other):
            return np.ones(np.shape(other), dtype=bool)

    record(tmp_path, "relu", lambda x: Liar())
    assert trusted.judge_kernel(tmp_path, "relu")
    record(tmp_path, "relu", lambda x: np.zeros(np.shape(x)).view(Sly))
    assert trusted.judge_kernel(tmp_path, "relu")


def test_hidden_kernels_map_grade_cells_to_kernels():
    relu = [p for p in SOLUTION_NOTEBOOKS if p.stem == "02_relu"]
    if not relu:
        pytest.skip("no 02_relu solution notebook")
    assert trusted.hidden_kernels(relu[0]) == {
        "test_relu": ["relu"], "test_relu_grad": ["relu_grad"],
        "test_leaky_relu": ["leaky_relu"], "test_leaky_relu_grad": ["leaky_relu_grad"]}


# ---------------------------------------------------------------- flags


def _notebook_with(tmp_path, code: str):
    cell = nbformat.v4.new_code_cell(code)
    cell.metadata["nbgrader"] = {"solution": True, "grade": False, "locked": False,
                                 "grade_id": "relu_impl", "schema_version": 3}
    setup = nbformat.v4.new_code_cell("import numpy as np\nimport sys")
    setup.metadata["nbgrader"] = {"locked": True, "grade": False, "solution": False,
                                  "grade_id": "setup", "schema_version": 3}
    path = tmp_path / "nb.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[setup, cell]), path)
    return path


@pytest.mark.parametrize("path", SOLUTION_NOTEBOOKS, ids=lambda p: p.stem)
def test_the_solutions_are_not_flagged(path):
    assert flags.scan(path) == []


def test_correct_catalogue_entries_are_not_flagged(tmp_path):
    for entry in (e for e in C if e.kind == "correct"):
        assert flags.scan(_notebook_with(tmp_path, entry.source)) == [], entry.id


TAMPERING = {
    "np.allclose = lambda *a, **k: True": "replaces np.allclose",
    "np.testing.assert_allclose = print": "replaces np.testing.assert_allclose",
    "setattr(np, 'array_equal', lambda *a: True)": "setattr on an imported module",
    "get_ipython().set_custom_exc((Exception,), lambda *a, **k: None)": "exception handler",
    "ip = get_ipython()\nip.showtraceback = lambda *a, **k: None": "error display",
    "get_ipython().events.register('post_run_cell', print)": "event callback",
    "import sys\nsys.modules['autograder.recorders.kernels'].grade_kernel = print": "sys.modules",
    "from autograder.judging.reference import relu": "imports the grader",
    "import nonlinearity.checks\nnonlinearity.checks.check_kernel = print": "checking code",
    "class A:\n    def __eq__(self, o):\n        return True": "defines __eq__",
    "class B(np.ndarray):\n    pass": "subclasses numpy.ndarray",
    "import os\nos._exit(0)": "exits the kernel",
    "def relu(x):\n    sys.exit(0)": "exits the kernel",
    "def relu(x):\n    raise SystemExit": "raises SystemExit",
    "open('../../gradebook.db', 'wb')": "names grader files",
    "exec('np.allclose = print')": "runs code built at run time",
    "import ctypes": "ctypes",
}


@pytest.mark.parametrize("code", list(TAMPERING), ids=range(len(TAMPERING)))
def test_tampering_is_flagged(tmp_path, code):
    found = flags.scan(_notebook_with(tmp_path, code))
    assert any(TAMPERING[code] in reason for reason in found), found
    assert all(reason.startswith("cell 2: ") for reason in found)


# ---------------------------------------------------------------- model exercises, replayed


def _init_std(fan_in, fan_out, kind):
    if kind == "xavier":
        return (2.0 / (fan_in + fan_out)) ** 0.5
    if kind == "he":
        return (2.0 / fan_in) ** 0.5
    raise ValueError(kind)


def _layer_grad_norms(model, x, y, loss_fn):
    import torch

    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    grads = torch.autograd.grad(loss_fn(model(x), y), [m.weight for m in linears])
    return np.array([float(g.norm()) for g in grads])


@pytest.mark.parametrize("name, fn", [("init_std", _init_std), ("layer_grad_norms", _layer_grad_norms)])
def test_model_checks_replay_outside_the_kernel(tmp_path, monkeypatch, name, fn):
    """In the sandbox the check records what the function returned; outside, the same check
    runs again on the recording: a correct function passes, a wrong or lying one fails."""
    from autograder.recorders import models as hidden_models

    monkeypatch.setenv(hidden.RECORDS_ENV, str(tmp_path))
    hidden_models.grade_function(name, fn)
    assert trusted.judge_kernel(tmp_path, name) is None

    def squared(*args):
        return fn(*args) ** 2

    with pytest.raises(AssertionError, match="square"):
        hidden_models.grade_function(name, squared)
    message = trusted.judge_kernel(tmp_path, name)
    assert message and "square" in message


def test_a_forged_pass_in_the_kernel_is_not_a_pass_outside(tmp_path, monkeypatch):
    """A student who swallows the check's failure in the kernel still fails the replay."""
    from autograder.recorders import models as hidden_models

    monkeypatch.setenv(hidden.RECORDS_ENV, str(tmp_path))
    try:
        hidden_models.grade_function("init_std", lambda fan_in, fan_out, kind: 0.5)
    except AssertionError:
        pass  # what set_custom_exc or a patched check would hide
    assert "init_std" in trusted.judge_kernel(tmp_path, "init_std")
    (tmp_path / "init_std.json").unlink()
    assert "did not run to the end" in trusted.judge_kernel(tmp_path, "init_std")


def test_hidden_kernels_include_the_replayable_model_exercises():
    found = {name for p in SOLUTION_NOTEBOOKS for names in trusted.hidden_kernels(p).values()
             for name in names}
    assert {"init_std", "layer_grad_norms"} <= found and "revive_dead_units" not in found
