"""Run each student kernel in a bubblewrap sandbox (used by `python -m autograder grade`).

nbgrader runs student code with the instructor's permissions, in the instructor's folders. Here
`SandboxedExecute` (nbgrader's Execute, configured into the workers' course directories) starts
every kernel through `SandboxedKernelManager`, which wraps the kernel command:

    bwrap  [read-only /usr, /etc, the Python install and the virtual environment;
            a private /tmp; the scratch folder of this notebook, read-write;
            no network, own PID/IPC/UTS namespaces; dies with the grader]
      setpriv --reuid UID       (when the grader runs as root: an unprivileged uid per worker,
                                 so the process cap below means something)
        prlimit --as --cpu --nproc --fsize --core=0
          python -m ipykernel_launcher -f SCRATCH/kernel.json

As an ordinary user (no root), bwrap makes an unprivileged user namespace instead (--unshare-user,
and --disable-userns where bwrap has it: no further namespaces inside) and there is no setpriv:
the kernel runs as the instructor's own uid, mapped to itself, without capabilities. What keeps it
off the instructor's files is then the mount namespace alone: everything is read-only except its
scratch folder and a private /tmp, and the repository is not mounted at all. The process cap
counts the kernel's uid: inside a user namespace (Linux 5.14 and later) only the processes in
that namespace, so the cap is the same as root's; on a kernel that counts every process of the
uid system-wide, the instructor's own count at kernel start is added (`_nproc_per_namespace`
finds out which, once per process). Where unprivileged user namespaces are switched off,
`check_available` names the setting to change (`userns_problem`).

The kernel talks to nbgrader over ZeroMQ's IPC transport (socket files in the scratch folder),
since a sandbox without network cannot reach loopback ports. It sees none of the repository: the
only grading code on its path is `sandbox_library()`, a copy of the modules that *record* a
kernel's outputs (autograder.recorders.kernels without the reference, the model and CNN checks, and the
course's helper package). The records land in SCRATCH/records and are judged outside.

Settings travel from the grader to nbgrader's kernel managers in one environment variable,
SANDBOX_ENV (JSON), per nbgrader process.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import nbformat
from jupyter_client.manager import AsyncKernelManager
from nbgrader.preprocessors import Execute

from autograder.pipeline.coursedir import AUTOGRADER_DIR, REPO
from autograder.recorders.kernels import RECORDS_ENV

SANDBOX_ENV = "AUTOGRADER_SANDBOX"
FIRST_UID = 61000  # worker k's kernels run as FIRST_UID + k when the grader is root
# What the kernel may import of our code: the recording side only.
NONLINEARITY = REPO / "course" / "nonlinearity"
OUTPUT_NOTE = "[output cut by the grader at {kb} kB for this cell]"
# The namespaces of an ordinary user's sandbox (a root grader's: see _bwrap_args).
USER_NAMESPACES = ["--unshare-user", "--unshare-ipc", "--unshare-pid", "--unshare-net",
                   "--unshare-uts", "--unshare-cgroup-try"]
# The settings that switch unprivileged user namespaces off: /proc/sys file, its value when
# off, and what to do about it.
USERNS_SYSCTLS = [
    ("/proc/sys/kernel/unprivileged_userns_clone", "0",
     "kernel.unprivileged_userns_clone is 0; set it to 1 "
     "(`sudo sysctl -w kernel.unprivileged_userns_clone=1`, and a file in /etc/sysctl.d "
     "to keep it)"),
    ("/proc/sys/user/max_user_namespaces", "0",
     "user.max_user_namespaces is 0; set it to a positive number "
     "(`sudo sysctl -w user.max_user_namespaces=15000`, and a file in /etc/sysctl.d "
     "to keep it)"),
    ("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", "1",
     "kernel.apparmor_restrict_unprivileged_userns is 1 (Ubuntu's AppArmor default); set it to "
     "0 (`sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`, and a file in "
     "/etc/sysctl.d to keep it), or load an AppArmor profile that allows `userns,` for bwrap"),
]


class SandboxError(RuntimeError):
    """The sandbox cannot run here (bubblewrap missing or not allowed to create namespaces)."""


@dataclass
class Limits:
    """Per-notebook caps on the student's kernel (each has a `grade` flag)."""

    memory_mb: int = 4096  # address space of the kernel process
    cpu_s: int = 900  # CPU seconds of the kernel process: a notebook, not a cell
    processes: int = 256  # processes and threads of the kernel's uid
    file_mb: int = 256  # largest file the kernel may write
    tmp_mb: int = 256  # size of its private /tmp
    output_kb: int = 1024  # output kept per cell; the rest is dropped


