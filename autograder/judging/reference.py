"""Reference activation kernels: the arbiter of every student's grade.

Same contract as the student kernels (solutions/, DESIGN.md "Student kernels"):

- any array-like in (Python scalars, lists, ndarrays of any shape, empty ones included);
  an ``np.ndarray`` of the same shape out (0-d for scalar input);
- float32 stays float32, float64 stays float64, other real dtypes (bool, int, float16,
  longdouble) become float64; complex, object or text input raises ValueError;
- the input is never modified, nothing warns, nothing overflows;
- ±inf give the limits (sigmoid(-inf) = 0, gelu(-inf) = silu(-inf) = 0, relu_grad(inf) = 1,
  ...; torch returns nan for gelu(-inf) and silu(-inf)), NaN propagates, derivatives included;
- at the kink relu_grad(0) = 0 and leaky_relu_grad(0) = negative_slope, as torch picks.

Accuracy: every element-wise kernel is computed in float64 with error-free transformations
(double-double, see ``_numerics``) wherever rounding would otherwise be amplified, and rounded
once at the end; tests/test_reference_accuracy.py measures the error against mpmath in ULPs.
The main traps, and what is done about them:

- exp(-a) comes from tables (double-double) times a short polynomial, and is scaled by 2**-k
  only at the very end, so results in the subnormal range are rounded once;
- 1 - sigmoid, 1 - tanh**2, sigmoid * (1 - sigmoid) never appear: every formula is written in
  t = exp(-|x|) so that nothing cancels (sigmoid' = t / (1 + t)**2, ...);
- exact GELU uses erfcx (own double-double Taylor tables) and exp(-z*z) with z = -x/sqrt(2)
  and z*z in double-double: 0.5 * x * (1 + erf(x / sqrt(2))) loses every digit for x < -6;
- the tanh GELU for x < 0 is x * sigmoid(2u) with u in double-double, not 1 + tanh(u);
- gelu_grad (both forms) and silu_grad change sign near x = -0.75 and x = -1.28; within 1/16
  of the root they come from a Taylor expansion about the root (coefficients from mpmath).

Only numpy and the standard library are used at run time.
"""

import math
import numbers

import numpy as np

from autograder.judging import _numerics as nx

__all__ = [
    "collapse_linear",
    "relu", "relu_grad", "leaky_relu", "leaky_relu_grad",
    "gelu", "gelu_grad", "silu", "silu_grad",
    "sigmoid", "sigmoid_grad", "tanh", "tanh_grad",
    "softmax", "log_softmax", "cross_entropy", "dead_fraction",
]


# ---------------------------------------------------------------------------------------------
# Input handling


_F64_MAX = float(np.finfo(np.float64).max)


def _as_float(x, name="x"):
    """x as an ndarray of float32 or float64 (float32 kept, other real dtypes -> float64)."""
    try:
        a = np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise ValueError(f"{name} is not an array of real numbers: {exc}") from None
    if a.dtype == np.float32 or a.dtype == np.float64:
        return a
    if a.dtype.kind in "biuf":
        return a.astype(np.float64)
    raise ValueError(f"{name} must hold real numbers, got dtype {a.dtype}")


# Work in blocks that stay in cache: the double-double code makes many temporaries, and on
# whole 10**6-element arrays their allocation costs more than the arithmetic.
_BLOCK = 16384


def _elementwise(x, core, lo, hi, below, above):
    """Apply core to the finite float64 values in [lo, hi]; the tails get below / above.

    below / above are a constant or a function of the tail values. NaN stays NaN. The result
    has x's shape and the dtype rule of the contract; float32 is rounded once from float64.
    """
    a = _as_float(x)
    v = a.astype(np.float64).ravel()  # a copy: the input is never touched
    out = np.empty_like(v)
    with np.errstate(all="ignore"):
        for start in range(0, v.size, _BLOCK):
            c = v[start:start + _BLOCK]
            bad = ~((c >= lo) & (c <= hi))  # tails, ±inf and NaN
            if bad.any():
                r = core(np.where(bad, 0.0, c))
                t = c[bad]
                r[bad] = np.where(t < lo, below(t) if callable(below) else below,
                                  np.where(t > hi, above(t) if callable(above) else above, t))
            else:
                r = core(c)
            out[start:start + _BLOCK] = r
    return out.reshape(a.shape).astype(a.dtype, copy=False)


