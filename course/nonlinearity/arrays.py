"""The dtype boilerplate every kernel of the course starts with, written once.

The kernel contract (what `relu`, `gelu`, `softmax`, ... accept and return): any array-like
comes in (a Python number, a list, an ndarray of any shape, a 0-d array); float32 stays float32,
float64 stays float64, everything else (ints, bools, lists of Python floats) becomes float64.
`as_float_array(x)` does exactly that and nothing more, so a kernel's body can be the
mathematics alone.
"""
import numpy as np

__all__ = ["as_float_array"]


def as_float_array(x):
    """x as an np.ndarray of dtype float32 (if it already was) or float64 (everything else).

    Never copies a float32 or float64 array (so don't write into the result: work on new
    arrays, as np.maximum, np.where and arithmetic give you); a Python scalar becomes a 0-d
    array, which numpy's functions accept like any other array.
    """
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    return x
