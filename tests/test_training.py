"""nonlinearity.training (device, seeding, MLPs, training loop, probes) and the model checks.

Covers the helpers behind notebooks 6 and 7 and the visible (nonlinearity.checks_models) and
hidden (autograder.recorders.models) checks of their exercises: both pass the solutions and fail
typical wrong implementations with a message naming the mistake. About 15 s on 2 cores.
"""

from __future__ import annotations

import math
from unittest import mock

import numpy as np
import pytest
import torch
from torch import nn

from autograder.recorders.models import grade_function
from nonlinearity import training
from nonlinearity.checks_models import check_function

torch.set_num_threads(min(2, torch.get_num_threads()))


# ---------------------------------------------------------------- device selection


@pytest.mark.parametrize(
    ("cuda", "mps", "expected"),
    [(True, True, "cuda"), (True, False, "cuda"), (False, True, "mps"), (False, False, "cpu")],
)
def test_select_device_prefers_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, expected):
    monkeypatch.delenv(training.DEVICE_ENV, raising=False)
    with mock.patch("torch.cuda.is_available", return_value=cuda), \
            mock.patch("torch.backends.mps.is_available", return_value=mps):
        assert training.select_device().type == expected


def test_select_device_without_mps_backend(monkeypatch):
    monkeypatch.delenv(training.DEVICE_ENV, raising=False)
    monkeypatch.delattr(torch.backends, "mps", raising=False)
    with mock.patch("torch.cuda.is_available", return_value=False):
        assert training.select_device().type == "cpu"


def test_select_device_honours_a_request_and_refuses_a_missing_device(monkeypatch):
    monkeypatch.setenv(training.DEVICE_ENV, "cpu")
    with mock.patch("torch.cuda.is_available", return_value=True):
        assert training.select_device().type == "cpu"
    monkeypatch.delenv(training.DEVICE_ENV)
    with mock.patch("torch.cuda.is_available", return_value=False), pytest.raises(RuntimeError):
        training.select_device("cuda")


def test_full_size_switch(monkeypatch):
    monkeypatch.delenv(training.FULL_ENV, raising=False)
    assert not training.full_size() and training.pick(1, 2) == 1
    for value in ("1", "true", "YES"):
        monkeypatch.setenv(training.FULL_ENV, value)
        assert training.full_size() and training.pick(1, 2) == 2
    monkeypatch.setenv(training.FULL_ENV, "0")
    assert not training.full_size()


# ---------------------------------------------------------------- data, models, training


def test_two_moons_is_deterministic_and_standardised():
    X, y = training.two_moons(200, seed=3)
    X2, y2 = training.two_moons(200, seed=3)
    assert X.shape == (200, 2) and X.dtype == np.float32 and y.dtype == np.int64
    assert np.array_equal(X, X2) and np.array_equal(y, y2)
    assert np.allclose(X.mean(axis=0), 0, atol=1e-5) and np.allclose(X.std(axis=0), 1, atol=1e-4)
    assert set(np.unique(y)) == {0, 1}


def test_make_mlp_structure_and_inits():
    gen = torch.Generator().manual_seed(0)
    model = training.make_mlp(3, [400, 300], 2, activation="gelu", init="he", bias=-0.5, generator=gen)
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["Linear", "GELU", "Linear", "GELU", "Linear"]
    assert torch.all(model[0].bias == -0.5) and torch.all(model[2].bias == -0.5)
    assert math.isclose(float(model[2].weight.detach().std()), math.sqrt(2 / 400), rel_tol=0.05)
    xavier = training.make_deep_mlp(3, width=300, in_features=300, activation="tanh", init="xavier",
                                    generator=gen)
    assert len(training.linear_layers(xavier)) == 3
    assert math.isclose(float(xavier[2].weight.detach().std()), math.sqrt(2 / 600), rel_tol=0.05)
    with pytest.raises(ValueError):
        training.make_mlp(2, [4], 2, activation="swish")


def _easy_run(seed):
    X, y = training.two_moons(256, seed=0)
    model = training.make_mlp(2, [32], 2, generator=torch.Generator().manual_seed(seed))
    return training.train(model, X, y, epochs=8, lr=0.05, optimizer="adam", seed=seed,
                          on_epoch=lambda m: float(m[0].weight.sum()))


