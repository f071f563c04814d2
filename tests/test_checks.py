"""The checks that grade students: right kernels pass, wrong ones fail with the right message.

For every contract kernel: the reference passes both the visible `check_kernel` and the hidden
`grade_kernel`; correct-but-different implementations pass; wrong implementations (common
misconceptions) fail with a message that names the misconception; grading never writes to
stderr. Takes about half a minute (the timing checks run each kernel on 10^6 elements).
"""
import math

import numpy as np
import pytest
from scipy import special

from autograder import reference as R
from autograder.hidden import KERNELS, LOOP_MESSAGE, grade_kernel
from nonlinearity.checks import check_kernel


def _f(x):
    x = np.asarray(x)
    return x if x.dtype in (np.float32, np.float64) else x.astype(np.float64)


def _stable_sigmoid(x):
    x = _f(x)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _neginf_to(value, fn):
    """Wrap fn so that x = -inf gives `value` (the limit) without an 'invalid' warning."""
    def wrapped(x, *args, **kwargs):
        x = _f(x)
        with np.errstate(invalid="ignore"):
            y = fn(x, *args, **kwargs)
        return np.where(np.isneginf(x), x.dtype.type(value), y)
    return wrapped


def looped(ref):
    """A Python loop over the elements (correct values, too slow)."""
    def fn(x, **kwargs):
        y = ref(x, **kwargs)
        out = np.empty(y.shape, y.dtype)  # C order, so reshape(-1) is a view
        flat_in, flat_out = y.reshape(-1), out.reshape(-1)
        for i in range(y.size):
            flat_out[i] = flat_in[i]
        return out
    return fn


def upcast(ref):
    def fn(x, *args, **kwargs):
        return ref(np.asarray(x, dtype=np.float64), *args, **kwargs)
    return fn


def in_place(ref):
    """Right values, but written into the caller's array."""
    def fn(x, *args, **kwargs):
        y = ref(x, *args, **kwargs)
        if isinstance(x, np.ndarray) and x.dtype == y.dtype and x.size:
            x[...] = y
            return x
        return y
    return fn


# --- correct-but-different implementations ------------------------------------------------

def relu_where(x):
    x = _f(x)
    return np.where(x < 0, 0.0, x).astype(x.dtype)


def relu_grad_ge(x):  # subgradient 1 at 0
    x = _f(x)
    return np.where(np.isnan(x), x, (x >= 0).astype(x.dtype))


def leaky_relu_max(x, negative_slope=0.01):
    x = _f(x)
    return np.maximum(x, negative_slope * x)


def leaky_relu_grad_ge(x, negative_slope=0.01):
    x = _f(x)
    g = np.where(x >= 0, x.dtype.type(1), x.dtype.type(negative_slope))
    return np.where(np.isnan(x), x, g)


def _gelu_exact(x, approximate="none"):
    if approximate == "tanh":
        c = x.dtype.type(np.sqrt(2 / np.pi))
        return 0.5 * x * (1 + np.tanh(c * (x + x.dtype.type(0.044715) * x**3)))
    return 0.5 * x * special.erfc(-x / x.dtype.type(np.sqrt(2)))


gelu_erfc = _neginf_to(0.0, _gelu_exact)


def _silu_tanh(x):
    return x * 0.5 * (1 + np.tanh(x / 2))


silu_tanh = _neginf_to(0.0, _silu_tanh)


def sigmoid_tanh(x):
    x = _f(x)
    return 0.5 * (1 + np.tanh(x / 2))


def tanh_exp(x):
    x = _f(x)
    e = np.exp(-2 * np.abs(x))
    return np.sign(x) * (1 - e) / (1 + e)


def log_softmax_lse(x, axis=-1):
    x = _f(x)
    return x - special.logsumexp(x, axis=axis, keepdims=True).astype(x.dtype)


def softmax_via_log(x, axis=-1):
    return np.exp(log_softmax_lse(x, axis))


def cross_entropy_lse(logits, targets):
    logits = _f(logits)
    targets = np.asarray(targets)
    lse = special.logsumexp(logits, axis=1)
    return float(np.mean(lse - logits[np.arange(len(targets)), targets]))


