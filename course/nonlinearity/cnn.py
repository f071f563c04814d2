"""The CNN comparison of notebook 8: a reference builder, the experiment runner, its table and figures.

The network: three blocks of Conv2d(3x3, padding 1) -> activation -> MaxPool2d(2), channel
widths (w, 2w, 4w), then Flatten and one Linear layer to the class logits. The loss is
nn.CrossEntropyLoss on those logits (it applies log-softmax itself).

`compare_activations` trains one such network per (activation, seed) with everything else
fixed (data, architecture, initialisation seed, batch order, optimiser, learning rate, epochs),
records test accuracy during training, the step at which each run first reaches a target
accuracy, and the wall time of each training epoch; `Comparison.summary()` turns the runs into
the table the notebook shows. It runs on CUDA or Apple MPS when present, else on the CPU.

Experiment size: QUICK (the default, about a minute on a 2-core CPU) or FULL, chosen with the
environment variable NONLINEARITY_FULL=1 or `experiment_settings(full=True)`.
"""

from __future__ import annotations

import copy
import io
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nonlinearity.training import full_size, select_device

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
}

# Settings of the comparison. QUICK is the notebook's default: it fits the course's one-minute
# budget for notebook 8 on a 2-core CPU, and was chosen by the sweep in benchmarks/bench.py
# (`python benchmarks/bench.py --sweep`; its result is stored in cnn_sweep.json beside this file,
# and notebook 8 prints it). FULL is the same recipe with more data, epochs, seeds and
# activations, for a GPU or a patient CPU.
# The generated shapes: every shape brighter than its background, little pixel noise, no clutter
# strokes (nonlinearity.images.make_shapes); ignored for a real data set.
SHAPES = {"noise": 0.04, "clutter": 0, "polarity": "light"}
QUICK = {
    "n_train": 2000, "n_test": 500, "image_size": 16, "shapes": SHAPES, "epochs": 10,
    "seeds": (0, 1, 2), "activations": ("sigmoid", "relu", "gelu"), "width": 16, "batch_size": 32,
    "optimiser": "adam", "lr": 3e-3, "init": "he", "target": 0.3, "evals_per_epoch": 2,
}
FULL = {
    **QUICK, "n_train": 10000, "n_test": 2000, "epochs": 15, "seeds": (0, 1, 2, 3, 4),
    "activations": ("sigmoid", "tanh", "relu", "leaky_relu", "gelu", "silu"), "target": 0.5,
    "evals_per_epoch": 4,
}


# While the autograder runs the notebook (NONLINEARITY_GRADING=1, set in its sandbox) the
# comparison only has to run, not to teach: no graded cell reads its results, and grading a
# class of 300 should not train 300 x 9 networks for nothing.
GRADING = {**QUICK, "n_train": 256, "n_test": 128, "epochs": 1, "seeds": (0,), "evals_per_epoch": 1}
GRADING_ENV = "NONLINEARITY_GRADING"


def experiment_settings(full: bool | None = None) -> dict:
    """A copy of QUICK or FULL; full=None reads NONLINEARITY_FULL. QUICK becomes GRADING while the
    autograder runs the notebook."""
    if full_size() if full is None else full:
        return dict(FULL)
    return dict(GRADING if os.environ.get(GRADING_ENV) == "1" else QUICK)


def choose_threads(max_threads: int = 2) -> int:
    """How many CPU threads torch should use for these small models: at most max_threads.

    One thread on a machine that is already busy (load average above half its cores): for models
    this small, threads that wait for each other on an oversubscribed CPU are several times
    slower than a single thread (measured here: about 10x per step on a loaded 2-core machine).
    Cores are those this process may run on (a container or `taskset` may allow fewer than the
    machine has).
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no sched_getaffinity
        cores = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0] > cores / 2
    except (AttributeError, OSError):  # Windows has no load average
        busy = False
    return 1 if cores < 2 or busy else max(1, min(max_threads, cores))


def make_reference_cnn(
    activation: str,
    in_channels: int = 3,
    n_classes: int = 10,
    *,
    width: int = 16,
    image_size: int = 32,
) -> nn.Sequential:
    """Three (Conv2d 3x3 -> activation -> MaxPool2d 2) blocks, then Flatten and Linear.

    Maps float32 (N, in_channels, image_size, image_size) to logits (N, n_classes).
    activation: a key of ACTIVATIONS. Channel widths are width, 2*width, 4*width.
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose from {sorted(ACTIVATIONS)}")
    layers: list[nn.Module] = []
    channels = in_channels
    size = image_size
    for out in (width, 2 * width, 4 * width):
        layers += [nn.Conv2d(channels, out, 3, padding=1), ACTIVATIONS[activation](), nn.MaxPool2d(2)]
        channels, size = out, size // 2
    layers += [nn.Flatten(), nn.Linear(channels * size * size, n_classes)]
    return nn.Sequential(*layers)


