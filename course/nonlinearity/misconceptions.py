"""The misconceptions the checks recognise: one source for each wrong-variant formula.

A wrong kernel is named by the formula it computed: when a student's output matches a
variant below wherever it is wrong, the check says which misconception that is ("relu_grad is
1 for x < 0", "gelu returned Phi(x)", ...). Both the visible checks (`nonlinearity.checks`,
which compare with torch) and the hidden judge (`autograder.judging.judge`, which compares
with the reference kernels) import these formulas from here, so a message and its formula
live in one place.

`ELEMENTWISE[name]` is a list of (message, variant). `message` is a string or a function of
the keyword arguments; `variant(x, kw, ref)` computes the wrong answer on a float64 array x
for keyword arguments kw (None where the misconception cannot show for these kw). `ref` gives
the correct kernels of the side that asks (torch on the visible side, the reference on the
hidden one): ref.relu, ref.relu_grad, ref.leaky_relu, ref.leaky_relu_grad, ref.gelu,
ref.gelu_grad, ref.silu, ref.sigmoid, ref.sigmoid_grad, ref.tanh.
"""
import math

import numpy as np
from scipy import special

__all__ = ["ELEMENTWISE", "variants", "dead_fraction_variants", "cross_entropy_variants"]


def _slope(kw):
    return kw.get("negative_slope", 0.01)


def _other_approx(kw):
    return "tanh" if kw.get("approximate", "none") == "none" else "none"


def _exact(kw):
    return kw.get("approximate", "none") == "none"


def _erf(x):
    return special.erf(x)


def _gelu_approx_message(name):
    def message(kw):
        if _exact(kw):
            return (f"{name}(x) with approximate='none' should use the exact normal CDF (erf), "
                    "not the tanh approximation")
        return f"{name}(x, approximate='tanh') should use the tanh approximation"
    return message


def _phi(x):
    return 0.5 * (1 + _erf(x / math.sqrt(2)))


ELEMENTWISE = {
    "relu": [
        ("relu returned x unchanged for x < 0: negative inputs give 0", lambda x, kw, R: x),
        ("relu returned |x|: negative inputs give 0, not -x", lambda x, kw, R: np.abs(x)),
    ],
    "relu_grad": [
        ("relu_grad: expected 0 for x < 0, got -1 — did you return the derivative of |x|?",
         lambda x, kw, R: np.sign(x)),
        ("relu_grad is 1 for x < 0: the slope of max(0, x) is 0 there",
         lambda x, kw, R: np.where(x < 0, 1.0, R.relu_grad(x))),
        ("relu_grad returned relu(x), the function itself, not its derivative",
         lambda x, kw, R: R.relu(x)),
    ],
    "leaky_relu": [
        ("leaky_relu has the wrong sign for x < 0: there it is negative_slope * x",
         lambda x, kw, R: np.where(x < 0, -_slope(kw) * x, x)),
        (lambda kw: f"leaky_relu ignores negative_slope: called with negative_slope="
                    f"{_slope(kw)} it used the default 0.01",
         lambda x, kw, R: R.leaky_relu(x) if _slope(kw) != 0.01 else None),
        ("leaky_relu is 0 for x < 0: that is relu; below 0 it is negative_slope * x",
         lambda x, kw, R: R.relu(x) if _slope(kw) != 0 else None),
    ],
    "leaky_relu_grad": [
        ("leaky_relu_grad for x < 0 should be the constant negative_slope, not negative_slope * x",
         lambda x, kw, R: np.where(x < 0, _slope(kw) * x, R.leaky_relu_grad(x, _slope(kw)))),
        ("leaky_relu_grad is 0 for x < 0: below 0 the slope is negative_slope",
         lambda x, kw, R: R.relu_grad(x) if _slope(kw) != 0 else None),
        ("leaky_relu_grad has the wrong sign for x < 0: the slope there is +negative_slope",
         lambda x, kw, R: np.where(x < 0, -_slope(kw), R.leaky_relu_grad(x, _slope(kw)))),
        (lambda kw: f"leaky_relu_grad ignores negative_slope: called with negative_slope="
                    f"{_slope(kw)} it used the default 0.01",
         lambda x, kw, R: R.leaky_relu_grad(x) if _slope(kw) != 0.01 else None),
        ("leaky_relu_grad is 1 for x < 0: below 0 the slope is negative_slope",
         lambda x, kw, R: np.where(x < 0, 1.0, R.leaky_relu_grad(x, _slope(kw)))),
    ],
    "gelu": [
        (_gelu_approx_message("gelu"),
         lambda x, kw, R: R.gelu(x, approximate=_other_approx(kw))),
        ("gelu: x * sigmoid(1.702 x) is the sigmoid approximation, not GELU",
         lambda x, kw, R: x * R.sigmoid(1.702 * x)),
        ("gelu: Phi(x) = (1 + erf(x / sqrt(2))) / 2 — the argument of erf needs the 1/sqrt(2)",
         lambda x, kw, R: 0.5 * x * (1 + _erf(x)) if _exact(kw) else None),
        ("gelu returned Phi(x), the normal CDF; GELU is x * Phi(x)",
         lambda x, kw, R: _phi(x) if _exact(kw) else None),
    ],
    "gelu_grad": [
        (_gelu_approx_message("gelu_grad"),
         lambda x, kw, R: R.gelu_grad(x, approximate=_other_approx(kw))),
        ("gelu_grad is missing the x * phi(x) term of the product rule",
         lambda x, kw, R: _phi(x) if _exact(kw) else None),
        ("gelu_grad returned gelu(x), the function itself, not its derivative",
         lambda x, kw, R: R.gelu(x, **kw)),
    ],
    "silu": [
        ("silu returned sigmoid(x): SiLU is x * sigmoid(x)", lambda x, kw, R: R.sigmoid(x)),
    ],
    "silu_grad": [
        ("silu_grad returned sigmoid(x): the product rule gives a second term",
         lambda x, kw, R: R.sigmoid(x)),
        ("silu_grad returned sigmoid'(x) only: the product rule also gives sigmoid(x)",
         lambda x, kw, R: R.sigmoid_grad(x)),
        ("silu_grad returned silu(x), the function itself, not its derivative",
         lambda x, kw, R: R.silu(x)),
    ],
    "sigmoid": [
        ("sigmoid is decreasing: exp(x) where exp(-x) belongs? Check the sign inside",
         lambda x, kw, R: R.sigmoid(-x)),
    ],
    "sigmoid_grad": [
        ("sigmoid_grad returned sigmoid(x), the function itself, not its derivative",
         lambda x, kw, R: R.sigmoid(x)),
        ("sigmoid_grad returned 1 - sigmoid(x): the derivative is a product of two factors",
         lambda x, kw, R: 1 - R.sigmoid(x)),
        ("sigmoid_grad has the wrong sign: sigmoid is increasing, so its derivative "
         "sigmoid(x) * (1 - sigmoid(x)) is >= 0", lambda x, kw, R: -R.sigmoid_grad(x)),
    ],
    "tanh": [
        ("tanh(x) gave the values of tanh(-x): check the sign inside",
         lambda x, kw, R: R.tanh(-x)),
    ],
    "tanh_grad": [
        ("tanh_grad returned 1 - tanh(x): did you forget the square?",
         lambda x, kw, R: 1 - R.tanh(x)),
        ("tanh_grad returned tanh(x), the function itself, not its derivative",
         lambda x, kw, R: R.tanh(x)),
        ("tanh_grad returned sigmoid_grad(x): tanh' = 1 - tanh(x)**2",
         lambda x, kw, R: R.sigmoid_grad(x)),
    ],
}


