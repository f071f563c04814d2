"""Hidden checks: grade a student's kernel against the reference kernels.

`grade_kernel(name, fn)` checks everything the contract lists under "What every kernel must do"
(shared/DESIGN.md) and raises AssertionError with ONE message, naming the likely misconception
where it recognises one. `grade_kernel(name, fn, part="math")` checks only the mathematics
(values, shape, dtype, no in-place change, vectorised: ordinary inputs, moderate |x|, finite);
`part="deeper"` only the numerics the notebooks' *going deeper* parts ask for (|x| up to 1e4,
float32 extremes, +-inf and NaN, extreme logits, the erfc cancellation of exact GELU). Every
case of a battery is tagged with its part (`Case.part`). It is built from two halves, so that
they can run on either side of a sandbox boundary:

* `battery(name)` builds the seeded inputs for one kernel (plain arrays and keyword arguments);
  `run(fn, bat)` calls the student's function on each of them and records plain data only
  (`Record`: output arrays, exception text, warning texts, whether the input changed;
  `SpeedRecord`: seconds, and Python steps counted with sys.settrace). Nothing in `run` needs
  the reference.
* `autograder.judging.judge.judge(name, bat, records, speed)` compares the records with
  `autograder.judging.reference` (trusted side) and returns None (pass) or the failure message. This
  module does not import the reference: under `python -m autograder grade` it runs in the
  sandbox, saves the records (`save_records`) and the grader judges them outside.

Stated tolerances (|actual - expected| <= rtol * |expected| + atol):
float64 rtol 1e-10, atol 1e-13; float32 rtol 1e-5, atol 1e-6 (the floors cover values that are
tiny compared with the rounding error of a textbook formula such as s * (1 - s)).
Stability: finite inputs up to |x| = 1e4, float64 AND float32, must give no overflow, NaN or
RuntimeWarning (numpy's default error settings); +-inf give the limits, NaN propagates.
Vectorisation: a kernel whose count of executed Python lines/calls grows with the input (100 vs
10^4 elements: more than 4950 extra steps, half the extra elements) is a Python loop, whatever
the clock says; and on 10^6 elements it may take at most 5x the reference's time + 0.05 s (the
10^6 run is skipped, and the time extrapolated, when 10^4 elements already take over 0.01 s).
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import json
import os
import time
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nonlinearity.misconceptions import ERFC_HINT
from nonlinearity.steps import count_python_steps

RTOL = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-5}
ATOL = {np.dtype(np.float64): 1e-13, np.dtype(np.float32): 1e-6}
SPEED_FACTOR = 5.0
SPEED_SLACK_S = 0.05
SKIP_ABOVE_S = 1.0  # skip the 10^6 run when the 10^4 run extrapolates beyond this
LOOP_MESSAGE = "looks like a Python loop: use numpy's vectorised operations"

ELEMENTWISE = [
    "relu", "relu_grad", "leaky_relu", "leaky_relu_grad", "gelu", "gelu_grad",
    "silu", "silu_grad", "sigmoid", "sigmoid_grad", "tanh", "tanh_grad",
]
KERNELS = ELEMENTWISE + [
    "softmax", "log_softmax", "cross_entropy", "collapse_linear", "dead_fraction",
]


# ---------------------------------------------------------------------------------------------
# Battery: the inputs (plain data)
# ---------------------------------------------------------------------------------------------


@dataclass
class Case:
    """One call: fn(*args, **kwargs). `label` names the input in messages."""

    label: str
    args: tuple
    kwargs: dict = field(default_factory=dict)
    expected: object = None  # a known answer (limits, NaN); None: ask the reference
    locate_warnings: bool = False  # on a warning, retry element by element to name the x
    part: str = "math"  # "math" (ordinary inputs) or "deeper" (the numerics)
    atol: float | None = None  # None: ATOL of the dtype; 0: relative accuracy is required
    hint: str = ""  # what a wrong value in this case most likely means


@dataclass
class Speed:
    """A small and a large input; `factor` = size ratio, used to extrapolate a slow kernel."""

    small: tuple
    large: tuple
    factor: float
    kwargs: dict = field(default_factory=dict)
    what: str = "10^6 elements"
    # Two inputs that differ only in the number of elements a Python loop would visit; the
    # Python steps run on each are counted (deterministic, unlike timings).
    trace_small: tuple = ()
    trace_large: tuple = ()
    trace_what: str = "100 and 10^4 elements"
    loop_steps: int = 4950  # extra steps that make a loop: half the extra elements a loop visits


@dataclass
class Battery:
    name: str
    cases: list
    speed: Speed | None = None


# Parameters the hidden checks exercise (besides the defaults).
PARAMS = {
    "leaky_relu": [{"negative_slope": 0.2}, {"negative_slope": 0.0}, {"negative_slope": 0.5}],
    "gelu": [{"approximate": "none"}, {"approximate": "tanh"}],
}
PARAMS["leaky_relu_grad"] = PARAMS["leaky_relu"]
PARAMS["gelu_grad"] = PARAMS["gelu"]

PARTS = ("math", "deeper")
# Exact GELU for very negative x: 1 + erf(x / sqrt(2)) cancels, erfc(-x / sqrt(2)) does not.
GELU_TAIL = [-5.0, -8.0, -10.0, -15.0, -20.0, -30.0, -37.0]

BIG64 = [-1e4, -1e3, -710.0, -100.0, -40.0, -20.0, 20.0, 40.0, 100.0, 710.0, 1e3, 1e4]
BIG32 = [-1e4, -1e3, -100.0, -89.0, -88.0, -40.0, 40.0, 88.0, 89.0, 100.0, 1e3, 1e4]
INF = float("inf")
NAN = float("nan")

# Limits at -inf and +inf (the contract: +-inf give the limits). Callables take the kwargs.
LIMITS = {
    "relu": (0.0, INF),
    "relu_grad": (0.0, 1.0),
    "leaky_relu": (-INF, INF),
    "leaky_relu_grad": (0.01, 1.0),
    "gelu": (0.0, INF),
    "gelu_grad": (0.0, 1.0),
    "silu": (0.0, INF),
    "silu_grad": (0.0, 1.0),
    "sigmoid": (0.0, 1.0),
    "sigmoid_grad": (0.0, 0.0),
    "tanh": (-1.0, 1.0),
    "tanh_grad": (0.0, 0.0),
}


def _rng(name, salt=0):
    # Seed from the kernel name, so every kernel gets its own fixed inputs.
    return np.random.default_rng([sum(map(ord, name)), len(name), salt])


def _with_zeros(a):
    a = a.copy()
    a.flat[:: max(1, a.size // 5)] = 0.0
    return a


def _elementwise_battery(name):
    rng = _rng(name)
    cases = [
        Case("x = 1.5 (a Python float)", (1.5,)),
        Case("x = -2 (a Python int)", (-2,)),
        Case("x = [-2.0, -0.5, 0.0, 0.5, 2.0] (a list)", ([-2.0, -0.5, 0.0, 0.5, 2.0],)),
        Case("x = np.array(0.7) (a 0-d array)", (np.array(0.7),)),
        Case("x = np.linspace(-3, 3, 7)", (np.linspace(-3, 3, 7),)),
        Case("a random 1-d float64 array (101 values, scale 3)", (rng.normal(0, 3, 101),)),
        Case("a random 2-d float64 array of shape (13, 17)", (_with_zeros(rng.normal(0, 2, (13, 17))),)),
        Case("a random 3-d float64 array of shape (4, 5, 6)", (rng.normal(0, 5, (4, 5, 6)),)),
        Case("an empty array of shape (0,)", (np.zeros(0),)),
        Case("an empty array of shape (3, 0)", (np.zeros((3, 0)),)),
        Case("a random float32 array of shape (7, 9)",
             (rng.normal(0, 3, (7, 9)).astype(np.float32),)),
        Case("an int64 array np.arange(-3, 4)", (np.arange(-3, 4),)),
        Case("x = [-1.0, 0.0, -0.0, 1.0] (exact zeros)", (np.array([-1.0, 0.0, -0.0, 1.0]),)),
        Case(f"large float64 inputs x = {BIG64}", (np.array(BIG64),), locate_warnings=True,
             part="deeper"),
        Case(f"large float32 inputs x = {BIG32}", (np.array(BIG32, dtype=np.float32),),
             locate_warnings=True, part="deeper"),
    ]
    lo, hi = LIMITS[name]
    special = np.array([-INF, INF, NAN])
    cases.append(Case("x = [-inf, inf, nan]", (special,), expected=np.array([lo, hi, NAN]),
                      locate_warnings=True, part="deeper"))
    if name in ("gelu", "gelu_grad"):
        cases.append(Case(f"very negative x = {GELU_TAIL} (relative accuracy needed)",
                          (np.array(GELU_TAIL),), atol=0.0, part="deeper", hint=ERFC_HINT))
    for kw in PARAMS.get(name, []):
        kws = ", ".join(f"{k}={v!r}" for k, v in kw.items())
        cases += [
            Case(f"a random 2-d float64 array of shape (6, 8) with {kws}",
                 (_with_zeros(rng.normal(0, 3, (6, 8))),), dict(kw)),
            Case(f"a random float32 array of shape (20,) with {kws}",
                 (rng.normal(0, 3, 20).astype(np.float32),), dict(kw)),
            Case(f"large float64 inputs x = {BIG64} with {kws}", (np.array(BIG64),), dict(kw),
                 locate_warnings=True, part="deeper"),
        ]
        if name in ("gelu", "gelu_grad") and kw.get("approximate") == "tanh":
            cases.append(Case(f"x = [-inf, inf, nan] with {kws}", (special,), dict(kw),
                              expected=np.array([lo, hi, NAN]), locate_warnings=True,
                              part="deeper"))
    speed = Speed((rng.normal(0, 3, 10_000),), (rng.normal(0, 3, 1_000_000),), 100.0,
                  trace_small=(rng.normal(0, 3, 100),), trace_large=(rng.normal(0, 3, 10_000),))
    return Battery(name, cases, speed)


def _softmax_battery(name):
    rng = _rng(name)
    x2 = rng.normal(0, 3, (5, 7))
    x3 = rng.normal(0, 3, (3, 4, 5))
    big = np.array([[1000.0, 0.0, -1000.0], [1000.0, 1000.0, 999.0], [1e4, -1e4, 0.0]])
    cases = [
        Case("x = [2.0, 1.0, 0.1] (a list)", ([2.0, 1.0, 0.1],)),
        Case("a random 1-d float64 array of 11 logits", (rng.normal(0, 3, 11),)),
        Case("a random (5, 7) float64 array", (x2,)),
        Case("a random (5, 7) float64 array with axis=0", (x2,), {"axis": 0}),
        Case("a random (5, 7) float64 array with axis=1", (x2,), {"axis": 1}),
        Case("a random (3, 4, 5) float64 array", (x3,)),
        Case("a random (3, 4, 5) float64 array with axis=1", (x3,), {"axis": 1}),
        Case("a random (3, 4, 5) float64 array with axis=0", (x3,), {"axis": 0}),
        Case("a random (4, 6) float32 array", (rng.normal(0, 3, (4, 6)).astype(np.float32),)),
        Case("an int64 array [[1, 2, 3], [0, 0, 0]]", (np.array([[1, 2, 3], [0, 0, 0]]),)),
        Case("an empty (0, 5) array", (np.zeros((0, 5)),)),
        Case("large logits [[1000, 0, -1000], [1000, 1000, 999], [1e4, -1e4, 0]]", (big,),
             part="deeper"),
        Case("large logits (transposed) with axis=0", (big.T.copy(),), {"axis": 0},
             part="deeper"),
        Case("large float32 logits [[1e4, 0, -1e4], [80, 88, 89]]",
             (np.array([[1e4, 0.0, -1e4], [80.0, 88.0, 89.0]], dtype=np.float32),),
             part="deeper"),
        Case("logits with -inf entries [[0, -inf, 1], [-inf, 2, 2]]",
             (np.array([[0.0, -INF, 1.0], [-INF, 2.0, 2.0]]),), part="deeper"),
        Case("logits with a NaN in the first row [[0, nan, 1], [1, 2, 3]]",
             (np.array([[0.0, NAN, 1.0], [1.0, 2.0, 3.0]]),), part="deeper"),
    ]
    speed = Speed((rng.normal(0, 3, (10, 1000)),), (rng.normal(0, 3, (1000, 1000)),), 100.0,
                  what="a (1000, 1000) array", trace_small=(rng.normal(0, 3, (10, 10)),),
                  trace_large=(rng.normal(0, 3, (10, 1000)),),
                  trace_what="rows of 10 and rows of 1000 logits")
    return Battery(name, cases, speed)


def _cross_entropy_battery(name):
    rng = _rng(name)
    cases = [
        Case("logits [[2.0, 1.0, 0.1]], targets [0] (lists)", ([[2.0, 1.0, 0.1]], [0])),
        Case("random (8, 5) float64 logits, int64 targets",
             (rng.normal(0, 2, (8, 5)), rng.integers(0, 5, 8))),
        Case("random (1, 3) logits, targets [2]", (rng.normal(0, 2, (1, 3)), np.array([2]))),
        Case("random (6, 4) logits, int32 targets",
             (rng.normal(0, 2, (6, 4)), rng.integers(0, 4, 6).astype(np.int32))),
        Case("large logits [[1e4, 0, -1e4], [0, 1e4, 0]], targets [0, 0]",
             (np.array([[1e4, 0.0, -1e4], [0.0, 1e4, 0.0]]), np.array([0, 0])), part="deeper"),
        Case("large logits [[1000, 999, -5], [-1000, 1000, 0]], targets [1, 2]",
             (np.array([[1000.0, 999.0, -5.0], [-1000.0, 1000.0, 0.0]]), np.array([1, 2])),
             part="deeper"),
        Case("random (8, 5) float32 logits",
             (rng.normal(0, 2, (8, 5)).astype(np.float32), rng.integers(0, 5, 8))),
        Case("large float32 logits [[1e4, 0], [0, 1e4], [89, 88]], targets [1, 1, 0]",
             (np.array([[1e4, 0.0], [0.0, 1e4], [89.0, 88.0]], dtype=np.float32),
              np.array([1, 1, 0])), part="deeper"),
    ]
    speed = Speed((rng.normal(0, 2, (1000, 10)), rng.integers(0, 10, 1000)),
                  (rng.normal(0, 2, (100_000, 10)), rng.integers(0, 10, 100_000)), 100.0,
                  what="(100000, 10) logits",
                  trace_small=(rng.normal(0, 2, (10, 10)), rng.integers(0, 10, 10)),
                  trace_large=(rng.normal(0, 2, (5000, 10)), rng.integers(0, 10, 5000)),
                  trace_what="10 samples and 5000 samples", loop_steps=2495)
    return Battery(name, cases, speed)


def _collapse_battery(name):
    rng = _rng(name)

    def stack(shapes):
        ws = [rng.normal(0, 1 / np.sqrt(i), (o, i)) for o, i in shapes]
        bs = [rng.normal(0, 1, o) for o, _ in shapes]
        return ws, bs

    cases = []
    for shapes in [
        [(3, 4)],
        [(4, 4), (4, 4)],
        [(3, 3), (3, 3), (3, 3), (3, 3)],
        [(5, 4), (3, 5)],
        [(6, 4), (6, 6), (2, 6)],
        [(8, 3), (5, 8), (5, 5), (1, 5)],
    ]:
        ws, bs = stack(shapes)
        desc = " -> ".join(f"{w.shape}" for w in ws)
        cases.append(Case(f"{len(ws)} layer(s) with weight shapes {desc}", (ws, bs)))
    ws, bs = stack([(2, 3), (2, 2)])
    cases.append(Case("2 layers given as nested Python lists",
                      ([w.tolist() for w in ws], [b.tolist() for b in bs])))
    ws, bs = stack([(4, 2), (3, 4), (2, 3)])
    cases.append(Case("3 layers given as tuples of arrays", (tuple(ws), tuple(bs))))
    return Battery(name, cases, None)


def _dead_battery(name):
    rng = _rng(name)
    all_dead = -np.abs(rng.normal(0, 1, (6, 4)))
    all_dead[2, 1] = 0.0
    none_dead = rng.normal(0, 1, (5, 3))
    none_dead[0] = np.abs(none_dead[0]) + 0.1
    one_sample = -np.abs(rng.normal(0, 1, (5, 4)))  # units 1 and 3 fire on one sample only
    one_sample[2, 1] = 0.5
    one_sample[4, 3] = 1e-3
    zeros = np.array([[0.0, 0.0, 1.0, -1.0], [0.0, -2.0, -1.0, -3.0], [0.0, 0.0, -1.0, -0.5]])
    rand = rng.normal(-1.2, 1, (40, 30))
    cases = [
        Case("all units dead (6 samples, 4 units, one exact 0)", (all_dead,)),
        Case("no unit dead (5 samples, 3 units)", (none_dead,)),
        Case("units 1 and 3 active on one sample only (5 samples, 4 units)", (one_sample,)),
        Case("pre-activations exactly 0 [[0, 0, 1, -1], [0, -2, -1, -3], [0, 0, -1, -0.5]]",
             (zeros,)),
        Case("a random (40, 30) float64 array", (rand,)),
        Case("a random (40, 30) float32 array", (rand.astype(np.float32),)),
        Case("a nested list [[-1, 2, 0], [-3, -1, 0]]", ([[-1, 2, 0], [-3, -1, 0]],)),
        Case("a (7, 1) array, one unit", (-np.abs(rng.normal(0, 1, (7, 1))),)),
    ]
    speed = Speed((rng.normal(-1, 1, (100, 100)),), (rng.normal(-1, 1, (1000, 1000)),), 100.0,
                  what="a (1000, 1000) array", trace_small=(rng.normal(-1, 1, (10, 10)),),
                  trace_large=(rng.normal(-1, 1, (5000, 10)),),
                  trace_what="10 samples and 5000 samples", loop_steps=2495)
    return Battery(name, cases, speed)


def _full_battery(name):
    if name in ELEMENTWISE:
        return _elementwise_battery(name)
    if name in ("softmax", "log_softmax"):
        return _softmax_battery(name)
    if name == "cross_entropy":
        return _cross_entropy_battery(name)
    if name == "collapse_linear":
        return _collapse_battery(name)
    if name == "dead_fraction":
        return _dead_battery(name)
    raise KeyError(f"no hidden checks for kernel {name!r}; known: {', '.join(KERNELS)}")


def battery(name, part=None):
    """The seeded inputs for kernel `name` (same every time): all of them (part None), or the
    cases of one part ("math" or "deeper"); the speed test belongs to the mathematics (it is
    about vectorising, not about floating point), so it runs once, with part None or "math"."""
    if part not in (None, *PARTS):
        raise ValueError(f"part must be one of {PARTS} (or None for all), got {part!r}")
    bat = _full_battery(name)
    if part is None:
        return bat
    return Battery(name, [c for c in bat.cases if c.part == part],
                   bat.speed if part == "math" else None)


def record_name(name, part=None):
    """The file name (without suffix) of the records of kernel `name` for one part."""
    return name if part is None else f"{name}.{part}"


# ---------------------------------------------------------------------------------------------
# Runner: call the student's function, record plain data
# ---------------------------------------------------------------------------------------------


@dataclass
class Output:
    kind: str  # "numpy.ndarray", "numpy.float64", "float", "list", "tuple", "torch.Tensor", ...
    value: np.ndarray | None  # a copy, as an array (None when it cannot be one)
    parts: list | None = None  # for tuple / list outputs: one Output per item (up to 4)


@dataclass
class Record:
    output: Output | None
    error: str | None
    warnings: list
    mutated: bool
    warned_at: int | None = None  # flat index of the first input element that warns


@dataclass
class SpeedRecord:
    small_s: float | None
    large_s: float | None  # None: skipped because the small run was already too slow
    error: str | None = None
    steps_small: int | None = None  # Python line/call events while running on trace_small
    steps_large: int | None = None


def _kind(obj):
    t = type(obj)
    mod = t.__module__.split(".")[0]
    return t.__name__ if mod == "builtins" else f"{mod}.{t.__name__}"


def snapshot(obj, depth=0):
    kind = _kind(obj)
    parts = None
    if isinstance(obj, (tuple, list)) and depth == 0 and len(obj) <= 4:
        parts = [snapshot(p, 1) for p in obj]
    value = None
    if isinstance(obj, (np.ndarray, np.generic, float, int, list, tuple)):
        try:
            value = np.array(obj, copy=True)
            if value.dtype == object:
                value = None
        except Exception:  # noqa: BLE001 - a ragged list is just "not an array"
            value = None
    return Output(kind, value, parts)


def _call(fn, args, kwargs):
    """Call fn with warnings and printing captured; return (output, error, warning texts)."""
    sink = io.StringIO()
    with warnings.catch_warnings(record=True) as caught, \
            np.errstate(divide="warn", over="warn", invalid="warn", under="ignore"), \
            contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        warnings.simplefilter("always")
        try:
            out, err = fn(*args, **kwargs), None
        except Exception as exc:  # noqa: BLE001 - any exception is a result to report
            out, err = None, f"{type(exc).__name__}: {exc}"
    # Numerical trouble only (overflow, invalid value, division by zero); a DeprecationWarning
    # from the student's numpy calls is swallowed rather than failed (nor shown: stderr zeroes).
    texts = [f"{w.category.__name__}: {w.message}" for w in caught
             if issubclass(w.category, RuntimeWarning)]
    return out, err, texts


def _same(a, b):
    """Exactly equal, bit for bit (NaN included); works through lists and tuples."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(p, q) for p, q in zip(a, b, strict=True))
    return a == b or (a != a and b != b)