def collapse_by_probing(weights, biases):
    """Apply the stack to the zero vector and the unit vectors."""
    n_in = np.shape(weights[0])[1]
    probes = np.vstack([np.zeros(n_in), np.eye(n_in)])
    h = probes
    for w, b in zip(weights, biases, strict=True):
        h = h @ np.asarray(w, dtype=float).T + np.asarray(b, dtype=float)
    b = h[0]
    return (h[1:] - b).T, b


def dead_fraction_any(preacts):
    return 1.0 - float(np.mean(np.any(np.asarray(preacts) > 0, axis=0)))


# --- wrong implementations ------------------------------------------------------------------

def _naive_sigmoid(x):
    return 1 / (1 + np.exp(-_f(x)))


def _softmax_naive(x, axis=-1):
    e = np.exp(_f(x))
    return e / e.sum(axis=axis, keepdims=True)


def _softmax_last_axis(x, axis=-1):
    return R.softmax(x, axis=-1)


def _softmax_whole(x, axis=-1):
    x = _f(x)
    e = np.exp(x - np.max(x))
    return e / e.sum()


def _log_softmax_via_log(x, axis=-1):
    return np.log(R.softmax(x, axis=axis))


def _softmax_slow(x, axis=-1):
    y = R.softmax(x, axis=axis)
    out = np.empty(y.shape, y.dtype)  # C order, so reshape(-1) is a view
    flat_in, flat_out = y.reshape(-1), out.reshape(-1)
    for i in range(y.size):
        flat_out[i] = math.fsum([flat_in[i]])
    return out


def _cross_entropy_sum(logits, targets):
    logp = R.log_softmax(logits)
    return -float(np.sum(logp[np.arange(len(targets)), targets]))


def _cross_entropy_naive(logits, targets):
    p = _softmax_naive(logits)
    return -float(np.mean(np.log(p[np.arange(len(targets)), targets])))


def _cross_entropy_columns(logits, targets):
    return -float(np.mean(R.log_softmax(logits)[:, np.asarray(targets)]))


def _cross_entropy_per_sample(logits, targets):
    return -R.log_softmax(logits)[np.arange(len(targets)), targets]


def _collapse_reversed(weights, biases):
    W = np.asarray(weights[0], dtype=float)
    for w in weights[1:]:
        W = W @ np.asarray(w, dtype=float)
    return W, R.collapse_linear(weights, biases)[1]


def _collapse_sum_bias(weights, biases):
    W, _ = R.collapse_linear(weights, biases)
    return W, np.sum([np.asarray(b, dtype=float) for b in biases], axis=0)


def _collapse_transposed(weights, biases):
    W, b = R.collapse_linear(weights, biases)
    return W.T, b


def _collapse_in_place(weights, biases):
    W, b = R.collapse_linear(weights, biases)
    last = biases[-1]
    if isinstance(last, np.ndarray):
        last[...] = b
    return W, b


def _gelu_no_sqrt2(x, approximate="none"):
    x = _f(x)
    return 0.5 * x * (1 + special.erf(x))


GOOD = {
    "relu": [relu_where],
    "relu_grad": [relu_grad_ge],
    "leaky_relu": [leaky_relu_max],
    "leaky_relu_grad": [leaky_relu_grad_ge],
    "gelu": [gelu_erfc],
    "silu": [silu_tanh],
    "sigmoid": [sigmoid_tanh],
    "tanh": [tanh_exp],
    "softmax": [softmax_via_log],
    "log_softmax": [log_softmax_lse],
    "cross_entropy": [cross_entropy_lse],
    "collapse_linear": [collapse_by_probing],
    "dead_fraction": [dead_fraction_any],
}

