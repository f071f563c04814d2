"""Judge a student's kernel records against the reference kernels (the trusted side).

`judge(name, bat, records, speed)` returns None (pass) or ONE failure message, naming the likely
misconception where it recognises one. The records come from `autograder.recorders.kernels.run`: in plain
nbgrader they are judged in the same kernel; under `python -m autograder grade` they are saved
inside the sandbox and judged here, outside it, where the student's code cannot reach.
This module imports the reference; the sandbox never sees it.
"""
from __future__ import annotations

import time
import warnings

import numpy as np

from autograder.judging import reference
from autograder.recorders.kernels import (
    ATOL,
    ELEMENTWISE,
    LOOP_MESSAGE,
    RTOL,
    SPEED_FACTOR,
    SPEED_SLACK_S,
)
from nonlinearity import misconceptions

# ---------------------------------------------------------------------------------------------
# Judge: compare the records with the reference (trusted side)
# ---------------------------------------------------------------------------------------------

_REF_SECONDS = {}


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def _min_time(fn, args, kwargs, repeat=3):
    best = None
    for _ in range(repeat):
        start = time.perf_counter()
        _quiet(fn, *args, **kwargs)
        t = time.perf_counter() - start
        best = t if best is None else min(best, t)
    return best


def speed_budget(name, bat):
    """Seconds the student's kernel may take on the large input: 5x the reference + 0.05 s."""
    if bat.speed is None:
        return None
    if name not in _REF_SECONDS:
        _REF_SECONDS[name] = _min_time(getattr(reference, name), bat.speed.large,
                                       bat.speed.kwargs, repeat=2)
    return SPEED_FACTOR * _REF_SECONDS[name] + SPEED_SLACK_S


def _fmt(v):
    v = np.asarray(v)
    if v.dtype.kind == "f":
        return str(v.dtype.type(v))
    return str(v.item()) if v.ndim == 0 else str(v.tolist())


def _out_dtype(x):
    x = np.asarray(x)
    return x.dtype if x.dtype in (np.float32, np.float64) else np.dtype(np.float64)


def _bad(actual, expected, dtype, lo=None, hi=None, atol=None):
    """Mask of positions where actual is not within tolerance of expected (atol: None for the
    dtype's ATOL, 0 where relative accuracy is required)."""
    rtol = RTOL[np.dtype(dtype)]
    atol = ATOL[np.dtype(dtype)] if atol is None else atol
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    with np.errstate(all="ignore"):
        close = np.abs(a - e) <= rtol * np.abs(e) + atol
        close |= (a == e)  # infinities
        close |= np.isnan(a) & np.isnan(e)
        close &= np.isnan(a) == np.isnan(e)
        if lo is not None:  # kinks: any subgradient in [lo, hi] is accepted
            ok = (a >= lo - atol) & (a <= hi + atol)
            close = np.where(np.isnan(lo), close, ok)
    return ~close


def _dtype_message(name, in_dtype, out_dtype):
    if in_dtype == np.float32 and out_dtype == np.float64:
        return "float32 input came back as float64: keep the input's dtype (no silent up-cast)"
    if in_dtype == np.float64 and out_dtype == np.float32:
        return "float64 input came back as float32: keep the input's dtype"
    if in_dtype not in (np.float32, np.float64):
        return f"{in_dtype} input should give float64, got {out_dtype}"
    return f"{in_dtype} input came back as {out_dtype}: keep the input's dtype"


def _common(name, case, rec, what="x"):
    """Exceptions, mutation: the same for every kernel."""
    if rec.error:
        if rec.error.startswith("NotImplementedError"):
            return f"{name} is not implemented yet: replace `raise NotImplementedError()`"
        hint = ""
        if any(k in case.label for k in ("Python float", "Python int", "list", "0-d")):
            hint = " (accept array-likes: start with np.asarray)"
        if name in ("softmax", "log_softmax") and "could not be broadcast" in rec.error:
            hint = f" — {misconceptions.KEEPDIMS}"
        if name == "collapse_linear" and "matmul" in rec.error:
            hint = f" — {misconceptions.WRONG_ORDER}"
        return f"{name} raised {rec.error} for {case.label}{hint}"
    if rec.mutated:
        return f"{name}({what}) modified its input in place (for {case.label}): work on a copy"
    return None


