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


def test_hidden_checks_map_grade_cells_to_kernels():
    relu = [p for p in SOLUTION_NOTEBOOKS if p.stem == "02_relu"]
    if not relu:
        pytest.skip("no 02_relu solution notebook")
    checks = trusted.hidden_checks(relu[0])
    kernel_cells = {grade_id: names for grade_id, names in checks.items()
                    if not any(isinstance(n, trusted.Answer) for n in names)}
    assert kernel_cells == {
        "test_relu": ["relu"], "test_relu_grad": ["relu_grad"],
        "test_leaky_relu": ["leaky_relu"], "test_leaky_relu_grad": ["leaky_relu_grad"]}
    assert checks["test_q02_1"] == [trusted.Answer("q02_1", -1.0, None, 1e-6)]


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


def test_hidden_checks_include_the_replayable_model_exercises():
    found = {name for p in SOLUTION_NOTEBOOKS for names in trusted.hidden_checks(p).values()
             for name in names}
    assert {"init_std", "layer_grad_norms"} <= found and "revive_dead_units" not in found


# ---------------------------------------------------------------- graded answers


ANSWER_CELL = '''answer_check = 1
### BEGIN HIDDEN TESTS
from autograder.recorders.answers import grade_answer
grade_answer("q99_1", answer_q99_1, expected="b")
grade_answer("q99_2", answer_q99_2, expected=0.0625, rel_tol=0.02)
### END HIDDEN TESTS
'''


def _answer_notebook(tmp_path):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(ANSWER_CELL)
    cell.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": True, "points": 1,
                                 "grade_id": "test_q99", "schema_version": 3}
    nb.cells.append(cell)
    path = tmp_path / "99_answers.ipynb"
    nbformat.write(nb, path)
    return path


def _answered(tmp_path, monkeypatch, first, second):
    from autograder.recorders.answers import grade_answer

    records = tmp_path / "records"
    monkeypatch.setenv(hidden.RECORDS_ENV, str(records))
    grade_answer("q99_1", first, expected="ignored in the sandbox")
    grade_answer("q99_2", second, expected=-1)
    return trusted.judge_cells(records, trusted.hidden_checks(_answer_notebook(tmp_path)))


def test_answer_keys_come_from_the_solution_not_the_kernel(tmp_path, monkeypatch):
    """The sandboxed call records only the student's value; `expected` is read from the
    solution's source, so a right answer passes whatever the kernel was told."""
    checks = trusted.hidden_checks(_answer_notebook(tmp_path))
    assert checks == {"test_q99": [trusted.Answer("q99_1", "b"), trusted.Answer("q99_2", 0.0625, 0.02)]}
    assert _answered(tmp_path, monkeypatch, " (B) ", 0.063) == {"test_q99": None}


@pytest.mark.parametrize("first, second, message", [
    ("a", 0.0625, "'a' is not the right choice"),
    ("b", 0.25, "0.25 is not the right value"),
    ("b", "0.0625", "answer with a number"),
    (2, 0.0625, "answer with the letter"),
    ("b", float("nan"), "not a finite number"),
    ("b", True, "answer with a number"),
])
def test_wrong_answers_fail_with_a_message_naming_the_question(tmp_path, monkeypatch, first, second,
                                                               message):
    verdict = _answered(tmp_path, monkeypatch, first, second)["test_q99"]
    assert verdict and message in verdict


def test_an_object_that_equals_everything_is_not_an_answer(tmp_path, monkeypatch):
    class Yes:
        def __eq__(self, other):
            return True

    verdict = _answered(tmp_path, monkeypatch, Yes(), 0.0625)["test_q99"]
    assert "answer with the letter" in verdict


def test_a_missing_answer_record_scores_nothing(tmp_path):
    verdict = trusted.judge_cells(tmp_path, trusted.hidden_checks(_answer_notebook(tmp_path)))
    assert "did not run to the end" in verdict["test_q99"]


def test_outside_the_sandbox_the_answer_is_checked_in_the_kernel(monkeypatch):
    from autograder.recorders.answers import grade_answer

    monkeypatch.delenv(hidden.RECORDS_ENV, raising=False)
    grade_answer("q99_1", "B", expected="b")
    grade_answer("q99_2", np.float32(0.0626), expected=0.0625, rel_tol=0.02)
    with pytest.raises(AssertionError, match="q99_1: 'c' is not the right choice"):
        grade_answer("q99_1", "c", expected="b")