def _check_slope(negative_slope):
    if isinstance(negative_slope, (bool, np.bool_)) or not isinstance(negative_slope,
                                                                      numbers.Real):
        raise ValueError(
            f"negative_slope must be a real number, got {type(negative_slope).__name__}")
    s = float(negative_slope)
    if not math.isfinite(s):
        raise ValueError(f"negative_slope must be finite, got {s}")
    return s


def _check_approximate(approximate):
    if not isinstance(approximate, str) or approximate not in ("none", "tanh"):
        raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")
    return approximate


# ---------------------------------------------------------------------------------------------
# Logistic building blocks on a = |x| >= 0 (float64 arrays, a finite and <= ~800)


def _logistic_parts(ah, al=0.0):
    """For E = exp(-a): (E, den, m, k) with den = 1 + E and exp(-a) = m * 2**-k, all dd.

    Then sigmoid(a) = 1 / den, sigmoid(-a) = m / den * 2**-k, sigmoid'(a) = m / den**2 * 2**-k.
    """
    mh, ml, k = nx.exp_neg(ah, al)
    eh, el = _scale(mh, k), _scale(ml, k)
    dh, dl = nx.fast_two_sum(1.0, eh)
    dh, dl = nx.fast_two_sum(dh, dl + el)
    return (eh, el), (dh, dl), (mh, ml), k


_TINY = float(np.finfo(np.float64).tiny)


def _scale(x, k):
    """x * 2**-k (exact for normal results); k may be the scalar 0."""
    return x if np.isscalar(k) and k == 0 else np.ldexp(x, -k)


def _k_where(mask, k):
    """The exponent k where mask is False, 0 where it is True (k may be the scalar 0)."""
    return k if np.isscalar(k) and k == 0 else np.where(mask, 0, k)


def _round_scaled(hi, lo, k):
    """(hi + lo) * 2**-k rounded once to float64, subnormal results included.

    ldexp(hi, -k) alone would round twice when the result is subnormal (hi + lo to 53 bits,
    then to the subnormal grid); the remainder decides the last bit instead.
    """
    if np.isscalar(k) and k == 0:
        return hi + lo
    r = np.ldexp(hi + lo, -k)
    sub = (np.abs(r) < _TINY) & (hi != 0)
    if np.any(sub):
        h, lo_, kk, rs = hi[sub], lo[sub], k[sub] if np.ndim(k) else k, r[sub]
        rem = (h - np.ldexp(rs, kk)) + lo_  # exact first difference: rs * 2**kk is close to h
        step = np.ldexp(np.float64(5e-324) + 0.0 * rs, kk)  # one subnormal ulp, scaled up
        r[sub] = rs + np.rint(rem / step) * 5e-324
    return r


# ---------------------------------------------------------------------------------------------
# ReLU family


def relu(x):
    """max(0, x) element-wise."""
    return _elementwise(x, lambda v: np.where(v > 0, v, 0.0), -np.inf, np.inf, 0.0, np.inf)


def relu_grad(x):
    """Derivative of relu: 1 for x > 0, else 0 (relu_grad(0) = 0, as torch)."""
    return _elementwise(x, lambda v: (v > 0).astype(np.float64), -np.inf, np.inf, 0.0, 1.0)


def leaky_relu(x, negative_slope=0.01):
    """x for x > 0, negative_slope * x otherwise."""
    s = _check_slope(negative_slope)
    below = -np.inf * s if s != 0 else -0.0  # the limit at -inf (0 * -inf would be NaN)
    return _elementwise(x, lambda v: np.where(v > 0, v, v * s), -_F64_MAX, np.inf, below,
                        np.inf)


def leaky_relu_grad(x, negative_slope=0.01):
    """Derivative of leaky_relu: 1 for x > 0, negative_slope otherwise (also at 0, as torch)."""
    s = _check_slope(negative_slope)
    return _elementwise(x, lambda v: np.where(v > 0, 1.0, s), -np.inf, np.inf, s, 1.0)


# ---------------------------------------------------------------------------------------------
# Sigmoid and tanh


def _sigmoid_core(v):
    _, (dh, dl), (mh, ml), k = _logistic_parts(np.abs(v))
    pos = v >= 0  # sigmoid(v) = 1 / den for v >= 0, exp(v) / den for v < 0
    qh, ql = nx.dd_div(np.where(pos, 1.0, mh), np.where(pos, 0.0, ml), dh, dl)
    return _round_scaled(qh, ql, _k_where(pos, k))


