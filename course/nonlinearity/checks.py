"""Visible checks for the notebooks' exercises: `check_kernel(name, fn, part=None)`.

`part="math"` checks the mathematics (values, shape, dtype, no in-place change, vectorised, on
ordinary inputs); `part="deeper"` the numerics of the *going deeper* sections (large |x|,
extreme logits, ±inf and NaN, very negative x for the exact GELU); None both.

Each check compares your kernel with torch (torch.nn.functional for values, torch.autograd for
derivatives) or with a simple fact (a limit, a shape, a dtype) and raises AssertionError with a
message that names the input, the expected and the actual value. These are the basics; the
graded (hidden) checks try more inputs, shapes, dtypes and parameters.
"""
import math
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from scipy import special

from nonlinearity import misconceptions
from nonlinearity.steps import count_python_steps

TOL = 1e-12  # differences allowed against torch in float64
INF = float("inf")
NAN = float("nan")

__all__ = ["check_kernel", "KERNELS"]

# Forward functions in torch; a name ending in "_grad" is checked against torch.autograd.
_TORCH = {
    "relu": lambda t, kw: F.relu(t),
    "leaky_relu": lambda t, kw: F.leaky_relu(t, kw.get("negative_slope", 0.01)),
    "gelu": lambda t, kw: F.gelu(t, approximate=kw.get("approximate", "none")),
    "silu": lambda t, kw: F.silu(t),
    "sigmoid": lambda t, kw: torch.sigmoid(t),
    "tanh": lambda t, kw: torch.tanh(t),
}
# Limits at -inf and +inf (what the function tends to).
_LIMITS = {
    "relu": (0.0, INF), "relu_grad": (0.0, 1.0),
    "leaky_relu": (-INF, INF), "leaky_relu_grad": (0.01, 1.0),
    "gelu": (0.0, INF), "gelu_grad": (0.0, 1.0),
    "silu": (0.0, INF), "silu_grad": (0.0, 1.0),
    "sigmoid": (0.0, 1.0), "sigmoid_grad": (0.0, 0.0),
    "tanh": (-1.0, 1.0), "tanh_grad": (0.0, 0.0),
}
# Parameter values checked besides the defaults.
_PARAMS = {
    "leaky_relu": [{"negative_slope": 0.2}], "leaky_relu_grad": [{"negative_slope": 0.2}],
    "gelu": [{"approximate": "tanh"}], "gelu_grad": [{"approximate": "tanh"}],
}
ELEMENTWISE = list(_LIMITS)
KERNELS = ELEMENTWISE + ["softmax", "log_softmax", "cross_entropy", "collapse_linear",
                         "dead_fraction"]


def _call(name, fn, *args, **kwargs):
    """Call fn; turn warnings (which would write to stderr) into an AssertionError."""
    with warnings.catch_warnings(record=True) as caught, \
            np.errstate(divide="warn", over="warn", invalid="warn", under="ignore"):
        warnings.simplefilter("always")
        out = fn(*args, **kwargs)
    caught = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    if caught:
        w = caught[0]
        text = str(w.message)
        if "overflow" in text:
            hint = "an overflow: think about large |x|"
        elif "divide" in text:
            hint = "a division by zero or log(0): think about values that underflow to 0"
        else:
            hint = "an invalid value usually comes from inf - inf or 0 * inf: think about ±inf"
        shown = ", ".join(_show(a) for a in args) + _kw(kwargs)
        raise AssertionError(
            f"{name}({shown}) raised {w.category.__name__}: {text}. It should work without "
            f"warnings ({hint})."
        )
    return out


def _python_steps(name, fn, x, kw=None):
    """Python lines and calls executed while fn(x) runs."""
    return count_python_steps(lambda: _call(name, fn, x, **(kw or {})))


