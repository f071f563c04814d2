"""The seed's worked examples reappear in the course and match, digit for digit.

The expected numbers are what the seed's program prints (torch, rounded to 3 places);
the reference kernels, torch and the notebooks' own tables must all agree with them.
"""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from autograder.judging import reference

ROOT = Path(__file__).resolve().parents[1]

SEED_TABLE = {
    "ReLU": [0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 3.0],
    "LeakyReLU": [-0.03, -0.02, -0.01, 0.0, 1.0, 2.0, 3.0],
    "GELU": [-0.004, -0.046, -0.159, 0.0, 0.841, 1.954, 2.996],
    "Sigmoid": [0.047, 0.119, 0.269, 0.5, 0.731, 0.881, 0.953],
    "Tanh": [-0.995, -0.964, -0.762, 0.0, 0.762, 0.964, 0.995],
}
SEED_SOFTMAX = [0.659, 0.242, 0.099]

REFERENCE = {
    "ReLU": reference.relu,
    "LeakyReLU": lambda x: reference.leaky_relu(x, 0.01),
    "GELU": reference.gelu,
    "Sigmoid": reference.sigmoid,
    "Tanh": reference.tanh,
}
TORCH = {
    "ReLU": torch.nn.ReLU(),
    "LeakyReLU": torch.nn.LeakyReLU(0.01),
    "GELU": torch.nn.GELU(),
    "Sigmoid": torch.nn.Sigmoid(),
    "Tanh": torch.nn.Tanh(),
}


@pytest.mark.parametrize("name", SEED_TABLE)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_reference_reproduces_the_seed_table(name, dtype):
    x = np.linspace(-3, 3, 7, dtype=dtype)
    got = np.round(REFERENCE[name](x).astype(np.float64), 3)
    np.testing.assert_array_equal(got, SEED_TABLE[name], err_msg=f"{name} on linspace(-3, 3, 7)")


@pytest.mark.parametrize("name", SEED_TABLE)
def test_torch_prints_the_seed_table(name):
    y = TORCH[name](torch.linspace(-3, 3, 7)).tolist()
    assert [round(v, 3) for v in y] == SEED_TABLE[name]


def test_softmax_example():
    np.testing.assert_array_equal(np.round(reference.softmax([2.0, 1.0, 0.1]), 3), SEED_SOFTMAX)
    torch_probs = torch.nn.functional.softmax(torch.tensor([[2.0, 1.0, 0.1]]), dim=-1)
    assert [round(v, 3) for v in torch_probs[0].tolist()] == SEED_SOFTMAX


def _notebook_text(stem: str) -> str:
    (path,) = ROOT.glob(f"solutions/{stem}*.ipynb")
    return "\n".join("".join(cell["source"]) for cell in json.loads(path.read_text())["cells"])


def _formatted(values) -> list[str]:
    return [f"{v:g}" for v in values]


@pytest.mark.parametrize("name", SEED_TABLE)
def test_relu_notebook_shows_the_seed_table(name):
    text = _notebook_text("02_")
    assert "torch.linspace(-3, 3, 7)" in text, "notebook 2 should run the seed example on linspace(-3, 3, 7)"
    row = next((line for line in text.splitlines() if line.lstrip("| ").startswith(name)), None)
    assert row is not None, f"notebook 2 has no table row for {name}"
    for value in _formatted(SEED_TABLE[name]):
        assert value in row.replace("−", "-"), f"{name} row of notebook 2 lacks {value}: {row}"


def test_softmax_notebook_shows_the_seed_example():
    text = _notebook_text("05_")
    assert "[2.0, 1.0, 0.1]" in text
    for value in SEED_SOFTMAX:
        assert str(value) in text, f"notebook 5 should show softmax([2.0, 1.0, 0.1]) ≈ {SEED_SOFTMAX}"