def sigmoid(x):
    """1 / (1 + exp(-x)), without overflow; subnormal results for x near -745 are exact."""
    return _elementwise(x, _sigmoid_core, -800.0, 800.0, 0.0, 1.0)


def _sigmoid_prime_scaled(ah, al=0.0):
    """sigmoid'(a) = exp(-a) / (1 + exp(-a))**2 as (dd, k): value = dd * 2**-k."""
    _, (dh, dl), (mh, ml), k = _logistic_parts(ah, al)
    sh, sl = nx.dd_mul(dh, dl, dh, dl)
    qh, ql = nx.dd_div(mh, ml, sh, sl)
    return qh, ql, k


def sigmoid_grad(x):
    """sigmoid(x) * (1 - sigmoid(x)), computed as t / (1 + t)**2 with t = exp(-|x|)."""
    def core(v):
        qh, ql, k = _sigmoid_prime_scaled(np.abs(v))
        return _round_scaled(qh, ql, k)
    return _elementwise(x, core, -800.0, 800.0, 0.0, 0.0)


# tanh Taylor coefficients 1, -1/3, 2/15, ... (x**(2n+1)) for |x| < 1/32
_TANH_SERIES = (-1 / 3, 2 / 15, -17 / 315, 62 / 2835, -1382 / 155925, 21844 / 6081075)


def _tanh_core(v):
    a = np.abs(v)
    (eh, el), (dh, dl), _, _ = _logistic_parts(2.0 * a)  # E = exp(-2|x|), den = 1 + E
    nh, nl = nx.two_sum(1.0, -eh)
    nh, nl = nx.fast_two_sum(nh, nl - el)
    qh, ql = nx.dd_div(nh, nl, dh, dl)
    big = qh + ql
    # near 0, 1 - E cancels: the odd series instead (|x**3 P(x**2) / x| < 4e-4 there)
    z = v * v
    s = _TANH_SERIES[-1]
    for c in _TANH_SERIES[-2::-1]:
        s = c + z * s
    small = v + v * (z * s)
    return np.where(a < 1 / 32, small, np.copysign(big, v))


def tanh(x):
    """Hyperbolic tangent, (1 - t) / (1 + t) with t = exp(-2|x|) in double-double."""
    return _elementwise(x, _tanh_core, -20.0, 20.0, -1.0, 1.0)


def tanh_grad(x):
    """1 - tanh(x)**2, computed as 4 t / (1 + t)**2 with t = exp(-2|x|) (no cancellation)."""
    def core(v):
        qh, ql, k = _sigmoid_prime_scaled(2.0 * np.abs(v))
        return _round_scaled(qh, ql, k - 2)
    return _elementwise(x, core, -400.0, 400.0, 0.0, 0.0)


# ---------------------------------------------------------------------------------------------
# SiLU


def _silu_core(v):
    (eh, el), (dh, dl), (mh, ml), k = _logistic_parts(np.abs(v))
    pos = v >= 0
    # sigmoid(v) as dd * 2**-kk: 1/den for v >= 0, exp(v)/den for v < 0
    nh = np.where(pos, 1.0, mh)
    nl = np.where(pos, 0.0, ml)
    kk = _k_where(pos, k)
    sh, sl = nx.dd_div(nh, nl, dh, dl)
    ph, pl = nx.two_prod(v, sh)
    return _round_scaled(ph, pl + v * sl, kk)


def silu(x):
    """x * sigmoid(x) (SiLU / swish), rounded once; silu(-inf) = 0."""
    return _elementwise(x, _silu_core, -800.0, 800.0, -0.0, lambda v: v)


