'''The catalogue of student mistakes: every contract kernel, written wrong and written right.

Data, not prose. Each `Entry` is the source of one function as a student would type it in the
exercise cell (it may rely on `np` and, in notebooks that have them, on the notebook's other
kernels, e.g. cross_entropy calling log_softmax), its kind ("wrong" or "correct"), and for a
wrong one the words the hidden check's message must contain (the named misconception) and, in
VISIBLE, the words of the visible check's message (what the student sees first).

A wrong entry's `part` says which graded cell names its mistake: "math" (the kernel's exercise
cell `test_<kernel>`: a mistake in the mathematics, shape, dtype, in-place change or
vectorising) or "deeper" (its *going deeper* cell `test_<kernel>_deeper`: a numerics mistake,
in DEEPER below). A numerics mistake keeps every mathematics point; a mathematics mistake may
cost the going-deeper cell as well (a wrong formula is wrong at the extremes too).

Used by tests/test_checks.py (directly against grade_kernel / check_kernel) and by
tests/test_catalogue.py (through `python -m autograder grade` on notebooks).
'''
from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass, replace

import numpy as np

LOOP = "looks like a Python loop: use numpy's vectorised operations"
UPCAST = "float32 input came back as float64"
IN_PLACE = "modified its input in place"

# Which notebook grades which kernel.
NOTEBOOK = {
    "collapse_linear": "01_linear_collapse",
    "relu": "02_relu", "relu_grad": "02_relu", "leaky_relu": "02_relu",
    "leaky_relu_grad": "02_relu",
    "gelu": "03_smooth", "gelu_grad": "03_smooth", "silu": "03_smooth", "silu_grad": "03_smooth",
    "sigmoid": "04_sigmoid_tanh", "sigmoid_grad": "04_sigmoid_tanh", "tanh": "04_sigmoid_tanh",
    "tanh_grad": "04_sigmoid_tanh",
    "softmax": "05_softmax", "log_softmax": "05_softmax", "cross_entropy": "05_softmax",
    "dead_fraction": "06_dead_relu",
}
KERNELS = list(NOTEBOOK)


@dataclass(frozen=True)
class Entry:
    kernel: str
    kind: str  # "wrong" or "correct"
    label: str  # short name of the mistake or of the alternative, unique per kernel
    source: str  # the function as the student writes it (defines `kernel`)
    message: str = ""  # wrong entries: words the hidden check's message must contain
    visible: str = ""  # wrong entries the visible check catches: words its message must contain
    part: str = "math"  # wrong entries: "math" or "deeper", the part whose cell names the mistake

    @property
    def id(self) -> str:
        return f"{self.kernel}-{self.label}"

    @property
    def cell(self) -> str:
        """The grade cell that names a wrong entry's mistake."""
        return f"test_{self.kernel}" + ("_deeper" if self.part == "deeper" else "")


def _e(kernel, kind, label, source, message=""):
    return Entry(kernel, kind, label, textwrap.dedent(source).strip() + "\n", message)


def wrong(kernel, label, message, source):
    return _e(kernel, "wrong", label, source, message)


def correct(kernel, label, source):
    return _e(kernel, "correct", label, source)


# Reused opening lines.
AS_FLOAT = """
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
"""


def body(sig, *lines):
    """`def sig:` followed by the float conversion and the given body lines."""
    text = "def " + sig + ":\n" + textwrap.indent(textwrap.dedent(AS_FLOAT).strip(), "    ")
    return text + "\n" + "\n".join("    " + line for line in lines)


C = []  # the catalogue, built kernel by kernel below

# --- collapse_linear -----------------------------------------------------------------------
C += [
    wrong("collapse_linear", "wrong-order", "wrong order", """
        def collapse_linear(weights, biases):
            W = np.array(weights[0], dtype=float)
            b = np.array(biases[0], dtype=float)
            for W_i, b_i in zip(weights[1:], biases[1:]):
                W_i = np.asarray(W_i, dtype=float)
                W = W @ W_i
                b = W_i @ b + b_i
            return W, b
    """),
    wrong("collapse_linear", "sum-of-biases", "b is the sum of the biases", """
        def collapse_linear(weights, biases):
            W = np.array(weights[0], dtype=float)
            for W_i in weights[1:]:
                W = np.asarray(W_i, dtype=float) @ W
            b = np.sum([np.asarray(b_i, dtype=float) for b_i in biases], axis=0)
            return W, b
    """),
    wrong("collapse_linear", "last-bias-only", "keeps only the last layer's bias", """
        def collapse_linear(weights, biases):
            W = np.array(weights[0], dtype=float)
            for W_i in weights[1:]:
                W = np.asarray(W_i, dtype=float) @ W
            return W, np.array(biases[-1], dtype=float)
    """),
    wrong("collapse_linear", "transposed", "did you return the transpose?", """
        def collapse_linear(weights, biases):
            W = np.array(weights[0], dtype=float)
            b = np.array(biases[0], dtype=float)
            for W_i, b_i in zip(weights[1:], biases[1:]):
                W_i = np.asarray(W_i, dtype=float)
                W = W_i @ W
                b = W_i @ b + b_i
            return W.T, b
    """),
    wrong("collapse_linear", "in-place", IN_PLACE, """
        def collapse_linear(weights, biases):
            W = np.asarray(weights[0], dtype=float)
            b = np.asarray(biases[0], dtype=float)
            for W_i, b_i in zip(weights[1:], biases[1:]):
                W_i = np.asarray(W_i, dtype=float)
                b_i = np.asarray(b_i, dtype=float)
                b_i += W_i @ b  # accumulates into the caller's bias
                W = W_i @ W
                b = b_i
            return W, b
    """),
    correct("collapse_linear", "probing", """
        def collapse_linear(weights, biases):
            n_in = np.shape(weights[0])[1]
            h = np.vstack([np.zeros(n_in), np.eye(n_in)])  # the zero vector, then unit vectors
            for W_i, b_i in zip(weights, biases):
                h = h @ np.asarray(W_i, dtype=float).T + np.asarray(b_i, dtype=float)
            b = h[0]
            return (h[1:] - b).T, b
    """),
    correct("collapse_linear", "reduce", """
        def collapse_linear(weights, biases):
            from functools import reduce

            ws = [np.asarray(w, dtype=float) for w in weights]
            W = reduce(lambda acc, w: w @ acc, ws[1:], ws[0])
            b = np.zeros(ws[-1].shape[0])
            for i, b_i in enumerate(biases):
                tail = reduce(lambda acc, w: w @ acc, ws[i + 1:], np.eye(len(b_i)))
                b = b + tail @ np.asarray(b_i, dtype=float)
            return W, b
    """),
]

