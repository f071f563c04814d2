"""Visible checks students run in the notebooks (PROVISIONAL minimal version)."""
import numpy as np
import torch


def _torch_reference(name, x):
    t = torch.as_tensor(np.asarray(x, dtype=np.float64))
    if name == "relu":
        return torch.relu(t).numpy()
    if name == "relu_grad":
        return (t > 0).double().numpy()
    raise KeyError(name)


def check_kernel(name, fn):
    """Compare fn with torch on a few inputs; raise AssertionError with a friendly message."""
    x = np.linspace(-3, 3, 7)
    expected = _torch_reference(name, x)
    actual = np.asarray(fn(x))
    assert actual.shape == expected.shape, f"{name}: expected shape {expected.shape}, got {actual.shape}"
    assert np.allclose(actual, expected), (
        f"{name}({x.tolist()}) should be {expected.tolist()}, got {actual.tolist()}"
    )
    print(f"{name}: visible checks passed.")
