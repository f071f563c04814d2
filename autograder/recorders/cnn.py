"""Hidden checks for notebook 8's `make_cnn` and `accuracy` (called from their grade cells).

accuracy is judged outside the sandbox: its grade cell calls
`autograder.recorders.models.grade_function("accuracy", accuracy)`, which records what the
student's function returned (models.Recorder) and lets autograder.judging.trusted run
`grade_accuracy` again on the recording (models.replay). make_cnn is judged by the network it
builds, so `grade_cnn` decides inside the kernel.

More of what the visible checks in nonlinearity.checks_cnn do: every activation name of the
contract, other channel counts, class counts, widths and image sizes, logits rather than
probabilities, gradients reaching the first layer, and the tiny-batch training test for three
activations. Seeded (the same builder always gets the same verdict), the caller's torch random
state is left as it was, and nothing is written to stderr: every failure is an AssertionError.
"""

from __future__ import annotations

from collections.abc import Callable

from nonlinearity import checks_cnn

# (activation, in_channels, n_classes, width, image_size)
_STRUCTURE_CASES = [
    ("sigmoid", 3, 10, 16, 32),
    ("tanh", 1, 5, 8, 16),
    ("relu", 3, 10, 16, 32),
    ("leaky_relu", 2, 3, 4, 24),
    ("gelu", 3, 100, 12, 40),
    ("silu", 1, 10, 8, 32),
]
_OUTPUT_CASES = [
    ("relu", 3, 10, 16, 32, 5),
    ("gelu", 1, 2, 8, 16, 1),
    ("sigmoid", 3, 7, 4, 24, 4),
    ("silu", 4, 10, 8, 8, 2),
]
_TRAINING_CASES = [("relu", 1), ("gelu", 2), ("tanh", 3)]


def grade_cnn(make_cnn: Callable) -> None:
    """Raise AssertionError (with a message for the student) unless make_cnn meets the contract."""
    if getattr(make_cnn, "__module__", "") == "nonlinearity.cnn":
        raise AssertionError("make_cnn is the course's reference builder from nonlinearity.cnn; "
                             "write your own")
    with checks_cnn.quiet_torch(1234):
        for activation, c, k, width, size in _STRUCTURE_CASES:
            checks_cnn.check_structure(make_cnn, activation, in_channels=c, n_classes=k, width=width,
                                       image_size=size)
        for activation, c, k, width, size, batch in _OUTPUT_CASES:
            checks_cnn.check_output(make_cnn, activation, in_channels=c, n_classes=k, width=width,
                                    image_size=size, batch=batch)
        # Two builds with the same seed give the same network; different activations do not share
        # module objects (a builder that caches and returns one model would fail here).
        a = checks_cnn.build(make_cnn, "relu", 3, 10, width=8, image_size=16)
        b = checks_cnn.build(make_cnn, "gelu", 3, 10, width=8, image_size=16)
        if a is b or any(p is q for p, q in zip(a.parameters(), b.parameters(), strict=False)):
            raise AssertionError("two calls of make_cnn returned the same network (or shared "
                                 "parameters); build a new one on every call")
    for activation, seed in _TRAINING_CASES:
        checks_cnn.check_training(make_cnn, activation, seed=seed)


# (seed, n, n_classes, requires_grad): square batches catch an argmax over the wrong axis, a
# single row and two classes the edges, logits that require grad a missing .detach()/.item().
_ACCURACY_CASES = [(10, 64, 10, False), (11, 7, 3, False), (18, 10, 10, False), (13, 1, 2, False),
                   (14, 500, 10, True), (15, 3, 100, False), (16, 4, 4, True)]


def grade_accuracy(accuracy: Callable) -> None:
    """Raise AssertionError (with a message for the student) unless accuracy(logits, labels) returns
    the fraction of rows whose largest logit is at the label, as a float. Only looks at what
    accuracy returns, so it can run again on a recording (see models.replay)."""
    for seed, n, n_classes, requires_grad in _ACCURACY_CASES:
        checks_cnn.judge_accuracy(accuracy, *checks_cnn.accuracy_case(seed, n, n_classes,
                                                                       requires_grad=requires_grad))
    logits, _ = checks_cnn.accuracy_case(17, 20, 5)
    checks_cnn.judge_accuracy(accuracy, logits, logits.argmax(dim=1))  # every row right: 1.0
    checks_cnn.judge_accuracy(accuracy, logits, (logits.argmax(dim=1) + 1) % 5)  # none right: 0.0
