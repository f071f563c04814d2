"""Hidden checks: grade a student's kernel against the reference kernels.

`grade_kernel(name, fn)` checks everything the contract lists under "What every kernel must do"
(shared/DESIGN.md) and raises AssertionError with ONE message, naming the likely misconception
where it recognises one. It is built from two halves, so that they can run on either side of a
sandbox boundary:

* `battery(name)` builds the seeded inputs for one kernel (plain arrays and keyword arguments);
  `run(fn, bat)` calls the student's function on each of them and records plain data only
  (`Record`: output arrays, exception text, warning texts, whether the input changed;
  `SpeedRecord`: seconds, and Python steps counted with sys.settrace). Nothing in `run` needs
  the reference.
* `judge(name, bat, records, speed)` compares the records with `autograder.reference`
  (trusted side) and returns None (pass) or the failure message.

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
import io
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from autograder import reference
from nonlinearity.checks import count_python_steps

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
        Case(f"large float64 inputs x = {BIG64}", (np.array(BIG64),), locate_warnings=True),
        Case(f"large float32 inputs x = {BIG32}", (np.array(BIG32, dtype=np.float32),),
             locate_warnings=True),
    ]
    lo, hi = LIMITS[name]
    special = np.array([-INF, INF, NAN])
    cases.append(Case("x = [-inf, inf, nan]", (special,), expected=np.array([lo, hi, NAN]),
                      locate_warnings=True))
    for kw in PARAMS.get(name, []):
        kws = ", ".join(f"{k}={v!r}" for k, v in kw.items())
        cases += [
            Case(f"a random 2-d float64 array of shape (6, 8) with {kws}",
                 (_with_zeros(rng.normal(0, 3, (6, 8))),), dict(kw)),
            Case(f"a random float32 array of shape (20,) with {kws}",
                 (rng.normal(0, 3, 20).astype(np.float32),), dict(kw)),
            Case(f"large float64 inputs x = {BIG64} with {kws}", (np.array(BIG64),), dict(kw),
                 locate_warnings=True),
        ]
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
        Case("large logits [[1000, 0, -1000], [1000, 1000, 999], [1e4, -1e4, 0]]", (big,)),
        Case("large logits (transposed) with axis=0", (big.T.copy(),), {"axis": 0}),
        Case("large float32 logits [[1e4, 0, -1e4], [80, 88, 89]]",
             (np.array([[1e4, 0.0, -1e4], [80.0, 88.0, 89.0]], dtype=np.float32),)),
        Case("logits with -inf entries [[0, -inf, 1], [-inf, 2, 2]]",
             (np.array([[0.0, -INF, 1.0], [-INF, 2.0, 2.0]]),)),
        Case("logits with a NaN in the first row [[0, nan, 1], [1, 2, 3]]",
             (np.array([[0.0, NAN, 1.0], [1.0, 2.0, 3.0]]),)),
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
             (np.array([[1e4, 0.0, -1e4], [0.0, 1e4, 0.0]]), np.array([0, 0]))),
        Case("large logits [[1000, 999, -5], [-1000, 1000, 0]], targets [1, 2]",
             (np.array([[1000.0, 999.0, -5.0], [-1000.0, 1000.0, 0.0]]), np.array([1, 2]))),
        Case("random (8, 5) float32 logits",
             (rng.normal(0, 2, (8, 5)).astype(np.float32), rng.integers(0, 5, 8))),
        Case("large float32 logits [[1e4, 0], [0, 1e4], [89, 88]], targets [1, 1, 0]",
             (np.array([[1e4, 0.0], [0.0, 1e4], [89.0, 88.0]], dtype=np.float32),
              np.array([1, 1, 0]))),
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


def battery(name):
    """The seeded inputs for kernel `name` (same every time)."""
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


def _snapshot(obj, depth=0):
    kind = _kind(obj)
    parts = None
    if isinstance(obj, (tuple, list)) and depth == 0 and len(obj) <= 4:
        parts = [_snapshot(p, 1) for p in obj]
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
    rec = Record(None if err else _snapshot(out), err, texts, not _same(args, case.args))
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
    """Python steps while fn runs (see nonlinearity.checks.count_python_steps), and its error."""
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


def _bad(actual, expected, dtype, lo=None, hi=None):
    """Mask of positions where actual is not within tolerance of expected."""
    rtol, atol = RTOL[np.dtype(dtype)], ATOL[np.dtype(dtype)]
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
            hint = (" — did you forget keepdims=True? A sum or max along `axis` drops that "
                    "dimension, so it no longer lines up with x")
        if name == "collapse_linear" and "matmul" in rec.error:
            hint = (" — the matrix shapes do not fit: are the weights multiplied in the wrong "
                    "order? The last layer acts last")
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


# Misconceptions: (message, variant). A variant computes the wrong answer the misconception
# produces; when the student's output matches it at every failing position, the message names it.
R = reference


def _slope(kw):
    return kw.get("negative_slope", 0.01)


def _other_approx(kw):
    return "tanh" if kw.get("approximate", "none") == "none" else "none"


def _gelu_approx_message(name):
    def message(kw):
        if kw.get("approximate", "none") == "none":
            return (f"{name}(x) with approximate='none' should use the exact normal CDF (erf), "
                    "not the tanh approximation")
        return f"{name}(x, approximate='tanh') should use the tanh approximation"
    return message


def _sig(x):
    return R.sigmoid(x)


MISCONCEPTIONS = {
    "relu": [
        ("relu returned x unchanged for x < 0: negative inputs give 0", lambda x, kw: x),
        ("relu returned |x|: negative inputs give 0, not -x", lambda x, kw: np.abs(x)),
    ],
    "relu_grad": [
        ("relu_grad: expected 0 for x < 0, got -1 — did you return the derivative of |x|?",
         lambda x, kw: np.sign(x)),
        ("relu_grad is 1 for x < 0: the slope of max(0, x) is 0 there",
         lambda x, kw: np.where(x < 0, 1.0, R.relu_grad(x))),
        ("relu_grad returned relu(x), the function itself, not its derivative",
         lambda x, kw: R.relu(x)),
    ],
    "leaky_relu": [
        ("leaky_relu has the wrong sign for x < 0: there it is negative_slope * x",
         lambda x, kw: np.where(x < 0, -_slope(kw) * x, x)),
        (lambda kw: f"leaky_relu ignores negative_slope: called with negative_slope="
                    f"{_slope(kw)} it used the default 0.01",
         lambda x, kw: R.leaky_relu(x) if _slope(kw) != 0.01 else None),
        ("leaky_relu is 0 for x < 0: that is relu; below 0 it is negative_slope * x",
         lambda x, kw: R.relu(x) if _slope(kw) != 0 else None),
    ],
    "leaky_relu_grad": [
        ("leaky_relu_grad for x < 0 should be the constant negative_slope, not negative_slope * x",
         lambda x, kw: np.where(x < 0, _slope(kw) * x, R.leaky_relu_grad(x, _slope(kw)))),
        ("leaky_relu_grad is 0 for x < 0: below 0 the slope is negative_slope",
         lambda x, kw: R.relu_grad(x) if _slope(kw) != 0 else None),
        ("leaky_relu_grad has the wrong sign for x < 0: the slope there is +negative_slope",
         lambda x, kw: np.where(x < 0, -_slope(kw), R.leaky_relu_grad(x, _slope(kw)))),
        (lambda kw: f"leaky_relu_grad ignores negative_slope: called with negative_slope="
                    f"{_slope(kw)} it used the default 0.01",
         lambda x, kw: R.leaky_relu_grad(x) if _slope(kw) != 0.01 else None),
        ("leaky_relu_grad is 1 for x < 0: below 0 the slope is negative_slope",
         lambda x, kw: np.where(x < 0, 1.0, R.leaky_relu_grad(x, _slope(kw)))),
    ],
    "gelu": [
        (_gelu_approx_message("gelu"), lambda x, kw: R.gelu(x, approximate=_other_approx(kw))),
        ("gelu: that is the sigmoid approximation x * sigmoid(1.702 x), not GELU",
         lambda x, kw: x * _sig(1.702 * x)),
        ("gelu: Phi(x) = (1 + erf(x / sqrt(2))) / 2 — the argument of erf needs the 1/sqrt(2)",
         lambda x, kw: 0.5 * x * (1 + _erf(x))),
        ("gelu returned Phi(x), the normal CDF; GELU is x * Phi(x)",
         lambda x, kw: 0.5 * (1 + _erf(x / np.sqrt(2)))),
    ],
    "gelu_grad": [
        (_gelu_approx_message("gelu_grad"),
         lambda x, kw: R.gelu_grad(x, approximate=_other_approx(kw))),
        ("gelu_grad is missing the x * phi(x) term of the product rule",
         lambda x, kw: 0.5 * (1 + _erf(x / np.sqrt(2)))),
        ("gelu_grad returned gelu(x), the function itself, not its derivative",
         lambda x, kw: R.gelu(x, **kw)),
    ],
    "silu": [
        ("silu returned sigmoid(x): SiLU is x * sigmoid(x)", lambda x, kw: _sig(x)),
    ],
    "silu_grad": [
        ("silu_grad returned sigmoid(x): the product rule gives a second term",
         lambda x, kw: _sig(x)),
        ("silu_grad returned sigmoid'(x) only: the product rule also gives sigmoid(x)",
         lambda x, kw: R.sigmoid_grad(x)),
        ("silu_grad returned silu(x), the function itself, not its derivative",
         lambda x, kw: R.silu(x)),
    ],
    "sigmoid": [
        ("sigmoid is decreasing: exp(x) where exp(-x) belongs?", lambda x, kw: _sig(-x)),
    ],
    "sigmoid_grad": [
        ("sigmoid_grad returned sigmoid(x), the function itself, not its derivative",
         lambda x, kw: _sig(x)),
        ("sigmoid_grad returned 1 - sigmoid(x): the derivative is a product of two factors",
         lambda x, kw: 1 - _sig(x)),
        ("sigmoid_grad has the wrong sign: sigmoid is increasing, so its derivative "
         "sigmoid(x) * (1 - sigmoid(x)) is >= 0", lambda x, kw: -R.sigmoid_grad(x)),
    ],
    "tanh": [],
    "tanh_grad": [
        ("tanh_grad returned 1 - tanh(x): did you forget the square?",
         lambda x, kw: 1 - np.tanh(x)),
        ("tanh_grad returned tanh(x), the function itself, not its derivative",
         lambda x, kw: np.tanh(x)),
        ("tanh_grad returned sigmoid_grad(x): tanh' = 1 - tanh(x)**2",
         lambda x, kw: R.sigmoid_grad(x)),
    ],
}


def _erf(x):
    from scipy import special  # the reference depends on scipy anyway

    return special.erf(x)


def _explained(actual, variant, bad, dtype, x):
    if variant is None:
        return False
    v = np.broadcast_to(np.asarray(variant, dtype=np.float64), np.shape(actual))
    still_bad = _bad(actual, v, dtype)
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
    bad = _bad(y, expected, dtype, lo, hi)
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
        for message, variant in MISCONCEPTIONS.get(name, []):
            v = _quiet(variant, xf, kw)
            if _explained(y, v, bad, dtype, xf):
                text = message(kw) if callable(message) else message
                return f"{text} (e.g. {example}; input: {case.label}){also}"
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
            return (f"log_softmax returned probabilities (values > 0); it should return their "
                    f"logarithm ({case.label}, {example})")
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
        n = len(targets)
        logp = _quiet(reference.log_softmax, logits.astype(np.float64))
        if (not np.isfinite(val)) or any("overflow" in w or "divide" in w for w in rec.warnings):
            return (f"cross_entropy is unstable for large logits: compute it from log_softmax "
                    f"(the log-sum-exp form), not log(softmax) ({case.label}: {example}){also}")
        if n > 1 and not _bad(y, n * expected, dtype).any():
            return (f"cross_entropy should be the mean, not the sum, over the batch "
                    f"({case.label}: {example})")
        if not _bad(y, -expected, dtype).any() and expected != 0:
            return (f"cross_entropy is the NEGATIVE log-likelihood: the sign is flipped "
                    f"({case.label}: {example})")
        if n > 1 and not _bad(y, -np.mean(logp[:, targets]), dtype).any():
            return (f"cross_entropy: pick each sample's own target (row i, column targets[i]), "
                    f"not every target for every row ({case.label}: {example})")
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
            return (f"collapse_linear: b keeps only the last layer's bias; earlier biases pass "
                    f"through the later layers ({where})")
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
    n_units = p.shape[1]
    variants = [
        ("dead_fraction should be a fraction in [0, 1], not a count of dead units",
         np.sum(np.all(p <= 0, axis=0))),
        ("a pre-activation of exactly 0 counts as dead (ReLU gives 0 and passes no gradient): "
         "use <= 0, not < 0", np.mean(np.all(p < 0, axis=0))),
        ("a unit is dead only if its pre-activation is <= 0 for EVERY sample, not for some sample",
         np.mean(np.any(p <= 0, axis=0))),
        ("dead_fraction is a fraction of units, not of entries", np.mean(p <= 0)),
        ("reduce over the samples (axis 0): rows are samples, columns are units",
         np.mean(np.all(p <= 0, axis=1))),
        ("dead_fraction should be the fraction of DEAD units, not of live ones",
         1 - expected),
    ]
    for message, wrong in variants:
        if abs(val - float(wrong)) <= 1e-12 and (n_units > 1 or "units" not in message):
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


def grade_kernel(name, fn):
    """Run the hidden checks for kernel `name`; raise AssertionError with one message."""
    bat = battery(name)
    records, speed = run(fn, bat, SKIP_ABOVE_S)
    message = judge(name, bat, records, speed)
    if message:
        raise AssertionError(message)