def run_case(fn, case):
    args = copy.deepcopy(case.args)
    out, err, texts = _call(fn, args, case.kwargs)
    rec = Record(None if err else snapshot(out), err, texts, not _same(args, case.args))
    if texts and case.locate_warnings and isinstance(case.args[0], np.ndarray):
        x = case.args[0]
        for i in range(x.size):
            _, _, t = _call(fn, (x.reshape(-1)[i:i + 1].copy(),), case.kwargs)
            if t:
                rec.warned_at = i
                break
    return rec


def _best_time(fn, args, kwargs, repeat):
    best = None
    for _ in range(repeat):
        start = time.perf_counter()
        _, err, _ = _call(fn, args, kwargs)
        elapsed = time.perf_counter() - start
        if err:
            return None, err
        best = elapsed if best is None else min(best, elapsed)
    return best, None


def _count_steps(fn, args, kwargs):
    """Python steps while fn runs (see nonlinearity.steps.count_python_steps), and its error."""
    outcome = []
    count = count_python_steps(lambda: outcome.append(_call(fn, args, kwargs)))
    _, err, _ = outcome[0]
    return count, err


def run_speed(fn, speed, skip_above):
    """Count Python steps on two sizes; time fn on the small input, and on the large one only if
    the extrapolation is not hopeless."""
    steps = [None, None]
    if speed.trace_small:
        for i, args in enumerate((speed.trace_small, speed.trace_large)):
            steps[i], err = _count_steps(fn, args, speed.kwargs)
            if err:
                return SpeedRecord(None, None, err)
    small, err = _best_time(fn, speed.small, speed.kwargs, 3)
    if err:
        return SpeedRecord(None, None, err, *steps)
    if small * speed.factor > skip_above:
        return SpeedRecord(small, None, None, *steps)
    large, err = _best_time(fn, speed.large, speed.kwargs, 1)
    if err:
        return SpeedRecord(small, None, err, *steps)
    if large > SPEED_SLACK_S:  # a second try, to shrug off a busy moment
        again, _ = _best_time(fn, speed.large, speed.kwargs, 2)
        large = min(large, again) if again is not None else large
    return SpeedRecord(small, large, None, *steps)