def test_training_is_reproducible_with_a_seed():
    a, b = _easy_run(1), _easy_run(1)
    assert a.loss == b.loss and a.accuracy == b.accuracy and a.probes == b.probes
    assert _easy_run(2).loss != a.loss


def test_training_reduces_the_loss_on_an_easy_problem():
    history = _easy_run(0)
    assert history.epochs == 8 and len(history.probes) == 9  # one probe before training
    assert history.loss[-1] < 0.5 * history.loss[0]
    assert history.accuracy[-1] > 0.85


def test_with_fallback_prints_once_and_falls_back(capsys):
    def stub(x):
        raise NotImplementedError()

    fn = training.with_fallback(stub, lambda x: x + 1, "implement it first")
    assert fn(1) == 2 and fn(2) == 3
    assert capsys.readouterr().out == "implement it first\n"
    assert training.with_fallback(lambda x: x * 10, lambda x: 0, "unused")(2) == 20


# ---------------------------------------------------------------- the dead-ReLU experiment


def test_killing_setting_kills_units_and_healthy_setting_does_not(monkeypatch):
    monkeypatch.delenv(training.FULL_ENV, raising=False)
    _, killed = training.dead_relu_run(**training.KILLING, epochs=15)
    _, healthy = training.dead_relu_run(**training.HEALTHY, epochs=15)
    assert killed.probes[-1] > 0.3, killed.probes
    assert healthy.probes[-1] < 0.1, healthy.probes
    assert killed.accuracy[-1] > 0.8  # the units die, the training does not blow up


def test_hidden_preacts_and_count_dead():
    model = training.make_mlp(2, [5, 4], 2)
    X = np.random.default_rng(0).normal(size=(7, 2)).astype(np.float32)
    pre = training.hidden_preacts(model, X)
    assert [p.shape for p in pre] == [(7, 5), (7, 4)]
    assert training.count_dead([[1.0, -1.0, 0.0], [-2.0, -1.0, 0.0]]) == pytest.approx(2 / 3)


# ---------------------------------------------------------------- vanishing gradients


def test_deep_sigmoid_gradients_vanish_along_the_quarter_power_trend():
    depth = 20
    gen = torch.Generator().manual_seed(0)
    model = training.make_deep_mlp(depth, activation="sigmoid", init="xavier", generator=gen)
    x, y = torch.randn(128, 16, generator=gen), torch.randn(128, 1, generator=gen)
    norms = training.gradient_norms(model, x, y, nn.MSELoss())
    assert norms.shape == (depth,)
    ratios = norms / norms[-1]
    # below the 0.25^(L-l) trend, allowing one layer's worth of slack
    assert np.all(ratios <= 4 * 0.25 ** (depth - 1 - np.arange(depth)))
    assert ratios[0] < 1e-9
    relu = training.make_deep_mlp(depth, activation="relu", init="he", generator=gen)
    relu_norms = training.gradient_norms(relu, x, y, nn.MSELoss())
    assert 0.01 < relu_norms[0] / relu_norms[-1] < 100  # ReLU with He init does not vanish


def _depth_norms(depth, activation, **net):
    gen = torch.Generator().manual_seed(0)
    model = training.make_deep_mlp(depth, activation=activation, generator=gen, **net)
    x, y = torch.randn(128, 16, generator=gen), torch.randn(128, 1, generator=gen)
    return training.gradient_norms(model, x, y, nn.MSELoss())


def test_deep_mlp_blocks_keep_the_linear_layers_and_their_order():
    for block in training.BLOCKS:
        model = training.make_deep_mlp(6, width=8, in_features=3, activation="tanh", block=block)
        linears = training.linear_layers(model)
        assert [tuple(m.weight.shape) for m in linears] == [(8, 3)] + [(8, 8)] * 4 + [(1, 8)]
        assert model(torch.randn(5, 3)).shape == (5, 1)
    norms = {type(m).__name__ for m in training.make_deep_mlp(4, block="batchnorm").modules()}
    assert "BatchNorm1d" in norms
    with pytest.raises(ValueError, match="block"):
        training.make_deep_mlp(4, block="dense")