# --- relu ----------------------------------------------------------------------------------
C += [
    wrong("relu", "nan-to-zero", "NaN must propagate",
          body("relu(x)", "return np.where(x > 0, x, 0.0)")),
    wrong("relu", "upcast", UPCAST, """
        def relu(x):
            return np.maximum(np.asarray(x, dtype=np.float64), 0)
    """),
    wrong("relu", "in-place", "relu(x) " + IN_PLACE,
          body("relu(x)", "x[x < 0] = 0", "return x")),
    wrong("relu", "loop", LOOP,
          body("relu(x)", "out = np.empty_like(x)", "flat, res = x.reshape(-1), out.reshape(-1)",
               "for i in range(x.size):", "    res[i] = max(flat[i], 0.0)", "return out")),
    wrong("relu", "list", "should return a numpy array",
          body("relu(x)", "return np.maximum(x, 0.0).tolist()")),
    wrong("relu", "int-stays-int", "int64 input should give float64", """
        def relu(x):
            return np.maximum(np.asarray(x), 0)
    """),
    wrong("relu", "abs", "relu returned |x|",
          body("relu(x)", "return np.abs(x)")),
    correct("relu", "where", body("relu(x)", "return np.where(x < 0, x.dtype.type(0), x)")),
    correct("relu", "clip", body("relu(x)", "return np.clip(x, 0, None)")),
    correct("relu", "copy-and-mask", body("relu(x)", "out = x.copy()",
                                             "out[out < 0] = 0", "return out")),
]

# --- relu_grad -----------------------------------------------------------------------------
C += [
    wrong("relu_grad", "one-below-zero", "relu_grad is 1 for x < 0",
          body("relu_grad(x)", "return np.where(np.isnan(x), x, np.ones_like(x))")),
    wrong("relu_grad", "sign", "did you return the derivative of |x|?",
          body("relu_grad(x)", "return np.sign(x)")),
    wrong("relu_grad", "nan-to-zero", "NaN must propagate",
          body("relu_grad(x)", "return (x > 0).astype(x.dtype)")),
    wrong("relu_grad", "returns-relu", "relu_grad returned relu(x)",
          body("relu_grad(x)", "return np.maximum(x, 0.0)")),
    wrong("relu_grad", "bool", "came back as bool",
          body("relu_grad(x)", "return x > 0")),
    correct("relu_grad", "one-at-zero",
            body("relu_grad(x)", "return np.where(np.isnan(x), x, (x >= 0).astype(x.dtype))")),
    correct("relu_grad", "heaviside", body("relu_grad(x)", "return np.heaviside(x, 0.5)")),
]

# --- leaky_relu ----------------------------------------------------------------------------
C += [
    wrong("leaky_relu", "wrong-sign", "wrong sign",
          body("leaky_relu(x, negative_slope=0.01)",
               "return np.where(x > 0, x, -negative_slope * x)")),
    wrong("leaky_relu", "fixed-slope", "leaky_relu ignores negative_slope",
          body("leaky_relu(x, negative_slope=0.01)", "return np.where(x > 0, x, 0.01 * x)")),
    wrong("leaky_relu", "upcast", UPCAST, """
        def leaky_relu(x, negative_slope=0.01):
            x = np.asarray(x, dtype=np.float64)
            return np.where(x > 0, x, negative_slope * x)
    """),
    wrong("leaky_relu", "zero-below", "leaky_relu is 0 for x < 0",
          body("leaky_relu(x, negative_slope=0.01)", "return np.maximum(x, 0.0)")),
    wrong("leaky_relu", "in-place", IN_PLACE,
          body("leaky_relu(x, negative_slope=0.01)", "x[x < 0] *= negative_slope", "return x")),
    correct("leaky_relu", "maximum",
            body("leaky_relu(x, negative_slope=0.01)", "return np.maximum(x, negative_slope * x)")),
    correct("leaky_relu", "split",
            body("leaky_relu(x, negative_slope=0.01)",
                 "return np.maximum(x, 0) + negative_slope * np.minimum(x, 0)")),
]

