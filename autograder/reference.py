"""Reference activation kernels: the arbiter of every student's grade.

PROVISIONAL straightforward version; to be replaced by the ULP-accurate implementation.
"""
import numpy as np
from scipy import special


def _as_float(x):
    x = np.asarray(x)
    if x.dtype in (np.float32, np.float64):
        return x
    return x.astype(np.float64)


def relu(x):
    x = _as_float(x)
    return np.maximum(x, 0, dtype=x.dtype) if x.ndim else np.asarray(np.maximum(x, 0)).astype(x.dtype)


def relu_grad(x):
    x = _as_float(x)
    return np.where(np.isnan(x), x, (x > 0).astype(x.dtype))


def leaky_relu(x, negative_slope=0.01):
    x = _as_float(x)
    return np.where(x > 0, x, x * x.dtype.type(negative_slope))


def leaky_relu_grad(x, negative_slope=0.01):
    x = _as_float(x)
    g = np.where(x > 0, x.dtype.type(1), x.dtype.type(negative_slope))
    return np.where(np.isnan(x), x, g)


def sigmoid(x):
    x = _as_float(x)
    return special.expit(x).astype(x.dtype)


def sigmoid_grad(x):
    s = sigmoid(x)
    return s * (1 - s)


def tanh(x):
    return np.tanh(_as_float(x))


def tanh_grad(x):
    t = tanh(x)
    return 1 - t * t


def silu(x):
    x = _as_float(x)
    return x * sigmoid(x)


def silu_grad(x):
    x = _as_float(x)
    s = sigmoid(x)
    return s * (1 + x * (1 - s))


def gelu(x, approximate="none"):
    x = _as_float(x)
    if approximate == "tanh":
        u = np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)
        return (0.5 * x * (1 + np.tanh(u))).astype(x.dtype)
    return (0.5 * x * special.erfc(-x / np.sqrt(2))).astype(x.dtype)


def gelu_grad(x, approximate="none"):
    x = _as_float(x)
    if approximate == "tanh":
        c = np.sqrt(2 / np.pi)
        u = c * (x + 0.044715 * x**3)
        t = np.tanh(u)
        return (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * 0.044715 * x**2)).astype(x.dtype)
    pdf = np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi)
    return (0.5 * special.erfc(-x / np.sqrt(2)) + x * pdf).astype(x.dtype)


def softmax(x, axis=-1):
    x = _as_float(x)
    z = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(z)
    return e / np.sum(e, axis=axis, keepdims=True)


def log_softmax(x, axis=-1):
    x = _as_float(x)
    z = x - np.max(x, axis=axis, keepdims=True)
    return z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))


def cross_entropy(logits, targets):
    logp = log_softmax(logits, axis=-1)
    targets = np.asarray(targets)
    return -np.mean(logp[np.arange(len(targets)), targets])


def collapse_linear(weights, biases):
    W = np.asarray(weights[0], dtype=np.float64)
    b = np.asarray(biases[0], dtype=np.float64)
    for Wi, bi in zip(weights[1:], biases[1:]):
        Wi = np.asarray(Wi, dtype=np.float64)
        W = Wi @ W
        b = Wi @ b + np.asarray(bi, dtype=np.float64)
    return W, b


def dead_fraction(preacts):
    preacts = np.asarray(preacts)
    return float(np.mean(np.all(preacts <= 0, axis=0)))
