"""Command line of the instructor tools: `python -m autograder release|grade|book`."""

from __future__ import annotations

import argparse
import os

GRADE_HELP = """\
Grade a whole class. SUBMISSIONS is a folder with one sub-folder per student
(SUBMISSIONS/<student_id>/NN_name.ipynb, any subset of the course notebooks) or a .zip
archive with the same layout. Submissions are copied, never modified.

Output in --out: grades.csv (student_id,notebook,score,max_score,status),
exercises.csv (student_id,notebook,grade_id,points,max_points) and
feedback/<student_id>/<notebook>.html (scores, visible-test output and hidden-test
messages; hidden-test source is stripped).

status is one of:
  ok       graded
  missing  the student did not submit this notebook (score 0)
  invalid  the file is not JSON or not a Jupyter notebook (score 0)
  timeout  a cell ran past --timeout and was interrupted (that cell fails, the other
           cells still count), or the notebook ran past its wall-clock budget of
           60 s + --timeout per code cell and was stopped (score 0)
  crashed  the kernel died (segfault, os._exit, memory exhausted) (score 0 for the
           notebook: nbgrader keeps nothing of a notebook whose kernel died)
  error    nbgrader could not grade the notebook for another reason (score 0)

Students are graded --workers at a time, each worker with its own temporary nbgrader
course directory and gradebook (one `nbgrader autograde` per student; per notebook when
that fails); scores equal a plain `nbgrader autograde`. Student code is NOT sandboxed
yet (no limits on file access, network or memory beyond the time limits): grade only
submissions you would run yourself. Progress goes to stderr, one line per notebook.

Exit status: 0 when grading ran (whatever the students' results), 2 for a usage error
(missing folder, unreadable archive, no student folders)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    release = sub.add_parser(
        "release", help="regenerate course/*.ipynb from solutions/",
        description="Regenerate the student notebooks course/NN_name.ipynb from solutions/ "
                    "with nbgrader generate_assignment (course directory autograder/).",
    )
    release.add_argument(
        "--check", action="store_true",
        help="write nothing; exit 1 and name the stale files if course/ is out of date",
    )

    book = sub.add_parser(
        "book", help="build the self-study site (executed course as HTML) in build/site/",
        description="Execute the solution notebooks (cached in build/book-cache/) and write the "
                    "static self-study site: index.html and one page per notebook, solutions "
                    "behind a reveal, hidden tests left out.",
    )
    book.add_argument("--out", default=None, metavar="DIR", help="site folder (default: build/site/)")

    grade = sub.add_parser(
        "grade", help="grade a folder or .zip of student submissions",
        description=GRADE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    grade.add_argument("submissions", metavar="SUBMISSIONS",
                       help="folder with one sub-folder per student, or a .zip of that")
    grade.add_argument("--out", default="grades", metavar="DIR",
                       help="output folder (default: grades/)")
    grade.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), metavar="N",
                       help="students graded in parallel (default: min(4, CPU count))")
    grade.add_argument("--timeout", type=int, default=120, metavar="SECONDS",
                       help="per-cell execution timeout (default: 120)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "release":
        from autograder import release

        return release.main(check=args.check)
    if args.command == "book":
        from autograder import book

        return book.main(args.out)
    from autograder import grade

    return grade.main(args.submissions, out=args.out, workers=args.workers,
                      timeout=args.timeout)
