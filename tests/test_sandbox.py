"""The grading sandbox (autograder.pipeline.sandbox): what a student's kernel can and cannot do.

Each test runs a short Python program exactly as a kernel would be run (the same bwrap,
setpriv and prlimit wrapping), and checks what an instructor relies on: no view of the
repository (solutions, reference, gradebook), no network, writes only in the scratch folder,
and the memory, process and file-size caps. Needs bubblewrap (`apt-get install bubblewrap`;
.ci/run installs it): without it these tests fail, they do not skip.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from autograder.pipeline import sandbox
from autograder.pipeline.coursedir import AUTOGRADER_DIR, REPO, SOLUTIONS


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    if shutil.which("bwrap") is None:
        pytest.fail("bubblewrap is not installed: apt-get install -y bubblewrap (.ci/run does)")
    root = tmp_path_factory.mktemp("sandbox")
    os.chmod(root, 0o711)
    library = sandbox.sandbox_library(root / "library")
    return root, library


def run_inside(box, code: str, limits: sandbox.Limits | None = None, name: str = "nb",
               timeout: int = 60) -> subprocess.CompletedProcess:
    root, library = box
    cfg = json.loads(sandbox.settings(root / "scratch", library, limits or sandbox.Limits(),
                                      uid=sandbox.FIRST_UID, threads=1, unsafe=False,
                                      token="test"))
    scratch = sandbox.prepare_scratch(cfg, name)
    cmd = sandbox.wrap_command([sys.executable, "-c", textwrap.dedent(code)], cfg, scratch)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env={"PATH": os.environ["PATH"]})


def lines(proc: subprocess.CompletedProcess) -> list[str]:
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.split()


def test_the_repository_is_invisible(box):
    files = [AUTOGRADER_DIR / "judging" / "reference.py", AUTOGRADER_DIR / "judging" / "judge.py",
             SOLUTIONS / "02_relu.ipynb", REPO / "README.md"]
    code = f"""
    import os
    for f in {[str(f) for f in files]!r}:
        print(os.path.exists(f))
    """
    assert set(lines(run_inside(box, code))) == {"False"}


def test_other_notebooks_and_students_are_invisible(box):
    """Each kernel sees its own scratch folder only: not the worker's course directory (other
    students' submissions, the gradebook), not another notebook's scratch."""
    root, _ = box
    other = root / "scratch" / "other_student"
    other.mkdir(parents=True, exist_ok=True)
    (other / "secret.txt").write_text("answers")
    (root / "gradebook.db").write_text("grades")
    code = f"""
    import os
    for f in {[str(other / "secret.txt"), str(root / "gradebook.db")]!r}:
        print(os.path.exists(f))
    print(sorted(os.listdir({str(root / "scratch")!r})))
    """
    assert lines(run_inside(box, code, name="mine")) == ["False", "False", "['mine']"]


def test_the_reference_cannot_be_imported_but_the_recorder_can(box):
    code = """
    import importlib
    for mod in ("autograder.judging.reference", "autograder.judging.judge", "autograder.pipeline.grade",
                "autograder.recorders.kernels", "nonlinearity.checks"):
        try:
            importlib.import_module(mod)
            print("yes")
        except ImportError:
            print("no")
    """
    assert lines(run_inside(box, code)) == ["no", "no", "no", "yes", "yes"]


def test_no_network(box):
    code = """
    import socket
    for addr in (("127.0.0.1", 22), ("10.0.0.1", 80), ("1.1.1.1", 53)):
        try:
            socket.create_connection(addr, timeout=2)
            print("connected")
        except OSError:
            print("refused")
    """
    assert set(lines(run_inside(box, code))) == {"refused"}


def test_writes_land_only_in_the_scratch_folder(box, tmp_path):
    outside = tmp_path / "outside.txt"
    code = f"""
    for path in ("here.txt", "/tmp/private.txt", {str(outside)!r}, "/etc/evil", "/usr/evil",
                 {str(AUTOGRADER_DIR / "evil.py")!r}):
        try:
            open(path, "w").write("x")
            print("wrote")
        except OSError:
            print("denied")
    """
    assert lines(run_inside(box, code, name="writes")) == ["wrote", "wrote", "denied", "denied",
                                                          "denied", "denied"]
    assert not outside.exists() and not (AUTOGRADER_DIR / "evil.py").exists()
    assert (box[0] / "scratch" / "writes" / "work" / "here.txt").read_text() == "x"


def test_the_kernel_does_not_run_as_root(box):
    uid = int(lines(run_inside(box, "import os; print(os.getuid())"))[0])
    assert uid != 0
    if os.geteuid() == 0:
        assert uid == sandbox.FIRST_UID


def test_memory_cap_gives_memory_error(box):
    code = """
    try:
        block = bytearray(3 * 2**30)
        print("allocated")
    except MemoryError:
        print("MemoryError")
    """
    assert lines(run_inside(box, code, sandbox.Limits(memory_mb=2048))) == ["MemoryError"]


def test_process_cap_stops_a_fork_bomb(box):
    # Linear, not exponential, and bounded: children sleep; the parent counts its forks.
    code = """
    import os, time
    made = 0
    for _ in range(3000):
        try:
            pid = os.fork()
        except OSError:
            break
        if pid == 0:
            time.sleep(20)
            os._exit(0)
        made += 1
    print(made)
    """
    made = int(lines(run_inside(box, code, sandbox.Limits(processes=64), timeout=120))[0])
    assert made < 64


def test_file_size_cap(box):
    code = """
    try:
        with open("big.bin", "wb") as f:
            f.write(b"x" * (20 * 2**20))
        print("written")
    except OSError as err:
        print("refused")
    """
    proc = run_inside(box, "import signal; signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
                      + textwrap.dedent(code), sandbox.Limits(file_mb=8), name="big")
    assert lines(proc) == ["refused"]


def test_grade_refuses_without_bubblewrap(tmp_path, monkeypatch):
    """No sandbox: a one-line message and exit status 2, unless --unsafe-no-sandbox."""
    subs = tmp_path / "subs" / "alice"
    subs.mkdir(parents=True)
    (subs / "01_linear_collapse.ipynb").write_text("{}")
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    from autograder import cli

    status = cli.main(["grade", str(tmp_path / "subs"), "--out", str(tmp_path / "out"),
                       "--no-progress"])
    assert status == 2
    assert not (tmp_path / "out" / "grades.csv").exists()


def test_refusal_message_is_one_line(tmp_path, monkeypatch, capsys):
    subs = tmp_path / "subs" / "alice"
    subs.mkdir(parents=True)
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    from autograder import cli

    cli.main(["grade", str(tmp_path / "subs"), "--out", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bubblewrap" in err[0] and "--unsafe-no-sandbox" in err[0]