def _warning_message(name, case, rec, x=None):
    w = rec.warnings[0]
    where = case.label
    if x is not None and rec.warned_at is not None:
        where = f"x={_fmt(np.asarray(x).reshape(-1)[rec.warned_at])}"
    hint = WARNING_HINTS.get(name, "")
    if "overflow" in w and name in ("softmax", "log_softmax"):
        return (f"{name} overflows for large logits: subtract the maximum first "
                f"({name} raised {w} for {where})")
    return f"{name} raised {w} for {where}" + (f": {hint}" if hint else "")


_EXP_HINT = ("exp of a large positive number overflows: exponentiate only non-positive numbers "
             "(note that np.where computes both branches)")
WARNING_HINTS = {
    "sigmoid": _EXP_HINT, "sigmoid_grad": _EXP_HINT, "silu": _EXP_HINT, "silu_grad": _EXP_HINT,
    "tanh": "use np.tanh, or exponentiate only non-positive numbers",
    "tanh_grad": "use tanh itself; cosh and exp overflow for large |x|",
    "gelu": "it must stay finite and warning-free up to |x| = 1e4",
    "gelu_grad": "it must stay finite and warning-free up to |x| = 1e4",
    "cross_entropy": "compute it from log_softmax (the log-sum-exp form), not log(softmax)",
}


# Misconceptions: the wrong-variant formulas live in the course package
# (nonlinearity.misconceptions), shared with the visible checks; here `reference` stands in for
# the correct kernels they build on. When the student's output matches a variant at every
# failing position, the message names that misconception.


def _slope(kw):
    return kw.get("negative_slope", 0.01)


def _explained(actual, variant, bad, dtype, x, atol=None):
    if variant is None:
        return False
    v = np.broadcast_to(np.asarray(variant, dtype=np.float64), np.shape(actual))
    still_bad = _bad(actual, v, dtype, atol=atol)
    return bool(bad.any() and not still_bad[bad].any())


def _kink_bounds(name, x, kw):
    """Per-position [lo, hi] for subgradients at exactly 0 (NaN where no kink)."""
    if name not in ("relu_grad", "leaky_relu_grad"):
        return None, None
    s = 0.0 if name == "relu_grad" else _slope(kw)
    at0 = x == 0
    lo = np.where(at0, min(s, 1.0), np.nan)
    hi = np.where(at0, max(s, 1.0), np.nan)
    return lo, hi


def _elementwise_case(name, case, rec):
    msg = _common(name, case, rec)
    if msg:
        return msg
    x_in = case.args[0]
    x = np.asarray(x_in)
    dtype = _out_dtype(x)
    out = rec.output
    scalar = x.ndim == 0
    if out.kind != "numpy.ndarray" and not (scalar and out.kind.startswith("numpy.")):
        return (f"{name} should return a numpy array (np.ndarray), got {out.kind} for "
                f"{case.label}")
    y = out.value
    if y.shape != x.shape:
        return (f"{name}: for {case.label} (shape {x.shape}) expected an array of the same shape, "
                f"got shape {y.shape}")
    if y.dtype != dtype:
        return f"{name}: {_dtype_message(name, x.dtype, y.dtype)} (for {case.label})"
    kw = case.kwargs
    xf = x.astype(np.float64) if x.dtype.kind != "f" else x
    if case.expected is not None:
        expected = np.asarray(case.expected, dtype=np.float64)
        if name == "leaky_relu_grad":
            expected = np.where(np.isneginf(xf), _slope(kw), expected)
    else:
        expected = _quiet(getattr(reference, name), np.array(xf, dtype=dtype), **kw)
    lo, hi = _kink_bounds(name, xf, kw)
    bad = _bad(y, expected, dtype, lo, hi, atol=case.atol)
    if bad.any():
        i = int(np.flatnonzero(bad.reshape(-1))[0])
        xv, ev, av = xf.reshape(-1)[i], expected.reshape(-1)[i], y.reshape(-1)[i]
        kws = "".join(f", {k}={v!r}" for k, v in kw.items())
        example = f"{name}({_fmt(xv)}{kws}) = {_fmt(av)}, expected {_fmt(ev)}"
        also = f"; it also raised {rec.warnings[0]}" if rec.warnings else ""
        if np.isnan(xv):
            return (f"NaN must propagate: {example} (comparisons such as x > 0 are False for "
                    f"NaN){also}")
        if np.isinf(xv):
            return f"{name} should reach its limit at {_fmt(xv)}: {example}{also}"
        for message, variant in misconceptions.variants(name):
            v = _quiet(variant, xf, kw, reference)
            if _explained(y, v, bad, dtype, xf, atol=case.atol):
                text = misconceptions.message_text(message, kw)
                return f"{text} (e.g. {example}; input: {case.label}){also}"
        if case.hint:
            return f"{name} is not accurate for {case.label}: {example}: {case.hint}{also}"
        if not np.isfinite(av) and np.isfinite(ev):
            return f"{name} is not stable: {example} for {case.label}{also}"
        if dtype == np.float64 and not _bad(y, expected, np.float32)[bad].any():
            return (f"{name} is accurate only to about 1e-7 relative on float64 input (needed: "
                    f"1e-10): did you compute in float32 or use an approximate formula? "
                    f"(e.g. {example}){also}")
        tol = f"relative differences below {RTOL[np.dtype(dtype)]:g}"
        return f"{name} gives wrong values for {case.label}: {example} (expect {tol}){also}"
    if rec.warnings:
        return _warning_message(name, case, rec, x)
    return None


