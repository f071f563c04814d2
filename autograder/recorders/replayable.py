"""Which model exercises are judged by replaying a recording (autograder.recorders.models).

Checks that only look at what the student's function returns can be run again outside the
grading sandbox on a recording of those returns (see models.Recorder / models.replay): there,
nothing the student's code did in the kernel can change the verdict. revive_dead_units is judged
by its effect on a layer, so it stays a check inside the kernel (and autograder.judging.flags
watches it). A module of its own, free of torch: the driver reads it when it loads the course.
"""

REPLAYABLE = ("layer_grad_norms", "init_std", "accuracy")
