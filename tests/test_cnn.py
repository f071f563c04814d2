"""nonlinearity.cnn (reference builder, experiment runner, sweep, comparison with the glossary card's
quoted table, activation timings) and the make_cnn and accuracy checks."""

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from autograder.recorders import kernels, models
from autograder.recorders.cnn import grade_accuracy, grade_cnn
from nonlinearity import checks_cnn, cnn, images

ROOT = Path(__file__).resolve().parents[1]
SOLUTION_08 = ROOT / "solutions" / "08_cnn_comparison.ipynb"


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
        assert run.steps[0] == 0 and run.steps[-1] == 2 * math.ceil(200 / cnn.QUICK["batch_size"])
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


def test_card_comparison_sentences_follow_the_numbers(small_comparison):
    sentences = cnn.compare_with_card(small_comparison)
    assert len(sentences) == 5
    assert all(s.startswith("**") for s in sentences)
    table = cnn.card_comparison_markdown(small_comparison)
    assert "71%" in table and "78%" in table and "79%" in table
    assert "quoted" in table and "seed" not in table


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


def test_card_comparison_says_disagree_when_the_numbers_disagree():
    agree = _fake({"sigmoid": [0.6, 0.61, 0.62], "relu": [0.8, 0.81, 0.82], "gelu": [0.9, 0.91, 0.92]},
                  {"sigmoid": None, "relu": 100, "gelu": 80})
    text = " ".join(cnn.compare_with_card(agree))
    assert "sigmoid ends last" in text and "GELU beats ReLU" in text and "never reaches" in text
    assert "seed's" not in text and "quoted table" in text
    disagree = _fake({"sigmoid": [0.9, 0.91, 0.92], "relu": [0.8, 0.81, 0.82], "gelu": [0.6, 0.61, 0.62]},
                     {"sigmoid": 50, "relu": 100, "gelu": 80})
    text = " ".join(cnn.compare_with_card(disagree))
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


# ---------------------------------------------------------------------------------------------
# accuracy: the visible check, the hidden check, and its recording judged outside the sandbox
# ---------------------------------------------------------------------------------------------

def right_accuracy(logits, labels):
    return (logits.argmax(dim=1) == labels).float().mean().item()


def count_accuracy(logits, labels):
    return float((logits.argmax(dim=1) == labels).sum())


def percent_accuracy(logits, labels):
    return 100 * right_accuracy(logits, labels)


def wrong_axis_accuracy(logits, labels):
    return (logits.argmax(dim=0) == labels).float().mean().item()


def tensor_accuracy(logits, labels):
    return (logits.argmax(dim=1) == labels).float().mean()


def error_rate(logits, labels):
    return 1 - right_accuracy(logits, labels)


def in_place_accuracy(logits, labels):
    value = right_accuracy(logits, labels)
    labels.zero_()
    return value


def loop_accuracy(logits, labels):
    return sum(int(row.argmax()) == int(y) for row, y in zip(logits, labels, strict=True)) / len(labels)


@pytest.mark.parametrize("fn", [right_accuracy, cnn.reference_accuracy, loop_accuracy])
def test_accuracy_checks_pass_right_answers(fn, capsys):
    checks_cnn.check_accuracy(fn)
    grade_accuracy(fn)
    assert "visible checks passed" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (count_accuracy, "number of correct predictions"),
        (percent_accuracy, "percentage"),
        (tensor_accuracy, "torch tensor"),
        (error_rate, "error rate"),
        (in_place_accuracy, "changed its inputs in place"),
        (not_implemented, "raised NotImplementedError"),
    ],
)
def test_wrong_accuracy_fails_with_a_message(fn, message):
    for check in (checks_cnn.check_accuracy, grade_accuracy):
        with pytest.raises(AssertionError, match=message):
            check(fn)


def test_accuracy_checks_catch_the_wrong_axis():
    for check in (checks_cnn.check_accuracy, grade_accuracy):
        with pytest.raises(AssertionError, match="dim=1"):
            check(wrong_axis_accuracy)
    square, labels = checks_cnn.accuracy_case(18, 10, 10)  # square: no shape error, a wrong value
    with pytest.raises(AssertionError, match=r"over the samples \(dim=0\)"):
        checks_cnn.judge_accuracy(wrong_axis_accuracy, square, labels)