def _check_vectorised(name, fn, small, large, what):
    """Fail when the Python steps grow with the number of elements (half a step per element)."""
    a, b = _python_steps(name, fn, small), _python_steps(name, fn, large)
    if b - a > (large.size - small.size) // 2:
        raise AssertionError(
            f"{name} runs Python code for every element ({a} Python steps on {what[0]}, {b} on "
            f"{what[1]}): this looks like a Python loop; use numpy's vectorised operations")


def _show(a):
    if isinstance(a, np.ndarray):
        if a.size > 8:
            return f"<a {a.dtype} array of shape {a.shape}>"
        return f"np.array({a.tolist()}, dtype={a.dtype})"
    return repr(a)


def _kw(kw):
    return "".join(f", {k}={v!r}" for k, v in kw.items())


def _torch_values(name, x, kw):
    """Expected values from torch in float64 (autograd for names ending in _grad)."""
    t = torch.tensor(np.asarray(x, dtype=np.float64), requires_grad=name.endswith("_grad"))
    if name.endswith("_grad"):
        y = _TORCH[name[: -len("_grad")]](t, kw)
        (g,) = torch.autograd.grad(y.sum(), t)
        return g.detach().numpy()
    return _TORCH[name](t, kw).detach().numpy()


def _compare(name, label, actual, expected, tol=TOL, kink=None, hint=None):
    """Assert actual is within tol of expected; kink = (lo, hi) accepted at exactly x = 0.

    hint: a function (actual, expected, ok) -> a sentence naming the likely mistake, or None."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    with np.errstate(all="ignore"):
        diff = np.abs(actual - expected)
        ok = (diff <= tol * (1 + np.abs(expected))) | (actual == expected)
        ok |= np.isnan(actual) & np.isnan(expected)
    if kink is not None:
        x, lo, hi = kink
        ok = np.where(np.asarray(x) == 0, (actual >= lo) & (actual <= hi), ok)
    if not np.all(ok):
        i = int(np.flatnonzero(~ok.reshape(-1))[0])
        why = hint(actual, expected, ok) if hint else None
        raise AssertionError(
            (f"{why}{' ' if why.endswith(('?', '.', '!')) else '. '}" if why else "") +
            f"{label} should be {_round(expected)}, got {_round(actual)}: first difference at "
            f"position {i}: expected {float(expected.reshape(-1)[i])!r}, "
            f"got {float(actual.reshape(-1)[i])!r} "
            f"(expect differences below {tol:g})"
        )


def _round(a):
    return np.array2string(np.asarray(a), precision=6, separator=", ")


def _check_array(name, label, x, y, dtype):
    if not isinstance(y, (np.ndarray, np.generic)):
        raise AssertionError(f"{label} should return a numpy array, got {type(y).__name__}")
    y = np.asarray(y)
    if y.shape != np.shape(x):
        raise AssertionError(
            f"{label}: the input has shape {np.shape(x)}, so should the output; got {y.shape}"
        )
    if y.dtype != dtype:
        raise AssertionError(f"{label}: {np.asarray(x).dtype} input came back as {y.dtype} "
                             f"(expected {np.dtype(dtype)}; no silent up-cast)")
    return y


def _sig(t):
    return torch.sigmoid(t)


def _phi_cdf(t):
    return 0.5 * (1 + torch.erf(t / math.sqrt(2)))


class _TorchKernels:
    """The correct kernels, from torch, for the shared misconception formulas
    (nonlinearity.misconceptions): float64 arrays in, float64 arrays out."""

    def __getattr__(self, name):
        def kernel(x, *args, **kw):
            if args:  # leaky_relu(x, slope)
                kw = {"negative_slope": args[0], **kw}
            return _torch_values(name, np.asarray(x, dtype=np.float64), kw)
        return kernel


_REF = _TorchKernels()


def _close(a, b):
    with np.errstate(all="ignore"):
        return bool(np.all(np.isclose(a, b, rtol=1e-6, atol=1e-9, equal_nan=True)))


def _elementwise_hint(name, x, kw):
    """A hint for a wrong elementwise result on input x (None when no pattern fits)."""
    x = np.asarray(x, dtype=np.float64)

    def hint(actual, expected, ok):
        bad = ~ok
        if np.any(np.isnan(x) & ~np.isnan(actual)):
            return f"{name}: NaN must propagate (comparisons such as x > 0 are False for NaN)"
        if name.endswith("_grad"):
            base = name[: -len("_grad")]
            if _close(actual, _torch_values(base, x, kw)):
                return f"{name} returned {base}(x), the function itself, not its derivative"
        if np.any(expected[bad] != 0) and _close(actual[bad], -expected[bad]):
            return f"{name} has the wrong sign where it differs"
        for message, variant in misconceptions.variants(name):
            with np.errstate(all="ignore"):
                wrong = variant(x, kw, _REF)
            if wrong is not None and _close(actual, wrong):
                return misconceptions.message_text(message, kw)
        if kw and _close(actual, _torch_values(name, x, {})):
            return f"{name} ignores {_kw(kw)[2:]}: it gave the values of the default"
        if name.startswith("gelu") and kw.get("approximate", "none") == "none" and _close(
                actual, _torch_values(name, x, {"approximate": "tanh"})):
            return (f"{name} with approximate='none' should be the exact GELU (with erf), not "
                    "the tanh approximation")
        if not name.endswith("_grad") and _close(actual, _torch_values(name, -x, kw)):
            return f"{name}(x) gave the values of {name}(-x): check the sign inside"
        finite = np.isfinite(x)
        if bad.any() and np.all(finite[bad]):
            xs = x[bad]
            if np.all(xs < 0):
                return f"{name} is right for x >= 0 but wrong for x < 0"
            if np.all(xs <= 0):
                return f"{name} is right for x > 0 but wrong for x <= 0"
            if np.all(xs > 0):
                return f"{name} is right for x <= 0 but wrong for x > 0"
        return None
    return hint


def _elementwise_checks(name, fn):
    slope = 0.0 if name == "relu_grad" else 0.01

    def kink(x, kw):
        if name not in ("relu_grad", "leaky_relu_grad"):
            return None
        s = kw.get("negative_slope", slope)
        return (x, min(s, 1.0), max(s, 1.0))

    def values(x, kw=None, label=None):
        kw = kw or {}
        label = label or f"{name}({_show(x)}{_kw(kw)})"
        want, before = _torch_values(name, x, kw), np.array(x, copy=True)
        y = _call(name, fn, x, **kw)
        if not np.array_equal(np.asarray(x), before, equal_nan=True):
            raise AssertionError(f"{label} modified its input in place: work on a copy")
        y = _check_array(name, label, x, y, np.float64)
        _compare(name, label, y, want, kink=kink(x, kw), hint=_elementwise_hint(name, x, kw))

    def seed_example():
        values(np.linspace(-3, 3, 7))

    def random_2d():
        x = np.random.default_rng(0).normal(0, 2, (3, 4))
        values(x, label=f"{name}(x) for a random x of shape (3, 4)")

    def float32():
        x = np.array([-2.0, -0.5, 0.5, 2.0], dtype=np.float32)
        y = _check_array(name, f"{name}({_show(x)})", x, _call(name, fn, x), np.float32)
        _compare(name, f"{name}({_show(x)})", y, _torch_values(name, x, {}), tol=1e-6)

    def array_likes():
        for x in ([-1.0, 0.5, 2.0], 0.5, [-2, 1, 3]):
            y = np.asarray(_call(name, fn, x))
            if y.shape != np.shape(x) or y.dtype != np.float64:
                raise AssertionError(f"{name}({x!r}) should give a float64 array of shape "
                                     f"{np.shape(x)}, got {y.dtype} shape {y.shape}")
            _compare(name, f"{name}({x!r})", y, _torch_values(name, x, {}))

    def no_mutation():
        x = np.array([-1.5, -0.25, 0.0, 0.75, 3.0])
        before = x.copy()
        _call(name, fn, x)
        if not np.array_equal(x, before):
            raise AssertionError(f"{name}(x) modified its input in place: x was "
                                 f"{before.tolist()}, afterwards {x.tolist()}")

    def special_values():
        x = np.array([-INF, INF, NAN])
        lo, hi = _LIMITS[name]
        y = _check_array(name, f"{name}({_show(x)})", x, _call(name, fn, x), np.float64)
        _compare(name, f"{name}([-inf, inf, nan]) (the limits, and NaN propagates)", y,
                 [lo, hi, NAN], hint=_elementwise_hint(name, x, {}))

    def large_inputs():
        x = np.array([-1000.0, -50.0, 50.0, 1000.0])
        values(x)

    def parameters():
        x = np.array([-2.0, -1.0, 0.0, 0.5, 2.0])
        for kw in _PARAMS.get(name, []):
            values(x, kw)

    def vectorised():
        _check_vectorised(name, fn, np.linspace(-3, 3, 100), np.linspace(-3, 3, 10_000),
                          ("100 elements", "10^4 elements"))

    def erfc_tail():
        # Exact GELU far left: compare with erfc (torch's own 1 + erf loses these digits).
        x = np.array([-5.0, -10.0, -20.0, -30.0])
        y = _check_array(name, f"{name}({_show(x)})", x, _call(name, fn, x), np.float64)
        phi = 0.5 * special.erfc(-x / math.sqrt(2))
        want = x * phi if name == "gelu" else phi + x * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
        with np.errstate(all="ignore"):
            rel = np.abs(y - want) / np.abs(want)
        if not np.all(rel <= 1e-10):
            i = int(np.argmax(~(rel <= 1e-10)))
            raise AssertionError(
                f"{name}({x[i]!r}) should be {want[i]!r}, got {float(y[i])!r} (relative "
                f"differences below 1e-10 expected): {misconceptions.ERFC_HINT}")

    math_checks = [seed_example, random_2d, float32, array_likes, no_mutation, vectorised]
    if name in _PARAMS:
        math_checks.append(parameters)
    deeper = [special_values, large_inputs]
    if name in ("gelu", "gelu_grad"):
        deeper.append(erfc_tail)
    return {"math": math_checks, "deeper": deeper}


def _softmax_checks(name, fn):
    tfn = F.softmax if name == "softmax" else F.log_softmax

    def expected(x, axis=-1):
        return tfn(torch.tensor(np.asarray(x, dtype=np.float64)), dim=axis).numpy()

    def hint(x, axis):
        def why(actual, want, ok):
            if name == "log_softmax" and np.all(actual >= 0):
                return misconceptions.LOG_SOFTMAX_PROBS
            probs = actual if name == "softmax" else np.exp(actual)
            if np.ndim(x) >= 2 and not np.allclose(np.sum(probs, axis=axis), 1):
                if np.isclose(np.sum(probs), 1):
                    return f"{name} normalises over the whole array, not along axis={axis}"
                return f"{name}: the probabilities do not sum to 1 along axis={axis}"
            return None
        return why

    def run(x, dtype=np.float64, **kw):
        label = f"{name}({_show(x)}{_kw(kw)})"
        try:
            y = _call(name, fn, x, **kw)
        except ValueError as err:
            if "broadcast" not in str(err):
                raise
            raise AssertionError(f"{label} raised ValueError: {err} — "
                                 f"{misconceptions.KEEPDIMS}") from None
        y = _check_array(name, label, x, y, dtype)
        _compare(name, label, y, expected(x, **kw), tol=TOL if dtype == np.float64 else 1e-6,
                 hint=hint(x, kw.get("axis", -1)))

    def seed_example():
        x = [2.0, 1.0, 0.1]  # softmax ≈ [0.659, 0.242, 0.099]
        label = f"{name}({x})"
        y = np.asarray(_call(name, fn, x))
        _compare(name, label, y, expected(x), hint=hint(x, -1))

    def rows():
        run(np.random.default_rng(1).normal(0, 2, (3, 4)))

    def axis0():
        run(np.random.default_rng(2).normal(0, 2, (3, 4)), axis=0)

    def float32():
        run(np.array([[1.0, 2.0, 3.0], [0.5, 0.5, -1.0]], dtype=np.float32), dtype=np.float32)

    def no_mutation():
        x = np.array([[1.0, 2.0, 3.0], [0.0, -1.0, 4.0]])
        before = x.copy()
        _call(name, fn, x)
        if not np.array_equal(x, before):
            raise AssertionError(f"{name}(x) modified its input in place")

    def large_logits():
        run(np.array([[1000.0, 0.0, -1000.0], [500.0, 501.0, 502.0]]))

    def vectorised():
        rng = np.random.default_rng(4)
        _check_vectorised(name, fn, rng.normal(0, 2, (10, 10)), rng.normal(0, 2, (10, 1000)),
                          ("rows of 10 logits", "rows of 1000 logits"))

    def special_logits():
        x = np.array([[0.0, -INF, 1.0], [-INF, 2.0, 2.0]])
        run(x)

    return {"math": [seed_example, rows, axis0, float32, no_mutation, vectorised],
            "deeper": [large_logits, special_logits]}


def _cross_entropy_checks(name, fn):
    def expected(logits, targets):
        return F.cross_entropy(torch.tensor(np.asarray(logits, dtype=np.float64)),
                               torch.tensor(np.asarray(targets), dtype=torch.long)).item()

    def run(logits, targets):
        label = f"cross_entropy({_show(np.asarray(logits))}, {np.asarray(targets).tolist()})"
        out = _call(name, fn, logits, targets)
        if np.ndim(out) != 0:
            raise AssertionError(f"{label} should return one number (a float), got an array "
                                 f"of shape {np.shape(out)}")
        want, n = expected(logits, targets), len(targets)
        if n > 1 and abs(float(out) - n * want) <= 1e-9 * n * abs(want):
            raise AssertionError(f"{label} should be {want!r}, got {float(out)!r}: {n} times too "
                                 f"large — {misconceptions.cross_entropy_variants(logits, targets)[0][0]}")

        def why(actual, expected, ok):
            for message, wrong in misconceptions.cross_entropy_variants(logits, targets):
                if np.isclose(actual, wrong, rtol=1e-9):
                    return message
            if actual < 0:
                return "cross_entropy is a NEGATIVE log-likelihood, never below 0"
            return None

        _compare(name, label, float(out), want, hint=why)

    def seed_example():
        run([[2.0, 1.0, 0.1]], [0])

    def batch():
        rng = np.random.default_rng(3)
        run(rng.normal(0, 2, (4, 3)), np.array([0, 2, 1, 2]))

    def large_logits():
        run(np.array([[1000.0, 0.0], [0.0, 1000.0], [1000.0, -1000.0]]), np.array([0, 0, 1]))

    def no_mutation():
        logits, targets = np.array([[1.0, 2.0], [3.0, 0.0]]), np.array([1, 0])
        before = logits.copy(), targets.copy()
        _call(name, fn, logits, targets)
        if not (np.array_equal(logits, before[0]) and np.array_equal(targets, before[1])):
            raise AssertionError("cross_entropy(logits, targets) modified its input in place")

    return {"math": [seed_example, batch, no_mutation], "deeper": [large_logits]}


def _collapse_checks(name, fn):
    def run(shapes):
        rng = np.random.default_rng(len(shapes))
        weights = [rng.normal(size=s) for s in shapes]
        biases = [rng.normal(size=s[0]) for s in shapes]
        copies = [w.copy() for w in weights], [b.copy() for b in biases]
        label = f"collapse_linear for weights of shapes {[w.shape for w in weights]}"
        try:
            W, b = _call(name, fn, weights, biases)
        except ValueError as err:
            hint = ""
            if "matmul" in str(err):
                hint = f" — {misconceptions.WRONG_ORDER}"
            elif "inhomogeneous" in str(err) or "broadcast" in str(err):
                hint = (" — the layers' biases have different shapes, so they cannot simply be "
                        "added: an earlier bias passes through the later layers' weights")
            raise AssertionError(f"{label} raised ValueError: {err}{hint}") from None
        W, b = np.asarray(W), np.asarray(b)
        n_out, n_in = shapes[-1][0], shapes[0][1]
        if W.shape != (n_out, n_in) or b.shape != (n_out,):
            raise AssertionError(f"{label}: expected W of shape {(n_out, n_in)} and b of shape "
                                 f"{(n_out,)}, got {W.shape} and {b.shape}")
        if not all(np.array_equal(p, q) for p, q in zip(weights + biases, copies[0] + copies[1],
                                                        strict=True)):
            raise AssertionError(f"{label}: modified weights or biases in place")
        x = rng.normal(size=(5, n_in))
        h = x
        for w, c in zip(weights, biases, strict=True):
            h = h @ w.T + c
        b_stack = np.zeros(n_in)  # the stack applied to 0 gives the collapsed bias
        for w, c in zip(weights, biases, strict=True):
            b_stack = b_stack @ w.T + c

        def why(actual, expected, ok):
            if len(shapes) > 1 and np.allclose(b, biases[-1]) and not np.allclose(b, b_stack):
                return misconceptions.LAST_BIAS_ONLY
            return None

        _compare(name, f"{label}: x @ W.T + b for random x (the stack gives h)", x @ W.T + b, h,
                 tol=1e-10, hint=why)

    return {"math": [lambda: run([(3, 4)]), lambda: run([(5, 4), (2, 5)]),
                     lambda: run([(3, 2), (3, 3), (4, 3)])], "deeper": []}


def _dead_checks(name, fn):
    def run(p, expected):
        label = f"dead_fraction({_show(np.asarray(p))})"
        out = _call(name, fn, p)
        if np.ndim(out) != 0:
            raise AssertionError(f"{label} should return one float, got shape {np.shape(out)}")
        variants = misconceptions.dead_fraction_variants(p, expected)

        def why(actual, want, ok):
            return next((m for m, v in variants if np.isclose(actual, v)), None)

        _compare(name, label, float(out), expected, hint=why)

    return {"math": [
        # units 0, 2 and 4 are dead (<= 0 on both samples); 2 and 4 only through exact zeros
        lambda: run(np.array([[-1.0, 2.0, 0.0, 1.0, 0.0], [-3.0, -1.0, 0.0, -2.0, -2.0]]), 0.6),
        lambda: run(-np.ones((4, 3)), 1.0),
        lambda: run(np.ones((4, 3)), 0.0),
    ], "deeper": []}


def check_kernel(name, fn, part=None):
    """Run the visible checks for kernel `name` on your function `fn`; print a summary line.

    part: "math" (ordinary inputs: values, shape, dtype), "deeper" (the numerics: large |x|,
    extreme logits, ±inf and NaN), or None (both). Raises AssertionError with a message naming
    the input, the expected and the actual value.
    """
    if name in ELEMENTWISE:
        checks = _elementwise_checks(name, fn)
    elif name in ("softmax", "log_softmax"):
        checks = _softmax_checks(name, fn)
    elif name == "cross_entropy":
        checks = _cross_entropy_checks(name, fn)
    elif name == "collapse_linear":
        checks = _collapse_checks(name, fn)
    elif name == "dead_fraction":
        checks = _dead_checks(name, fn)
    else:
        raise KeyError(f"no visible checks for {name!r}; known: {', '.join(KERNELS)}")
    if part not in (None, "math", "deeper"):
        raise ValueError(f'part must be "math", "deeper" or None, got {part!r}')
    checks = [c for p in ("math", "deeper") if part in (None, p) for c in checks[p]]
    for check in checks:
        check()
    what = {None: "", "math": " (the mathematics)", "deeper": " (going deeper: the numerics)"}
    print(f"{name}: {len(checks)} visible checks passed{what[part]}")