def _silu_grad_core(v):
    (eh, el), (dh, dl), (mh, ml), k = _logistic_parts(np.abs(v))
    sh, sl = nx.dd_mul(dh, dl, dh, dl)
    qh, ql = nx.dd_div(mh, ml, sh, sl)  # sigmoid'(|v|) * 2**k
    # v >= 0: sigmoid(v) + v sigmoid'(v); v < 0: (1 + v + exp(v)) sigmoid'(v)
    ph, pl = nx.dd_div(1.0, 0.0, dh, dl)
    wh, wl = nx.two_prod(v, qh)
    wh, wl = _scale(wh, k), _scale(wl + v * ql, k)
    pos_h, pos_l = nx.dd_add(ph, pl, wh, wl)
    bh, bl = nx.two_sum(1.0, v)
    bh, bl = nx.dd_add(bh, bl, eh, el)
    gh, gl = nx.dd_mul(bh, bl, qh, ql)
    neg = _round_scaled(gh, gl, k)
    out = np.where(v >= 0, pos_h + pos_l, neg)
    near = np.abs(v - nx.ROOT_TAYLOR["silu"][0][0]) <= 1 / 16
    if np.any(near):
        out[near] = nx.root_taylor("silu", v[near])
    return out


def silu_grad(x):
    """sigmoid(x) * (1 + x * (1 - sigmoid(x))); accurate through its root at x = -1.2785."""
    return _elementwise(x, _silu_grad_core, -800.0, 800.0, -0.0, 1.0)


# ---------------------------------------------------------------------------------------------
# GELU


def _z_parts(v):
    """z = |v| / sqrt(2) and z*z = v*v / 2, both double-double."""
    a = np.abs(v)
    zh, zl = nx.two_prod(a, nx.INV_SQRT2[0])
    zh, zl = nx.fast_two_sum(zh, zl + a * nx.INV_SQRT2[1])
    sh, sl = nx.two_prod(v, v)
    return zh, zl, 0.5 * sh, 0.5 * sl


def _half_erfc_scaled(v):
    """0.5 erfc(|v|/sqrt2) = (hi + lo) * 2**-k, and exp(-v*v/2) = m * 2**-k, for |v| <= 40."""
    zh, zl, sh, sl = _z_parts(v)
    inside = zh <= nx.ERFCX_ZMAX
    zh = np.where(inside, zh, 0.0)
    eh, el = nx.erfcx_dd(zh, np.where(inside, zl, 0.0))
    mh, ml, k = nx.exp_neg(np.where(inside, sh, 1e9), sl)  # 1e9: exp -> 0
    ph, pl = nx.dd_mul(eh, el, mh, ml)
    return 0.5 * ph, 0.5 * pl, (mh, ml), k


def _gelu_exact_core(v):
    qh, ql, _, k = _half_erfc_scaled(v)  # Phi(-|v|) * 2**k
    # v < 0: v * Phi(v); v >= 0: v * (1 - Phi(-v))
    nh, nl = nx.two_prod(v, qh)
    neg = _round_scaled(nh, nl + v * ql, k)
    ch, cl = _scale(qh, k), _scale(ql, k)
    fh, fl = nx.two_sum(1.0, -ch)
    fh, fl = nx.fast_two_sum(fh, fl - cl)
    ph, pl = nx.two_prod(v, fh)
    return np.where(v < 0, neg, ph + (pl + v * fl))


def _gelu_exact_grad_core(v):
    # Phi(v) + v phi(v) = exp(-v*v/2) * (v / sqrt(2 pi) + 0.5 erfcx(-v/sqrt2))  (v < 0)
    #                   = 1 + exp(-v*v/2) * (v / sqrt(2 pi) - 0.5 erfcx(v/sqrt2))  (v >= 0)
    zh, zl, sh, sl = _z_parts(v)
    inside = zh <= nx.ERFCX_ZMAX
    eh, el = nx.erfcx_dd(np.where(inside, zh, 0.0), np.where(inside, zl, 0.0))
    mh, ml, k = nx.exp_neg(np.where(inside, sh, 1e9), sl)
    rh, rl = nx.two_prod(v, nx.INV_SQRT_2PI[0])
    rh, rl = nx.fast_two_sum(rh, rl + v * nx.INV_SQRT_2PI[1])
    sign = np.where(v < 0, 0.5, -0.5)
    bh, bl = nx.dd_add(rh, rl, sign * eh, sign * el)
    gh, gl = nx.dd_mul(bh, bl, mh, ml)
    neg = _round_scaled(gh, gl, k)
    th, tl = _scale(gh, k), _scale(gl, k)
    pos_h, pos_l = nx.two_sum(1.0, th)
    out = np.where(v < 0, neg, pos_h + (pos_l + tl))
    near = np.abs(v - nx.ROOT_TAYLOR["gelu"][0][0]) <= 1 / 16
    if np.any(near):
        out[near] = nx.root_taylor("gelu", v[near])
    return out