def usable_builder(make_cnn: Callable | None) -> Callable:
    """The student's builder if it builds a network, else the reference (with a printed note).

    Lets the notebook's later cells run before the exercise is done.
    """
    if make_cnn is not None:
        try:
            make_cnn("relu", 3, 10)
        except NotImplementedError:
            print("make_cnn is not implemented yet: the experiment below uses the reference "
                  "builder nonlinearity.cnn.make_reference_cnn. Implement make_cnn and rerun to use yours.")
        except Exception as error:  # a broken builder: say so, keep the notebook running
            print(f"make_cnn raised {type(error).__name__}: {error}. The experiment below uses "
                  "the reference builder instead; fix make_cnn and rerun to use yours.")
        else:
            return make_cnn
    return make_reference_cnn


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------

@dataclass
class Run:
    """One training run. Lists are per evaluation point (evals_per_epoch per epoch, plus step 0)."""

    activation: str
    seed: int
    steps: list[int] = field(default_factory=list)
    epochs: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)  # mean loss since the previous point
    epoch_seconds: list[float] = field(default_factory=list)  # training only, evaluation excluded
    steps_to_target: int | None = None
    epochs_to_target: float | None = None

    @property
    def final_acc(self) -> float:
        return self.test_acc[-1]


def _standardise(x_train: np.ndarray, x_test: np.ndarray):
    mean = x_train.mean(axis=(0, 2, 3), keepdims=True)
    std = x_train.std(axis=(0, 2, 3), keepdims=True) + 1e-6
    return (x_train - mean) / std, (x_test - mean) / std


def reference_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The fraction of rows of logits (N, C) whose largest entry is at labels (N,), a Python float."""
    return (logits.argmax(dim=1) == labels).float().mean().item()


def usable_accuracy(accuracy: Callable | None) -> Callable:
    """The student's accuracy function if it runs, else reference_accuracy (with a printed note)."""
    if accuracy is not None:
        try:
            value = accuracy(torch.tensor([[2.0, 1.0], [0.0, 3.0]]), torch.tensor([0, 0]))
        except NotImplementedError:
            print("accuracy is not implemented yet: the experiment below uses the reference "
                  "nonlinearity.cnn.reference_accuracy. Implement accuracy and rerun to use yours.")
        except Exception as error:  # a broken function: say so, keep the notebook running
            print(f"accuracy raised {type(error).__name__}: {error}. The experiment below uses "
                  "the reference instead; fix accuracy and rerun to use yours.")
        else:
            if isinstance(value, float) and value == 0.5:
                return accuracy
            print(f"accuracy gave {value!r} where 0.5 was expected: the experiment below uses the "
                  "reference instead; fix accuracy and rerun to use yours.")
    return reference_accuracy


@torch.no_grad()
def _accuracy(model, x, y, accuracy: Callable | None = None, batch=500) -> float:
    """Test accuracy: the logits of every test image (in eval mode, batch by batch), then accuracy."""
    model.eval()
    logits = torch.cat([model(x[i:i + batch]) for i in range(0, len(x), batch)])
    model.train()
    return float((accuracy or reference_accuracy)(logits, y))


INITS = ("default", "xavier", "he")


def initialise(model: nn.Module, init: str) -> nn.Module:
    """Re-draw the weights of every Conv2d and Linear layer (biases 0), in place; returns model.

    "default": leave PyTorch's initialisation; "xavier": normal with variance 2 / (fan_in + fan_out);
    "he": normal with variance 2 / fan_in (notebook 7). Uses torch's global random state, so a
    torch.manual_seed(seed) before building gives every activation the same weights.
    """
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; choose from {INITS}")
    if init == "default":
        return model
    for module in model.modules():
        if isinstance(module, nn.Conv2d | nn.Linear):
            if init == "xavier":
                nn.init.xavier_normal_(module.weight)
            else:
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return model


OPTIMISERS = ("adam", "sgd")


def make_optimiser(name: str, parameters, lr: float) -> torch.optim.Optimizer:
    """"adam": torch.optim.Adam(lr); "sgd": SGD with momentum 0.9."""
    if name == "adam":
        return torch.optim.Adam(parameters, lr=lr)
    if name == "sgd":
        return torch.optim.SGD(parameters, lr=lr, momentum=0.9)
    raise ValueError(f"unknown optimiser {name!r}; choose from {OPTIMISERS}")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()
    elif device.type == "mps":
        torch.mps.synchronize()