# ---------------------------------------------------------------- set-up (grader side)


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


def privileged() -> bool:
    """Whether the grader runs as root: then each worker's kernels get their own uid (setpriv)
    in a sandbox without a user namespace; otherwise an unprivileged user namespace."""
    return os.geteuid() == 0


def worker_uid(index: int) -> int | None:
    """The uid worker `index`'s kernels run as when the grader is root; None otherwise (the
    kernel keeps the instructor's uid, inside a user namespace)."""
    return FIRST_UID + index if privileged() else None


def userns_problem() -> str | None:
    """None when bubblewrap can make the namespaces of an ordinary user's sandbox here; else why
    not, in one line that names the setting to change."""
    probe = subprocess.run([bwrap_path() or "bwrap", *USER_NAMESPACES, "--ro-bind", "/", "/",
                            "--proc", "/proc", "--dev", "/dev", "--", "true"],
                           capture_output=True, text=True, timeout=60)
    if probe.returncode == 0:
        return None
    head = "bubblewrap cannot create a user namespace, which grading as an ordinary user needs"
    for path, off, fix in USERNS_SYSCTLS:
        try:
            value = Path(path).read_text().strip()
        except OSError:
            continue  # this kernel has no such setting
        if value == off:
            return f"{head}: {fix}; or grade as root"
    why = (probe.stderr.strip().splitlines() or [f"exit status {probe.returncode}"])[-1]
    return f"{head} ({why}); no sysctl setting explains it; grade as root, or ask your administrator"


@functools.cache
def _bwrap_options() -> str:
    try:
        return subprocess.run([bwrap_path() or "bwrap", "--help"], capture_output=True,
                              text=True, timeout=30).stdout
    except OSError:
        return ""


@functools.cache
def _nproc_per_namespace() -> bool:
    """Whether RLIMIT_NPROC in an unprivileged sandbox counts only the processes of its own user
    namespace (Linux 5.14 and later) rather than every process of the uid on the machine.

    Tried once per process: the sandbox's init, a Python and one child are 3 processes of this uid
    in the namespace, under a cap of 4; counted system-wide, the grader itself, bwrap outside and
    those three are already 5, and the fork fails."""
    code = ("import os, sys\ntry:\n    pid = os.fork()\nexcept OSError:\n    sys.exit(3)\n"
            "if pid == 0:\n    os._exit(0)\nos.waitpid(pid, 0)")
    probe = subprocess.run([bwrap_path() or "bwrap", *USER_NAMESPACES, "--die-with-parent",
                            "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--",
                            "prlimit", "--nproc=4", "--", sys.executable, "-c", code],
                           capture_output=True, text=True, timeout=60)
    return probe.returncode == 0


