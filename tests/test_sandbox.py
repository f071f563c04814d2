"""The grading sandbox (autograder.pipeline.sandbox): what a student's kernel can and cannot do.

Each test runs a short Python program exactly as a kernel would be run (the same bwrap,
setpriv and prlimit wrapping), and checks what an instructor relies on: no view of the
repository (solutions, reference, gradebook), no network, writes only in the scratch folder,
and the memory, process and file-size caps. Needs bubblewrap (`apt-get install bubblewrap`;
.ci/run installs it): without it these tests fail, they do not skip.

The tests hold in both modes of the sandbox: run by root (kernels as uid 61000 + worker, no user
namespace; `make test` in CI) and run by an ordinary user (an unprivileged user namespace, the
kernel keeps the instructor's uid; .ci/run-as-user runs this file as the user `nlgrader`).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid

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
                                      uid=sandbox.worker_uid(0), threads=1, unsafe=False,
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


def test_the_kernel_runs_as_the_workers_uid_without_capabilities(box):
    """Root grader: the worker's own uid (61000 for worker 0). Ordinary user: the instructor's
    uid, mapped to itself in the user namespace (a file the kernel writes is the instructor's).
    Either way never root, and no capabilities."""
    code = """
    import os
    print(os.getuid(), os.geteuid())
    status = dict(line.split(":", 1) for line in open("/proc/self/status"))
    print(status["CapEff"].strip(), status["CapPrm"].strip())
    open("mine.txt", "w").write("x")
    """
    uid, euid, cap_eff, cap_prm = lines(run_inside(box, code, name="uid"))
    expected = sandbox.FIRST_UID if os.geteuid() == 0 else os.getuid()
    assert int(uid) == int(euid) == expected != 0
    assert int(cap_eff, 16) == int(cap_prm, 16) == 0
    assert (box[0] / "scratch" / "uid" / "work" / "mine.txt").stat().st_uid == expected


def test_no_user_namespaces_inside(box):
    """An ordinary user's sandbox lets the student's code make no namespaces of its own (bwrap
    --disable-userns): the kernel's attack surface stays an ordinary process's."""
    if os.geteuid() == 0:
        pytest.skip("a root grader's sandbox has no user namespace to disable them in")
    if "--disable-userns" not in sandbox._bwrap_options():
        pytest.skip("this bubblewrap has no --disable-userns (0.8 and later)")
    code = """
    import ctypes
    print(ctypes.CDLL(None, use_errno=True).unshare(0x10000000))  # CLONE_NEWUSER
    """
    assert lines(run_inside(box, code)) == ["-1"]


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
    """The cap stops a fork loop below it, and counts the kernel's processes only: 80 processes
    the grader's user runs meanwhile do not take the kernel's share (RLIMIT_NPROC counts a uid's
    processes; an ordinary user's kernel shares the instructor's uid)."""
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
    others = [subprocess.Popen(["sleep", "120"]) for _ in range(80)]
    try:
        made = int(lines(run_inside(box, code, sandbox.Limits(processes=64), timeout=120))[0])
    finally:
        for proc in others:
            proc.kill()
            proc.wait()
    assert 40 <= made < 64


def test_process_cap_where_the_kernel_counts_a_uid_system_wide(box, monkeypatch):
    """An ordinary user's cap: the kernel's share, plus (where the kernel counts every process
    of the uid, before Linux 5.14) the processes and threads the instructor runs already."""
    root, library = box
    if os.geteuid() != 0:
        release = tuple(int(x) for x in os.uname().release.split(".")[:2] if x.isdigit())
        assert sandbox._nproc_per_namespace() == (release >= (5, 14)), os.uname().release
    mine = sandbox._tasks_of(os.getuid())
    assert mine >= 1 + (threading.active_count() - 1)  # this process and its threads at least

    def nproc(per_namespace: bool) -> int:
        monkeypatch.setattr(sandbox, "privileged", lambda: False)
        monkeypatch.setattr(sandbox, "_nproc_per_namespace", lambda: per_namespace)
        cfg = json.loads(sandbox.settings(root / "scratch", library, sandbox.Limits(processes=64),
                                          uid=None, threads=1, unsafe=False, token="test"))
        cmd = sandbox.wrap_command(["true"], cfg, root / "scratch")
        return int(next(a for a in cmd if a.startswith("--nproc=")).split("=")[1])

    assert nproc(True) == 64
    assert 64 + mine - 20 <= nproc(False) <= 64 + mine + 20  # others come and go meanwhile


def test_the_kernel_dies_with_the_grader(box):
    """SIGKILL the process that started a kernel (a grader killed mid-run): the kernel and its
    children go with it."""
    root, library = box
    token = f"sandbox-orphan-{uuid.uuid4().hex}"
    cfg = json.loads(sandbox.settings(root / "scratch", library, sandbox.Limits(),
                                      uid=sandbox.worker_uid(0), threads=1, unsafe=False,
                                      token="test"))
    scratch = sandbox.prepare_scratch(cfg, "orphan")
    code = (f"import os, time  # {token}\nif os.fork() == 0:\n    time.sleep(120)\n"
            "open('started', 'w').close()\ntime.sleep(120)")
    cmd = sandbox.wrap_command([sys.executable, "-c", code], cfg, scratch)
    launcher = f"import subprocess, sys, time\nsubprocess.Popen({cmd!r})\ntime.sleep(120)"
    grader = subprocess.Popen([sys.executable, "-c", launcher], env={"PATH": os.environ["PATH"]})

    def survivors() -> list[str]:
        found = []
        for entry in os.listdir("/proc"):
            try:
                if entry.isdigit() and token in open(f"/proc/{entry}/cmdline").read():
                    found.append(entry)
            except OSError:
                continue
        return found

    try:
        deadline = time.monotonic() + 60
        while not (scratch / "work" / "started").exists():
            assert time.monotonic() < deadline, "the sandboxed kernel never started"
            time.sleep(0.1)
        assert len(survivors()) >= 2  # the kernel and its child, seen from outside
        grader.send_signal(signal.SIGKILL)
        grader.wait()
        deadline = time.monotonic() + 10
        while survivors() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert survivors() == []
    finally:
        grader.kill()
        for pid in survivors():
            os.kill(int(pid), signal.SIGKILL)


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


FAKE_BWRAP = """#!/bin/sh
# A bubblewrap that cannot create namespaces, as where user namespaces are switched off.
case " $* " in *" --help "*) exit 0;; esac
echo "bwrap: No permissions to create a new namespace, likely because the kernel does not \\
allow non-privileged user namespaces." >&2
exit 1
"""


@pytest.mark.parametrize("setting", [path for path, _, _ in sandbox.USERNS_SYSCTLS] + [None],
                         ids=["unprivileged_userns_clone", "max_user_namespaces",
                              "apparmor_restrict_unprivileged_userns", "no_setting"])
def test_user_namespaces_switched_off(tmp_path, monkeypatch, capsys, setting):
    """An ordinary user where unprivileged user namespaces are off: exit status 2, and one line
    that names the setting to change (a fake bwrap that fails as the real one does there; the
    sysctl files of this kernel replaced by files holding the values that switch them off)."""
    subs = tmp_path / "subs" / "alice"
    subs.mkdir(parents=True)
    (subs / "01_linear_collapse.ipynb").write_text("{}")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "bwrap").write_text(FAKE_BWRAP)
    (bin_dir / "bwrap").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    sysctls = []
    for k, (path, off, fix) in enumerate(sandbox.USERNS_SYSCTLS):
        fake = tmp_path / f"sysctl-{k}"
        fake.write_text(f"{off}\n" if path == setting else ("1\n" if off == "0" else "0\n"))
        sysctls.append((str(fake), off, fix))
    monkeypatch.setattr(sandbox, "USERNS_SYSCTLS", sysctls)
    monkeypatch.setattr(sandbox, "privileged", lambda: False)
    from autograder import cli

    status = cli.main(["grade", str(tmp_path / "subs"), "--out", str(tmp_path / "out"),
                       "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert len(err) == 1 and "user namespace" in err[0], err
    if setting is None:
        assert "No permissions to create a new namespace" in err[0]
    else:
        name = setting.removeprefix("/proc/sys/").replace("/", ".")
        assert f"{name} is" in err[0] and f"sysctl -w {name}=" in err[0], err[0]
    assert not (tmp_path / "out" / "grades.csv").exists()
