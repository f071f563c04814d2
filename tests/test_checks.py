"""The checks that grade students: right kernels pass, wrong ones fail with the right message.

For every contract kernel: the reference passes both the visible `check_kernel` and the hidden
`grade_kernel`; the correct-but-different implementations of the catalogue (tests/catalogue.py)
pass both; its wrong implementations (common misconceptions) fail the hidden checks with a
message that names the misconception (and the visible checks with theirs, where they catch
them); grading never writes to stderr. Takes about a minute (the timing checks run each kernel
on 10^6 elements).
"""
import math

import numpy as np
import pytest
from catalogue import CATALOGUE, CORRECT, WRONG, load

from autograder.judging import reference as R
from autograder.recorders.kernels import KERNELS, LOOP_MESSAGE, PARTS, battery, grade_kernel
from nonlinearity.checks import check_kernel


def _f(x):
    x = np.asarray(x)
    return x if x.dtype in (np.float32, np.float64) else x.astype(np.float64)


@pytest.mark.parametrize("name", KERNELS)
def test_reference_passes_hidden_checks(name, capfd):
    grade_kernel(name, getattr(R, name))
    for part in PARTS:
        grade_kernel(name, getattr(R, name), part=part)
        check_kernel(name, getattr(R, name), part=part)
    out, err = capfd.readouterr()
    assert err == ""


@pytest.mark.parametrize("name", KERNELS)
def test_parts_split_the_battery(name):
    """math + deeper = the whole battery; the speed test runs once, with the mathematics; the
    mathematics sees ordinary inputs only (finite, |x| <= 50)."""
    whole = battery(name)
    math_, deeper = battery(name, "math"), battery(name, "deeper")
    labels = [c.label for c in whole.cases]
    assert sorted(labels) == sorted([c.label for c in math_.cases + deeper.cases])
    assert math_.cases and deeper.speed is None
    assert (math_.speed is None) == (whole.speed is None)
    if name in ("collapse_linear", "dead_fraction"):
        return
    for case in math_.cases:
        x = np.asarray(case.args[0], dtype=np.float64)
        assert np.all(np.isfinite(x)) and np.all(np.abs(x) <= 50), (name, case.label)


@pytest.mark.parametrize("entry", CORRECT, ids=lambda e: e.id)
def test_correct_but_different_passes(entry, capfd):
    fn = load(entry)
    grade_kernel(entry.kernel, fn)
    check_kernel(entry.kernel, fn)
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize("entry", WRONG, ids=lambda e: e.id)
def test_wrong_implementation_fails_with_named_message(entry, capfd):
    """In the part whose cell names the mistake (entry.part), hidden and visible checks."""
    fn = load(entry)
    with pytest.raises(AssertionError) as info:
        grade_kernel(entry.kernel, fn, part=entry.part)
    assert entry.message in str(info.value), str(info.value)
    if entry.visible:
        with pytest.raises(AssertionError) as info:
            check_kernel(entry.kernel, fn, part=entry.part)
        assert entry.visible in str(info.value), str(info.value)
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize("entry", [e for e in WRONG if e.part == "deeper"], ids=lambda e: e.id)
def test_numerics_mistakes_keep_the_mathematics_points(entry, capfd):
    """Mathematically right, numerically fragile: full marks on the mathematics."""
    fn = load(entry)
    grade_kernel(entry.kernel, fn, part="math")
    check_kernel(entry.kernel, fn, part="math")
    assert capfd.readouterr().err == ""


def test_each_notebook_has_numerically_fragile_entries():
    """Every activation notebook's going-deeper part is exercised by the catalogue."""
    from catalogue import NOTEBOOK

    fragile = {NOTEBOOK[e.kernel] for e in WRONG if e.part == "deeper"}
    assert fragile >= {"02_relu", "03_smooth", "04_sigmoid_tanh", "05_softmax"}


def test_catalogue_covers_every_kernel():
    """At least four wrong and two correct-but-different implementations per kernel."""
    for name in KERNELS:
        assert sum(e.kernel == name for e in WRONG) >= 4, name
        assert sum(e.kernel == name for e in CORRECT) >= 2, name
    assert len({e.id for e in CATALOGUE}) == len(CATALOGUE)
    assert all(e.message for e in WRONG)
    assert {e.id for e in CATALOGUE if e.visible} <= {e.id for e in WRONG}


def test_grading_is_deterministic():
    messages = []
    for _ in range(2):
        with pytest.raises(AssertionError) as info:
            grade_kernel("relu_grad", lambda x: np.sign(_f(x)))
        messages.append(str(info.value))
    assert messages[0] == messages[1]


def test_stub_propagates_from_visible_check():
    def stub(x):
        raise NotImplementedError()

    with pytest.raises(NotImplementedError):
        check_kernel("relu", stub)
    with pytest.raises(AssertionError, match="not implemented yet"):
        grade_kernel("relu", stub)


def test_visible_checks_do_not_import_autograder():
    import ast
    from pathlib import Path

    source = Path(__file__).resolve().parents[1] / "course" / "nonlinearity" / "checks.py"
    tree = ast.parse(source.read_text())
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert not any(n.split(".")[0] == "autograder" for n in names)


def test_slow_vectorised_kernel_fails_on_time():
    import time

    def sluggish(x):
        x = _f(x)
        time.sleep(1e-5 * x.size)  # 10 s for 10^6 elements, with no Python loop
        return R.relu(x)

    with pytest.raises(AssertionError) as info:
        grade_kernel("relu", sluggish)
    assert "would take about" in str(info.value) and LOOP_MESSAGE in str(info.value)


def test_np_vectorize_counts_as_a_python_loop():
    def vectorized(x):
        return np.vectorize(lambda v: v if (math.isnan(v) or v > 0) else 0.0, otypes=[_f(x).dtype])(_f(x))

    with pytest.raises(AssertionError, match="runs Python code for every element"):
        grade_kernel("relu", vectorized)