# --- leaky_relu_grad -----------------------------------------------------------------------
C += [
    wrong("leaky_relu_grad", "zero-below", "leaky_relu_grad is 0 for x < 0",
          body("leaky_relu_grad(x, negative_slope=0.01)",
               "return np.where(np.isnan(x), x, (x > 0).astype(x.dtype))")),
    wrong("leaky_relu_grad", "slope-times-x", "constant negative_slope, not negative_slope * x",
          body("leaky_relu_grad(x, negative_slope=0.01)",
               "return np.where(x > 0, x.dtype.type(1), negative_slope * x)")),
    wrong("leaky_relu_grad", "loop", LOOP,
          body("leaky_relu_grad(x, negative_slope=0.01)", "out = np.empty_like(x)",
               "flat, res = x.reshape(-1), out.reshape(-1)", "for i in range(x.size):",
               "    v = flat[i]",
               "    res[i] = v if v != v else (1.0 if v > 0 else negative_slope)",
               "return out")),
    wrong("leaky_relu_grad", "fixed-slope", "leaky_relu_grad ignores negative_slope",
          body("leaky_relu_grad(x, negative_slope=0.01)",
               "return np.where(np.isnan(x), x, np.where(x > 0, x.dtype.type(1), "
               "x.dtype.type(0.01)))")),
    wrong("leaky_relu_grad", "wrong-sign", "wrong sign",
          body("leaky_relu_grad(x, negative_slope=0.01)",
               "return np.where(np.isnan(x), x, np.where(x > 0, x.dtype.type(1), "
               "x.dtype.type(-negative_slope)))")),
    wrong("leaky_relu_grad", "nan-to-slope", "NaN must propagate",
          body("leaky_relu_grad(x, negative_slope=0.01)",
               "return np.where(x > 0, x.dtype.type(1), x.dtype.type(negative_slope))")),
    correct("leaky_relu_grad", "one-at-zero",
            body("leaky_relu_grad(x, negative_slope=0.01)",
                 "g = np.where(x >= 0, x.dtype.type(1), x.dtype.type(negative_slope))",
                 "return np.where(np.isnan(x), x, g)")),
    correct("leaky_relu_grad", "nested-where",
            body("leaky_relu_grad(x, negative_slope=0.01)",
                 "one = np.where(x >= 0, x.dtype.type(1), x)  # NaN stays NaN",
                 "return np.where(x < 0, x.dtype.type(negative_slope), one)")),
]

# --- gelu ----------------------------------------------------------------------------------
_GELU_TANH = ["c = math.sqrt(2 / math.pi)",
              "return 0.5 * x * (1 + np.tanh(c * (x + 0.044715 * x**3)))"]
C += [
    wrong("gelu", "tanh-for-exact", "approximate='none' should use the exact normal CDF",
          "import math\n\n" + body('gelu(x, approximate="none")', *_GELU_TANH)),
    wrong("gelu", "exact-for-tanh", "should use the tanh approximation",
          "from scipy.special import ndtr\n\n" + body(
              'gelu(x, approximate="none")', "x_low = np.maximum(x, -40.0)",
              "return x_low * ndtr(x_low)")),
    wrong("gelu", "no-sqrt2", "the argument of erf needs the 1/sqrt(2)",
          "from scipy.special import erf\n\n" + body('gelu(x, approximate="none")',
                                                      "return 0.5 * x * (1 + erf(x))")),
    wrong("gelu", "nan-at-minus-inf", "should reach its limit at -inf",
          "import math\n\nfrom scipy.special import erfc\n\n" + body(
              'gelu(x, approximate="none")',
              'if approximate == "tanh":',
              "    c = math.sqrt(2 / math.pi)",
              "    return 0.5 * x * (1 + np.tanh(c * (x + 0.044715 * x**3)))",
              "return 0.5 * x * erfc(-x / math.sqrt(2))")),
    wrong("gelu", "sigmoid-approx", "sigmoid approximation",
          "from scipy.special import expit\n\n" + body('gelu(x, approximate="none")',
                                                        "return x * expit(1.702 * x)")),
    wrong("gelu", "phi-only", "returned Phi(x)",
          "import math\n\nfrom scipy.special import erfc\n\n" + body(
              'gelu(x, approximate="none")', "return 0.5 * erfc(-x / math.sqrt(2))")),
    wrong("gelu", "one-plus-erf", "1 + erf(x / sqrt(2)) cancels for very negative x",
          "import math\n\nfrom scipy.special import erf\n\n" + body(
              'gelu(x, approximate="none")',
              'if approximate == "tanh":',
              "    x = np.clip(x, -100.0, 100.0 if x.dtype == np.float32 else np.inf)",
              "    u = math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)",
              "    return x * (0.5 + 0.5 * np.tanh(u))",
              "x_low = np.maximum(x, -40.0)",
              "return 0.5 * x_low * (1 + erf(x_low / math.sqrt(2)))")),
    correct("gelu", "erfc-where", "import math\n\nfrom scipy.special import erfc\n\n" + body(
        'gelu(x, approximate="none")',
        "with np.errstate(invalid='ignore'):",
        '    if approximate == "tanh":',
        "        c = math.sqrt(2 / math.pi)",
        "        y = 0.5 * x * (1 + np.tanh(c * (x + 0.044715 * x**3)))",
        "    else:",
        "        y = 0.5 * x * erfc(-x / math.sqrt(2))",
        "return np.where(np.isneginf(x), x.dtype.type(0), y)")),
    correct("gelu", "ndtr", "import math\n\nfrom scipy.special import ndtr\n\n" + body(
        'gelu(x, approximate="none")',
        'if approximate == "tanh":',
        "    x = np.clip(x, -100.0, 100.0 if x.dtype == np.float32 else np.inf)",
        "    u = math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)",
        "    return x * (0.5 + 0.5 * np.tanh(u))",
        "x_low = np.maximum(x, -40.0)",
        "return x_low * ndtr(x_low)")),
]