def _tanh_gelu_u(v):
    """u = sqrt(2/pi) (v + 0.044715 v**3) in double-double, for |v| <= 30."""
    sh, sl = nx.two_prod(v, v)
    ch, cl = nx.dd_mul(v, 0.0, sh, sl)
    ch, cl = nx.dd_mul(ch, cl, nx.KAPPA[0], nx.KAPPA[1])
    wh, wl = nx.dd_add(v, 0.0, ch, cl)
    uh, ul = nx.dd_mul(wh, wl, nx.SQRT_2_OVER_PI[0], nx.SQRT_2_OVER_PI[1])
    return uh, ul, (sh, sl)


def _gelu_tanh_core(v):
    # 0.5 v (1 + tanh u) = v sigmoid(2u): v / (1 + E) for v >= 0, v E / (1 + E) for v < 0,
    # with E = exp(-2|u|)
    uh, ul, _ = _tanh_gelu_u(v)
    (eh, el), (dh, dl), (mh, ml), k = _logistic_parts(2.0 * np.abs(uh), 2.0 * ul * np.sign(uh))
    pos = v >= 0
    nh = np.where(pos, 1.0, mh)
    nl = np.where(pos, 0.0, ml)
    kk = _k_where(pos, k)
    sh, sl = nx.dd_div(nh, nl, dh, dl)
    ph, pl = nx.two_prod(v, sh)
    return _round_scaled(ph, pl + v * sl, kk)


def _gelu_tanh_grad_core(v):
    # sigmoid(2u) (1 + w sigmoid(-2u)) with w = 2 v u', u' = sqrt(2/pi) (1 + 3 kappa v**2):
    #   v >= 0: sigmoid(2u) + w sigmoid'(2u);  v < 0: (1 + E + w) sigmoid'(2|u|)
    uh, ul, (sh, sl) = _tanh_gelu_u(v)
    (eh, el), (dh, dl), (mh, ml), k = _logistic_parts(2.0 * np.abs(uh), 2.0 * ul * np.sign(uh))
    d2h, d2l = nx.dd_mul(dh, dl, dh, dl)
    qh, ql = nx.dd_div(mh, ml, d2h, d2l)  # sigmoid'(2|u|) * 2**k
    th, tl = nx.dd_mul(sh, sl, nx.KAPPA[0], nx.KAPPA[1])
    th, tl = nx.dd_mul(th, tl, 3.0, 0.0)
    th, tl = nx.dd_add(1.0, 0.0, th, tl)
    th, tl = nx.dd_mul(th, tl, nx.SQRT_2_OVER_PI[0], nx.SQRT_2_OVER_PI[1])
    wh, wl = nx.dd_mul(th, tl, 2.0 * v, 0.0)
    # v >= 0
    ph, pl = nx.dd_div(1.0, 0.0, dh, dl)
    xh, xl = nx.dd_mul(wh, wl, qh, ql)
    pos_h, pos_l = nx.dd_add(ph, pl, _scale(xh, k), _scale(xl, k))
    # v < 0
    bh, bl = nx.dd_add(eh, el, wh, wl)
    bh, bl = nx.dd_add(bh, bl, 1.0, 0.0)
    gh, gl = nx.dd_mul(bh, bl, qh, ql)
    out = np.where(v >= 0, pos_h + pos_l, _round_scaled(gh, gl, k))
    near = np.abs(v - nx.ROOT_TAYLOR["gelu_tanh"][0][0]) <= 1 / 16
    if np.any(near):
        out[near] = nx.root_taylor("gelu_tanh", v[near])
    return out


def gelu(x, approximate="none"):
    """x * Phi(x) ("none", exact normal CDF) or the tanh approximation of torch ("tanh")."""
    if _check_approximate(approximate) == "tanh":
        return _elementwise(x, _gelu_tanh_core, -30.0, 30.0, -0.0, lambda v: v)
    return _elementwise(x, _gelu_exact_core, -40.0, 40.0, -0.0, lambda v: v)


def gelu_grad(x, approximate="none"):
    """Derivative of gelu: Phi(x) + x phi(x) ("none") or of the tanh form ("tanh")."""
    if _check_approximate(approximate) == "tanh":
        return _elementwise(x, _gelu_tanh_grad_core, -30.0, 30.0, -0.0, 1.0)
    return _elementwise(x, _gelu_exact_grad_core, -40.0, 40.0, -0.0, 1.0)