def train_run(
    model: nn.Module,
    tensors: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    *,
    activation: str,
    seed: int,
    epochs: int,
    batch_size: int,
    lr: float,
    target: float,
    evals_per_epoch: int = 2,
    device: torch.device | None = None,
    optimiser: str = "adam",
    accuracy: Callable | None = None,
) -> Run:
    """Train `model` with `optimiser` and cross-entropy; evaluate on the test set along the way.

    accuracy(logits, labels) -> float measures test accuracy (default: reference_accuracy)."""
    device = device or torch.device("cpu")
    x_train, y_train, x_test, y_test = tensors
    model.to(device)
    optimiser = make_optimiser(optimiser, model.parameters(), lr)
    loss_fn = nn.CrossEntropyLoss()
    shuffle = torch.Generator().manual_seed(seed)
    n = len(x_train)
    steps_per_epoch = math.ceil(n / batch_size)
    eval_at = {round(steps_per_epoch * k / evals_per_epoch) for k in range(1, evals_per_epoch + 1)}
    run = Run(activation, seed)
    run.steps.append(0)
    run.epochs.append(0.0)
    run.test_acc.append(_accuracy(model, x_test, y_test, accuracy))
    run.train_loss.append(float("nan"))
    step = 0
    for epoch in range(epochs):
        order = torch.randperm(n, generator=shuffle).to(device)
        elapsed, loss_sum, loss_count = 0.0, 0.0, 0
        _sync(device)
        start = time.perf_counter()
        for i in range(steps_per_epoch):
            idx = order[i * batch_size:(i + 1) * batch_size]
            loss = loss_fn(model(x_train[idx]), y_train[idx])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            step += 1
            loss_sum += loss.item()
            loss_count += 1
            if i + 1 in eval_at:
                _sync(device)
                elapsed += time.perf_counter() - start
                acc = _accuracy(model, x_test, y_test, accuracy)
                run.steps.append(step)
                run.epochs.append(epoch + (i + 1) / steps_per_epoch)
                run.test_acc.append(acc)
                run.train_loss.append(loss_sum / loss_count)
                loss_sum, loss_count = 0.0, 0
                if run.steps_to_target is None and acc >= target:
                    run.steps_to_target, run.epochs_to_target = step, run.epochs[-1]
                start = time.perf_counter()
        _sync(device)
        run.epoch_seconds.append(elapsed + time.perf_counter() - start)
    return run


@dataclass
class Comparison:
    """All runs of one comparison, the settings they share, and seed-0 models for the figures."""

    runs: list[Run]
    settings: dict
    data_source: str
    device: str
    models: dict[str, nn.Module] = field(default_factory=dict, repr=False)
    initial_models: dict[str, nn.Module] = field(default_factory=dict, repr=False)  # before training

    @property
    def activations(self) -> list[str]:
        return list(dict.fromkeys(r.activation for r in self.runs))

    def runs_of(self, activation: str) -> list[Run]:
        return [r for r in self.runs if r.activation == activation]

    def summary(self) -> list[dict]:
        """One row per activation: accuracy mean/std/min/max over seeds, time to target, s/epoch."""
        rows = []
        for name in self.activations:
            runs = self.runs_of(name)
            acc = np.array([r.final_acc for r in runs])
            reached = [r for r in runs if r.steps_to_target is not None]
            rows.append({
                "activation": name,
                "seeds": len(runs),
                "acc_mean": float(acc.mean()),
                "acc_std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
                "acc_min": float(acc.min()),
                "acc_max": float(acc.max()),
                "reached_target": len(reached),
                "steps_to_target": (float(np.median([r.steps_to_target for r in reached]))
                                    if reached else None),
                "epochs_to_target": (float(np.median([r.epochs_to_target for r in reached]))
                                     if reached else None),
                # The first epoch includes one-off warm-up costs; leave it out when there are more.
                "seconds_per_epoch": float(np.mean([np.mean(r.epoch_seconds[1:] or r.epoch_seconds)
                                                    for r in runs])),
            })
        return rows

    def markdown(self) -> str:
        """The summary as a Markdown table."""
        s = self.settings
        lines = [
            f"| activation | test accuracy after {s['epochs']} epochs (mean ± sd, min–max, "
            f"{len(s['seeds'])} seeds) | steps to {s['target']:.0%} (median; epochs) | "
            "s / epoch |",
            "|---|---|---|---|",
        ]
        for row in self.summary():
            if row["steps_to_target"] is None:
                reach = "not reached"
            else:
                reach = f"{row['steps_to_target']:.0f} ({row['epochs_to_target']:.1f} ep)"
                if row["reached_target"] < row["seeds"]:
                    reach += f", {row['reached_target']}/{row['seeds']} seeds"
            lines.append(
                f"| {row['activation']} | {row['acc_mean']:.1%} ± {row['acc_std']:.1%} "
                f"({row['acc_min']:.1%}–{row['acc_max']:.1%}) | {reach} | "
                f"{row['seconds_per_epoch']:.2f} |"
            )
        return "\n".join(lines)

    def to_json(self) -> str:
        """Settings, summary and every run, as JSON (models left out)."""
        settings = {k: list(v) if isinstance(v, tuple) else v for k, v in self.settings.items()}
        return json.dumps({"settings": settings, "data": self.data_source, "device": self.device,
                           "summary": self.summary(), "runs": [asdict(r) for r in self.runs]},
                          indent=1)