# --- gelu_grad -----------------------------------------------------------------------------
_GELU_GRAD_TANH = [
    "c = math.sqrt(2 / math.pi)",
    "xm = np.clip(x, -100.0, 100.0)",
    "t = np.tanh(c * (xm + 0.044715 * xm**3))",
    "du = c * (1 + 3 * 0.044715 * xm**2)",
    "return 0.5 * (1 + t) + 0.5 * xm * (1 - t) * (1 + t) * du",
]
C += [
    wrong("gelu_grad", "tanh-for-exact", "approximate='none' should use the exact normal CDF",
          "import math\n\n" + body('gelu_grad(x, approximate="none")', *_GELU_GRAD_TANH)),
    wrong("gelu_grad", "no-product-rule", "missing the x * phi(x) term",
          "import math\n\nfrom scipy.special import erfc\n\n" + body(
              'gelu_grad(x, approximate="none")', "return 0.5 * erfc(-x / math.sqrt(2))")),
    wrong("gelu_grad", "returns-gelu", "gelu_grad returned gelu(x)",
          "import math\n\nfrom scipy.special import erfc\n\n" + body(
              'gelu_grad(x, approximate="none")',
              'if approximate == "tanh":',
              "    c = math.sqrt(2 / math.pi)",
              "    xm = np.clip(x, -100.0, 100.0)",
              "    return xm * (0.5 + 0.5 * np.tanh(c * (xm + 0.044715 * xm**3)))",
              "x_low = np.maximum(x, -40.0)",
              "return 0.5 * x_low * erfc(-x_low / math.sqrt(2))")),
    wrong("gelu_grad", "nan-at-inf", "should reach its limit",
          "import math\n\nfrom scipy.special import erfc\n\n" + body(
              'gelu_grad(x, approximate="none")',
              'if approximate == "tanh":',
              *["    " + line for line in _GELU_GRAD_TANH[:-1]],
              "    " + _GELU_GRAD_TANH[-1].strip(),
              "density = np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)",
              "return 0.5 * erfc(-x / math.sqrt(2)) + x * density")),
    wrong("gelu_grad", "one-plus-erf", "1 + erf(x / sqrt(2)) cancels for very negative x",
          "import math\n\nfrom scipy.special import erf\n\n" + body(
              'gelu_grad(x, approximate="none")',
              'if approximate == "tanh":',
              *["    " + line for line in _GELU_GRAD_TANH],
              "xm = np.clip(x, -40.0, 40.0)",
              "tail = xm * np.exp(-0.5 * xm * xm) / math.sqrt(2 * math.pi)",
              "return 0.5 * (1 + erf(x / math.sqrt(2))) + tail")),
    correct("gelu_grad", "ndtr", "import math\n\nfrom scipy.special import ndtr\n\n" + body(
        'gelu_grad(x, approximate="none")',
        'if approximate == "tanh":',
        *["    " + line for line in _GELU_GRAD_TANH],
        "with np.errstate(invalid='ignore'):",
        "    tail = x * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)",
        "return ndtr(x) + np.where(np.isinf(x), x.dtype.type(0), tail)")),
    correct("gelu_grad", "pdf-from-scipy",
            "import math\n\nfrom scipy.special import erfc\nfrom scipy.stats import norm\n\n" + body(
                'gelu_grad(x, approximate="none")',
                'if approximate == "tanh":',
                "    c = math.sqrt(2 / math.pi)",
                "    xm = np.clip(x, -10.0, 10.0)  # beyond, the gate is 0 or 1 to 1e-30",
                "    s = 1 / (1 + np.exp(-2 * c * (xm + 0.044715 * xm**3)))",
                "    return s + 2 * xm * s * (1 - s) * c * (1 + 3 * 0.044715 * xm**2)",
                "xm = np.clip(x, -40.0, 40.0)",
                "return 0.5 * erfc(-x / math.sqrt(2)) + xm * norm.pdf(xm).astype(x.dtype)")),
]

# --- silu ----------------------------------------------------------------------------------
C += [
    wrong("silu", "naive-exp", "overflow encountered in exp",
          body("silu(x)", "return x / (1 + np.exp(-x))")),
    wrong("silu", "returns-sigmoid", "silu returned sigmoid(x)",
          "from scipy.special import expit\n\n" + body("silu(x)", "return expit(x)")),
    wrong("silu", "upcast", UPCAST, """
        from scipy.special import expit


        def silu(x):
            x = np.maximum(np.asarray(x, dtype=np.float64), -1000.0)
            return x * expit(x)
    """),
    wrong("silu", "in-place", IN_PLACE,
          "from scipy.special import expit\n\n" + body(
              "silu(x)", "np.maximum(x, -1000.0, out=x)", "x *= expit(x)", "return x")),
    wrong("silu", "loop", LOOP,
          "from scipy.special import expit\n\n" + body(
              "silu(x)", "x = np.maximum(x, -1000.0)", "out = np.empty_like(x)",
              "flat, res = x.reshape(-1), out.reshape(-1)", "for i in range(x.size):",
              "    res[i] = flat[i] * expit(flat[i])", "return out")),
    correct("silu", "tanh", body(
        "silu(x)", "x_safe = np.where(np.isneginf(x), 0, x)",
        "return x_safe * 0.5 * (1 + np.tanh(x / 2))")),
    correct("silu", "stable-sigmoid", body(
        "silu(x)", "e = np.exp(-np.abs(x))", "s = np.where(x >= 0, 1 / (1 + e), e / (1 + e))",
        "return np.where(np.isneginf(x), 0, x) * s")),
]

# --- silu_grad -----------------------------------------------------------------------------
C += [
    wrong("silu_grad", "returns-sigmoid", "product rule gives a second term",
          "from scipy.special import expit\n\n" + body("silu_grad(x)", "return expit(x)")),
    wrong("silu_grad", "upcast", UPCAST, """
        from scipy.special import expit


        def silu_grad(x):
            x = np.clip(np.asarray(x, dtype=np.float64), -1000.0, 1000.0)
            return expit(x) * (1 + x * expit(-x))
    """),
    wrong("silu_grad", "sigmoid-grad-only", "returned sigmoid'(x) only",
          "from scipy.special import expit\n\n" + body(
              "silu_grad(x)", "return expit(x) * expit(-x)")),
    wrong("silu_grad", "returns-silu", "silu_grad returned silu(x)",
          "from scipy.special import expit\n\n" + body(
              "silu_grad(x)", "x = np.maximum(x, -1000.0)", "return x * expit(x)")),
    wrong("silu_grad", "naive-exp", "overflow encountered in exp",
          body("silu_grad(x)", "s = 1 / (1 + np.exp(-x))", "return s * (1 + x * (1 - s))")),
    correct("silu_grad", "stable-sigmoid", body(
        "silu_grad(x)", "e = np.exp(-np.abs(x))", "s = np.where(x >= 0, 1 / (1 + e), e / (1 + e))",
        "with np.errstate(invalid='ignore'):", "    g = s * (1 + x * (1 - s))",
        "return np.where(np.isinf(x), (x > 0).astype(x.dtype), g)")),
    correct("silu_grad", "tanh", body(
        "silu_grad(x)", "s = 0.5 * (1 + np.tanh(x / 2))",
        "with np.errstate(invalid='ignore'):", "    g = s + x * s * (1 - s)",
        "return np.where(np.isinf(x), (x > 0).astype(x.dtype), g)")),
]