# ---------------------------------------------------------------------------------------------
# Softmax family


def _check_axis(axis, ndim):
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (numbers.Integral)):
        raise ValueError(f"axis must be an integer, got {axis!r}")
    axis = int(axis)
    if not -max(ndim, 1) <= axis < max(ndim, 1):
        raise ValueError(f"axis {axis} is out of range for an array with {ndim} dimensions")
    return axis


def _softmax_parts(xm):
    """Shared work of softmax / log_softmax on float64 rows xm (the axis is last).

    Returns z = x - max (dd), exp(z) = m * 2**-k (dd), and T (dd) = the sum of exp(z) over
    all but one maximal entry, so that the row sum is 1 + T with T's digits all kept.
    """
    mx = np.max(xm, axis=-1, keepdims=True)
    zh, zl = nx.two_sum(xm, -mx)
    finite = np.isfinite(zh)
    zl = np.where(finite, zl, 0.0)
    # exp of non-finite z: -inf -> 0, nan -> nan; finite z <= 0
    a = np.where(finite, -zh, 1e9)
    mh, ml, k = nx.exp_neg(a, -zl)
    mh = np.where(np.isnan(zh), np.nan, mh)
    e = _scale(mh, k).copy()  # copies: the max entries are zeroed below, mh must survive
    el = _scale(ml, k).copy()
    imax = np.argmax(np.where(np.isnan(xm), -np.inf, xm), axis=-1)[..., None]
    np.put_along_axis(e, imax, 0.0, axis=-1)
    np.put_along_axis(el, imax, 0.0, axis=-1)
    th, tl = nx.dd_sum_last(e, el)
    # a row holding NaN or +inf, or only -inf, is NaN throughout (as torch)
    rownan = np.any(np.isnan(zh), axis=-1)
    t = (np.where(rownan, np.nan, th)[..., None], tl[..., None])
    return (zh, zl), (mh, ml, k), t


def _softmax_rows(xm):
    _, (mh, ml, k), t = _softmax_parts(xm)
    sh, sl = nx.fast_two_sum(1.0, t[0])
    sh, sl = nx.fast_two_sum(sh, sl + t[1])
    qh, ql = nx.dd_div(mh, ml, sh, sl)
    out = _round_scaled(qh, ql, k)
    return np.where(np.isnan(sh), np.nan, out)


def _log_softmax_rows(xm):
    (zh, zl), _, t = _softmax_parts(xm)
    # log(1 + T): accurate when the row sum is near 1; T's low part as a first-order term
    lse = np.log1p(t[0]) + t[1] / (1.0 + t[0])
    rh, rl = nx.two_sum(zh, -lse)
    out = rh + (rl + zl)
    out = np.where(np.isnan(lse) | np.isnan(zh), np.nan, out)
    return np.where(np.isneginf(zh) & ~np.isnan(lse), -np.inf, out)


