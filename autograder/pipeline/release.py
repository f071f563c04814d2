"""`python -m autograder release`: regenerate the student notebooks in course/ from solutions/.

nbgrader's generate_assignment does the work (solutions become stubs, hidden tests go, cells get
checksums); this module then writes the released notebooks to course/NN_name.ipynb in a
normalised form (no outputs, stable cell ids, nbformat's sorted JSON), so the same solutions
always give byte-identical student notebooks and a test can detect drift. course/nonlinearity/
(the helper package) is never touched.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path

import nbformat

from autograder.pipeline.coursedir import (
    ASSIGNMENT,
    AUTOGRADER_DIR,
    COURSE,
    SOLUTIONS,
    NbgraderError,
    make_course_dir,
    run_nbgrader,
    solution_notebooks,
)


def normalise(released: Path, source: Path) -> str:
    """The student notebook text for `released` (nbgrader's output for solution `source`)."""
    nb = nbformat.read(released, as_version=4)
    source_ids = [cell.get("id") for cell in json.loads(source.read_text())["cells"]]
    for index, cell in enumerate(nb.cells):
        # nbformat invents random ids for cells that have none in the source: pin them.
        known = source_ids[index] if index < len(source_ids) else None
        if not known:
            seed = f"{source.name}:{index}".encode()
            cell["id"] = hashlib.sha1(seed).hexdigest()[:8]
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    text = nbformat.writes(nb)
    return text if text.endswith("\n") else text + "\n"


def render(release_dir: Path, solutions: Path = SOLUTIONS) -> dict[str, str]:
    """File name -> text of every student notebook, from an nbgrader release folder."""
    return {nb.name: normalise(release_dir / nb.name, nb) for nb in solution_notebooks(solutions)}


def render_in_tempdir(solutions: Path = SOLUTIONS) -> dict[str, str]:
    """Release into a throwaway course directory (writes nothing in the repository)."""
    with tempfile.TemporaryDirectory(prefix="autograder-release-") as tmp:
        return render(make_course_dir(Path(tmp), solutions), solutions)


def render_in_course_dir() -> dict[str, str]:
    """Release through the repository's nbgrader course directory autograder/.

    This also refreshes autograder/release/ and the assignment in autograder/gradebook.db,
    which nbgrader's own commands and the formgrader use.
    """
    proc = run_nbgrader(["generate_assignment", ASSIGNMENT, "--force"], cwd=AUTOGRADER_DIR)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise NbgraderError("nbgrader generate_assignment failed: " + " | ".join(tail))
    return render(AUTOGRADER_DIR / "release" / ASSIGNMENT)


def stale_files(expected: dict[str, str], course: Path = COURSE) -> list[str]:
    """Notebooks in `course` that differ from `expected`, are missing, or have no solution."""
    stale = []
    for name, text in expected.items():
        path = course / name
        if not path.is_file() or path.read_text() != text:
            stale.append(name)
    stale += [p.name for p in course.glob("*.ipynb") if p.name not in expected]
    return sorted(stale)


def write_course(expected: dict[str, str], course: Path = COURSE) -> list[str]:
    """Write the student notebooks; delete course/*.ipynb without a solution. Returns changes."""
    changed = stale_files(expected, course)
    for name in changed:
        path = course / name
        if name in expected:
            tmp = path.with_name(f".{name}.tmp")
            tmp.write_text(expected[name])
            tmp.replace(path)
        else:
            path.unlink()
    return changed


def main(check: bool = False, course: Path | None = None) -> int:
    """Release into `course` (default course/); with `check`, only compare. Exit status."""
    course = course or COURSE
    if not solution_notebooks():
        print(f"error: no notebooks in {SOLUTIONS}", file=sys.stderr)
        return 2
    try:
        expected = render_in_tempdir() if check else render_in_course_dir()
    except NbgraderError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if check:
        stale = stale_files(expected, course)
        if stale:
            print(f"course/ is out of date ({', '.join(stale)}): run make release",
                  file=sys.stderr)
            return 1
        print("course/ is up to date", file=sys.stderr)
        return 0
    changed = write_course(expected, course)
    summary = ", ".join(changed) if changed else "nothing changed"
    print(f"released {len(expected)} notebooks to {course}: {summary}", file=sys.stderr)
    return 0