def compare_activations(
    data,
    *,
    activations: Sequence[str] = QUICK["activations"],
    seeds: Sequence[int] = QUICK["seeds"],
    epochs: int = QUICK["epochs"],
    batch_size: int = QUICK["batch_size"],
    lr: float = QUICK["lr"],
    target: float = QUICK["target"],
    width: int = QUICK["width"],
    evals_per_epoch: int = QUICK["evals_per_epoch"],
    optimiser: str = QUICK["optimiser"],
    init: str = QUICK["init"],
    builder: Callable | None = None,
    accuracy: Callable | None = None,
    device: torch.device | str | None = None,
    log: Callable[[str], None] | None = print,
    **_ignored,
) -> Comparison:
    """Train builder(activation, C, n_classes, width=..., image_size=...) for each activation and seed.

    data: an ImageSet (nonlinearity.images). Everything but the activation is the same across
    runs with the same seed: the initial weights (torch.manual_seed(seed) before building), the
    batch order, the optimiser ("adam" or "sgd" with momentum 0.9) with learning rate `lr`, the
    batch size and the number of epochs. accuracy(logits, labels) -> float measures test accuracy
    (default reference_accuracy). Extra keyword arguments (e.g. n_train from experiment_settings)
    are ignored.
    """
    builder = builder or make_reference_cnn
    device = torch.device(device) if device is not None else select_device()
    x_train, x_test = _standardise(data.x_train, data.x_test)
    tensors = (
        torch.as_tensor(x_train, dtype=torch.float32, device=device),
        torch.as_tensor(data.y_train, dtype=torch.long, device=device),
        torch.as_tensor(x_test, dtype=torch.float32, device=device),
        torch.as_tensor(data.y_test, dtype=torch.long, device=device),
    )
    c, h, _ = data.x_train.shape[1:]
    n_classes = len(data.classes)
    runs, models, initial = [], {}, {}
    for name in activations:
        for seed in seeds:
            torch.manual_seed(seed)
            model = initialise(builder(name, c, n_classes, width=width, image_size=h), init)
            if seed == seeds[0]:
                initial[name] = copy.deepcopy(model).eval()
            run = train_run(model, tensors, activation=name, seed=seed, epochs=epochs,
                            batch_size=batch_size, lr=lr, target=target,
                            evals_per_epoch=evals_per_epoch, device=device, optimiser=optimiser,
                            accuracy=accuracy)
            runs.append(run)
            if seed == seeds[0]:
                models[name] = model.to("cpu").eval()
            if log is not None:
                log(f"{name:>10s}  seed {seed}: test accuracy {run.final_acc:.1%}, "
                    f"{np.mean(run.epoch_seconds):.2f} s/epoch")
    settings = {"activations": tuple(activations), "seeds": tuple(seeds), "epochs": epochs,
                "batch_size": batch_size, "lr": lr, "target": target, "width": width,
                "evals_per_epoch": evals_per_epoch, "n_train": len(data.x_train),
                "n_test": len(data.x_test), "n_classes": n_classes, "optimiser": optimiser,
                "init": init, "image_size": h}
    return Comparison(runs, settings, data.source, str(device), models, initial)


# ---------------------------------------------------------------------------------------------
# The glossary card's quoted table, and sentences comparing it with a measured one
# ---------------------------------------------------------------------------------------------

CARD_TABLE = {
    "sigmoid": {"accuracy": 0.71, "speed": "slow", "note": "vanishing gradients in deep layers"},
    "relu": {"accuracy": 0.78, "speed": "fast", "note": "a few neurons go dead"},
    "gelu": {"accuracy": 0.79, "speed": "fast", "note": "smooth, transformer favourite"},
}


def card_comparison_markdown(comparison: Comparison) -> str:
    """The quoted table beside the measured one (the activations both have), as Markdown."""
    rows = {r["activation"]: r for r in comparison.summary()}
    lines = ["| activation | quoted: accuracy (ImageNet subset) | quoted: training | measured: accuracy "
             f"({comparison.data_source}) | measured: steps to {comparison.settings['target']:.0%} |",
             "|---|---|---|---|---|"]
    for name, quoted in CARD_TABLE.items():
        if name not in rows:
            continue
        row = rows[name]
        reach = "not reached" if row["steps_to_target"] is None else f"{row['steps_to_target']:.0f}"
        lines.append(f"| {name} | {quoted['accuracy']:.0%} | {quoted['speed']} | "
                     f"{row['acc_mean']:.1%} ± {row['acc_std']:.1%} | {reach} |")
    return "\n".join(lines)


def _overlap(a: dict, b: dict) -> bool:
    return a["acc_min"] <= b["acc_max"] and b["acc_min"] <= a["acc_max"]


def _points(fraction: float) -> str:
    return f"{100 * fraction:.1f} points"


