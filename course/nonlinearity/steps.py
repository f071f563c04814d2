"""Counting the Python steps a function takes: how the checks tell a vectorised kernel from a loop.

Its own module, free of torch, because the grader's trusted side imports it too.
"""

import sys


def count_python_steps(run):
    """Python 'line' and 'call' events while run() executes (a Python loop makes some per element).

    Shared by the visible checks (nonlinearity.checks) and the hidden ones
    (autograder.recorders.kernels), so both count the same way.
    """
    count = 0

    def tracer(frame, event, arg):
        nonlocal count
        count += 1
        return tracer

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        run()
    finally:
        sys.settrace(previous)
    return count