@pytest.mark.parametrize(("fn", "passes"), [(right_accuracy, True), (percent_accuracy, False),
                                            (tensor_accuracy, False), (wrong_axis_accuracy, False)])
def test_accuracy_is_recorded_in_the_sandbox_and_judged_outside(tmp_path, monkeypatch, fn, passes):
    monkeypatch.setenv(kernels.RECORDS_ENV, str(tmp_path))
    try:
        models.grade_function("accuracy", fn)
    except AssertionError:
        assert not passes
    verdict = models.replay(tmp_path, "accuracy")
    assert (verdict is None) == passes, verdict


def test_accuracy_judge_is_not_fooled_by_a_lying_float():
    class Liar(float):
        def __eq__(self, other):
            return True

    def liar(logits, labels):
        return Liar(0.123)

    with pytest.raises(AssertionError):
        grade_accuracy(liar)


def test_the_grade_cell_of_accuracy_is_judged_outside():
    from autograder.judging import trusted

    checks = trusted.hidden_checks(SOLUTION_08)
    assert checks["test_accuracy"] == ["accuracy"]
    keys = {c.question: c.expected for cells in checks.values() for c in cells if hasattr(c, "question")}
    assert keys == {"q08_1": "b", "q08_2": 7168}


def test_usable_accuracy_falls_back_with_a_note(capsys):
    assert cnn.usable_accuracy(not_implemented) is cnn.reference_accuracy
    assert "not implemented yet" in capsys.readouterr().out
    assert cnn.usable_accuracy(percent_accuracy) is cnn.reference_accuracy
    assert "0.5 was expected" in capsys.readouterr().out
    assert cnn.usable_accuracy(right_accuracy) is right_accuracy


# ---------------------------------------------------------------------------------------------
# Options of the experiment, the sweep that chose QUICK, the activation timings
# ---------------------------------------------------------------------------------------------

def test_he_initialisation_is_shared_by_every_activation():
    weights = {}
    for name in ("sigmoid", "relu"):
        torch.manual_seed(3)
        model = cnn.initialise(cnn.make_reference_cnn(name, 3, 10, width=8, image_size=16), "he")
        weights[name] = [p.detach().clone() for p in model.parameters()]
        conv = model[3]
        fan_in = conv.in_channels * 9
        assert abs(float(conv.weight.detach().std()) / math.sqrt(2 / fan_in) - 1) < 0.1
        assert torch.count_nonzero(conv.bias) == 0
    assert all(torch.equal(a, b) for a, b in zip(weights["sigmoid"], weights["relu"], strict=True))
    with pytest.raises(ValueError, match="unknown init"):
        cnn.initialise(nn.Linear(2, 2), "lecun")
    with pytest.raises(ValueError, match="unknown optimiser"):
        cnn.make_optimiser("rmsprop", nn.Linear(2, 2).parameters(), 0.1)
    assert isinstance(cnn.make_optimiser("sgd", nn.Linear(2, 2).parameters(), 0.1), torch.optim.SGD)


def _bench():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench", ROOT / "benchmarks" / "bench.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_quick_is_the_setup_the_stored_sweep_chose():
    bench = _bench()
    sweep = cnn.load_sweep()
    assert len(sweep["setups"]) == len(bench.SWEEP_SETUPS)
    assert sweep["budget_s"] == bench.SWEEP_BUDGET_S
    chosen = cnn.choose_setup(cnn.sweep_rows(sweep), sweep["budget_s"])
    assert {k: chosen[k] for k in sweep["chosen"] if k != "train_s"} == {
        k: v for k, v in sweep["chosen"].items() if k != "train_s"}
    q = cnn.QUICK
    assert (q["image_size"], q["init"], q["optimiser"], q["lr"], q["batch_size"], q["epochs"]) == (
        chosen["image_size"], chosen["init"], chosen["optimiser"], chosen["lr"], chosen["batch_size"],
        chosen["epochs"])
    assert q["shapes"] == bench.DIFFICULTY[chosen["data"]]
    assert (q["n_train"], q["n_test"], q["width"], q["seeds"], q["activations"]) == (
        bench.SWEEP_FIXED["n_train"], bench.SWEEP_FIXED["n_test"], bench.SWEEP_FIXED["width"],
        bench.SWEEP_FIXED["seeds"], bench.SWEEP_FIXED["activations"])
    # what the notebook says of the chosen row
    assert chosen["sigmoid"][1] >= 0.35 and chosen["relu"][0] - chosen["sigmoid"][0] >= 0.10
    table = cnn.sweep_markdown(sweep)
    assert table.count("**light-easy**") == 1 and table.count("\n") >= len(bench.SWEEP_SETUPS) + 1


