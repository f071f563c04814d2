"""The reference kernels against torch (values and autograd derivatives) and the kernel contract.

Contract (DESIGN.md "Student kernels"): array-likes in, same-shape ndarray out, float32 kept,
other dtypes -> float64, input never modified, no warnings for any finite input, ±inf give the
limits, NaN propagates, invalid arguments raise ValueError. Runs in a few seconds.
"""

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from autograder.judging import reference as R


def _tgelu(t):
    return F.gelu(t, approximate="tanh")


def _fwd(fn):
    def run(x):
        with torch.no_grad():
            return fn(torch.from_numpy(np.array(x))).numpy()
    return run


def _grad(fn):
    def run(x):
        t = torch.from_numpy(np.array(x)).requires_grad_(True)
        fn(t).sum().backward()
        return t.grad.numpy()
    return run


# name -> (reference kernel, torch equivalent)
PAIRS = {
    "relu": (R.relu, _fwd(F.relu)),
    "relu_grad": (R.relu_grad, _grad(F.relu)),
    "leaky_relu": (R.leaky_relu, _fwd(F.leaky_relu)),
    "leaky_relu_grad": (R.leaky_relu_grad, _grad(F.leaky_relu)),
    "leaky_relu(0.2)": (lambda x: R.leaky_relu(x, 0.2), _fwd(lambda t: F.leaky_relu(t, 0.2))),
    "leaky_relu_grad(0.2)": (lambda x: R.leaky_relu_grad(x, negative_slope=0.2),
                             _grad(lambda t: F.leaky_relu(t, 0.2))),
    "sigmoid": (R.sigmoid, _fwd(torch.sigmoid)),
    "sigmoid_grad": (R.sigmoid_grad, _grad(torch.sigmoid)),
    "tanh": (R.tanh, _fwd(torch.tanh)),
    "tanh_grad": (R.tanh_grad, _grad(torch.tanh)),
    "silu": (R.silu, _fwd(F.silu)),
    "silu_grad": (R.silu_grad, _grad(F.silu)),
    "gelu": (R.gelu, _fwd(F.gelu)),
    "gelu_grad": (R.gelu_grad, _grad(F.gelu)),
    "gelu(tanh)": (lambda x: R.gelu(x, approximate="tanh"), _fwd(_tgelu)),
    "gelu_grad(tanh)": (lambda x: R.gelu_grad(x, approximate="tanh"), _grad(_tgelu)),
    "softmax": (R.softmax, _fwd(lambda t: torch.softmax(t, -1))),
    "log_softmax": (R.log_softmax, _fwd(lambda t: torch.log_softmax(t, -1))),
}
ELEMENTWISE = [k for k in PAIRS if k not in ("softmax", "log_softmax")]
RTOL = {np.float64: 1e-12, np.float32: 3e-6}