def compare_with_card(comparison: Comparison) -> list[str]:
    """Sentences saying where the measured table agrees with the quoted one and where not.

    Every claim is computed from the measured numbers, so the text stays true whatever they are.
    """
    rows = {r["activation"]: r for r in comparison.summary()}
    missing = [a for a in CARD_TABLE if a not in rows]
    if missing:
        return [f"The comparison needs sigmoid, relu and gelu; missing: {', '.join(missing)}."]
    sig, relu, gelu = rows["sigmoid"], rows["relu"], rows["gelu"]
    s = comparison.settings
    epochs, target = s["epochs"], s["target"]
    chance = 1 / s["n_classes"]
    card_gap = CARD_TABLE["relu"]["accuracy"] - CARD_TABLE["sigmoid"]["accuracy"]
    out = []

    # 1. Is sigmoid last in accuracy, and by how much?
    gap = min(relu["acc_mean"], gelu["acc_mean"]) - sig["acc_mean"]
    separated = not _overlap(sig, relu) and not _overlap(sig, gelu)
    if gap > 0 and separated and sig["acc_max"] < chance + 0.05:
        out.append(f"**Agrees in direction, not in degree:** sigmoid is last, but here it has not left "
                   f"chance level ({sig['acc_mean']:.1%}; chance is {chance:.0%}) after {epochs} epochs: "
                   f"it is still on the plateau while ReLU and GELU learn. The quoted table's sigmoid "
                   f"network does learn, to {CARD_TABLE['sigmoid']['accuracy']:.0%}, "
                   f"{_points(card_gap)} behind ReLU; our short budget ends before "
                   "sigmoid's slow start does.")
    elif gap > 0 and separated:
        size = ("about the same as" if abs(gap - card_gap) <= 0.02
                else "larger than" if gap > card_gap else "smaller than")
        out.append(f"**Agrees:** sigmoid ends last, {_points(gap)} below the weaker of ReLU and GELU "
                   f"after {epochs} epochs, and no sigmoid seed reaches the worst ReLU or GELU seed. "
                   f"The gap is {size} the quoted table's {_points(card_gap)}.")
    elif gap > 0:
        out.append(f"**Partly agrees:** sigmoid's mean accuracy is the lowest ({_points(gap)} below the "
                   "weaker of ReLU and GELU), but its seeds overlap theirs, so this run cannot "
                   "separate them firmly.")
    else:
        out.append(f"**Disagrees:** sigmoid is not last here: its mean accuracy is {sig['acc_mean']:.1%} "
                   f"against ReLU {relu['acc_mean']:.1%} and GELU {gelu['acc_mean']:.1%}.")

    # 2. GELU against ReLU: the quoted table has GELU one point ahead.
    diff = gelu["acc_mean"] - relu["acc_mean"]
    spread = max(relu["acc_std"], gelu["acc_std"])
    if abs(diff) <= max(spread, 0.005) or _overlap(relu, gelu):
        out.append(f"**Agrees in substance:** GELU and ReLU are {_points(abs(diff))} apart and their "
                   f"seeds overlap (spread up to {_points(spread)}): no winner, and the quoted table's "
                   "one-point lead of GELU is of a size that a few seeds cannot confirm either.")
    elif diff > 0.03:
        out.append(f"**Agrees in direction, not in size:** GELU beats ReLU on every seed, by "
                   f"{_points(diff)} on average, far more than the quoted table's one point (seed-to-seed "
                   f"spread {_points(spread)}). This run does not say why; one candidate is that GELU "
                   "passes some gradient for negative inputs, where ReLU passes none.")
    elif diff > 0:
        out.append(f"**Agrees:** GELU beats ReLU on every seed, by {_points(diff)} on average (quoted table: "
                   "one point).")
    else:
        out.append(f"**Disagrees:** ReLU beats GELU on every seed, by {_points(-diff)} on average; the "
                   "quoted table has GELU one point ahead.")

    # 3. Training speed: steps to the target accuracy.
    def steps(row):
        return math.inf if row["steps_to_target"] is None else row["steps_to_target"]

    fast = min(steps(relu), steps(gelu))
    if steps(sig) == math.inf:
        others = ("ReLU and GELU both do" if max(steps(relu), steps(gelu)) < math.inf
                  else "and neither do ReLU and GELU" if fast == math.inf else "one of ReLU and GELU does")
        out.append(f"**Agrees:** sigmoid trains slowly: in the median over seeds it never reaches "
                   f"{target:.0%} test accuracy within {epochs} epochs; {others}.")
    elif steps(sig) > 1.5 * fast:
        out.append(f"**Agrees:** sigmoid trains slowly: it needs {steps(sig) / fast:.1f}× as many "
                   f"steps as the faster of ReLU and GELU to reach {target:.0%}.")
    else:
        out.append(f"**Disagrees:** sigmoid reaches {target:.0%} about as fast as ReLU and GELU here "
                   f"({steps(sig):.0f} steps against {fast:.0f}).")
    if fast < math.inf and max(steps(relu), steps(gelu)) < math.inf:
        slower, faster = ("ReLU", "GELU") if steps(relu) > steps(gelu) else ("GELU", "ReLU")
        ratio = max(steps(relu), steps(gelu)) / fast
        if ratio > 1.2:
            out.append(f"**Not in the quoted table:** both ReLU and GELU are *fast* there, but here "
                       f"{slower} needs {ratio:.1f}× as many steps as {faster} to reach {target:.0%}.")

    # 4. Wall time per epoch: the price of a step, which the quoted "slow"/"fast" is not about.
    secs = {k: rows[k]["seconds_per_epoch"] for k in ("sigmoid", "relu", "gelu")}
    cheapest, dearest = min(secs, key=secs.get), max(secs, key=secs.get)
    ratio = secs[dearest] / secs[cheapest]
    steps_ratio = max(steps(r) for r in (sig, relu, gelu)) / fast if fast < math.inf else math.inf
    if ratio < 1.15:
        text = (f"**Cost per epoch** hardly depends on the activation: from {secs[cheapest]:.2f} s "
                f"({cheapest}) to {secs[dearest]:.2f} s ({dearest}) on {comparison.device}; the "
                "convolutions do most of the work.")
    else:
        text = (f"**Cost per epoch** differs by a factor {ratio:.2f}: from {secs[cheapest]:.2f} s "
                f"({cheapest}) to {secs[dearest]:.2f} s ({dearest}) on {comparison.device}. Part of "
                "that can be the activation itself (GELU evaluates erf, sigmoid an exponential, ReLU "
                "a comparison, forward and backward), part is noise: wall times on a shared machine "
                "vary from run to run. Timing the activations alone tells the two apart.")
    if steps_ratio > ratio:
        text += (" The differences in the number of steps needed are larger, so the quoted *slow* "
                 "and *fast* are about how many steps training needs, not the price of one step.")
    out.append(text)

    # 5. Absolute numbers.
    out.append(f"**Not comparable:** the absolute accuracies. The quoted table's network classified an "
               f"ImageNet subset (its softmax has 1000 outputs); this run trains {epochs} epochs on "
               f"{s['n_train']} images of {comparison.data_source} with {s['n_classes']} classes. Only "
               "the ordering and the gaps can be compared.")
    return out