# (kernel, wrong implementation, words the failure message must contain)
BAD = [
    ("relu", lambda x: np.where(_f(x) > 0, _f(x), 0), "NaN must propagate"),
    ("relu", upcast(R.relu), "float32 input came back as float64"),
    ("relu", in_place(R.relu), "relu(x) modified its input in place"),
    ("relu", looped(R.relu), LOOP_MESSAGE),
    ("relu", lambda x: R.relu(x).tolist(), "should return a numpy array"),
    ("relu", lambda x: np.maximum(np.asarray(x), 0), "int64 input should give float64"),
    ("relu_grad", lambda x: np.where(np.isnan(_f(x)), _f(x), np.ones_like(_f(x))),
     "relu_grad is 1 for x < 0"),
    ("relu_grad", lambda x: np.sign(_f(x)), "did you return the derivative of |x|?"),
    ("relu_grad", lambda x: (_f(x) > 0).astype(_f(x).dtype), "NaN must propagate"),
    ("relu_grad", R.relu, "relu_grad returned relu(x)"),
    ("leaky_relu", lambda x, negative_slope=0.01: np.where(_f(x) > 0, _f(x),
                                                           -negative_slope * _f(x)),
     "wrong sign"),
    ("leaky_relu", lambda x, negative_slope=0.01: R.leaky_relu(x),
     "leaky_relu ignores negative_slope"),
    ("leaky_relu", upcast(R.leaky_relu), "float32 input came back as float64"),
    ("leaky_relu_grad", lambda x, negative_slope=0.01: R.relu_grad(x),
     "leaky_relu_grad is 0 for x < 0"),
    ("leaky_relu_grad",
     lambda x, negative_slope=0.01: np.where(_f(x) > 0, 1.0, negative_slope * _f(x)),
     "constant negative_slope, not negative_slope * x"),
    ("leaky_relu_grad", looped(R.leaky_relu_grad), LOOP_MESSAGE),
    ("gelu", lambda x, approximate="none": R.gelu(x, approximate="tanh"),
     "approximate='none' should use the exact normal CDF"),
    ("gelu", lambda x, approximate="none": R.gelu(x), "should use the tanh approximation"),
    ("gelu", _gelu_no_sqrt2, "the argument of erf needs the 1/sqrt(2)"),
    ("gelu", lambda x, approximate="none": _gelu_exact(_f(x), approximate),
     "should reach its limit at -inf"),
    ("gelu_grad", lambda x, approximate="none": R.gelu_grad(x, approximate="tanh"),
     "approximate='none' should use the exact normal CDF"),
    ("gelu_grad", lambda x, approximate="none": 0.5 * special.erfc(-_f(x) / np.sqrt(2)),
     "missing the x * phi(x) term"),
    ("silu", lambda x: _f(x) / (1 + np.exp(-_f(x))),
     "silu raised RuntimeWarning: overflow encountered in exp for x=-10000.0"),
    ("silu", lambda x: _stable_sigmoid(x), "silu returned sigmoid(x)"),
    ("silu_grad", lambda x: _stable_sigmoid(x), "product rule gives a second term"),
    ("silu_grad", upcast(R.silu_grad), "float32 input came back as float64"),
    ("sigmoid", _naive_sigmoid,
     "sigmoid raised RuntimeWarning: overflow encountered in exp for x=-10000.0"),
    ("sigmoid", lambda x: np.where(_f(x) >= 0, 1 / (1 + np.exp(-_f(x))),
                                   np.exp(_f(x)) / (1 + np.exp(_f(x)))),
     "np.where computes both branches"),
    ("sigmoid", in_place(R.sigmoid), "sigmoid(x) modified its input in place"),
    ("sigmoid", looped(R.sigmoid), LOOP_MESSAGE),
    ("sigmoid_grad", lambda x: _stable_sigmoid(x), "sigmoid_grad returned sigmoid(x)"),
    ("sigmoid_grad", lambda x: _naive_sigmoid(x) * (1 - _naive_sigmoid(x)), "overflow"),
    ("tanh", lambda x: (np.exp(_f(x)) - np.exp(-_f(x))) / (np.exp(_f(x)) + np.exp(-_f(x))),
     "tanh is not stable"),
    ("tanh", upcast(R.tanh), "float32 input came back as float64"),
    ("tanh_grad", lambda x: 1 - np.tanh(_f(x)), "did you forget the square?"),
    ("tanh_grad", lambda x: 1 / np.cosh(_f(x)) ** 2, "overflow encountered in cosh"),
    ("softmax", _softmax_naive, "softmax overflows for large logits: subtract the maximum first"),
    ("softmax", _softmax_last_axis, "softmax should normalise along `axis`"),
    ("softmax", _softmax_whole, "normalises over the whole array"),
    ("softmax", upcast(R.softmax), "float32 input came back as float64"),
    ("softmax", _softmax_slow, LOOP_MESSAGE),
    ("log_softmax", _log_softmax_via_log, "log_softmax returned -inf for a finite logit"),
    ("log_softmax", lambda x, axis=-1: R.softmax(x, axis=axis),
     "log_softmax returned probabilities"),
    ("log_softmax", in_place(R.log_softmax), "log_softmax(x) modified its input in place"),
    ("cross_entropy", _cross_entropy_sum, "should be the mean, not the sum, over the batch"),
    ("cross_entropy", _cross_entropy_naive, "cross_entropy is unstable for large logits"),
    ("cross_entropy", _cross_entropy_columns, "pick each sample's own target"),
    ("cross_entropy", _cross_entropy_per_sample, "should return one number"),
    ("cross_entropy", lambda lg, t: -R.cross_entropy(lg, t), "NEGATIVE log-likelihood"),
    ("collapse_linear", _collapse_reversed, "wrong order"),
    ("collapse_linear", _collapse_sum_bias, "b is the sum of the biases"),
    ("collapse_linear", _collapse_transposed, "did you return the transpose?"),
    ("collapse_linear", _collapse_in_place, "modified its input in place"),
    ("dead_fraction", lambda p: float(np.mean(np.all(np.asarray(p) < 0, axis=0))),
     "exactly 0 counts as dead"),
    ("dead_fraction", lambda p: float(np.mean(np.any(np.asarray(p) <= 0, axis=0))),
     "for EVERY sample"),
    ("dead_fraction", lambda p: float(np.mean(np.asarray(p) <= 0)), "not of entries"),
    ("dead_fraction", lambda p: float(np.sum(np.all(np.asarray(p) <= 0, axis=0))),
     "not a count"),
]