def run(fn, bat, skip_above=SKIP_ABOVE_S):
    """Call fn on every input of the battery; plain-data records (and timing)."""
    records = [run_case(fn, case) for case in bat.cases]
    speed = None
    if bat.speed is not None and not any(r.error for r in records):
        speed = run_speed(fn, bat.speed, skip_above)
    return records, speed


# ---------------------------------------------------------------------------------------------
# Records on disk: how they cross the sandbox boundary (plain JSON and .npy, never pickles)
# ---------------------------------------------------------------------------------------------

RECORDS_ENV = "AUTOGRADER_RECORDS"  # set inside the grading sandbox: save, don't judge
MAX_RECORD_BYTES = 256 * 2**20


class RecordsError(ValueError):
    """Records that are missing, too large or malformed (the student gets no points for them)."""


def output_meta(out, arrays):
    if out is None:
        return None
    key = None
    if out.value is not None:
        key = f"v{len(arrays)}"
        arrays[key] = out.value
    parts = None if out.parts is None else [output_meta(p, arrays) for p in out.parts]
    return {"kind": out.kind, "value": key, "parts": parts}


def write_record_files(folder, name, meta, arrays):
    """`name`.npz (plain arrays) and then `name`.json (meta, which names the arrays)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{name}.npz", "wb") as f:
        np.savez(f, **arrays)
    (folder / f"{name}.json").write_text(json.dumps({"name": name, **meta}))


def read_record_files(folder, name):
    """(meta, arrays) written by `write_record_files`; RecordsError when absent, huge, pickled,
    malformed or saved under another name."""
    folder = Path(folder)
    meta_path, arrays_path = folder / f"{name}.json", folder / f"{name}.npz"
    if not (meta_path.is_file() and arrays_path.is_file()):
        raise RecordsError(f"the hidden checks of {name} did not run to the end")
    if meta_path.stat().st_size + arrays_path.stat().st_size > MAX_RECORD_BYTES:
        raise RecordsError(f"the outputs of {name} are too large to grade")
    try:
        meta = json.loads(meta_path.read_text())
        with np.load(arrays_path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise RecordsError(f"unreadable records for {name}: {err}") from None
    _typed(meta, dict, "top level")
    if meta.get("name") != name:
        raise RecordsError(f"records of {meta.get('name')!r} saved as {name!r}")
    return meta, arrays


def save_records(folder, name, records, speed):
    """Write the records of kernel `name` into `folder`."""
    arrays = {}
    meta = {
        "records": [{"output": output_meta(r.output, arrays), "error": r.error,
                     "warnings": list(r.warnings), "mutated": bool(r.mutated),
                     "warned_at": r.warned_at} for r in records],
        "speed": None if speed is None else dataclasses.asdict(speed),
    }
    write_record_files(folder, name, meta, arrays)


def _typed(value, types, what):
    if not isinstance(value, types):
        raise RecordsError(f"malformed records: {what}")
    return value


def output_from(meta, arrays):
    if meta is None:
        return None
    _typed(meta, dict, "output")
    key = meta.get("value")
    value = None
    if key is not None:
        if key not in arrays:
            raise RecordsError(f"malformed records: no array {key!r}")
        value = arrays[key]
    parts = meta.get("parts")
    if parts is not None:
        parts = [output_from(p, arrays) for p in _typed(parts, list, "parts")[:4]]
    return Output(str(_typed(meta.get("kind"), str, "kind")), value, parts)


def load_records(folder, name):
    """(records, speed) saved by `save_records`; RecordsError when absent, huge or malformed."""
    meta, arrays = read_record_files(folder, name)
    records = []
    for r in _typed(meta.get("records"), list, "records"):
        _typed(r, dict, "record")
        warned_at = r.get("warned_at")
        records.append(Record(
            output_from(r.get("output"), arrays),
            _typed(r.get("error"), (str, type(None)), "error"),
            [str(w) for w in _typed(r.get("warnings"), list, "warnings")],
            bool(r.get("mutated")),
            _typed(warned_at, (int, type(None)), "warned_at"),
        ))
    speed = meta.get("speed")
    if speed is not None:
        _typed(speed, dict, "speed")
        num = (int, float, type(None))
        speed = SpeedRecord(
            _typed(speed.get("small_s"), num, "small_s"), _typed(speed.get("large_s"), num, "large_s"),
            _typed(speed.get("error"), (str, type(None)), "speed error"),
            _typed(speed.get("steps_small"), (int, type(None)), "steps"),
            _typed(speed.get("steps_large"), (int, type(None)), "steps"),
        )
    return records, speed


def grade_kernel(name, fn, part=None):
    """Run the hidden checks for kernel `name` (all, or one part: "math" or "deeper"); raise
    AssertionError with one message.

    Inside the grading sandbox (RECORDS_ENV set) the records are only saved: the trusted side
    judges them (autograder.pipeline.grade), and the reference is not importable here anyway.
    The trusted side reads the part from the hidden test's source, never from here."""
    bat = battery(name, part)
    records, speed = run(fn, bat, SKIP_ABOVE_S)
    folder = os.environ.get(RECORDS_ENV)
    if folder:
        save_records(folder, record_name(name, part), records, speed)
        return
    from autograder.judging.judge import judge

    message = judge(name, bat, records, speed)
    if message:
        raise AssertionError(message)