# ---------------------------------------------------------------------------------------------
# The sweep that chose QUICK (benchmarks/bench.py --sweep runs it; its result is stored here)
# ---------------------------------------------------------------------------------------------

SWEEP_FILE = Path(__file__).with_name("cnn_sweep.json")


def load_sweep(path=None) -> dict:
    """The stored sweep result (cnn_sweep.json beside this module, or `path`)."""
    return json.loads(Path(path or SWEEP_FILE).read_text())


def sweep_rows(result: dict) -> list[dict]:
    """One row per setup and number of epochs: (mean, min, max) test accuracy over the seeds for
    each activation, and the training time of all the setup's runs up to that epoch."""
    rows = []
    for setup in result["setups"]:
        by_activation: dict[str, list[dict]] = {}
        for run in setup["runs"]:
            by_activation.setdefault(run["activation"], []).append(run)
        for epochs in range(1, result["epochs"] + 1):
            row = {k: v for k, v in setup.items() if k != "runs"}
            row["epochs"] = epochs
            seconds = 0.0
            for name, runs in by_activation.items():
                acc = np.array([r["test_acc"][epochs - 1] for r in runs])
                row[name] = (float(acc.mean()), float(acc.min()), float(acc.max()))
                seconds += sum(sum(r["epoch_seconds"][:epochs]) for r in runs)
            row["train_s"] = seconds
            rows.append(row)
    return rows


def choose_setup(rows: list[dict], budget_s: float) -> dict | None:
    """The rule that picked QUICK: among the rows whose runs train within budget_s, keep those
    where every sigmoid seed is at least 25 points above chance (10%), sigmoid's mean is at least
    10 points below the weaker of ReLU and GELU, and ReLU's and GELU's means are within 3 points;
    of those, take the one where the weaker of ReLU and GELU is most accurate."""
    fits = [r for r in rows if r["train_s"] <= budget_s
            and r["sigmoid"][1] >= 0.35
            and r["sigmoid"][0] <= min(r["relu"][0], r["gelu"][0]) - 0.10
            and abs(r["relu"][0] - r["gelu"][0]) <= 0.03]
    return max(fits, key=lambda r: min(r["relu"][0], r["gelu"][0]), default=None)


def sweep_markdown(result: dict) -> str:
    """The sweep as a Markdown table: each setup at the most epochs that fit the budget (the
    chosen row in bold), accuracy as mean (min–max) over the seeds."""
    rows = sweep_rows(result)
    chosen = choose_setup(rows, result["budget_s"])
    keys = ("image_size", "data", "init", "optimiser", "lr", "batch_size")
    shown: dict[tuple, dict] = {}
    for r in rows:
        key = tuple(r[k] for k in keys)
        if r["train_s"] <= result["budget_s"] or key not in shown:
            shown[key] = r
    if chosen is not None:
        shown[tuple(chosen[k] for k in keys)] = chosen
    lines = ["| shapes | init | optimiser, lr, batch | epochs | training (s) | sigmoid | ReLU | GELU |",
             "|---|---|---|---|---|---|---|---|"]

    def cell(acc):
        return f"{acc[0]:.0%} ({acc[1]:.0%}–{acc[2]:.0%})"

    for r in shown.values():
        b = "**" if r is chosen else ""
        lines.append(f"| {b}{r['data']}{b} | {b}{r['init']}{b} | {b}{r['optimiser']}, {r['lr']:g}, "
                     f"{r['batch_size']}{b} | {r['epochs']} | {r['train_s']:.0f} | {cell(r['sigmoid'])} | "
                     f"{cell(r['relu'])} | {cell(r['gelu'])} |")
    return "\n".join(lines)


