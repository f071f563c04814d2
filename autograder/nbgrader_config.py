"""nbgrader configuration: this folder is the nbgrader course directory.

The single assignment `activations` holds every notebook of the course; its source folder
is a link to ../solutions, so `nbgrader generate_assignment activations` run here releases
the course exactly as `make release` does (which also copies the student notebooks to course/).
`python -m autograder grade` builds temporary course directories with the same settings
(autograder/coursedir.py: keep the two in step).
"""

c = get_config()  # noqa: F821 (injected by traitlets)

c.CourseDirectory.root = __file__.rsplit("/", 1)[0]
c.CourseDirectory.course_id = "activations"
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
# Some cells train small networks: nbgrader's default of 30 s per cell is too tight on a laptop.
c.Execute.timeout = 120