def check_available(work: Path, library: Path) -> None:
    """Raise SandboxError with a one-line reason unless a sandboxed Python starts here and
    imports numpy and `library` (from sandbox_library); work: an empty folder to try it in."""
    if bwrap_path() is None:
        raise SandboxError("bubblewrap (bwrap) is not installed: install the Debian package "
                           "`bubblewrap`, or pass --unsafe-no-sandbox to run student code "
                           "with your own permissions")
    if not privileged() and (problem := userns_problem()):
        raise SandboxError(problem)
    cfg = json.loads(settings(work / "scratch", library, Limits(), uid=worker_uid(0), threads=1,
                              unsafe=False, token="probe"))
    scratch = prepare_scratch(cfg, "probe")
    cmd = wrap_command([sys.executable, "-c", "import numpy, nonlinearity"], cfg, scratch)
    probe = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                           env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    if probe.returncode != 0:
        why = (probe.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise SandboxError(f"bubblewrap cannot run a sandboxed kernel here ({why}); "
                           "pass --unsafe-no-sandbox to run student code with your own permissions")


def autograde_preprocessors() -> list:
    """nbgrader's autograde pipeline with Execute replaced by SandboxedExecute."""
    from nbgrader.converters import Autograde

    default = Autograde.class_traits()["autograde_preprocessors"].default()
    if Execute not in default:
        raise SandboxError("nbgrader's autograde no longer runs its Execute preprocessor: "
                           "autograder.pipeline.sandbox needs updating for this nbgrader version")
    return [SandboxedExecute if p is Execute else p for p in default]


def sandbox_library(dest: Path) -> Path:
    """Copy the import-safe grading modules into dest (autograder/ and nonlinearity/)."""
    (dest / "autograder").mkdir(parents=True)
    # The top package's __init__ and autograder.recorders: nothing that judges or grades.
    shutil.copyfile(AUTOGRADER_DIR / "__init__.py", dest / "autograder" / "__init__.py")
    shutil.copytree(AUTOGRADER_DIR / "recorders", dest / "autograder" / "recorders",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copytree(NONLINEARITY, dest / "nonlinearity",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


def settings(scratch: Path, library: Path, limits: Limits, *, uid: int | None, threads: int,
             unsafe: bool, token: str) -> str:
    """The JSON for SANDBOX_ENV: where one student's kernels keep their files, and how."""
    per_namespace = None  # a root grader's kernels: their own uid, counted system-wide
    if not unsafe and not (privileged() and uid is not None):
        per_namespace = _nproc_per_namespace()
    return json.dumps({"scratch": str(scratch), "library": str(library), "limits": asdict(limits),
                       "uid": uid, "threads": threads, "unsafe": unsafe, "token": token,
                       "nproc_per_namespace": per_namespace})


# ---------------------------------------------------------------- the command line


def _system_binds() -> list[str]:
    args = []
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        path = Path(top)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), top]
        elif path.is_dir():
            args += ["--ro-bind", top, top]
    return args + ["--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc"]


def _python_binds() -> list[str]:
    """The interpreter's install and the virtual environment, read-only (bound back after /tmp
    is masked, since a CI checkout may live there); any installed copy of our grading package
    (a non-editable install) is masked, since it holds the reference."""
    roots = []
    for root in {Path(sys.base_prefix).resolve(), Path(sys.prefix).absolute()}:
        if not str(root).startswith("/usr/"):
            roots.append(str(root))
    args = []
    for root in sorted(roots, key=len):
        args += ["--ro-bind", root, root]
    for entry in sys.path:
        candidate = Path(entry) / "autograder" / "judging" / "reference.py"
        if entry and candidate.is_file() and candidate.parents[1] != AUTOGRADER_DIR:
            if any(str(candidate).startswith(r + "/") for r in roots):
                args += ["--tmpfs", str(candidate.parents[1])]
    return args


def _bwrap_args(scratch: Path, library: Path, env_args: list[str], *, as_root: bool = False,
                tmp_mb: int = 256) -> list[str]:
    if as_root:
        # Privileged bwrap: no user namespace (so setpriv can switch to the worker's uid).
        ns = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
              "--unshare-cgroup-try", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        # An unprivileged user namespace, the kernel's uid mapped to the instructor's own, and
        # (bubblewrap 0.8 and later) no further user namespaces for the student's code.
        ns = USER_NAMESPACES + (["--disable-userns"] if "--disable-userns" in _bwrap_options()
                                else [])
    mounts = [*_python_binds(), "--ro-bind", str(library), str(library),
              "--bind", str(scratch), str(scratch)]
    binds = [
        "--proc", "/proc", "--dev", "/dev",
        "--perms", "1777", "--size", str(tmp_mb * 2**20), "--tmpfs", "/tmp",
        *_parent_dirs([mounts[i + 2] for i, a in enumerate(mounts) if a.endswith("bind")]),
        *mounts,
        "--chdir", str(scratch / "work"),
    ]
    return [bwrap_path() or "bwrap", *ns, "--die-with-parent", "--new-session",
            "--hostname", "sandbox", "--clearenv", *env_args, *_system_binds(), *binds,
            "--remount-ro", "/", "--"]


def _parent_dirs(paths: list[str]) -> list[str]:
    """--dir for every ancestor of the mount points, world-traversable (bwrap would create them
    with the source's mode, 0700 for /root, which an unprivileged kernel could not enter)."""
    ancestors = sorted({str(p) for path in paths for p in Path(path).parents if str(p) != "/"},
                       key=lambda p: (p.count("/"), p))
    return [arg for p in ancestors for arg in ("--perms", "0755", "--dir", p)]


def _tasks_of(uid: int) -> int:
    """Processes and threads whose real uid is `uid` (what RLIMIT_NPROC counts system-wide)."""
    count = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines()
                          if line.startswith(("Uid:", "Threads:")))
            if int(fields["Uid"].split()[0]) == uid:
                count += int(fields.get("Threads", "1"))
        except (OSError, ValueError, KeyError):
            continue
    return count