def linear_probe(data, *, steps: int = 600, batch_size: int = 32, lr: float = 3e-3, seed: int = 0) -> float:
    """Test accuracy of a linear softmax classifier on the standardised pixels (no hidden layer):
    what a model that is linear in the pixels can get out of the data."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.as_tensor(data.x_train).flatten(1)
    x_test = torch.as_tensor(data.x_test).flatten(1)
    mean, std = x.mean(0), x.std(0) + 1e-6
    x, x_test = (x - mean) / std, (x_test - mean) / std
    y, y_test = torch.as_tensor(data.y_train), torch.as_tensor(data.y_test)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = nn.Linear(x.shape[1], len(data.classes))
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (batch_size,), generator=gen)
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        return reference_accuracy(model(x_test), y_test)


# ---------------------------------------------------------------------------------------------
# The price of the activation itself
# ---------------------------------------------------------------------------------------------

def _numpy_activations() -> dict[str, Callable]:
    from scipy.special import erf, expit

    return {
        "relu": lambda x: np.maximum(x, 0),
        "sigmoid": expit,
        "tanh": np.tanh,
        "gelu": lambda x: 0.5 * x * (1 + erf(x / np.sqrt(2))),
    }


def time_activations(n: int = 10**6, repeats: int = 5) -> list[dict]:
    """Seconds per call (best of `repeats`) of each activation on n float32 numbers, in numpy and in
    torch (CPU, the threads torch is set to use). Rows: {"activation", "numpy_s", "torch_s"}."""
    rng = np.random.default_rng(0)
    x_np = rng.standard_normal(n).astype(np.float32)
    x_t = torch.from_numpy(x_np.copy())
    torch_fns = {"relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
                 "gelu": torch.nn.functional.gelu}

    def best(fn, x):
        fn(x)  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn(x)
            times.append(time.perf_counter() - start)
        return min(times)

    with torch.no_grad():
        return [{"activation": name, "numpy_s": best(fn, x_np), "torch_s": best(torch_fns[name], x_t)}
                for name, fn in _numpy_activations().items()]


def activation_share(comparison: Comparison, timings: list[dict], n: int) -> list[dict]:
    """For each activation of the comparison that was timed: the elements it is applied to in one
    epoch (forward pass only), their cost at the measured torch speed, and that cost as a share
    of the measured seconds per epoch."""
    s = comparison.settings
    model = comparison.models[comparison.activations[0]]
    x = torch.zeros(1, model[0].in_channels, s["image_size"], s["image_size"])
    elements = 0
    with torch.no_grad():
        for layer in model:
            x = layer(x)
            if isinstance(layer, tuple(ACTIVATIONS.values())):
                elements += x.numel()
    per_epoch = elements * s["n_train"]
    speed = {t["activation"]: t["torch_s"] / n for t in timings}
    rows = []
    for summary in comparison.summary():
        name = summary["activation"]
        if name in speed:
            seconds = per_epoch * speed[name]
            rows.append({"activation": name, "elements_per_epoch": per_epoch, "activation_s": seconds,
                         "epoch_s": summary["seconds_per_epoch"],
                         "share": seconds / summary["seconds_per_epoch"]})
    return rows


def plot_activation_timings(timings: list[dict], n: int, share: list[dict] | None = None):
    """Bars: time per call of each activation on n numbers (numpy and torch); beside them, if given,
    the forward activations' share of one training epoch."""
    import matplotlib.pyplot as plt

    from nonlinearity.plots import PALETTE

    panels = 2 if share else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 3.8), squeeze=False)
    ax = axes[0, 0]
    names = [t["activation"] for t in timings]
    pos = np.arange(len(names))
    ax.bar(pos - 0.2, [1e3 * t["numpy_s"] for t in timings], 0.4, color=PALETTE[0], label="numpy")
    ax.bar(pos + 0.2, [1e3 * t["torch_s"] for t in timings], 0.4, color=PALETTE[1], label="torch (CPU)")
    ax.set_xticks(pos, names)
    ax.set(title=f"One call on {n:,} float32 numbers", xlabel="activation", ylabel="milliseconds")
    ax.legend()
    if share:
        ax = axes[0, 1]
        labels = [r["activation"] for r in share]
        ax.bar(labels, [100 * r["share"] for r in share], color=PALETTE[2])
        ax.set(title="Forward activations' share of an epoch", xlabel="activation",
               ylabel="% of the measured epoch time")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------
# Figures and the widget
# ---------------------------------------------------------------------------------------------

def _colour(comparison: Comparison, name: str) -> str:
    from nonlinearity.plots import PALETTE

    return PALETTE[comparison.activations.index(name) % len(PALETTE)]