def test_gain_scales_every_weight():
    plain = training.make_deep_mlp(4, init="he", generator=torch.Generator().manual_seed(3))
    doubled = training.make_deep_mlp(4, init="he", gain=2.0, generator=torch.Generator().manual_seed(3))
    for a, b in zip(training.linear_layers(plain), training.linear_layers(doubled), strict=True):
        assert torch.allclose(2 * a.weight, b.weight) and torch.equal(a.bias, b.bias)


def test_normalisation_and_residual_keep_a_deep_sigmoid_network_alive():
    """Notebook 7's cures: depth 30, the first layer's gradient vanishes without them."""
    ratio = {block: (n := _depth_norms(30, "sigmoid", block=block))[0] / n[-1]
             for block in ("plain", "batchnorm", "residual")}
    assert ratio["plain"] < 1e-12
    assert ratio["batchnorm"] > 1e-2 and ratio["residual"] > 1e-5


def test_large_weights_make_tanh_gradients_explode_and_he_restores_relu_not_gelu():
    """Notebook 7's claims: a gain of 4 makes the norms grow towards the input; with He
    weights ReLU's norms are of order 1 and GELU's about ten times lower, both flat."""
    exploding = _depth_norms(20, "tanh", gain=4.0)
    assert exploding[0] / exploding[-1] > 100
    relu, gelu = _depth_norms(20, "relu", init="he"), _depth_norms(20, "gelu", init="he")
    assert 0.1 < relu.min() and relu.max() < 10
    assert gelu.max() < relu.min() and gelu.max() / gelu.min() < 10


def test_dead_unit_tracker_counts_units_that_come_back():
    tracker = training.DeadUnitTracker()
    assert tracker(np.array([[-1.0, 1.0, 0.0], [-2.0, -1.0, 0.0]])) == pytest.approx(2 / 3)
    tracker(np.array([[1.0, 1.0, -1.0]]))  # unit 0 came back, unit 2 still dead
    tracker(np.array([[-1.0, 1.0, 1.0]]))  # unit 0 died again, unit 2 came back
    assert tracker.came_back() == 2
    assert training.DeadUnitTracker().came_back() == 0


def test_gradient_norms_leave_grad_fields_alone():
    model = training.make_deep_mlp(3, width=4, in_features=2)
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    training.gradient_norms(model, torch.randn(5, 2), torch.randn(5, 1), nn.MSELoss())
    assert all(torch.all(p.grad == 1) for p in model.parameters())


# ---------------------------------------------------------------- exercise checks


def _he_rows(layer, n, generator):
    return torch.randn(n, layer.in_features, generator=generator) * math.sqrt(2 / layer.in_features)


def revive_ok(layer, preacts, generator=None):
    dead = torch.as_tensor(np.all(np.asarray(preacts) <= 0, axis=0))
    n = int(dead.sum())
    with torch.no_grad():
        layer.weight[dead] = _he_rows(layer, n, generator)
        layer.bias[dead] = 0.0
    return n


def revive_strict_less(layer, preacts, generator=None):  # < 0 instead of <= 0
    dead = torch.as_tensor(np.all(np.asarray(preacts) < 0, axis=0))
    with torch.no_grad():
        layer.weight[dead] = _he_rows(layer, int(dead.sum()), generator)
        layer.bias[dead] = 0.0
    return int(dead.sum())


def revive_xavier(layer, preacts, generator=None):
    dead = torch.as_tensor(np.all(np.asarray(preacts) <= 0, axis=0))
    std = math.sqrt(2 / (layer.in_features + layer.out_features))
    with torch.no_grad():
        layer.weight[dead] = torch.randn(int(dead.sum()), layer.in_features, generator=generator) * std
        layer.bias[dead] = 0.0
    return int(dead.sum())


def revive_keeps_bias(layer, preacts, generator=None):
    dead = torch.as_tensor(np.all(np.asarray(preacts) <= 0, axis=0))
    with torch.no_grad():
        layer.weight[dead] = _he_rows(layer, int(dead.sum()), generator)
    return int(dead.sum())