def _rowwise(v, axis, rows_fn):
    """Apply rows_fn to the rows of float64 v along axis, a block of rows at a time."""
    xm = np.moveaxis(v, axis, -1)
    shape = xm.shape
    flat = xm.reshape(-1, shape[-1])
    out = np.empty_like(flat)
    step = max(1, _BLOCK // shape[-1])
    with np.errstate(all="ignore"):
        for start in range(0, flat.shape[0], step):
            out[start:start + step] = rows_fn(flat[start:start + step])
    return np.moveaxis(out.reshape(shape), -1, axis)


def _softmax_like(x, axis, rows_fn):
    a = _as_float(x)
    axis = _check_axis(axis, a.ndim)
    v = a.astype(np.float64)
    if v.ndim == 0:
        v = v.reshape(1)
    if v.size == 0:
        return np.empty(a.shape, dtype=a.dtype)
    out = _rowwise(v, axis, rows_fn)
    return out.reshape(a.shape).astype(a.dtype, copy=False)


def softmax(x, axis=-1):
    """exp(x - max) / sum(exp(x - max)) along axis.

    Conventions (as torch): a row holding +inf or NaN, or only -inf, gives NaN throughout;
    a -inf entry in an otherwise finite row gets 0. 0-d input is one row of length 1.
    """
    return _softmax_like(x, axis, _softmax_rows)


def log_softmax(x, axis=-1):
    """x - max - log(sum(exp(x - max))) along axis; -inf entries give -inf, conventions as
    softmax otherwise (NaN rows for +inf, NaN or all -inf)."""
    return _softmax_like(x, axis, _log_softmax_rows)


def cross_entropy(logits, targets):
    """Mean negative log-likelihood of integer class targets (N,) under logits (N, C).

    Returns a 0-d array of the logits' dtype (float64 for non-float logits); NaN for N = 0,
    as torch's mean reduction.
    """
    a = _as_float(logits, "logits")
    if a.ndim != 2:
        raise ValueError(f"logits must have shape (N, C), got shape {a.shape}")
    t = np.asarray(targets)
    if t.size == 0 and t.dtype.kind in "biuf":
        t = t.astype(np.intp)
    if t.dtype.kind not in "iu":
        raise ValueError(f"targets must be integer class indices, got dtype {t.dtype}")
    if t.shape != (a.shape[0],):
        raise ValueError(f"targets must have shape ({a.shape[0]},) to match logits {a.shape}, "
                         f"got {t.shape}")
    n, c = a.shape
    if n and (t.min() < 0 or t.max() >= c):
        raise ValueError(f"targets must lie in [0, {c}), got values from {t.min()} to {t.max()}")
    if n == 0:
        return np.asarray(np.nan, dtype=a.dtype)
    logp = _rowwise(a.astype(np.float64), -1, _log_softmax_rows)
    picked = logp[np.arange(n), t.astype(np.intp)]
    with np.errstate(all="ignore"):
        if np.all(np.isfinite(picked)):
            value = -math.fsum(picked.tolist()) / n
        else:
            value = -float(np.sum(picked)) / n
    return np.asarray(value, dtype=a.dtype)


# ---------------------------------------------------------------------------------------------
# Layers


def collapse_linear(weights, biases):
    """The single layer (W, b) equal to the stack h -> h @ weights[i].T + biases[i].

    weights[i] has shape (out_i, in_i), biases[i] shape (out_i,), in_{i+1} = out_i. Products
    are formed in float64; the result is float32 only if every input is float32.
    """
    try:
        ws = [np.asarray(w) for w in weights]
        bs = [np.asarray(b) for b in biases]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"weights and biases must be sequences of arrays: {exc}") from None
    if not ws:
        raise ValueError("collapse_linear needs at least one layer")
    if len(ws) != len(bs):
        raise ValueError(f"got {len(ws)} weight matrices but {len(bs)} bias vectors")
    for i, (w, b) in enumerate(zip(ws, bs, strict=True)):
        for name, arr in (("weights", w), ("biases", b)):
            if arr.dtype.kind not in "biuf":
                raise ValueError(f"{name}[{i}] must hold real numbers, got dtype {arr.dtype}")
        if w.ndim != 2:
            raise ValueError(f"weights[{i}] must be 2-D (out, in), got shape {w.shape}")
        if b.shape != (w.shape[0],):
            raise ValueError(f"biases[{i}] must have shape ({w.shape[0]},), got {b.shape}")
        if i and w.shape[1] != ws[i - 1].shape[0]:
            raise ValueError(f"weights[{i}] takes {w.shape[1]} inputs but layer {i - 1} "
                             f"gives {ws[i - 1].shape[0]}")
    dtype = (np.float32 if all(arr.dtype == np.float32 for arr in ws + bs) else np.float64)
    W = ws[0].astype(np.float64)
    b = bs[0].astype(np.float64)
    for w, bi in zip(ws[1:], bs[1:], strict=True):
        w = w.astype(np.float64)
        W = w @ W
        b = w @ b + bi
    return W.astype(dtype), b.astype(dtype)


def dead_fraction(preacts):
    """Fraction of units (columns) whose pre-activation is <= 0 for every sample (row).

    preacts has shape (N samples, U units); returns a Python float. NaN never counts as
    <= 0; with N = 0 every unit is vacuously dead (1.0); with U = 0 the result is NaN.
    """
    p = _as_float(preacts, "preacts")
    if p.ndim != 2:
        raise ValueError(f"preacts must have shape (N samples, U units), got shape {p.shape}")
    if p.shape[1] == 0:
        return float("nan")
    return float(np.mean(np.all(p <= 0, axis=0)))
