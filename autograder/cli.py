"""Command line of the instructor tools: `python -m autograder release|grade|book`."""

from __future__ import annotations

import argparse
import os

from autograder.pipeline.sandbox import Limits

GRADE_HELP = """\
Grade a whole class. SUBMISSIONS is a folder with one sub-folder per student
(SUBMISSIONS/<student_id>/NN_name.ipynb, any subset of the course notebooks) or a .zip
archive with the same layout. Submissions are copied, never modified.

Output in --out: grades.csv (student_id,notebook,score,max_score,status),
exercises.csv (student_id,notebook,grade_id,points,max_points), flags.csv
(student_id,notebook,reason: code that reaches for the grading machinery),
messages.csv (student_id,notebook,grade_id,message: the judge's or the failing check's
message for each cell that lost points), timings.csv (student_id,notebook,seconds),
feedback/<student_id>/<notebook>.html (scores, visible-test output and hidden-test
messages; hidden-test source is stripped) and report.html (the class report). The CSVs
are written once, at the end.

status is one of:
  ok       graded
  missing  the student did not submit this notebook (score 0)
  invalid  not JSON, not a notebook of format 4, or larger than 20 MB (score 0)
  timeout  a cell ran past --timeout and was interrupted (that cell fails, the other
           cells still count), or the notebook ran past --notebook-timeout (default
           60 s + --timeout per code cell) and was stopped (score 0)
  crashed  the kernel died: os._exit, a segfault, the CPU-time cap (score 0 for the
           notebook: nbgrader keeps nothing of a notebook whose kernel died)
  memory   a cell hit the memory cap (MemoryError); the other cells still count
  flagged  graded, but the student's code touches the grading machinery (see flags.csv);
           the score counts only what the trusted checks passed
  error    nbgrader could not grade the notebook for another reason (score 0)
  needs_manual  graded, but hand-graded answers (written_NN) have no score yet: grade
           them in the formgrader and run the command again (the score counts only
           what is graded so far)

Isolation: every kernel runs in a bubblewrap sandbox (Debian package `bubblewrap`): a
read-only system, none of the repository (no solutions, reference or gradebook), no other
student's files, a private scratch folder and /tmp, no network, and caps on memory, CPU
time, processes and file size. Without bubblewrap, grade refuses to run unless you pass
--unsafe-no-sandbox. The hidden tests only record the kernels' outputs in the sandbox; they
are judged against the reference outside it, so monkeypatching, IPython hooks or lying
objects gain nothing.

Grading runs on Dask distributed, one task per student: by default on a local cluster of
--workers worker processes (127.0.0.1 only, nothing to start), or on a running cluster
with --scheduler tcp://HOST:PORT or --scheduler-file FILE (`dask scheduler` and
`dask worker`, dask-jobqueue on Slurm, Dask on Kubernetes). The course, the sandbox
library and the settings travel to the workers with the tasks: no shared file system is
needed, but every worker needs bubblewrap and the same Python, nbgrader and grading code
as this machine; each worker is checked first, and one that fails is named and gets no
work. A task whose worker dies runs again on another worker (at most twice). A progress
bar goes to stderr. Finished students are kept in OUT/.state/: run the same command again
after an interruption and it continues (--fresh regrades everyone).

The scores also go into the course's nbgrader gradebook (--db URL, any database URL
nbgrader accepts, e.g. postgresql://USER@HOST/DB; default: gradebook.db in the course
directory), whose schema and course rows are created before grading starts, and the
autograded notebooks into the course directory (--course-dir, default autograder/:
autograded/<student>/activations/), so `nbgrader formgrader`, hand grading,
`nbgrader export` and the feedback route (release_feedback, fetch_feedback) work on them.
Manual scores given in the formgrader survive regrading and count in the CSVs, and the
feedback pages of a hand-graded student show them. feedback-zips/<student>.zip holds
each student's pages for an LMS upload.

A regrade request, --student ID and/or --notebook NAME (each repeatable), grades just
those again, even if already graded, and keeps every other student's rows, state,
feedback and gradebook rows as they were.

Exit status: 0 when grading ran (whatever the students' results), 2 for a usage error
(missing folder, unreadable archive, no student folders, no scheduler or usable worker,
a gradebook that cannot be opened)."""


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

    report = sub.add_parser(
        "report", help="draw the class report (report.html) from a grades folder",
        description="Read grades.csv, exercises.csv (and messages.csv, timings.csv when present) "
                    "from GRADES, the --out folder of `grade`, and write an offline report.html: "
                    "score distributions, points per exercise, statuses, the most common "
                    "diagnosed mistakes per kernel and the slowest notebooks.",
    )
    report.add_argument("grades", metavar="GRADES", help="the folder `grade` wrote (e.g. grades/)")
    report.add_argument("--out", default=None, metavar="DIR",
                        help="where report.html goes (default: GRADES)")

    grade = sub.add_parser(
        "grade", help="grade a folder or .zip of student submissions",
        description=GRADE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    grade.add_argument("submissions", metavar="SUBMISSIONS",
                       help="folder with one sub-folder per student, or a .zip of that")
    grade.add_argument("--out", default="grades", metavar="DIR",
                       help="output folder (default: grades/)")
    limits = Limits()
    grade.add_argument("--workers", type=int, default=os.cpu_count() or 1, metavar="N",
                       help="worker processes of the local Dask cluster, i.e. students graded in "
                            "parallel (default: the number of CPU cores; ignored with --scheduler)")
    grade.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="grade on a running Dask cluster: its scheduler's tcp://HOST:PORT")
    grade.add_argument("--scheduler-file", default=None, metavar="FILE",
                       help="grade on a running Dask cluster: the scheduler file it wrote")
    grade.add_argument("--db", default=None, metavar="URL",
                       help="nbgrader gradebook to record the scores in "
                            "(default: sqlite:///COURSE_DIR/gradebook.db)")
    grade.add_argument("--course-dir", default=None, metavar="DIR",
                       help="the nbgrader course directory that receives the autograded "
                            "notebooks (default: autograder/, or $AUTOGRADER_COURSE_DIR)")
    grade.add_argument("--timeout", type=int, default=120, metavar="SECONDS",
                       help="wall-clock limit per cell (default: 120)")
    grade.add_argument("--notebook-timeout", type=int, default=None, metavar="SECONDS",
                       help="wall-clock limit per notebook (default: 60 + --timeout per code cell)")
    grade.add_argument("--memory", type=int, default=limits.memory_mb, metavar="MB",
                       help=f"memory (address space) per kernel (default: {limits.memory_mb})")
    grade.add_argument("--cpu-time", type=int, default=limits.cpu_s, metavar="SECONDS",
                       help=f"CPU time per kernel, i.e. per notebook (default: {limits.cpu_s})")
    grade.add_argument("--processes", type=int, default=limits.processes, metavar="N",
                       help=f"processes and threads per kernel (default: {limits.processes})")
    grade.add_argument("--unsafe-no-sandbox", action="store_true",
                       help="run student code without the sandbox, with your permissions")
    grade.add_argument("--student", action="append", dest="students", metavar="ID",
                       help="regrade just this student (repeatable), even if already graded; "
                            "everyone else's rows, state, feedback and gradebook rows stay")
    grade.add_argument("--notebook", action="append", dest="notebooks", metavar="NAME",
                       help="regrade just this notebook (repeatable, e.g. 02_relu), of every "
                            "student or of the --student ones")
    grade.add_argument("--fresh", action="store_true",
                       help="regrade every student, ignoring finished ones kept in OUT/.state/")
    grade.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "release":
        from autograder.pipeline import release

        return release.main(check=args.check)
    if args.command == "book":
        from autograder.site import book

        return book.main(args.out)
    if args.command == "report":
        from autograder.instructor import report

        return report.main(args.grades, args.out)
    from autograder.pipeline import grade

    options = grade.Options(
        workers=args.workers, timeout=args.timeout, notebook_timeout=args.notebook_timeout,
        limits=Limits(memory_mb=args.memory, cpu_s=args.cpu_time, processes=args.processes),
        unsafe=args.unsafe_no_sandbox, fresh=args.fresh, progress=not args.no_progress,
        scheduler=args.scheduler, scheduler_file=args.scheduler_file, db=args.db,
        students=args.students, notebooks=args.notebooks, course_dir=args.course_dir)
    return grade.main(args.submissions, out=args.out, options=options)