def revive_new_parameter(layer, preacts, generator=None):
    dead = torch.as_tensor(np.all(np.asarray(preacts) <= 0, axis=0))
    w = layer.weight.detach().clone()
    b = layer.bias.detach().clone()
    w[dead] = _he_rows(layer, int(dead.sum()), generator)
    b[dead] = 0.0
    layer.weight = nn.Parameter(w)
    layer.bias = nn.Parameter(b)
    return int(dead.sum())


def revive_everything(layer, preacts, generator=None):
    with torch.no_grad():
        layer.weight.copy_(_he_rows(layer, layer.out_features, generator))
        layer.bias.zero_()
    return layer.out_features


def norms_ok(model, x, y, loss_fn):
    weights = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
    grads = torch.autograd.grad(loss_fn(model(x), y), weights)
    return np.array([float(g.norm()) for g in grads])


def norms_zero_grad(model, x, y, loss_fn):  # the other common correct way
    model.zero_grad()
    loss_fn(model(x), y).backward()
    return np.array([m.weight.grad.norm().item() for m in model.modules() if isinstance(m, nn.Linear)])


def norms_reversed(model, x, y, loss_fn):
    return norms_ok(model, x, y, loss_fn)[::-1].copy()


def norms_squared(model, x, y, loss_fn):
    return norms_ok(model, x, y, loss_fn) ** 2


def norms_stale(model, x, y, loss_fn):  # forgets model.zero_grad()
    loss_fn(model(x), y).backward()
    return np.array([float(m.weight.grad.norm()) for m in model.modules() if isinstance(m, nn.Linear)])


def norms_with_bias(model, x, y, loss_fn):
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    grads = torch.autograd.grad(loss_fn(model(x), y), [p for m in linears for p in (m.weight, m.bias)])
    pairs = zip(grads[::2], grads[1::2], strict=True)
    return np.array([float(torch.sqrt(gw.norm() ** 2 + gb.norm() ** 2)) for gw, gb in pairs])


def norms_as_list(model, x, y, loss_fn):
    return list(norms_ok(model, x, y, loss_fn))


def init_ok(fan_in, fan_out, kind):
    if kind == "xavier":
        return math.sqrt(2 / (fan_in + fan_out))
    if kind == "he":
        return math.sqrt(2 / fan_in)
    raise ValueError(kind)


def init_variance(fan_in, fan_out, kind):
    return init_ok(fan_in, fan_out, kind) ** 2


def init_he_fan_out(fan_in, fan_out, kind):
    return math.sqrt(2 / fan_out) if kind == "he" else init_ok(fan_in, fan_out, kind)


def init_lecun(fan_in, fan_out, kind):
    return math.sqrt(1 / fan_in) if kind == "he" else init_ok(fan_in, fan_out, kind)


def init_no_error(fan_in, fan_out, kind):
    return math.sqrt(2 / fan_in) if kind == "he" else math.sqrt(2 / (fan_in + fan_out))


@pytest.mark.parametrize(("name", "fn"), [("revive_dead_units", revive_ok), ("layer_grad_norms", norms_ok),
                                          ("layer_grad_norms", norms_zero_grad), ("init_std", init_ok)])
def test_checks_pass_the_solutions(name, fn, capsys):
    check_function(name, fn)
    grade_function(name, fn)
    captured = capsys.readouterr()
    assert "passed" in captured.out and captured.err == ""


WRONG = [
    ("revive_dead_units", revive_strict_less, "<= 0"),
    ("revive_dead_units", revive_xavier, "Xavier"),
    ("revive_dead_units", revive_keeps_bias, "bias"),
    ("revive_dead_units", revive_new_parameter, "in place"),
    ("revive_dead_units", revive_everything, "every unit"),
    ("layer_grad_norms", norms_reversed, "first layer first"),
    ("layer_grad_norms", norms_squared, "squared"),
    ("layer_grad_norms", norms_stale, "stale gradients"),
    ("layer_grad_norms", norms_with_bias, "bias"),
    ("layer_grad_norms", norms_as_list, "numpy array"),
    ("init_std", init_variance, "variance"),
    ("init_std", init_he_fan_out, "fan_in, not fan_out"),
    ("init_std", init_lecun, "LeCun"),
    ("init_std", init_no_error, "ValueError"),
]