# --- sigmoid -------------------------------------------------------------------------------
C += [
    wrong("sigmoid", "naive-exp",
          "sigmoid raised RuntimeWarning: overflow encountered in exp for x=-10000.0",
          body("sigmoid(x)", "return 1 / (1 + np.exp(-x))")),
    wrong("sigmoid", "where-both-branches", "np.where computes both branches",
          body("sigmoid(x)", "return np.where(x >= 0, 1 / (1 + np.exp(-x)), "
                             "np.exp(x) / (1 + np.exp(x)))")),
    wrong("sigmoid", "in-place", "sigmoid(x) " + IN_PLACE,
          body("sigmoid(x)", "e = np.exp(-np.abs(x))",
               "x[...] = np.where(x >= 0, 1 / (1 + e), e / (1 + e))", "return x")),
    wrong("sigmoid", "loop", LOOP,
          "import math\n\n" + body(
              "sigmoid(x)", "out = np.empty_like(x)", "flat, res = x.reshape(-1), out.reshape(-1)",
              "for i in range(x.size):", "    v = flat[i]",
              "    if v >= 0:", "        res[i] = 1 / (1 + math.exp(-v))",
              "    elif v < 0:", "        res[i] = math.exp(v) / (1 + math.exp(v))",
              "    else:", "        res[i] = v", "return out")),
    wrong("sigmoid", "decreasing", "sigmoid is decreasing",
          body("sigmoid(x)", "e = np.exp(-np.abs(x))",
               "return np.where(x <= 0, 1 / (1 + e), e / (1 + e))")),
    wrong("sigmoid", "upcast", UPCAST, """
        from scipy.special import expit


        def sigmoid(x):
            return expit(np.asarray(x, dtype=np.float64))
    """),
    correct("sigmoid", "tanh", body("sigmoid(x)", "return 0.5 * (1 + np.tanh(x / 2))")),
    correct("sigmoid", "expit",
            "from scipy.special import expit\n\n" + body("sigmoid(x)", "return expit(x)")),
]

# --- sigmoid_grad --------------------------------------------------------------------------
_STABLE_S = ["e = np.exp(-np.abs(x))", "s = np.where(x >= 0, 1 / (1 + e), e / (1 + e))"]
C += [
    wrong("sigmoid_grad", "returns-sigmoid", "sigmoid_grad returned sigmoid(x)",
          body("sigmoid_grad(x)", *_STABLE_S, "return s")),
    wrong("sigmoid_grad", "naive-exp", "overflow",
          body("sigmoid_grad(x)", "s = 1 / (1 + np.exp(-x))", "return s * (1 - s)")),
    wrong("sigmoid_grad", "one-minus-sigmoid", "returned 1 - sigmoid(x)",
          body("sigmoid_grad(x)", *_STABLE_S, "return 1 - s")),
    wrong("sigmoid_grad", "upcast", UPCAST, """
        from scipy.special import expit


        def sigmoid_grad(x):
            s = expit(np.asarray(x, dtype=np.float64))
            return s * (1 - s)
    """),
    wrong("sigmoid_grad", "wrong-sign", "sigmoid_grad has the wrong sign",
          body("sigmoid_grad(x)", *_STABLE_S, "return s * (s - 1)")),
    correct("sigmoid_grad", "s-times-one-minus-s",
            body("sigmoid_grad(x)", *_STABLE_S, "return s * (1 - s)")),
    correct("sigmoid_grad", "expit-both-sides", "from scipy.special import expit\n\n" + body(
        "sigmoid_grad(x)", "return expit(x) * expit(-x)")),
]

# --- tanh ----------------------------------------------------------------------------------
C += [
    wrong("tanh", "naive-exp", "tanh is not stable",
          body("tanh(x)", "return (np.exp(x) - np.exp(-x)) / (np.exp(x) + np.exp(-x))")),
    wrong("tanh", "upcast", UPCAST, """
        def tanh(x):
            return np.tanh(np.asarray(x, dtype=np.float64))
    """),
    wrong("tanh", "in-place", "tanh(x) " + IN_PLACE,
          body("tanh(x)", "return np.tanh(x, out=x)")),
    wrong("tanh", "loop", LOOP,
          "import math\n\n" + body(
              "tanh(x)", "out = np.empty_like(x)", "flat, res = x.reshape(-1), out.reshape(-1)",
              "for i in range(x.size):", "    res[i] = math.tanh(flat[i])", "return out")),
    wrong("tanh", "one-sided-exp", "tanh is not stable",
          body("tanh(x)", "e = np.exp(-2 * x)", "return (1 - e) / (1 + e)")),
    correct("tanh", "exp-of-abs", body(
        "tanh(x)", "e = np.exp(-2 * np.abs(x))", "return np.sign(x) * (1 - e) / (1 + e)")),
    correct("tanh", "via-sigmoid", body(
        "tanh(x)", "e = np.exp(-np.abs(2 * x))",
        "s = np.where(x >= 0, 1 / (1 + e), e / (1 + e))  # sigmoid(2x)", "return 2 * s - 1")),
]

