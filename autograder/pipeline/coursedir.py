"""Where the course lives, and throwaway nbgrader course directories built from it.

The repository's own nbgrader course directory is autograder/ (see nbgrader_config.py). Release
checks and grading run nbgrader in a temporary course directory instead, so they never touch
the instructor's gradebook and several can run side by side.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ASSIGNMENT = "activations"
AUTOGRADER_DIR = Path(__file__).resolve().parent.parent
REPO = AUTOGRADER_DIR.parent
SOLUTIONS = REPO / "solutions"
COURSE = REPO / "course"

# Same stub as autograder/nbgrader_config.py, so a temporary release equals the real one.
CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
KEEP_TEMPLATES = 4  # generated course directories kept in the cache (a few MB each)


class NbgraderError(RuntimeError):
    """An nbgrader command failed; the message carries the tail of its log."""


def solution_notebooks(solutions: Path = SOLUTIONS) -> list[Path]:
    """The instructor notebooks, sorted by file name (NN_name.ipynb)."""
    return sorted(solutions.glob("*.ipynb"))


def nbgrader_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for nbgrader and the kernels it starts.

    nbgrader shells out to alembic, so the interpreter's bin/ goes first on PATH; figures use
    the non-interactive backend.
    """
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["MPLBACKEND"] = "Agg"
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    env.pop("JUPYTER_CONFIG_DIR", None)
    if extra:
        env.update(extra)
    return env


def write_config(root: Path, *, timeout: int = 120, sandboxed: bool = False) -> None:
    """Write an nbgrader_config.py that makes `root` a course directory like autograder/.

    `timeout` is the per-cell execution timeout in seconds; `sandboxed` runs autograde's
    kernels through autograder.pipeline.sandbox (settings in its environment variable, per run).
    """
    lines = [
        "c = get_config()  # noqa: F821",
        f"c.CourseDirectory.root = {str(root)!r}",
        f"c.CourseDirectory.course_id = {ASSIGNMENT!r}",
        f"c.ClearSolutions.code_stub = {{'python': {CODE_STUB!r}}}",
        # Our own grading reads the gradebook; nbgrader's log goes to its stderr, captured.
        "c.Application.log_level = 'WARN'",
        f"c.Execute.timeout = {int(timeout)}",
    ]
    if sandboxed:
        lines += [
            "from autograder.pipeline.sandbox import autograde_preprocessors",
            "c.Autograde.autograde_preprocessors = autograde_preprocessors()",
            f"c.SandboxedExecute.timeout = {int(timeout)}",
            # The grader rewrites the autograded notebooks (redaction, the trusted verdicts):
            # nbgrader's default 444 refuses that to anyone but root.
            "c.Autograde.permissions = 644",
        ]
    (root / "nbgrader_config.py").write_text("\n".join(lines) + "\n")


def run_nbgrader(args: list[str], cwd: Path, *, timeout: float | None = None,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run `nbgrader ARGS` in course directory `cwd` with this interpreter."""
    return subprocess.run(
        [sys.executable, "-m", "nbgrader", *args],
        cwd=cwd, env=env or nbgrader_env(), capture_output=True, text=True, timeout=timeout,
    )


def make_course_dir(root: Path, solutions: Path = SOLUTIONS, *, timeout: int = 120) -> Path:
    """Create an nbgrader course directory in `root` with the assignment generated.

    The source notebooks are copied (not linked), so the result does not depend on later edits
    of solutions/. Returns the release folder of the assignment.
    """
    source = root / "source" / ASSIGNMENT
    source.mkdir(parents=True)
    for nb in solution_notebooks(solutions):
        shutil.copyfile(nb, source / nb.name)
    write_config(root, timeout=timeout)
    proc = run_nbgrader(["generate_assignment", ASSIGNMENT, "--force"], cwd=root)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise NbgraderError("nbgrader generate_assignment failed: " + " | ".join(tail))
    return root / "release" / ASSIGNMENT


def _template_cache() -> Path | None:
    """Where generated course directories are kept between runs: $AUTOGRADER_CACHE, else the
    user's cache folder; None when it cannot be written (then every run generates its own)."""
    base = os.environ.get("AUTOGRADER_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "autograder")
    path = Path(base) / "course-templates"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return path if os.access(path, os.W_OK) else None


def _template_key(solutions: Path) -> str:
    """What a generated course directory depends on: the solution notebooks, nbgrader's version
    and this module (the config it writes)."""
    import nbgrader

    h = hashlib.sha256(f"{nbgrader.__version__}\0".encode())
    h.update(Path(__file__).read_bytes())
    for nb in solution_notebooks(solutions):
        h.update(f"\0{nb.name}\0".encode())
        h.update(nb.read_bytes())
    return h.hexdigest()[:24]


def course_dir_from_cache(root: Path, solutions: Path = SOLUTIONS, *, timeout: int = 120) -> Path:
    """make_course_dir, reusing the directory generated for the same solutions before.

    `nbgrader generate_assignment` takes seconds on every grading run although its result only
    changes with the solutions: the first run keeps a copy in the cache (built aside, then renamed
    into place, so parallel runs never see half a copy), later runs copy it. Returns the release
    folder of the assignment.
    """
    cache = _template_cache()
    if cache is None:
        return make_course_dir(root, solutions, timeout=timeout)
    cached = cache / _template_key(solutions)
    if not cached.is_dir():
        building = Path(tempfile.mkdtemp(prefix=".building-", dir=cache))
        try:
            make_course_dir(building / "course", solutions, timeout=timeout)
            try:
                os.rename(building / "course", cached)
            except OSError:  # another run put the same template there first
                pass
        finally:
            shutil.rmtree(building, ignore_errors=True)
    shutil.copytree(cached, root, symlinks=True)
    write_config(root, timeout=timeout)
    os.utime(cached)  # recently used: kept by _prune
    _prune(cache)
    return root / "release" / ASSIGNMENT


def _prune(cache: Path, keep: int = KEEP_TEMPLATES) -> None:
    """Remove all but the `keep` most recently used course directories (old solutions)."""
    kept = sorted((p for p in cache.iterdir() if p.is_dir() and not p.name.startswith(".")),
                  key=lambda p: p.stat().st_mtime, reverse=True)
    for old in kept[keep:]:
        shutil.rmtree(old, ignore_errors=True)
