"""The course's nbgrader course directory after grading: what nbgrader's own tools read.

`grade` records every student in the course's gradebook (autograder.pipeline.gradebook) and
puts the rest where nbgrader looks for it, under the course directory (`--course-dir`, default
autograder/, or $AUTOGRADER_COURSE_DIR):

    autograded/<student>/activations/<nb>.ipynb   the autograded notebooks, as the formgrader
                                                  opens them: hidden tests and tracebacks
                                                  removed, the judge's messages in
    feedback/<student>/activations/<nb>.html      the feedback pages, with timestamp.txt and
                                                  submission_secret.txt, for students who
                                                  submitted through nbgrader's exchange
                                                  (`nbgrader release_feedback` needs both)

Hand grading happens in the formgrader; a student with manual scores or comments gets their
feedback pages made again from the course directory (`nbgrader generate_feedback`, into a
folder of its own so that nbgrader's feedback/ keeps only pages it can release), so the pages
show the manual scores and comments. OUT/feedback-zips/<student>.zip holds each student's pages
for an LMS upload.
"""

from __future__ import annotations

import io
import os
import shutil
import zipfile
from pathlib import Path

from autograder.pipeline.coursedir import (
    ASSIGNMENT,
    AUTOGRADER_DIR,
    nbgrader_env,
    run_nbgrader,
    write_config,
)
from autograder.pipeline.feedback import leaks

COURSE_DIR_VAR = "AUTOGRADER_COURSE_DIR"
SIDE_FILES = ("timestamp.txt", "submission_secret.txt")  # what nbgrader's submit leaves
MANUAL_FEEDBACK = ".feedback-manual"  # nbgrader generate_feedback's output for manual grades


def default_course_dir() -> Path:
    """autograder/, or $AUTOGRADER_COURSE_DIR (the tests point it into a temporary folder)."""
    return Path(os.environ.get(COURSE_DIR_VAR) or AUTOGRADER_DIR)


def default_url(root: Path) -> str:
    return f"sqlite:///{(root / 'gradebook.db').resolve()}"


def prepare(root: Path, *, timeout: int = 120) -> Path:
    """Make `root` an nbgrader course directory (an existing nbgrader_config.py is kept)."""
    root.mkdir(parents=True, exist_ok=True)
    if not (root / "nbgrader_config.py").is_file():
        write_config(root.resolve(), timeout=timeout)
    return root


def _write(path: Path, data: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if isinstance(data, str):
        tmp.write_text(data, encoding="utf-8")
    else:
        tmp.write_bytes(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def place(root: Path, student: str, autograded: dict[str, str], pages: dict[str, str],
          submitted: Path, notebooks: list[str]) -> None:
    """Write one student's autograded `notebooks` and feedback pages into the course directory
    (a notebook graded before but not now loses its old copy); `submitted` is the folder that
    held the student's notebooks (nbgrader's side files)."""
    auto = root / "autograded" / student / ASSIGNMENT
    for nb in notebooks:
        if nb in autograded:
            _write(auto / f"{nb}.ipynb", autograded[nb])
        else:
            (auto / f"{nb}.ipynb").unlink(missing_ok=True)
    side = {name: (submitted / name).read_bytes() for name in SIDE_FILES
            if (submitted / name).is_file()}
    for name, data in side.items():
        _write(auto / name, data)
    if len(side) == len(SIDE_FILES):  # came through the exchange: release_feedback can send it
        dest = root / "feedback" / student / ASSIGNMENT
        for nb, page in pages.items():
            _write(dest / f"{nb}.html", page)
        for name, data in side.items():
            _write(dest / name, data)


def update_feedback(root: Path, student: str, pages: dict[str, str]) -> None:
    """Replace pages in the course's feedback/ folder, for a student who has pages there."""
    dest = root / "feedback" / student / ASSIGNMENT
    if (dest / "submission_secret.txt").is_file():
        for nb, page in pages.items():
            _write(dest / f"{nb}.html", page)


def manual_feedback(root: Path, db_url: str, student: str, notebooks: list[str],
                    secrets: set[str]) -> tuple[dict[str, str], str | None]:
    """Feedback pages of `student` made again by nbgrader from the course directory, with the
    manual scores and comments of the gradebook at `db_url`: (notebook -> page, a problem)."""
    from autograder.pipeline.gradebook import with_driver

    out = root / MANUAL_FEEDBACK
    proc = run_nbgrader(["generate_feedback", ASSIGNMENT, "--student", student, "--force",
                         f"--db={with_driver(db_url)}",
                         f"--CourseDirectory.feedback_directory={MANUAL_FEEDBACK}",
                         f"--CourseDirectory.root={root.resolve()}"],
                        cwd=root, env=nbgrader_env(), timeout=600)
    pages, problem = {}, None
    for nb in notebooks:
        path = out / student / ASSIGNMENT / f"{nb}.html"
        if not path.is_file():
            continue
        page = path.read_text(encoding="utf-8")
        leaked = leaks(page, secrets)
        if leaked:
            problem = f"withheld, it shows hidden-test source ({leaked[0]!r})"
            continue
        pages[nb] = page
    if proc.returncode != 0 and not pages:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        problem = f"nbgrader generate_feedback failed: {tail[0][:300]}"
    shutil.rmtree(out / student, ignore_errors=True)
    return pages, problem


def zip_feedback(out: Path, student: str) -> Path:
    """OUT/feedback-zips/<student>.zip: the student's feedback pages, for an LMS upload."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        for page in sorted((out / "feedback" / student).glob("*.html")):
            info = zipfile.ZipInfo(f"{student}/{page.name}", date_time=(2000, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, page.read_bytes())
    target = out / "feedback-zips" / f"{student}.zip"
    _write(target, buf.getvalue())
    return target