# --- tanh_grad -----------------------------------------------------------------------------
C += [
    wrong("tanh_grad", "no-square", "did you forget the square?",
          body("tanh_grad(x)", "return 1 - np.tanh(x)")),
    wrong("tanh_grad", "cosh", "overflow encountered in cosh",
          body("tanh_grad(x)", "return 1 / np.cosh(x) ** 2")),
    wrong("tanh_grad", "returns-tanh", "tanh_grad returned tanh(x)",
          body("tanh_grad(x)", "return np.tanh(x)")),
    wrong("tanh_grad", "sigmoid-grad", "tanh_grad returned sigmoid_grad(x)",
          body("tanh_grad(x)", "e = np.exp(-np.abs(x))", "return e / (1 + e) ** 2")),
    wrong("tanh_grad", "upcast", UPCAST, """
        def tanh_grad(x):
            t = np.tanh(np.asarray(x, dtype=np.float64))
            return 1 - t**2
    """),
    correct("tanh_grad", "one-minus-square", body("tanh_grad(x)", "return 1 - np.tanh(x) ** 2")),
    correct("tanh_grad", "factored", body("tanh_grad(x)", "t = np.tanh(x)",
                                          "return (1 - t) * (1 + t)")),
]

# --- softmax -------------------------------------------------------------------------------
C += [
    wrong("softmax", "naive-exp", "softmax overflows for large logits: subtract the maximum first",
          body("softmax(x, axis=-1)", "e = np.exp(x)",
               "return e / np.sum(e, axis=axis, keepdims=True)")),
    wrong("softmax", "last-axis-only", "softmax should normalise along `axis`",
          body("softmax(x, axis=-1)", "e = np.exp(x - np.max(x, axis=-1, keepdims=True))",
               "return e / np.sum(e, axis=-1, keepdims=True)")),
    wrong("softmax", "whole-array", "normalises over the whole array",
          body("softmax(x, axis=-1)", "e = np.exp(x - np.max(x))", "return e / e.sum()")),
    wrong("softmax", "upcast", UPCAST, """
        def softmax(x, axis=-1):
            x = np.asarray(x, dtype=np.float64)
            e = np.exp(x - np.max(x, axis=axis, keepdims=True))
            return e / np.sum(e, axis=axis, keepdims=True)
    """),
    wrong("softmax", "loop", LOOP,
          body("softmax(x, axis=-1)", "x = np.moveaxis(x, axis, -1)", "out = np.empty_like(x)",
               "for idx in np.ndindex(x.shape[:-1]):", "    row = x[idx]",
               "    total = 0.0", "    for v in row:", "        total += np.exp(v - row.max())",
               "    out[idx] = np.exp(row - row.max()) / total",
               "return np.moveaxis(out, -1, axis)")),
    wrong("softmax", "no-keepdims", "keepdims=True",
          body("softmax(x, axis=-1)", "e = np.exp(x - np.max(x, axis=axis, keepdims=True))",
               "return e / np.sum(e, axis=axis)")),
    correct("softmax", "via-logsumexp", "from scipy.special import logsumexp\n\n" + body(
        "softmax(x, axis=-1)",
        "return np.exp(x - logsumexp(x, axis=axis, keepdims=True).astype(x.dtype))")),
    correct("softmax", "moveaxis", body(
        "softmax(x, axis=-1)", "z = np.moveaxis(x, axis, -1)",
        "e = np.exp(z - z.max(axis=-1)[..., None])",
        "return np.moveaxis(e / e.sum(axis=-1)[..., None], -1, axis)")),
]

# --- log_softmax ---------------------------------------------------------------------------
C += [
    wrong("log_softmax", "log-of-softmax", "log_softmax returned -inf for a finite logit",
          body("log_softmax(x, axis=-1)", "e = np.exp(x - np.max(x, axis=axis, keepdims=True))",
               "return np.log(e / np.sum(e, axis=axis, keepdims=True))")),
    wrong("log_softmax", "returns-softmax", "log_softmax returned probabilities",
          body("log_softmax(x, axis=-1)", "e = np.exp(x - np.max(x, axis=axis, keepdims=True))",
               "return e / np.sum(e, axis=axis, keepdims=True)")),
    wrong("log_softmax", "in-place", "log_softmax(x) " + IN_PLACE,
          body("log_softmax(x, axis=-1)", "x -= np.max(x, axis=axis, keepdims=True)",
               "x -= np.log(np.sum(np.exp(x), axis=axis, keepdims=True))", "return x")),
    wrong("log_softmax", "no-shift", "log_softmax overflows for large logits",
          body("log_softmax(x, axis=-1)",
               "return x - np.log(np.sum(np.exp(x), axis=axis, keepdims=True))")),
    wrong("log_softmax", "no-keepdims", "keepdims=True",
          body("log_softmax(x, axis=-1)", "shifted = x - np.max(x, axis=axis, keepdims=True)",
               "return shifted - np.log(np.sum(np.exp(shifted), axis=axis))")),
    wrong("log_softmax", "upcast", UPCAST, """
        def log_softmax(x, axis=-1):
            x = np.asarray(x, dtype=np.float64)
            shifted = x - np.max(x, axis=axis, keepdims=True)
            return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))
    """),
    correct("log_softmax", "scipy-logsumexp", "from scipy.special import logsumexp\n\n" + body(
        "log_softmax(x, axis=-1)",
        "return x - logsumexp(x, axis=axis, keepdims=True).astype(x.dtype)")),
    correct("log_softmax", "moveaxis", body(
        "log_softmax(x, axis=-1)", "z = np.moveaxis(x, axis, -1)",
        "z = z - z.max(axis=-1)[..., None]",
        "return np.moveaxis(z - np.log(np.exp(z).sum(axis=-1))[..., None], -1, axis)")),
]

