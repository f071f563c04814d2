"""Instructor side of the course: reference kernels, hidden checks, release and grading."""