def _softmax_case(name, case, rec):
    msg = _common(name, case, rec)
    if msg:
        return msg
    x = np.asarray(case.args[0])
    dtype = _out_dtype(x)
    out = rec.output
    if out.kind != "numpy.ndarray":
        return f"{name} should return a numpy array (np.ndarray), got {out.kind} for {case.label}"
    y = out.value
    if y.shape != x.shape:
        return (f"{name}: for {case.label} (shape {x.shape}) expected an array of the same shape, "
                f"got shape {y.shape} — did you lose a dimension (keepdims=True)?")
    if y.dtype != dtype:
        return f"{name}: {_dtype_message(name, x.dtype, y.dtype)} (for {case.label})"
    axis = case.kwargs.get("axis", -1)
    expected = _quiet(getattr(reference, name), np.array(x, dtype=dtype), **case.kwargs)
    bad = _bad(y, expected, dtype)
    overflow = any("overflow" in w for w in rec.warnings)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        example = f"at index {idx}: expected {_fmt(expected[idx])}, got {_fmt(y[idx])}"
        finite = np.isfinite(expected)
        nonfinite = np.any(~np.isfinite(y) & finite)
        if name == "log_softmax" and np.any(np.isneginf(y) & finite) and not overflow:
            return (f"log_softmax returned -inf for a finite logit: log(softmax(x)) underflows to "
                    f"log(0); use the log-sum-exp form ({case.label}, {example})")
        large = x.size and np.nanmax(np.where(np.isfinite(x), np.abs(x), 0)) > 80
        if overflow or (nonfinite and large):
            return (f"{name} overflows for large logits: subtract the maximum first "
                    f"({case.label}, {example})")
        probs = y if name == "softmax" else _quiet(np.exp, y.astype(np.float64))
        if name == "log_softmax" and np.all(y[finite] >= 0) and np.any(y[finite] > 0):
            return f"{misconceptions.LOG_SOFTMAX_PROBS} ({case.label}, {example})"
        if x.ndim >= 2 and x.size and np.all(np.isfinite(x)):
            sums = np.sum(probs, axis=axis)
            if not np.allclose(sums, 1, rtol=1e-6):
                if np.isclose(np.sum(probs), 1, rtol=1e-6):
                    return (f"{name} normalises over the whole array; it should normalise along "
                            f"`axis` (axis={axis}) ({case.label})")
                return (f"{name} should normalise along `axis` (axis={axis}): the probabilities "
                        f"do not sum to 1 along it ({case.label}, {example})")
        also = f"; it also raised {rec.warnings[0]}" if rec.warnings else ""
        return (f"{name} gives wrong values for {case.label}{case_kwargs(case)}: {example} "
                f"(expect relative differences below {RTOL[np.dtype(dtype)]:g}){also}")
    if rec.warnings:
        return _warning_message(name, case, rec)
    return None