def assert_close(ours, expected, x, dtype, name):
    """Relative agreement, or absolute agreement at torch's own accuracy (8 eps (1 + |x|)).

    torch cancels (sigmoid'(x) = s (1 - s), 1 + erf(x / sqrt 2), ...) where the reference
    does not, so for tiny values only an absolute tolerance is fair; test_reference_accuracy
    measures who is right.
    """
    ours = np.asarray(ours, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    atol = 8 * np.finfo(np.float64).eps * (1 + np.abs(np.asarray(x, dtype=np.float64)))
    ok = np.abs(ours - expected) <= atol + RTOL[dtype] * np.abs(expected)
    ok |= (ours == expected) | (np.isnan(ours) & np.isnan(expected))
    assert ok.all(), (f"{name}: x = {np.asarray(x)[~ok][:5]}, ours = {ours[~ok][:5]}, "
                      f"torch = {expected[~ok][:5]}")


@pytest.fixture(autouse=True)
def _no_warnings():
    """Any RuntimeWarning (overflow, invalid, ...) is an error, in numpy and elsewhere."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def _inputs(dtype):
    rng = np.random.default_rng(2026)
    return [
        rng.normal(size=(7,)).astype(dtype),
        (rng.normal(size=(3, 4)) * 4).astype(dtype),
        (rng.normal(size=(2, 3, 5)) * 0.1).astype(dtype),
        rng.uniform(-30, 30, size=(64,)).astype(dtype),
    ]


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name", list(PAIRS))
def test_matches_torch_on_random_inputs(name, dtype):
    ours_fn, torch_fn = PAIRS[name]
    for x in _inputs(dtype):
        before = x.copy()
        ours = ours_fn(x)
        np.testing.assert_array_equal(x, before, err_msg=f"{name} modified its input")
        assert isinstance(ours, np.ndarray) and ours.shape == x.shape and ours.dtype == dtype
        # torch's own float32 kernels round differently; compare with torch in float64
        expected = torch_fn(x.astype(np.float64)).astype(dtype)
        assert_close(ours, expected, x, dtype, name)


EDGES = np.array([0.0, -0.0, 1e4, -1e4, 1e-310, -1e-310, 1.0, -1.0])


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_edge_values_match_torch(name):
    ours_fn, torch_fn = PAIRS[name]
    assert_close(ours_fn(EDGES), torch_fn(EDGES), EDGES, np.float64, name)


LIMITS = {  # f(-inf), f(+inf)
    "relu": (0, np.inf), "relu_grad": (0, 1), "leaky_relu": (-np.inf, np.inf),
    "leaky_relu_grad": (0.01, 1), "leaky_relu(0.2)": (-np.inf, np.inf),
    "leaky_relu_grad(0.2)": (0.2, 1), "sigmoid": (0, 1), "sigmoid_grad": (0, 0),
    "tanh": (-1, 1), "tanh_grad": (0, 0), "silu": (0, np.inf), "silu_grad": (0, 1),
    "gelu": (0, np.inf), "gelu_grad": (0, 1), "gelu(tanh)": (0, np.inf),
    "gelu_grad(tanh)": (0, 1),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_infinities_give_limits_and_nan_propagates(name, dtype):
    fn = PAIRS[name][0]
    out = fn(np.array([-np.inf, np.inf, np.nan], dtype=dtype))
    assert out.dtype == dtype
    np.testing.assert_array_equal(out[:2], np.array(LIMITS[name], dtype=dtype), err_msg=name)
    assert np.isnan(out[2]), f"{name}(nan) should be nan"


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_extreme_finite_inputs_stay_finite(name):
    fn = PAIRS[name][0]
    f64 = np.finfo(np.float64)
    x = np.array([f64.max, -f64.max, f64.tiny, -f64.tiny, 5e-324, -5e-324, 745.0, -745.0,
                  -1e300, 1e300])
    with np.errstate(all="raise"):  # a caller's strict error state must not trip us either
        out = fn(x)
    finite = np.isfinite(out)
    if name in ("relu", "silu", "gelu", "gelu(tanh)") or name.startswith("leaky_relu("):
        finite |= np.isinf(x)
    assert finite.all(), f"{name} gave {out} for {x}"
    f32 = np.finfo(np.float32)
    out32 = fn(np.array([f32.max, -f32.max, f32.tiny, -f32.tiny, 1e-45, 88.0, -104.0],
                        dtype=np.float32))
    assert out32.dtype == np.float32 and np.isfinite(out32).all(), f"{name}: {out32}"


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_array_likes_scalars_ints_and_empty(name):
    fn = PAIRS[name][0]
    out = fn(2)
    assert isinstance(out, np.ndarray) and out.shape == () and out.dtype == np.float64
    assert fn(2.0).shape == () and fn(np.float32(2.0)).dtype == np.float32
    np.testing.assert_array_equal(fn([1, -2, 3]), fn(np.array([1.0, -2.0, 3.0])))
    assert fn([True, False]).dtype == np.float64
    assert fn(np.array([1, 2], dtype=np.int32)).dtype == np.float64
    for empty in (np.zeros((0,)), np.zeros((3, 0), np.float32), []):
        out = fn(empty)
        assert out.shape == np.shape(empty) and out.dtype == np.asarray(empty).dtype


def test_kink_values_follow_torch():
    zero = np.array([0.0, -0.0])
    np.testing.assert_array_equal(R.relu_grad(zero), [0.0, 0.0])
    np.testing.assert_array_equal(R.leaky_relu_grad(zero), [0.01, 0.01])
    np.testing.assert_array_equal(R.leaky_relu_grad(zero, 0.3), [0.3, 0.3])
    assert R.sigmoid(0.0) == 0.5 and R.sigmoid_grad(0.0) == 0.25 and R.tanh_grad(0.0) == 1.0
    assert R.gelu_grad(0.0) == 0.5 and R.silu_grad(0.0) == 0.5
    assert R.gelu_grad(0.0, approximate="tanh") == 0.5


def test_seed_worked_example():
    """The activations of linspace(-3, 3, 7) and softmax([2, 1, 0.1]) from the source text."""
    x = np.linspace(-3, 3, 7)
    tx = torch.linspace(-3, 3, 7)
    for ours, theirs in (
        (R.relu(x), torch.relu(tx)),
        (R.leaky_relu(x, 0.01), F.leaky_relu(tx, 0.01)),
        (R.gelu(x), F.gelu(tx)),
        (R.sigmoid(x), torch.sigmoid(tx)),
        (R.tanh(x), torch.tanh(tx)),
    ):
        # the seed prints [round(v, 3) for v in fn(x).tolist()]
        assert [round(v, 3) for v in ours.tolist()] == [round(v, 3) for v in theirs.tolist()]
    np.testing.assert_array_equal(np.round(R.gelu(x), 3),
                                  [-0.004, -0.046, -0.159, 0.0, 0.841, 1.954, 2.996])
    np.testing.assert_array_equal(np.round(R.softmax([2.0, 1.0, 0.1]), 3), [0.659, 0.242, 0.099])


# ---------------------------------------------------------------------------------------------
# softmax family


def test_softmax_axes_shapes_and_conventions():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 4, 5)) * 10
    for axis in (0, 1, 2, -1, -2):
        expected = torch.softmax(torch.from_numpy(x), axis).numpy()
        np.testing.assert_allclose(R.softmax(x, axis=axis), expected, rtol=1e-13)
        expected = torch.log_softmax(torch.from_numpy(x), axis).numpy()
        # torch's log_softmax cancels near 0 (log of a sum near 1): absolute tolerance there
        np.testing.assert_allclose(R.log_softmax(x, axis), expected, rtol=1e-13, atol=1e-15)
    big = np.array([[1000.0, 999.0, -1000.0], [-1e4, -1e4 - 1, -1e4 - 2]])
    np.testing.assert_allclose(R.softmax(big), torch.softmax(torch.from_numpy(big), -1))
    inf = np.inf
    rows = np.array([[-inf, 0.0, 1.0], [-inf, -inf, -inf], [inf, 0.0, 1.0], [np.nan, 0.0, 1.0]])
    sm, ls = R.softmax(rows), R.log_softmax(rows)
    np.testing.assert_allclose(sm[0, 1:], torch.softmax(torch.tensor([0.0, 1.0],
                                                                 dtype=torch.float64), -1))
    assert sm[0, 0] == 0.0 and ls[0, 0] == -inf and np.isfinite(ls[0, 1:]).all()
    assert np.isnan(sm[1:]).all() and np.isnan(ls[1:]).all()
    tsm = torch.softmax(torch.from_numpy(rows), -1).numpy()
    np.testing.assert_array_equal(np.isnan(sm), np.isnan(tsm))
    assert R.softmax(3.0).shape == () and R.softmax(3.0) == 1.0
    assert R.softmax(np.zeros((2, 0))).shape == (2, 0)
    assert R.softmax(np.ones((3,), np.float32)).dtype == np.float32
    assert R.log_softmax([1, 2, 3]).dtype == np.float64
    with pytest.raises(ValueError, match="axis"):
        R.softmax(np.ones((2, 3)), axis=2)
    with pytest.raises(ValueError, match="axis"):
        R.log_softmax(np.ones(3), axis=1.5)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_cross_entropy_matches_torch(dtype):
    rng = np.random.default_rng(5)
    logits = (rng.normal(size=(16, 5)) * 5).astype(dtype)
    targets = rng.integers(0, 5, size=16)
    ours = R.cross_entropy(logits, targets)
    theirs = F.cross_entropy(torch.from_numpy(logits.astype(np.float64)),
                             torch.from_numpy(targets)).item()
    assert np.shape(ours) == () and np.asarray(ours).dtype == dtype
    np.testing.assert_allclose(float(ours), theirs, rtol=1e-12 if dtype == np.float64 else 1e-6)
    assert R.cross_entropy([[1000.0, 0.0]], [1]) == 1000.0
    assert np.isfinite(R.cross_entropy([[-1e4, 1e4]], [0]))
    assert float(R.cross_entropy([[2.0, 1.0, 0.1]], [0])) == pytest.approx(0.41703001627783354)
    assert np.isnan(R.cross_entropy(np.zeros((0, 3)), []))


@pytest.mark.parametrize("logits, targets, match", [
    (np.zeros((2, 3)), [0, 3], "targets must lie"),
    (np.zeros((2, 3)), [-1, 0], "targets must lie"),
    (np.zeros((2, 3)), [0], "shape"),
    (np.zeros((2, 3)), [0.0, 1.0], "integer"),
    (np.zeros(3), [0], "shape"),
    (np.zeros((2, 3)), [[0, 1]], "shape"),
    (np.zeros((2, 3), complex), [0, 1], "real"),
])
def test_cross_entropy_rejects_bad_arguments(logits, targets, match):
    with pytest.raises(ValueError, match=match):
        R.cross_entropy(logits, targets)


# ---------------------------------------------------------------------------------------------
# collapse_linear and dead_fraction


def test_collapse_linear_equals_the_stack():
    rng = np.random.default_rng(3)
    sizes = [4, 6, 5, 3]
    weights = [rng.normal(size=(o, i)) for i, o in zip(sizes[:-1], sizes[1:], strict=True)]
    biases = [rng.normal(size=o) for o in sizes[1:]]
    W, b = R.collapse_linear(weights, biases)
    assert W.shape == (3, 4) and b.shape == (3,) and W.dtype == np.float64
    h = rng.normal(size=(10, 4))
    net = torch.nn.Sequential(*[torch.nn.Linear(i, o).double()
                                for i, o in zip(sizes[:-1], sizes[1:], strict=True)])
    with torch.no_grad():
        for layer, w, bb in zip(net, weights, biases, strict=True):
            layer.weight.copy_(torch.from_numpy(w))
            layer.bias.copy_(torch.from_numpy(bb))
        expected = net(torch.from_numpy(h)).numpy()
    np.testing.assert_allclose(h @ W.T + b, expected, rtol=1e-12, atol=1e-12)
    W1, b1 = R.collapse_linear(weights[:1], biases[:1])
    np.testing.assert_array_equal(W1, weights[0])
    np.testing.assert_array_equal(b1, biases[0])
    W32, b32 = R.collapse_linear([w.astype(np.float32) for w in weights],
                                 [x.astype(np.float32) for x in biases])
    assert W32.dtype == np.float32 and b32.dtype == np.float32
    Wl, bl = R.collapse_linear([[[1, 2], [3, 4]]], [[0, 1]])
    assert Wl.dtype == np.float64 and bl.tolist() == [0.0, 1.0]


@pytest.mark.parametrize("weights, biases, match", [
    ([np.ones((2, 3)), np.ones((2, 3))], [np.ones(2), np.ones(2)], "inputs"),
    ([np.ones((2, 3))], [np.ones(3)], "biases"),
    ([np.ones((2, 3))], [], "bias"),
    ([], [], "at least one"),
    ([np.ones(3)], [np.ones(3)], "2-D"),
    ([np.ones((2, 3), complex)], [np.ones(2)], "real"),
])
def test_collapse_linear_rejects_mismatched_shapes(weights, biases, match):
    with pytest.raises(ValueError, match=match):
        R.collapse_linear(weights, biases)


def test_dead_fraction():
    pre = np.array([[-1.0, 0.0, 2.0, -3.0], [-2.0, 0.0, -1.0, 5.0], [-0.5, -1.0, -1.0, -1.0]])
    assert R.dead_fraction(pre) == 0.5  # units 0 and 1 never fire
    assert isinstance(R.dead_fraction(pre), float)
    assert R.dead_fraction(pre.astype(np.float32)) == 0.5
    assert R.dead_fraction([[1, -1]]) == 0.5
    assert R.dead_fraction(np.zeros((0, 4))) == 1.0
    assert np.isnan(R.dead_fraction(np.zeros((4, 0))))
    assert R.dead_fraction([[np.nan, -1.0]]) == 0.5
    with pytest.raises(ValueError, match="shape"):
        R.dead_fraction(np.zeros(3))


# ---------------------------------------------------------------------------------------------
# Invalid arguments


@pytest.mark.parametrize("call", [
    lambda: R.gelu([1.0], approximate="foo"),
    lambda: R.gelu_grad([1.0], approximate=None),
    lambda: R.leaky_relu([1.0], negative_slope="0.1"),
    lambda: R.leaky_relu_grad([1.0], negative_slope=[0.1]),
    lambda: R.leaky_relu([1.0], negative_slope=1j),
    lambda: R.leaky_relu([1.0], negative_slope=True),
    lambda: R.leaky_relu([1.0], negative_slope=float("nan")),
    lambda: R.relu(np.array([1 + 2j])),
    lambda: R.sigmoid(np.array(["a"])),
    lambda: R.tanh([[1.0], [1.0, 2.0]]),
    lambda: R.softmax(np.array([1j])),
])
def test_invalid_arguments_raise_value_error(call):
    with pytest.raises(ValueError) as info:
        call()
    assert "\n" not in str(info.value)
