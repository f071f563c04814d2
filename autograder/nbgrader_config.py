"""nbgrader configuration: this folder is the nbgrader course directory.

The single assignment `activations` holds every notebook of the course; its source folder
is a link to ../solutions, so `nbgrader generate_assignment activations` run here releases
the course exactly as `make release` does.
"""

c = get_config()  # noqa: F821 (injected by traitlets)

c.CourseDirectory.root = __file__.rsplit("/", 1)[0]
c.CourseDirectory.course_id = "activations"
c.CourseDirectory.db_assignments = [dict(name="activations")]
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