def case_kwargs(case):
    return "".join(f" with {k}={v!r}" for k, v in case.kwargs.items())


def _cross_entropy_case(name, case, rec):
    msg = _common(name, case, rec, what="logits, targets")
    if msg:
        return msg
    logits = np.asarray(case.args[0])
    targets = np.asarray(case.args[1])
    dtype = _out_dtype(logits)
    out = rec.output
    numeric = out.kind in ("float", "numpy.ndarray") or out.kind.startswith("numpy.float")
    if not numeric or out.value is None:
        return f"cross_entropy should return a float (or a 0-d array), got {out.kind}"
    y = out.value
    if y.shape != ():
        return (f"cross_entropy should return one number (the mean over the batch), got an "
                f"array of shape {y.shape} for {case.label}")
    expected = float(_quiet(reference.cross_entropy, logits, targets))
    if _bad(y, expected, dtype).any():
        val = float(y)
        example = f"got {val!r}, expected {expected!r}"
        also = f"; it also raised {rec.warnings[0]}" if rec.warnings else ""
        if (not np.isfinite(val)) or any("overflow" in w or "divide" in w for w in rec.warnings):
            return (f"cross_entropy is unstable for large logits: compute it from log_softmax "
                    f"(the log-sum-exp form), not log(softmax) ({case.label}: {example}){also}")
        for message, wrong in _quiet(misconceptions.cross_entropy_variants, logits, targets):
            if not _bad(y, wrong, dtype).any():
                return f"{message} ({case.label}: {example})"
        return f"cross_entropy gives a wrong value for {case.label}: {example}{also}"
    if rec.warnings:
        return _warning_message(name, case, rec)
    return None


def _stack(ws, bs, x):
    h = x
    for w, b in zip(ws, bs, strict=True):
        h = h @ np.asarray(w, dtype=np.float64).T + np.asarray(b, dtype=np.float64)
    return h


def _collapse_case(name, case, rec):
    msg = _common(name, case, rec, what="weights, biases")
    if msg:
        return msg
    ws = [np.asarray(w, dtype=np.float64) for w in case.args[0]]
    bs = [np.asarray(b, dtype=np.float64) for b in case.args[1]]
    out = rec.output
    if out.parts is None or len(out.parts) != 2:
        return f"collapse_linear should return a pair (W, b), got {out.kind} for {case.label}"
    for part, what in zip(out.parts, "Wb", strict=True):
        if part.kind != "numpy.ndarray":
            return f"collapse_linear: {what} should be a numpy array, got {part.kind}"
    W, b = out.parts[0].value, out.parts[1].value
    n_in, n_out = ws[0].shape[1], ws[-1].shape[0]
    if W.shape != (n_out, n_in):
        hint = ""
        if W.shape == (n_in, n_out):
            hint = " — did you return the transpose? Layers map h -> h @ W.T + b"
        return (f"collapse_linear: W should have shape (out, in) = {(n_out, n_in)}, got "
                f"{W.shape} for {case.label}{hint}")
    if b.shape != (n_out,):
        return f"collapse_linear: b should have shape {(n_out,)}, got {b.shape} for {case.label}"
    if W.dtype.kind != "f" or b.dtype.kind != "f":
        return f"collapse_linear should return float arrays, got {W.dtype} and {b.dtype}"
    rng = np.random.default_rng(len(ws) * 100 + n_in)
    x = rng.normal(0, 1, (n_in + 3, n_in))
    x[0] = 0.0
    y_stack = _stack(ws, bs, x)
    y = x @ W.T.astype(np.float64) + b.astype(np.float64)
    scale = _stack([np.abs(w) for w in ws], [np.abs(b_) for b_ in bs], np.abs(x))
    err = np.abs(y - y_stack)
    if np.all(err <= 1e-10 * scale + 1e-12):
        return None
    W_ref, b_ref = _quiet(reference.collapse_linear, ws, bs)
    w_ok = np.allclose(W, W_ref, rtol=1e-9, atol=1e-12)
    b_ok = np.allclose(b, b_ref, rtol=1e-9, atol=1e-12)
    where = f"for {case.label}: the collapsed layer differs from the stack by up to {err.max():.3g}"
    if not w_ok and len(ws) > 1:
        W_rev = ws[0]
        try:
            for w in ws[1:]:
                W_rev = W_rev @ w
        except ValueError:
            W_rev = None
        if W_rev is not None and W_rev.shape == W.shape and np.allclose(W, W_rev, rtol=1e-9):
            return (f"collapse_linear multiplies the weights in the wrong order: the last layer "
                    f"acts last, so its matrix goes on the left ({where})")
    if w_ok and not b_ok:
        if np.allclose(b, np.sum([b_ for b_ in bs if b_.shape == b.shape], axis=0)) and len(bs) > 1:
            return (f"collapse_linear: b is the sum of the biases, but earlier biases also pass "
                    f"through the later layers' weights ({where})")
        if np.allclose(b, bs[-1]) and len(bs) > 1:
            return f"{misconceptions.LAST_BIAS_ONLY} ({where})"
        return f"collapse_linear: W is right but b is not ({where})"
    return f"collapse_linear: W is wrong ({where})"