@pytest.mark.parametrize("name", KERNELS)
def test_reference_passes_hidden_checks(name, capfd):
    grade_kernel(name, getattr(R, name))
    out, err = capfd.readouterr()
    assert err == ""


@pytest.mark.parametrize("name", KERNELS)
def test_reference_passes_visible_checks(name, capfd):
    check_kernel(name, getattr(R, name))
    out, err = capfd.readouterr()
    assert out.strip().startswith(f"{name}: ") and out.strip().endswith("visible checks passed")
    assert err == ""


@pytest.mark.parametrize(
    "name, fn", [(n, f) for n, fns in GOOD.items() for f in fns], ids=lambda v: getattr(v, "__name__", v)
)
def test_correct_but_different_passes(name, fn, capfd):
    grade_kernel(name, fn)
    check_kernel(name, fn)
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize("name, fn, words", BAD, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(BAD)])
def test_wrong_implementation_fails_with_named_message(name, fn, words, capfd):
    with pytest.raises(AssertionError) as info:
        grade_kernel(name, fn)
    assert words in str(info.value), str(info.value)
    assert capfd.readouterr().err == ""


def test_every_kernel_has_two_wrong_implementations():
    for name in KERNELS:
        assert sum(n == name for n, _, _ in BAD) >= 2, name


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


@pytest.mark.parametrize("name, fn, words", [
    ("sigmoid", _naive_sigmoid, "overflow"),
    ("relu", upcast(R.relu), "float32 input came back as float64"),
    ("relu", in_place(R.relu), "modified its input in place"),
    ("softmax", _softmax_naive, "overflow"),
    ("leaky_relu", lambda x, negative_slope=0.01: np.where(_f(x) > 0, _f(x),
                                                           -negative_slope * _f(x)), "should be"),
    ("gelu", lambda x, approximate="none": R.gelu(x), "approximate='tanh'"),
])
def test_visible_checks_catch_common_mistakes(name, fn, words, capfd):
    with pytest.raises(AssertionError) as info:
        check_kernel(name, fn)
    assert words in str(info.value), str(info.value)
    assert capfd.readouterr().err == ""


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