@pytest.mark.parametrize(("name", "fn", "hint"), WRONG, ids=[fn.__name__ for _, fn, _ in WRONG])
def test_hidden_checks_reject_wrong_implementations_with_a_useful_message(name, fn, hint, capsys):
    with pytest.raises(AssertionError, match=None) as info:
        grade_function(name, fn)
    assert hint in str(info.value), str(info.value)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(("name", "fn"), [("revive_dead_units", revive_strict_less),
                                          ("revive_dead_units", revive_keeps_bias),
                                          ("layer_grad_norms", norms_reversed),
                                          ("layer_grad_norms", norms_squared),
                                          ("init_std", init_variance), ("init_std", init_no_error)])
def test_visible_checks_reject_wrong_implementations(name, fn):
    with pytest.raises(AssertionError):
        check_function(name, fn)


def test_a_warning_in_student_code_becomes_an_assertion_not_stderr(capsys):
    def noisy(fan_in, fan_out, kind):
        np.log(np.zeros(1))  # RuntimeWarning: divide by zero
        return init_ok(fan_in, fan_out, kind)

    with pytest.raises(AssertionError, match="warning"):
        grade_function("init_std", noisy)
    assert capsys.readouterr().err == ""


def test_stub_fails_the_hidden_check():
    def stub(*args):
        raise NotImplementedError()

    for name in ("revive_dead_units", "layer_grad_norms", "init_std"):
        with pytest.raises(NotImplementedError):
            grade_function(name, stub)


# ---------------------------------------------------------------- notebook 9's output choices


def test_output_choices_are_checked_for_form_only(capsys):
    from nonlinearity.checks_models import check_output_choice, choice_text

    assert choice_text((" Sigmoid ", "BINARY_CROSS_ENTROPY")) == "sigmoid + binary_cross_entropy"
    check_output_choice({"a": ["identity", "squared_error"]}, "a")
    assert "identity + squared_error" in capsys.readouterr().out
    for bad, hint in [(None, "pair"), (("sigmoid",), "pair"), (("sigmoidal", "cross_entropy"), "activations"),
                      (("softmax", "mse"), "losses")]:
        with pytest.raises(AssertionError, match=hint):
            check_output_choice({"a": bad}, "a")
    with pytest.raises(AssertionError, match="no answer"):
        check_output_choice({}, "a")


def test_output_choice_keys_match_the_graded_answers():
    """The keys in notebook 9's hidden tests are what choice_text writes for a right answer."""
    import nbformat
    from conftest import SOLUTIONS

    from autograder.judging import trusted
    from nonlinearity.checks_models import choice_text

    path = SOLUTIONS / "09_choosing_an_activation.ipynb"
    keys = {a.question: a.expected for checks in trusted.hidden_checks(path).values() for a in checks}
    namespace = {}
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "answer_q09_output_choices":
            exec(cell.source, namespace)  # noqa: S102 - the course's own solution cell
    choices = namespace["output_choices"]
    assert len(choices) == 5
    for k, task in enumerate(sorted(choices), start=1):
        assert keys[f"q09_{k}"] == choice_text(choices[task])


# ---------------------------------------------------------------- figures and explorers


def test_figures_and_explorers_build_headless(monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nonlinearity import training_plots

    monkeypatch.delenv(training.FULL_ENV, raising=False)
    X, y = training.two_moons(64, seed=0)
    model, history = training.dead_relu_run(**training.KILLING, epochs=2, data=(X, y))
    figures = [
        training_plots.plot_dead_fraction({"a": history}, title="t"),
        training_plots.plot_unit_lines(model, X, y, title="t"),
        training_plots.plot_grad_norms({"sigmoid": np.array([1e-3, 1e-2, 1.0])}, title="t",
                                       bound_from="sigmoid"),
        training_plots.plot_depth_sweep({"sigmoid": (np.array([2, 4]), np.array([0.3, 0.01]))}, title="t"),
    ]
    for fig in figures:
        assert fig.axes[0].get_title()
        plt.close(fig)
    training_plots.dead_fraction_explorer(training.count_dead, epochs=1)
    training_plots.grad_norm_explorer(lambda depth, activation, init: np.ones(depth), depth=3)
    plt.close("all")