def test_sweep_rule_on_made_up_rows():
    def row(sig, relu, gelu, seconds):
        return {"sigmoid": sig, "relu": relu, "gelu": gelu, "train_s": seconds}

    good = row((0.4, 0.38, 0.42), (0.8, 0.78, 0.82), (0.81, 0.8, 0.83), 20)
    better = row((0.4, 0.38, 0.42), (0.9, 0.88, 0.92), (0.9, 0.89, 0.91), 25)
    too_slow = row((0.5, 0.48, 0.52), (0.95, 0.9, 0.97), (0.95, 0.9, 0.97), 40)
    stuck = row((0.12, 0.1, 0.14), (0.9, 0.88, 0.92), (0.9, 0.89, 0.91), 10)
    apart = row((0.4, 0.38, 0.42), (0.7, 0.68, 0.72), (0.9, 0.89, 0.91), 10)
    assert cnn.choose_setup([good, better, too_slow, stuck, apart], 30) is better
    assert cnn.choose_setup([stuck, apart, too_slow], 30) is None


def test_sweep_setup_runs_one_small_setup(monkeypatch):
    bench = _bench()
    monkeypatch.setattr(bench, "SWEEP_FIXED", {**bench.SWEEP_FIXED, "n_train": 64, "n_test": 32,
                                               "seeds": (0,)})
    monkeypatch.setattr(bench, "SWEEP_EPOCHS", 2)
    threads = torch.get_num_threads()
    result = bench.sweep_setup(bench.SWEEP_SETUPS[0])
    torch.set_num_threads(threads)
    assert [(r["activation"], len(r["test_acc"]), len(r["epoch_seconds"])) for r in result["runs"]] == [
        (a, 2, 2) for a in ("sigmoid", "relu", "gelu")]


def test_activation_timings_and_their_share(small_comparison):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timings = cnn.time_activations(10_000, repeats=2)
    assert [t["activation"] for t in timings] == ["relu", "sigmoid", "tanh", "gelu"]
    assert all(t["numpy_s"] > 0 and t["torch_s"] > 0 for t in timings)
    share = cnn.activation_share(small_comparison, timings, 10_000)
    assert [r["activation"] for r in share] == ["sigmoid", "relu", "gelu"]
    # width 4 on 32x32 images: 4*32*32 + 8*16*16 + 16*8*8 activation outputs per image
    assert share[0]["elements_per_epoch"] == (4096 + 2048 + 1024) * 200
    assert all(r["share"] > 0 for r in share)
    fig = cnn.plot_activation_timings(timings, 10_000, share)
    assert len(fig.axes) == 2 and all(ax.get_title() and ax.get_ylabel() for ax in fig.axes)
    plt.close("all")


def test_notebook_8_never_calls_the_glossary_card_the_seed():
    import re

    import nbformat

    pattern = re.compile(r"the seed's|seed's table|the seed table|next to the seed|\bseed: ", re.I)
    for path in (SOLUTION_08, ROOT / "course" / "08_cnn_comparison.ipynb"):
        for cell in nbformat.read(path, as_version=4).cells:
            assert not pattern.search(cell.source), (path.name, cell.source[:200])


def test_a_linear_model_sees_nothing_in_mixed_polarity_and_something_in_light():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    acc = {pol: cnn.linear_probe(images.shapes_dataset(1000, 300, size=16, noise=0.04, clutter=0,
                                                       polarity=pol), steps=300)
           for pol in ("mixed", "light")}
    torch.set_num_threads(threads)
    assert acc["mixed"] < 0.15 < acc["light"], acc


def test_weight_change_measures_training_from_the_shared_start(small_comparison):
    change = cnn.weight_change(small_comparison)
    assert list(change) == ["sigmoid", "relu", "gelu"]
    assert all(len(v) == 3 and all(c > 0 for c in v) for v in change.values())
    starts = [small_comparison.initial_models[a][0].weight for a in ("sigmoid", "relu", "gelu")]
    assert torch.equal(starts[0], starts[1]) and torch.equal(starts[1], starts[2])