def plot_learning_curves(comparison: Comparison, *, highlight: str | None = None):
    """Test accuracy and training loss against training steps: mean over seeds, min–max band."""
    import matplotlib.pyplot as plt

    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(11, 4))
    for name in comparison.activations:
        runs = comparison.runs_of(name)
        steps = np.array(runs[0].steps)
        acc = np.array([r.test_acc for r in runs])
        loss = np.array([r.train_loss for r in runs])
        faded = highlight is not None and name != highlight
        colour = "0.75" if faded else _colour(comparison, name)
        ax_acc.plot(steps, acc.mean(0), color=colour, label=name, zorder=1 if faded else 3)
        ax_acc.fill_between(steps, acc.min(0), acc.max(0), color=colour, alpha=0.2, linewidth=0)
        ax_loss.plot(steps[1:], loss[:, 1:].mean(0), color=colour, label=name, zorder=1 if faded else 3)
        ax_loss.fill_between(steps[1:], loss[:, 1:].min(0), loss[:, 1:].max(0), color=colour,
                             alpha=0.2, linewidth=0)
        if highlight == name:
            for r in runs:
                ax_acc.plot(r.steps, r.test_acc, color=colour, linewidth=0.8, alpha=0.7)
    target = comparison.settings["target"]
    ax_acc.axhline(target, color="0.4", linestyle="--", linewidth=1)
    ax_acc.text(0, target, f" target {target:.0%}", va="bottom", fontsize=9, color="0.3")
    chance = 1 / comparison.settings["n_classes"]
    ax_acc.axhline(chance, color="0.6", linestyle=":", linewidth=1)
    ax_acc.text(steps[-1], chance, "chance ", ha="right", va="top", fontsize=9, color="0.4")
    n_seeds = len(comparison.settings["seeds"])
    ax_acc.set(title=f"Test accuracy (mean and min–max of {n_seeds} seeds)", xlabel="training step",
               ylabel="test accuracy", ylim=(0, 1))
    ax_loss.set(title="Training loss (mean since the previous point)", xlabel="training step",
                ylabel="cross-entropy loss")
    ax_acc.legend(loc="upper left")
    ax_loss.legend(loc="lower left")
    fig.tight_layout()
    return fig


def plot_filters(comparison: Comparison, activation: str, *, ax=None):
    """The first conv layer's filters (seed 0 model) as small RGB or grey images."""
    import matplotlib.pyplot as plt

    model = comparison.models[activation]
    conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    w = conv.weight.detach().cpu().numpy()  # (out, in, 3, 3)
    n = w.shape[0]
    cols = min(n, max(4, math.ceil(math.sqrt(n))))
    rows = math.ceil(n / cols)
    fig = ax.figure if ax is not None else plt.figure(figsize=(cols * 0.7, rows * 0.7 + 0.5))
    tiles = np.ones((rows * 4 - 1, cols * 4 - 1, 3))
    for k in range(n):
        f = w[k]
        f = (f - f.min()) / (f.max() - f.min() + 1e-12)
        img = f.transpose(1, 2, 0) if f.shape[0] == 3 else np.repeat(f[:1].transpose(1, 2, 0), 3, 2)
        r, c = divmod(k, cols)
        tiles[r * 4:r * 4 + 3, c * 4:c * 4 + 3] = img
    ax = ax or fig.add_subplot(111)
    ax.imshow(tiles, interpolation="nearest")
    ax.set(title=f"{activation}: first-layer filters (seed {comparison.settings['seeds'][0]})",
           xticks=[], yticks=[])
    ax.grid(False)
    return fig


def weight_change(comparison: Comparison) -> dict[str, list[float]]:
    """For each activation (first seed): how far each conv layer's weights moved in training,
    ||W_end - W_start|| / ||W_start||, first layer first."""
    out = {}
    for name, end in comparison.models.items():
        start = comparison.initial_models[name]
        pairs = [(a.weight.detach().cpu(), b.weight.detach().cpu()) for a, b in
                 zip(start.modules(), end.modules(), strict=True) if isinstance(a, nn.Conv2d)]
        out[name] = [float((w1 - w0).norm() / w0.norm()) for w0, w1 in pairs]
    return out


def _activation_view(comparison: Comparison, activation: str):
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(13, 4))
    grid = fig.add_gridspec(1, 3, width_ratios=[1.5, 1.1, 1.0])
    ax_acc, ax_time, ax_filt = (fig.add_subplot(grid[0, i]) for i in range(3))
    for name in comparison.activations:
        faded = name != activation
        colour = "0.8" if faded else _colour(comparison, name)
        for r in comparison.runs_of(name):
            ax_acc.plot(r.epochs, r.test_acc, color=colour, linewidth=0.8 if faded else 1.6,
                        zorder=1 if faded else 3, label=name if r.seed == comparison.settings["seeds"][0]
                        and not faded else None)
    ax_acc.set(title=f"{activation}: test accuracy, each seed", xlabel="epoch", ylabel="test accuracy",
               ylim=(0, 1))
    ax_acc.legend(loc="lower right")
    names = comparison.activations
    secs = [np.mean([np.mean(r.epoch_seconds) for r in comparison.runs_of(n)]) for n in names]
    ax_time.bar(names, secs, color=[_colour(comparison, n) if n == activation else "0.8" for n in names])
    ax_time.set(title="Wall time per training epoch", xlabel="activation", ylabel="seconds")
    plot_filters(comparison, activation, ax=ax_filt)
    fig.tight_layout()
    return fig


def explore(comparison: Comparison) -> None:
    """Static figure for the first activation, then a dropdown that redraws it for another one."""
    import ipywidgets as ipw
    import matplotlib.pyplot as plt
    from IPython.display import Image, display

    def picture(name):
        buffer = io.BytesIO()
        fig = _activation_view(comparison, name)
        fig.savefig(buffer, format="png")
        plt.close(fig)
        return Image(data=buffer.getvalue(), format="png")

    names = comparison.activations
    handle = display(picture(names[0]), display_id=True)
    menu = ipw.Dropdown(options=names, value=names[0], description="activation")

    def redraw(change):
        handle.update(picture(change["new"]))

    menu.observe(redraw, names="value")
    display(menu)