def wrap_command(kernel_cmd: list[str], cfg: dict, scratch: Path) -> list[str]:
    """The sandboxed kernel command for one notebook whose files live in `scratch`."""
    limits = Limits(**cfg["limits"])
    threads = str(cfg["threads"])
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(scratch / "work"), "TMPDIR": "/tmp", "LANG": "C.UTF-8",
        "PYTHONPATH": cfg["library"], "PYTHONDONTWRITEBYTECODE": "1",
        "MPLBACKEND": "Agg", "MPLCONFIGDIR": str(scratch / "work" / ".matplotlib"),
        "PYDEVD_DISABLE_FILE_VALIDATION": "1", "MALLOC_ARENA_MAX": "2",
        "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads,
        RECORDS_ENV: str(scratch / "records"), "AUTOGRADER_JOB": cfg["token"],
        "NONLINEARITY_GRADING": "1",  # the ungraded experiments run at a token size
    }
    if cfg["unsafe"]:
        return kernel_cmd  # env and cwd are applied by the kernel manager
    env_args = [arg for key, value in env.items() for arg in ("--setenv", key, value)]
    uid = cfg["uid"]
    as_root = privileged() and uid is not None
    # Root: the worker's own uid, nothing else runs as it. An ordinary user: the processes of the
    # sandbox's user namespace, or (older kernels) every process of the instructor's uid, so the
    # cap is raised by what the instructor runs now.
    per_namespace = as_root or cfg.get("nproc_per_namespace", True)
    nproc = limits.processes + (0 if per_namespace else _tasks_of(os.getuid()))
    prlimit = ["prlimit", f"--as={limits.memory_mb * 2**20}", f"--cpu={limits.cpu_s}",
               f"--nproc={nproc}", f"--fsize={limits.file_mb * 2**20}", "--core=0", "--"]
    drop = (["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--no-new-privs"]
            if as_root else [])
    return [*_bwrap_args(scratch, Path(cfg["library"]), env_args, as_root=as_root,
                         tmp_mb=limits.tmp_mb), *drop, *prlimit, *kernel_cmd]


def kernel_env(cfg: dict, scratch: Path) -> dict[str, str]:
    """The environment of an unsandboxed (--unsafe-no-sandbox) kernel: still records."""
    env = dict(os.environ)
    env.pop(SANDBOX_ENV, None)
    env.update({RECORDS_ENV: str(scratch / "records"), "MPLBACKEND": "Agg",
                "OMP_NUM_THREADS": str(cfg["threads"]), "NONLINEARITY_GRADING": "1"})
    return env