# --- cross_entropy -------------------------------------------------------------------------
C += [
    wrong("cross_entropy", "sum", "should be the mean, not the sum, over the batch", """
        def cross_entropy(logits, targets):
            logp = log_softmax(logits, axis=-1)
            targets = np.asarray(targets)
            return float(-np.sum(logp[np.arange(len(targets)), targets]))
    """),
    wrong("cross_entropy", "log-of-softmax", "cross_entropy is unstable for large logits", """
        def cross_entropy(logits, targets):
            logits = np.asarray(logits, dtype=float)
            e = np.exp(logits)
            p = e / e.sum(axis=1, keepdims=True)
            targets = np.asarray(targets)
            return float(-np.mean(np.log(p[np.arange(len(targets)), targets])))
    """),
    wrong("cross_entropy", "all-targets", "pick each sample's own target", """
        def cross_entropy(logits, targets):
            logp = log_softmax(logits, axis=-1)
            return float(-np.mean(logp[:, np.asarray(targets)]))
    """),
    wrong("cross_entropy", "per-sample", "should return one number", """
        def cross_entropy(logits, targets):
            logp = log_softmax(logits, axis=-1)
            targets = np.asarray(targets)
            return -logp[np.arange(len(targets)), targets]
    """),
    wrong("cross_entropy", "sign", "NEGATIVE log-likelihood", """
        def cross_entropy(logits, targets):
            logp = log_softmax(logits, axis=-1)
            targets = np.asarray(targets)
            return float(np.mean(logp[np.arange(len(targets)), targets]))
    """),
    correct("cross_entropy", "logsumexp", """
        from scipy.special import logsumexp


        def cross_entropy(logits, targets):
            logits = np.asarray(logits, dtype=float)
            targets = np.asarray(targets)
            picked = logits[np.arange(len(targets)), targets]
            return float(np.mean(logsumexp(logits, axis=1) - picked))
    """),
    correct("cross_entropy", "one-hot", """
        def cross_entropy(logits, targets):
            logits = np.asarray(logits, dtype=float)
            shifted = logits - logits.max(axis=1, keepdims=True)
            logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
            onehot = np.eye(logits.shape[1])[np.asarray(targets)]
            return float(-np.sum(onehot * logp) / len(logits))
    """),
]

# --- dead_fraction -------------------------------------------------------------------------
C += [
    wrong("dead_fraction", "strict", "exactly 0 counts as dead", """
        def dead_fraction(preacts):
            return float(np.mean(np.all(np.asarray(preacts) < 0, axis=0)))
    """),
    wrong("dead_fraction", "any-sample", "for EVERY sample", """
        def dead_fraction(preacts):
            return float(np.mean(np.any(np.asarray(preacts) <= 0, axis=0)))
    """),
    wrong("dead_fraction", "entries", "not of entries", """
        def dead_fraction(preacts):
            return float(np.mean(np.asarray(preacts) <= 0))
    """),
    wrong("dead_fraction", "count", "not a count", """
        def dead_fraction(preacts):
            return float(np.sum(np.all(np.asarray(preacts) <= 0, axis=0)))
    """),
    wrong("dead_fraction", "wrong-axis", "reduce over the samples (axis 0)", """
        def dead_fraction(preacts):
            return float(np.mean(np.all(np.asarray(preacts) <= 0, axis=1)))
    """),
    wrong("dead_fraction", "live", "fraction of DEAD units", """
        def dead_fraction(preacts):
            return float(np.mean(np.any(np.asarray(preacts) > 0, axis=0)))
    """),
    correct("dead_fraction", "any-positive", """
        def dead_fraction(preacts):
            return 1.0 - float(np.mean(np.any(np.asarray(preacts) > 0, axis=0)))
    """),
    correct("dead_fraction", "column-max", """
        def dead_fraction(preacts):
            p = np.asarray(preacts)
            return float((p.max(axis=0) <= 0).sum() / p.shape[1])
    """),
]