def _dead_case(name, case, rec):
    msg = _common(name, case, rec, what="preacts")
    if msg:
        return msg
    p = np.asarray(case.args[0], dtype=np.float64)
    out = rec.output
    numeric = out.kind in ("float", "numpy.ndarray") or out.kind.startswith("numpy.float")
    if not numeric or out.value is None or out.value.shape != ():
        shape = "" if out.value is None else f" of shape {out.value.shape}"
        return (f"dead_fraction should return one float (a fraction of the units), got "
                f"{out.kind}{shape} for {case.label}")
    val = float(out.value)
    expected = float(_quiet(reference.dead_fraction, p))
    if abs(val - expected) <= 1e-12:
        if rec.warnings:
            return _warning_message(name, case, rec)
        return None
    example = f"got {val!r}, expected {expected!r} for {case.label}"
    for message, wrong in misconceptions.dead_fraction_variants(p, expected):
        if abs(val - float(wrong)) <= 1e-12:
            return f"{message} ({example})"
    if not 0 <= val <= 1:
        return f"dead_fraction should be a fraction in [0, 1] ({example})"
    return f"dead_fraction gives a wrong value ({example})"


CASE_JUDGES = {name: _elementwise_case for name in ELEMENTWISE}
CASE_JUDGES.update(softmax=_softmax_case, log_softmax=_softmax_case,
                   cross_entropy=_cross_entropy_case, collapse_linear=_collapse_case,
                   dead_fraction=_dead_case)


def judge_speed(name, bat, speed):
    """Pass, or the loop message: Python steps that grow with the input, or too slow.

    The reference is timed only when the kernel is not obviously fast (it is an accurate,
    double-double implementation and costs about a second per kernel)."""
    if speed is None:
        return None
    if speed.error:
        return f"{name} raised {speed.error} on {bat.speed.what}"
    grown = None if speed.steps_small is None else speed.steps_large - speed.steps_small
    if grown is not None and grown > bat.speed.loop_steps:
        small_what, large_what = bat.speed.trace_what.split(" and ")
        return (f"{name} runs Python code for every element ({speed.steps_small} Python steps "
                f"on {small_what}, {speed.steps_large} on {large_what}): {LOOP_MESSAGE}")
    if speed.large_s is None:
        seconds, how = speed.small_s * bat.speed.factor, "would take about"
    else:
        seconds, how = speed.large_s, "took"
    if seconds <= SPEED_SLACK_S:
        return None
    budget = speed_budget(name, bat)
    if seconds > budget:
        return (f"{name} {how} {seconds:.2f} s on {bat.speed.what} (budget {budget:.2f} s, "
                f"5x the reference + {SPEED_SLACK_S} s): {LOOP_MESSAGE}")
    return None


def judge(name, bat, records, speed):
    """None if every record is right, else the first failure message."""
    case_judge = CASE_JUDGES[name]
    for case, rec in zip(bat.cases, records, strict=True):
        message = case_judge(name, case, rec)
        if message:
            return message
    return judge_speed(name, bat, speed)