def prepare_scratch(cfg: dict, notebook: str) -> Path:
    """A fresh scratch folder for one notebook's kernel, owned by the kernel's uid."""
    scratch = Path(cfg["scratch"]) / notebook
    if scratch.exists():
        shutil.rmtree(scratch)
    (scratch / "work").mkdir(parents=True)
    (scratch / "records").mkdir()
    uid = cfg["uid"]
    if uid is not None and privileged() and not cfg["unsafe"]:
        for path in (scratch, scratch / "work", scratch / "records"):
            os.chown(path, uid, uid)
    return scratch


# ---------------------------------------------------------------- nbgrader side


class SandboxedKernelManager(AsyncKernelManager):
    """A kernel manager whose kernel runs in the sandbox (see the module docstring)."""

    notebook_name = "notebook"

    def _config(self) -> dict:
        return json.loads(os.environ[SANDBOX_ENV])

    async def _async_pre_start_kernel(self, **kw):
        cfg = self._config()
        self._scratch = prepare_scratch(cfg, self.notebook_name)
        if not cfg["unsafe"]:
            self.transport = "ipc"
            self.connection_file = str(self._scratch / "kernel.json")
            self.ip = str(self._scratch / "kernel-ipc")
            # A SIGINT would reach bwrap, not the kernel inside it (and kill the sandbox): ask
            # the kernel to interrupt itself over the control channel instead.
            self.kernel_spec.interrupt_mode = "message"
        return await super()._async_pre_start_kernel(**kw)

    async def _async_launch_kernel(self, kernel_cmd, **kw):
        cfg = self._config()
        if cfg["unsafe"]:
            kw["cwd"] = str(self._scratch / "work")
            kw["env"] = kernel_env(cfg, self._scratch)
        else:
            conn = Path(self.connection_file)
            if cfg["uid"] is not None and privileged():
                os.chown(conn, cfg["uid"], cfg["uid"])
            kw["cwd"] = str(self._scratch)
            kw["env"] = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                         "AUTOGRADER_JOB": cfg["token"]}
            kernel_cmd = wrap_command(list(kernel_cmd), cfg, self._scratch)
        return await super()._async_launch_kernel(kernel_cmd, **kw)


class SandboxedExecute(Execute):
    """nbgrader's Execute with sandboxed kernels, a scratch folder per notebook, and a cap on the
    output kept per cell (a flood must not fill the grader's memory)."""

    def __init__(self, **kw):
        kw["kernel_manager_class"] = SandboxedKernelManager
        super().__init__(**kw)
        self._output_bytes: dict[int, int] = {}
        self._output_cap = 0
        self._notebook = "notebook"

    def preprocess(self, nb, resources=None, km=None):
        self._notebook = (resources or {}).get("unique_key") or "notebook"
        self._output_bytes = {}
        limits = Limits(**json.loads(os.environ[SANDBOX_ENV])["limits"])
        self._output_cap = limits.output_kb * 1024
        return super().preprocess(nb, resources, km)

    def create_kernel_manager(self):
        km = super().create_kernel_manager()
        km.notebook_name = self._notebook
        return km

    def output(self, outs, msg, display_id, cell_index):
        cap = self._output_cap
        content = msg.get("content", {})
        size = len(content.get("text", "")) + sum(
            len(v) if isinstance(v, str) else len(json.dumps(v))
            for v in content.get("data", {}).values())
        used = self._output_bytes.get(cell_index, 0)
        self._output_bytes[cell_index] = used + size
        if used + size > cap:
            if used <= cap:
                note = nbformat.v4.new_output(
                    "stream", name="stdout", text=f"\n{OUTPUT_NOTE.format(kb=cap // 1024)}\n")
                outs.append(note)
                return note
            return None
        return super().output(outs, msg, display_id, cell_index)