# Words the VISIBLE check's message contains (it runs first in the grade cell, so this is what
# the student's feedback shows; the hidden message is reached only when the visible checks pass).
VISIBLE = {
    "collapse_linear-wrong-order": "wrong order",
    "collapse_linear-sum-of-biases": "cannot simply be added",
    "collapse_linear-last-bias-only": "keeps only the last layer's bias",
    "collapse_linear-transposed": "expected W of shape (3, 4)",
    "collapse_linear-in-place": "in place",
    "relu-nan-to-zero": "NaN must propagate",
    "relu-upcast": "came back as",
    "relu-in-place": "in place",
    "relu-loop": "looks like a Python loop",
    "relu-list": "should return a numpy array",
    "relu-int-stays-int": "should give a float64 array",
    "relu-abs": "relu returned |x|",
    "relu_grad-one-below-zero": "wrong for x < 0",
    "relu_grad-sign": "did you return the derivative of |x|?",
    "relu_grad-nan-to-zero": "NaN must propagate",
    "relu_grad-returns-relu": "the function itself, not its derivative",
    "relu_grad-bool": "came back as",
    "leaky_relu-wrong-sign": "has the wrong sign",
    "leaky_relu-fixed-slope": "ignores negative_slope",
    "leaky_relu-upcast": "came back as",
    "leaky_relu-zero-below": "leaky_relu is 0 for x < 0",
    "leaky_relu-in-place": "in place",
    "leaky_relu_grad-zero-below": "leaky_relu_grad is 0 for x < 0",
    "leaky_relu_grad-slope-times-x": "wrong for x <= 0",
    "leaky_relu_grad-loop": "looks like a Python loop",
    "leaky_relu_grad-fixed-slope": "ignores negative_slope",
    "leaky_relu_grad-wrong-sign": "has the wrong sign",
    "leaky_relu_grad-nan-to-slope": "NaN must propagate",
    "gelu-tanh-for-exact": "not the tanh approximation",
    "gelu-exact-for-tanh": "should use the tanh approximation",
    "gelu-no-sqrt2": "needs the 1/sqrt(2)",
    "gelu-nan-at-minus-inf": "invalid value encountered",
    "gelu-sigmoid-approx": "sigmoid approximation",
    "gelu-phi-only": "returned Phi(x)",
    "gelu-one-plus-erf": "1 + erf(x / sqrt(2)) cancels",
    "gelu_grad-tanh-for-exact": "not the tanh approximation",
    "gelu_grad-no-product-rule": "missing the x * phi(x) term",
    "gelu_grad-returns-gelu": "the function itself, not its derivative",
    "gelu_grad-nan-at-inf": "invalid value encountered",
    "gelu_grad-one-plus-erf": "1 + erf(x / sqrt(2)) cancels",
    "silu-naive-exp": "invalid value encountered",
    "silu-returns-sigmoid": "silu returned sigmoid(x)",
    "silu-upcast": "came back as",
    "silu-in-place": "in place",
    "silu-loop": "looks like a Python loop",
    "silu_grad-returns-sigmoid": "product rule gives a second term",
    "silu_grad-upcast": "came back as",
    "silu_grad-sigmoid-grad-only": "returned sigmoid'(x) only",
    "silu_grad-returns-silu": "the function itself, not its derivative",
    "silu_grad-naive-exp": "invalid value encountered",
    "sigmoid-naive-exp": "overflow encountered in exp",
    "sigmoid-where-both-branches": "invalid value encountered",
    "sigmoid-in-place": "in place",
    "sigmoid-loop": "looks like a Python loop",
    "sigmoid-decreasing": "Check the sign inside",
    "sigmoid-upcast": "came back as",
    "sigmoid_grad-returns-sigmoid": "the function itself, not its derivative",
    "sigmoid_grad-naive-exp": "overflow encountered in exp",
    "sigmoid_grad-one-minus-sigmoid": "returned 1 - sigmoid(x)",
    "sigmoid_grad-upcast": "came back as",
    "sigmoid_grad-wrong-sign": "has the wrong sign",
    "tanh-naive-exp": "invalid value encountered",
    "tanh-upcast": "came back as",
    "tanh-in-place": "in place",
    "tanh-loop": "looks like a Python loop",
    "tanh-one-sided-exp": "invalid value encountered",
    "tanh_grad-no-square": "did you forget the square?",
    "tanh_grad-cosh": "overflow encountered in cosh",
    "tanh_grad-returns-tanh": "the function itself, not its derivative",
    "tanh_grad-sigmoid-grad": "tanh_grad returned sigmoid_grad(x)",
    "tanh_grad-upcast": "came back as",
    "softmax-naive-exp": "overflow encountered in exp",
    "softmax-last-axis-only": "do not sum to 1",
    "softmax-whole-array": "normalises over the whole array",
    "softmax-upcast": "came back as",
    "softmax-loop": "looks like a Python loop",
    "softmax-no-keepdims": "keepdims=True",
    "log_softmax-log-of-softmax": "divide by zero encountered",
    "log_softmax-returns-softmax": "returned probabilities",
    "log_softmax-in-place": "in place",
    "log_softmax-no-shift": "overflow encountered in exp",
    "log_softmax-no-keepdims": "keepdims=True",
    "log_softmax-upcast": "came back as",
    "cross_entropy-sum": "times too large",
    "cross_entropy-log-of-softmax": "overflow encountered in exp",
    "cross_entropy-all-targets": "pick each sample's own target",
    "cross_entropy-per-sample": "should return one number",
    "cross_entropy-sign": "NEGATIVE log-likelihood",
    "dead_fraction-strict": "exactly 0 counts as dead",
    "dead_fraction-any-sample": "for EVERY sample",
    "dead_fraction-entries": "not of entries",
    "dead_fraction-count": "not a count",
    "dead_fraction-wrong-axis": "reduce over the samples (axis 0)",
    "dead_fraction-live": "not of live ones",
}


# Numerics mistakes: the kernel's mathematics is right (full marks on its exercise cell), its
# going-deeper cell names the mistake.
DEEPER = {
    "relu-nan-to-zero", "relu_grad-nan-to-zero", "leaky_relu_grad-nan-to-slope",
    "gelu-nan-at-minus-inf", "gelu-one-plus-erf", "gelu_grad-nan-at-inf",
    "gelu_grad-one-plus-erf", "silu-naive-exp", "silu_grad-naive-exp",
    "sigmoid-naive-exp", "sigmoid-where-both-branches", "sigmoid_grad-naive-exp",
    "tanh-naive-exp", "tanh-one-sided-exp", "tanh_grad-cosh",
    "softmax-naive-exp", "log_softmax-log-of-softmax", "log_softmax-no-shift",
    "cross_entropy-log-of-softmax",
}

CATALOGUE: list[Entry] = [replace(e, visible=VISIBLE.get(e.id, ""),
                                  part="deeper" if e.id in DEEPER else "math") for e in C]
WRONG = [e for e in CATALOGUE if e.kind == "wrong"]
CORRECT = [e for e in CATALOGUE if e.kind == "correct"]


def namespace(extra=None) -> dict:
    """What a notebook gives a student's cell: numpy, math, and the notebook's other kernels
    (the reference stands in for them)."""
    from autograder.judging import reference

    ns = {"np": np, "math": math}
    ns.update({k: getattr(reference, k) for k in KERNELS})
    ns.update(extra or {})
    return ns


def load(entry: Entry):
    """The function the entry defines (executed as a notebook cell would run it)."""
    ns = namespace()
    exec(compile(entry.source, f"<catalogue {entry.id}>", "exec"), ns)  # noqa: S102
    return ns[entry.kernel]
