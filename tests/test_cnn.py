"""nonlinearity.cnn (reference builder, experiment runner, seed comparison) and the make_cnn checks."""

import json
import math

import pytest
import torch
from torch import nn

from autograder.recorders.cnn import grade_cnn
from nonlinearity import checks_cnn, cnn, images


def reference(activation, in_channels=3, n_classes=10, *, width=16, image_size=32):
    """What a student would write (a wrapper: the bare reference builder itself is refused)."""
    return cnn.make_reference_cnn(activation, in_channels, n_classes, width=width, image_size=image_size)


def missing_pool(activation, in_channels=3, n_classes=10, *, width=16, image_size=32):
    act = checks_cnn.ACTIVATION_MODULES[activation]
    layers, c = [], in_channels
    for out in (width, 2 * width, 4 * width):
        layers += [nn.Conv2d(c, out, 3, padding=1), act()]
        c = out
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(c * image_size**2, n_classes))


def wrong_activation(activation, in_channels=3, n_classes=10, *, width=16, image_size=32):
    return reference("relu", in_channels, n_classes, width=width, image_size=image_size)


def two_blocks(activation, in_channels=3, n_classes=10, *, width=16, image_size=32):
    act = checks_cnn.ACTIVATION_MODULES[activation]
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1), act(), nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1), act(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(2 * width * (image_size // 4) ** 2, n_classes),
    )


def softmax_output(activation, in_channels=3, n_classes=10, *, width=16, image_size=32):
    return nn.Sequential(reference(activation, in_channels, n_classes, width=width, image_size=image_size),
                         nn.Softmax(dim=1))


def frozen(activation, in_channels=3, n_classes=10, *, width=16, image_size=32):
    model = reference(activation, in_channels, n_classes, width=width, image_size=image_size)
    for p in list(model.parameters())[:-2]:
        p.requires_grad_(False)
    return model


def not_implemented(activation, in_channels=3, n_classes=10, *, width=16, image_size=32):
    raise NotImplementedError()


def old_signature(activation, in_channels=3, n_classes=10):
    return reference(activation, in_channels, n_classes)


@pytest.mark.parametrize("activation", sorted(cnn.ACTIVATIONS))
def test_reference_structure_and_output(activation):
    model = cnn.make_reference_cnn(activation, 3, 10)
    kinds = [type(m) for m in model]
    block = [nn.Conv2d, cnn.ACTIVATIONS[activation], nn.MaxPool2d]
    assert kinds == block * 3 + [nn.Flatten, nn.Linear]
    assert model(torch.zeros(4, 3, 32, 32)).shape == (4, 10)
    small = cnn.make_reference_cnn(activation, 1, 7, width=4, image_size=16)
    assert small(torch.zeros(2, 1, 16, 16)).shape == (2, 7)


def test_reference_rejects_unknown_activation():
    with pytest.raises(ValueError, match="unknown activation"):
        cnn.make_reference_cnn("swish2")


def test_visible_and_hidden_checks_pass_the_reference(capsys):
    checks_cnn.check_cnn(reference)
    grade_cnn(reference)
    captured = capsys.readouterr()
    assert captured.err == ""
    assert "visible checks passed" in captured.out


def test_checks_leave_the_torch_state_alone():
    torch.manual_seed(7)
    threads = torch.get_num_threads()
    expected = torch.rand(3)
    torch.manual_seed(7)
    checks_cnn.check_cnn(reference)
    assert torch.equal(torch.rand(3), expected)
    assert torch.get_num_threads() == threads


@pytest.mark.parametrize(
    ("builder", "message"),
    [
        (missing_pool, "expected a pooling layer"),
        (wrong_activation, "asks for nn."),
        (two_blocks, "2 conv block(s)"),
        (softmax_output, "log-softmax"),
        (frozen, "no gradient reaches the first Conv2d"),
        (not_implemented, "not implemented yet"),
        (old_signature, "The signature is make_cnn("),
    ],
)
def test_wrong_builders_fail_with_a_message(builder, message, capsys):
    for check in (checks_cnn.check_cnn, grade_cnn):
        with pytest.raises(AssertionError, match=message.replace("(", r"\(").replace(")", r"\)")):
            check(builder)
    assert capsys.readouterr().err == ""


def test_hidden_checks_refuse_the_bare_reference_builder():
    with pytest.raises(AssertionError, match="reference builder"):
        grade_cnn(cnn.make_reference_cnn)


def test_hidden_checks_catch_a_builder_that_ignores_width():
    def fixed_width(activation, in_channels=3, n_classes=10, *, width=16, image_size=32):
        return reference(activation, in_channels, n_classes, image_size=image_size)

    checks_cnn.check_cnn(fixed_width)  # the visible checks happen to use width 16 and 8 ...
    with pytest.raises(AssertionError, match="output channels"):
        grade_cnn(fixed_width)


def test_usable_builder_falls_back_with_a_note(capsys):
    assert cnn.usable_builder(not_implemented) is cnn.make_reference_cnn
    assert "not implemented yet" in capsys.readouterr().out
    assert cnn.usable_builder(reference) is reference


@pytest.fixture(scope="module")
def small_comparison():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    data = images.shapes_dataset(200, 100, seed=0)
    yield cnn.compare_activations(data, activations=("sigmoid", "relu", "gelu"), seeds=(0, 1), epochs=2,
                                  width=4, target=0.15, log=None, device="cpu")
    torch.set_num_threads(threads)


def test_comparison_records_every_run(small_comparison):
    c = small_comparison
    assert [(r.activation, r.seed) for r in c.runs] == [
        (a, s) for a in ("sigmoid", "relu", "gelu") for s in (0, 1)]
    for run in c.runs:
        assert len(run.test_acc) == 1 + 2 * c.settings["evals_per_epoch"]
        assert run.steps[0] == 0 and run.steps[-1] == 2 * math.ceil(200 / 64)
        assert len(run.epoch_seconds) == 2 and all(t > 0 for t in run.epoch_seconds)
        assert all(0 <= a <= 1 for a in run.test_acc)
        if run.steps_to_target is not None:
            assert run.test_acc[run.steps.index(run.steps_to_target)] >= 0.15
    rows = c.summary()
    assert [r["activation"] for r in rows] == ["sigmoid", "relu", "gelu"]
    assert all(r["acc_min"] <= r["acc_mean"] <= r["acc_max"] for r in rows)
    table = c.markdown()
    assert table.count("\n") == 4 and "±" in table
    assert json.loads(c.to_json())["summary"] == json.loads(json.dumps(rows))
    assert set(c.models) == {"sigmoid", "relu", "gelu"}


def test_comparison_is_reproducible(small_comparison):
    data = images.shapes_dataset(200, 100, seed=0)
    again = cnn.compare_activations(data, activations=("relu",), seeds=(1,), epochs=2, width=4,
                                    target=0.15, log=None, device="cpu")
    first = next(r for r in small_comparison.runs if r.activation == "relu" and r.seed == 1)
    assert again.runs[0].test_acc == first.test_acc


def test_seed_comparison_sentences_follow_the_numbers(small_comparison):
    sentences = cnn.compare_with_seed(small_comparison)
    assert len(sentences) == 5
    assert all(s.startswith("**") for s in sentences)
    table = cnn.seed_comparison_markdown(small_comparison)
    assert "71%" in table and "78%" in table and "79%" in table


def _fake(acc, steps):
    runs = []
    for name, values in acc.items():
        for seed, a in enumerate(values):
            run = cnn.Run(name, seed, steps=[0, 10], epochs=[0, 1], test_acc=[0.1, a],
                          train_loss=[math.nan, 1.0], epoch_seconds=[1.0])
            if steps[name] is not None:
                run.steps_to_target, run.epochs_to_target = steps[name], 1.0
            runs.append(run)
    settings = {"epochs": 1, "seeds": (0, 1, 2), "target": 0.5, "n_train": 10, "n_classes": 10}
    return cnn.Comparison(runs, settings, "fake", "cpu")


def test_seed_comparison_says_disagree_when_the_numbers_disagree():
    agree = _fake({"sigmoid": [0.6, 0.61, 0.62], "relu": [0.8, 0.81, 0.82], "gelu": [0.9, 0.91, 0.92]},
                  {"sigmoid": None, "relu": 100, "gelu": 80})
    text = " ".join(cnn.compare_with_seed(agree))
    assert "sigmoid ends last" in text and "GELU beats ReLU" in text and "never reaches" in text
    disagree = _fake({"sigmoid": [0.9, 0.91, 0.92], "relu": [0.8, 0.81, 0.82], "gelu": [0.6, 0.61, 0.62]},
                     {"sigmoid": 50, "relu": 100, "gelu": 80})
    text = " ".join(cnn.compare_with_seed(disagree))
    assert "sigmoid is not last" in text and "ReLU beats GELU" in text
    assert "about as fast" in text or "Disagrees" in text


def test_settings_switch(monkeypatch):
    monkeypatch.delenv("NONLINEARITY_FULL", raising=False)
    monkeypatch.delenv(cnn.GRADING_ENV, raising=False)
    assert cnn.experiment_settings() == cnn.QUICK
    monkeypatch.setenv("NONLINEARITY_FULL", "1")
    assert cnn.experiment_settings() == cnn.FULL
    assert cnn.experiment_settings(full=False) == cnn.QUICK
    # Under the autograder (its sandbox sets NONLINEARITY_GRADING=1) QUICK shrinks to a token run
    # that still exercises every step (all three activations, training, evaluation).
    monkeypatch.setenv(cnn.GRADING_ENV, "1")
    assert cnn.experiment_settings(full=False) == cnn.GRADING
    assert cnn.experiment_settings(full=True) == cnn.FULL
    assert cnn.GRADING["activations"] == cnn.QUICK["activations"] and cnn.GRADING["epochs"] >= 1


def test_figures_and_widget_build_headless(small_comparison, capsys):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = cnn.plot_learning_curves(small_comparison)
    assert [ax.get_xlabel() for ax in fig.axes] == ["training step", "training step"]
    assert all(ax.get_title() for ax in fig.axes)
    for name in small_comparison.activations:
        view = cnn._activation_view(small_comparison, name)
        assert len(view.axes) == 3 and all(ax.get_title() for ax in view.axes)
    cnn.explore(small_comparison)  # no frontend: displays fall back to text, nothing raises
    examples = images.plot_examples(images.shapes_dataset(40, 10), per_class=3)
    assert len(examples.axes) == 30
    plt.close("all")
    assert capsys.readouterr().err == ""