def variants(name):
    """(message, variant) pairs for elementwise kernel `name` (see the module docstring)."""
    return ELEMENTWISE.get(name, [])


def message_text(message, kw):
    return message(kw) if callable(message) else message


# Numerics: a hint for the going-deeper part (exact GELU for very negative x).
ERFC_HINT = ("1 + erf(x / sqrt(2)) cancels for very negative x (erf is -1 to the last digit "
             "below about -6): compute Phi(x) as erfc(-x / sqrt(2)) / 2, which keeps its digits")

# Messages of the vector kernels, shared by the visible and the hidden checks.
KEEPDIMS = ("did you forget keepdims=True? A sum or max along `axis` drops that dimension, so "
            "it no longer lines up with x")
LOG_SOFTMAX_PROBS = "log_softmax returned probabilities (values > 0); it should return their logarithm"
LAST_BIAS_ONLY = ("collapse_linear: b keeps only the last layer's bias; earlier biases pass "
                  "through the later layers")
WRONG_ORDER = ("the matrix shapes do not fit: are the weights multiplied in the wrong order? "
               "The last layer acts last")


def cross_entropy_variants(logits, targets):
    """(message, value) for the common slips in cross_entropy(logits, targets) (float64)."""
    logits = np.asarray(logits, dtype=np.float64)
    targets = np.asarray(targets)
    shifted = logits - np.max(logits, axis=-1, keepdims=True)
    logp = shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))
    picked = logp[np.arange(len(targets)), targets]
    n = len(targets)
    out = []
    if n > 1:
        out.append(("cross_entropy should be the mean, not the sum, over the batch",
                    -np.sum(picked)))
    if np.mean(picked) != 0:
        out.append(("cross_entropy is the NEGATIVE log-likelihood: the sign is flipped",
                    np.mean(picked)))
    if n > 1:
        out.append(("cross_entropy: pick each sample's own target (row i, column targets[i]), "
                    "not every target for every row", -np.mean(logp[:, targets])))
    return out


def dead_fraction_variants(preacts, expected):
    """(message, value) for the common slips in dead_fraction (preacts: samples x units)."""
    p = np.asarray(preacts, dtype=np.float64)
    out = [
        ("a pre-activation of exactly 0 counts as dead (ReLU gives 0 and passes no gradient): "
         "use <= 0, not < 0", np.mean(np.all(p < 0, axis=0))),
        ("a unit is dead only if its pre-activation is <= 0 for EVERY sample, not for some sample",
         np.mean(np.any(p <= 0, axis=0))),
    ]
    if p.shape[1] > 1:  # with one unit these slips give the right number
        out = [("dead_fraction should be a fraction of the units, in [0, 1], not a count of "
                "dead units", np.sum(np.all(p <= 0, axis=0)))] + out + [
            ("dead_fraction is a fraction of units (columns), not of entries", np.mean(p <= 0)),
            ("reduce over the samples (axis 0): rows are samples, columns are units",
             np.mean(np.all(p <= 0, axis=1))),
            ("dead_fraction should be the fraction of DEAD units, not of live ones",
             1 - expected),
        ]
    return out
