"""Check each Dask worker before it gets work: the sandbox runs there, and the versions agree.

The driver runs `check_worker` once on every worker (a task pinned to that worker, with the
grading bundle, so the check also unpacks the bundle the worker will use):

- Python, nbgrader and our grading code must be the driver's (the code as a hash of its source
  files, `code_hash`), since the worker runs the trusted judge and nbgrader's autograde;
- bubblewrap must start a sandboxed Python that imports numpy and the bundle's sandbox library
  (the namespaces it needs may be switched off on that host), unless grading is unsandboxed.

A worker that fails is named in one line and gets no work (tasks are restricted to the workers
that passed); with none left, `grade` exits 2 with the reason.
"""

from __future__ import annotations

import hashlib
import platform
import tempfile
from pathlib import Path

import nbgrader

from autograder.pipeline import sandbox, tasks
from autograder.pipeline.coursedir import AUTOGRADER_DIR, COURSE

PREFLIGHT_TIMEOUT_S = 180


def code_hash() -> str:
    """A hash of the grading code: every .py file of autograder/ and of the helper package."""
    h = hashlib.sha256()
    for top in (AUTOGRADER_DIR, COURSE / "nonlinearity"):
        for path in sorted(top.rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            h.update(str(path.relative_to(top.parent)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def versions() -> dict[str, str]:
    """What must be the same on the driver and every worker."""
    return {"Python": platform.python_version(), "nbgrader": nbgrader.__version__,
            "grading code": code_hash()[:12]}


def check_worker(bundle: tasks.Bundle, expected: dict[str, str]) -> str | None:
    """None when this worker can grade with `bundle`, else the reason in a few words."""
    mine = versions()
    wrong = [f"{name} {mine.get(name)} (the driver has {want})"
             for name, want in expected.items() if mine.get(name) != want]
    if wrong:
        return "different versions: " + ", ".join(wrong)
    root = tasks.unpack(bundle)
    _, settings = tasks.read_course(root)
    if settings.unsafe:
        return None
    with tempfile.TemporaryDirectory(prefix="preflight-", dir=tasks.worker_directory()) as work:
        try:
            sandbox.check_available(Path(work), root / "library")
        except sandbox.SandboxError as err:
            return str(err)
        except Exception as err:  # noqa: BLE001 - any failure makes the worker unusable
            return f"the sandbox check failed: {type(err).__name__}: {err}"
    return None


def submit_check(client, bundle_future, addr: str, expected: dict[str, str]):
    """Start check_worker on the worker at `addr`; the future gives None or the reason."""
    return client.submit(check_worker, bundle_future, expected, workers=[addr],
                         allow_other_workers=False, pure=False,
                         key=f"preflight-{addr}-{bundle_future.key}")


def verdict(future) -> str | None:
    """None when the check at `future` passed, else why the worker gets no work."""
    if future.status == "finished":
        return future.result()
    if future.status == "error":
        err = future.exception()
        return f"the check raised {type(err).__name__}: {err}"
    future.cancel()
    return f"the check did not finish within {PREFLIGHT_TIMEOUT_S} s"


def check_workers(client, bundle_future, addresses: list[str]) -> tuple[list[str], dict[str, str]]:
    """Run check_worker on each of `addresses`; (workers that passed, worker -> reason)."""
    from distributed import wait

    expected = versions()
    futures = {addr: submit_check(client, bundle_future, addr, expected) for addr in addresses}
    try:
        wait(list(futures.values()), timeout=PREFLIGHT_TIMEOUT_S)
    except TimeoutError:
        pass  # the workers that did not answer are named below
    passed, failed = [], {}
    for addr, future in futures.items():
        why = verdict(future)
        if why is None:
            passed.append(addr)
        else:
            failed[addr] = why
    return passed, failed
