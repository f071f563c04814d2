"""Broken and dishonest student submissions, built from the course itself.

Every case in CASES is ONE student folder (student id = case name). It starts from what a student
who solved everything submits (`filled(stem)`: the released notebook course/NN.ipynb, each solution
cell holding the instructor's code from solutions/NN.ipynb without the BEGIN/END SOLUTION
markers) and applies one mutation. Only the notebooks a case needs are written (mostly 02_relu,
sometimes 01_linear_collapse); the others are missing, so grading a class of cases stays fast.

Statuses (the `status` column of grades.csv, one per student and notebook) of the hardened
`python -m autograder grade`:

  ok       graded normally;
  missing  no such notebook in the student's folder;
  invalid  not JSON, not a notebook, wrong nbformat major version (3, 5), empty, or larger than
           the size cap (20 MB);
  timeout  a cell or the whole notebook ran past its wall-clock limit (infinite loop, an output
           flood that never ends);
  crashed  the kernel died (os._exit, segfault, killed for CPU time or processes);
  memory   the notebook hit the memory cap (MemoryError in a cell's output); the other cells
           still count;
  flagged  grading ran, but the student's code touches grading machinery (monkeypatching the
           checks or numpy, IPython hooks, sys.modules, reading grader files, lying objects...);
           the score counts only what the honest checks gave;
  error    grading itself failed on this notebook (today: nbgrader refuses a notebook whose
           grade cell's metadata was edited, "Inconsistent checksums for cell test_relu").

Expected outcome, as data: `Case.expect` maps each notebook the case writes to an `Expect`:
the accepted statuses (the first is the proposal; a second one is listed only where the grader
cannot be expected to tell, see the case's note), the grade cells that must score 0 and those that
must score full marks (`REST`: every grade cell not in `zero`). Notebooks not in `expect` must be
`missing` with score 0. The key requirement for the dishonest cases: the cells whose kernel is
wrong or absent score 0 (the trick gains nothing), and the correct kernels keep their points.

`Case.sandbox_only`: never grade this case without the sandbox (fork bomb, memory bombs, writing to
gradebooks, 300 MB files): tests/test_grading_hardened.py leaves them out unless the grader
sandboxes kernels. Build them only.

What the current (pre-sandbox) grader, plain nbgrader 0.9.6 underneath, did on the uncertain
cases (`python -m autograder grade ... --workers 2 --timeout 20`, the committed grade.py, on the
cases the lead called safe to run unsandboxed): in each case's `note`, as "today: ...". No status
was ever `flagged` (it did not exist). Not run: the sandbox-only cases, exit_* and reference_* /
solution_by_path (their relu cells alone, in a plain interpreter: the reference and solution
readers pass every check, so today they would score full marks).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nbformat
import numpy as np

REPO = Path(__file__).resolve().parent.parent
SOLUTIONS = REPO / "solutions"
COURSE = REPO / "course"

RELU = "02_relu"
LINEAR = "01_linear_collapse"
HUGE_BYTES = 300 * 2**20  # the size cap of the hardened grader is 20 MB
REST = "rest"  # Expect.full: every grade cell that is not in `zero`
ALL = "all"  # Expect.zero: every grade cell

STATUSES = ("ok", "missing", "invalid", "timeout", "crashed", "memory", "flagged", "error")

_MARKER = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n?", re.M)


# ---------------------------------------------------------------- notebooks


def _nbgrader(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


def grade_cells(stem: str) -> dict[str, float]:
    """grade_id -> points of the graded cells of solutions/STEM.ipynb, in notebook order."""
    nb = nbformat.read(SOLUTIONS / f"{stem}.ipynb", as_version=4)
    return {_nbgrader(c)["grade_id"]: float(_nbgrader(c).get("points", 0))
            for c in nb.cells if _nbgrader(c).get("grade")}


@functools.cache
def _filled_text(stem: str) -> str:
    solution = nbformat.read(SOLUTIONS / f"{stem}.ipynb", as_version=4)
    answers = {_nbgrader(c)["grade_id"]: c.source for c in solution.cells
               if _nbgrader(c).get("solution")}
    nb = nbformat.read(COURSE / f"{stem}.ipynb", as_version=4)
    for cell in nb.cells:
        meta = _nbgrader(cell)
        if meta.get("solution"):
            cell.source = _MARKER.sub("", answers[meta["grade_id"]])
    return nbformat.writes(nb)


def filled(stem: str) -> nbformat.NotebookNode:
    """The notebook a student who solved every exercise of STEM submits (a fresh copy)."""
    return nbformat.reads(_filled_text(stem), as_version=4)


def cell(nb, grade_id: str):
    """The cell of `nb` with nbgrader grade_id `grade_id`."""
    for c in nb.cells:
        if _nbgrader(c).get("grade_id") == grade_id:
            return c
    raise KeyError(grade_id)


def set_kernel(nb, kernel: str, source: str) -> None:
    """Replace the student's solution cell of `kernel` (grade_id KERNEL_solution)."""
    cell(nb, f"{kernel}_solution").source = source.strip("\n") + "\n"


def prepend(nb, kernel: str, code: str) -> None:
    c = cell(nb, f"{kernel}_solution")
    c.source = code.strip("\n") + "\n\n\n" + c.source


def append(nb, kernel: str, code: str) -> None:
    c = cell(nb, f"{kernel}_solution")
    c.source = c.source.rstrip("\n") + "\n\n\n" + code.strip("\n") + "\n"


def write(folder: Path, stem: str, content) -> Path:
    """Write a notebook (NotebookNode), text (str) or bytes as FOLDER/STEM.ipynb."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.ipynb"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        nbformat.write(content, path)
    return path


def relu_with(kernel_source: str | None = None, *, before: str = "", after: str = ""):
    """02_relu filled, the relu cell replaced by `kernel_source` (None: keep the solution) with
    `before` / `after` added to that cell."""
    nb = filled(RELU)
    if kernel_source is not None:
        set_kernel(nb, "relu", kernel_source)
    if before:
        prepend(nb, "relu", before)
    if after:
        append(nb, "relu", after)
    return nb


def _notebooks(**stems) -> Callable[[Path], None]:
    """A builder writing `stems` (stem -> notebook / text / bytes, or a function giving it)."""
    def build(folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for stem, content in stems.items():
            write(folder, stem, content() if callable(content) else content)
    return build


# ---------------------------------------------------------------- student code

# Wrong on purpose, with the right shape and dtype: the identity (negative x is not set to 0).
WRONG_RELU = '''
def relu(x):
    """ReLU (wrong: negative values pass through)."""
    x = np.asarray(x)
    return np.array(x, dtype=x.dtype if x.dtype in (np.float32, np.float64) else np.float64)
'''

INFINITE_LOOP = """
while True:
    pass
"""
KERNEL_EXIT = """
import os

os._exit(1)
"""
SEGFAULT = """
import ctypes

ctypes.string_at(0)
"""
MEMORY_BOMB = """
x = bytearray(50 * 2**30)
"""
# A student's runaway list: the partial list is freed when MemoryError propagates.
MEMORY_LIST = """
squares = [i * i for i in range(10**11)]
"""
FORK_BOMB = """
import os

while True:
    os.fork()
"""
FLOOD_ONCE = """
print("x" * 10**8)
"""
FLOOD_FOREVER = """
while True:
    print("x" * 10_000)
"""
SYNTAX_ERROR = """
def relu(x)
    return np.maximum(x, 0.0)
"""

NUMPY_PATCHED = """
import numpy.testing

np.allclose = lambda *args, **kwargs: True
np.isclose = lambda a, b, *args, **kwargs: np.ones(np.broadcast(a, b).shape, dtype=bool)
np.array_equal = lambda *args, **kwargs: True
np.array_equiv = lambda *args, **kwargs: True
np.all = lambda *args, **kwargs: True
np.testing.assert_allclose = lambda *args, **kwargs: None
np.testing.assert_array_equal = lambda *args, **kwargs: None
np.testing.assert_array_almost_equal = lambda *args, **kwargs: None
"""
CHECKS_PATCHED = """
import nonlinearity.checks


def _no_check(*args, **kwargs):
    return None


nonlinearity.checks.check_kernel = _no_check
check_kernel = _no_check
"""
HIDDEN_PATCHED_IMPORT = CHECKS_PATCHED + """
try:
    import autograder.recorders.kernels

    autograder.recorders.kernels.grade_kernel = _no_check
except Exception:
    pass
"""
HIDDEN_PATCHED_SYS_MODULES = CHECKS_PATCHED + """
import sys
import types

_fake = types.ModuleType("autograder.recorders.kernels")
_fake.grade_kernel = _no_check
sys.modules["autograder.recorders.kernels"] = _fake
for _name, _module in list(sys.modules.items()):
    if _name.startswith("autograder") and hasattr(_module, "grade_kernel"):
        _module.grade_kernel = _no_check
"""
IMPORT_HOOKED = CHECKS_PATCHED + """
import builtins
import types

_real_import = builtins.__import__
_fake = types.ModuleType("autograder.recorders.kernels")
_fake.grade_kernel = _no_check


def _import(name, globals=None, locals=None, fromlist=(), level=0):
    if name.startswith("autograder"):
        return _fake
    return _real_import(name, globals, locals, fromlist, level)


builtins.__import__ = _import
"""
IPYTHON_CUSTOM_EXC = """
get_ipython().set_custom_exc((Exception,), lambda shell, etype, value, tb, tb_offset=None: None)
"""
IPYTHON_SHOWTRACEBACK = """
_shell = get_ipython()
_shell.showtraceback = lambda *args, **kwargs: None
_shell._showtraceback = lambda *args, **kwargs: None
_shell.showsyntaxerror = lambda *args, **kwargs: None
"""
IPYTHON_POST_RUN_CELL = """
from IPython.display import clear_output


def _forget_errors(result):
    if not result.success:
        clear_output()  # the error output of the cell that just failed disappears


get_ipython().events.register("post_run_cell", _forget_errors)
"""
# The execute_reply of a failing cell says "ok" and no error output is sent: nbgrader 0.9.6
# re-adds a missing error output only when the reply's status is "error".
IPYTHON_KERNEL_REPLY = """
import inspect

_shell = get_ipython()
_shell.showtraceback = lambda *args, **kwargs: None
_kernel = _shell.kernel
_real_do_execute = _kernel.do_execute


async def _do_execute(*args, **kwargs):
    reply = _real_do_execute(*args, **kwargs)
    if inspect.isawaitable(reply):
        reply = await reply
    if reply.get("status") == "error":
        reply = {"status": "ok", "execution_count": reply.get("execution_count"),
                 "user_expressions": {}, "payload": []}
    return reply


_kernel.do_execute = _do_execute
"""
LIAR_OBJECT = '''
class Agreeable:
    """Equal to everything; no __array__."""

    def __init__(self, x):
        self.shape = np.shape(x)
        self.dtype = np.asarray(x).dtype if np.asarray(x).dtype in (np.float32, np.float64) \\
            else np.dtype(np.float64)

    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    __hash__ = object.__hash__

    def __len__(self):
        return self.shape[0] if self.shape else 1

    def __float__(self):
        return 0.0


def relu(x):
    return Agreeable(x)
'''
LIAR_NDARRAY = '''
class Liar(np.ndarray):
    """Compares equal to anything; differences come out 0; keeps itself through every view."""

    def __array_finalize__(self, obj):
        self.lying = True

    def __eq__(self, other):
        return np.ones(np.broadcast(np.asarray(self), other).shape, dtype=bool)

    def __ne__(self, other):
        return np.zeros(np.broadcast(np.asarray(self), other).shape, dtype=bool)

    __hash__ = None

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        plain = [np.asarray(i) if isinstance(i, Liar) else i for i in inputs]
        kwargs.pop("out", None)
        result = getattr(ufunc, method)(*plain, **kwargs)
        if ufunc in (np.equal, np.less_equal, np.greater_equal, np.isfinite):
            return np.ones_like(result, dtype=bool)
        if ufunc in (np.not_equal, np.less, np.greater, np.isnan, np.isinf):
            return np.zeros_like(result, dtype=bool)
        if ufunc in (np.subtract, np.absolute):
            return np.zeros_like(result)
        return result


def relu(x):
    x = np.asarray(x)
    out = np.array(x, dtype=x.dtype if x.dtype in (np.float32, np.float64) else np.float64)
    return out.view(Liar)  # the identity: wrong for x < 0
'''


def _exit_on_large(action: str, imports: str = "") -> str:
    # The visible checks call relu on at most 10^4 values; the hidden speed check on 10^6.
    return f'''{imports}
def relu(x):
    """Correct, except that it leaves when called with more values than the visible checks use."""
    x = np.asarray(x)
    if x.size > 100_000:
        {action}
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    return np.maximum(x, 0.0)
'''


EXIT_OS = _exit_on_large("os._exit(0)", "import os\n\n")
EXIT_SYS = _exit_on_large("sys.exit(0)", "import sys\n\n")
RAISE_INTERRUPT = _exit_on_large("raise KeyboardInterrupt")

REFERENCE_IMPORT = """
try:
    from autograder.judging.reference import relu
except Exception:
""" + "\n".join("    " + line if line else "" for line in WRONG_RELU.strip("\n").splitlines())

REFERENCE_SYS_MODULES = '''
import importlib
import sys


def relu(x):
    """Whatever the grader has loaded (or can load) as the reference."""
    reference = sys.modules.get("autograder.judging.reference")
    if reference is None:
        reference = importlib.import_module("autograder" + ".reference")
    return reference.relu(x)
'''

# Where a student can look for the grader's files: the working folder and its parents, sys.path,
# the installed packages' locations (without importing them) and setuptools' editable finders.
_FIND_ROOTS = '''
import importlib.util
import re
import sys
from pathlib import Path


def _roots():
    found = [Path.cwd(), *Path.cwd().parents]
    for entry in sys.path:
        found.append(Path(entry or "."))
    for name in ("autograder", "nonlinearity"):
        try:
            spec = importlib.util.find_spec(name)
            found += [Path(p) for p in (spec.submodule_search_locations or [])]
        except Exception:
            pass
    for entry in sys.path:
        try:
            for finder in Path(entry or ".").glob("__editable__*finder.py"):
                found += [Path(p) for p in re.findall(r"'(/[^']+)'", finder.read_text())]
        except Exception:
            pass
    everything = []
    for p in found:
        everything += [p, *p.parents]
    return list(dict.fromkeys(everything))


def _find(*relative):
    for root in _roots():
        for rel in relative:
            try:
                if (root / rel).is_file():
                    return root / rel
            except OSError:
                pass
    return None
'''

REFERENCE_BY_PATH = _FIND_ROOTS + '''

def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


try:
    _ref = _find("autograder/judging/reference.py", "reference.py")
    _load("autograder.judging._numerics", _ref.parent / "_numerics.py")
    relu = _load("autograder.judging.reference", _ref).relu
except Exception:
''' + "\n".join("    " + line if line else "" for line in WRONG_RELU.strip("\n").splitlines())

SOLUTION_BY_PATH = _FIND_ROOTS + '''

import json

try:
    _nb = json.loads(_find("solutions/02_relu.ipynb").read_text())
    _code = next("".join(c["source"]) for c in _nb["cells"]
                 if c["cell_type"] == "code" and "def relu(" in "".join(c["source"]))
    exec(_code, globals())
except Exception:
''' + "\n".join("    " + line if line else "" for line in WRONG_RELU.strip("\n").splitlines())

GRADEBOOK_WRITE = '''
import os
import sqlite3
from pathlib import Path

_TARGETS = ("gradebook.db", "grades.csv", "exercises.csv")


def _tamper(path):
    try:
        path = Path(path)
        if path.name == "gradebook.db":
            with sqlite3.connect(path) as db:
                db.execute("UPDATE grade SET manual_score = 1000")
            with open(path, "ab") as f:
                f.write(b"tampered")
        else:
            with open(path, "a") as f:
                f.write("gradebook_write,02_relu,1000,8,ok\\n")
    except Exception:
        pass


for _rel in ("gradebook.db", "../gradebook.db", "../../gradebook.db", "../../../gradebook.db",
             "../../../../gradebook.db", "grades.csv", "../grades.csv", "../../grades.csv"):
    _tamper(_rel)
for _parent in [Path.cwd(), *Path.cwd().parents]:
    for _name in _TARGETS:
        _tamper(_parent / _name)
for _dir, _subdirs, _files in os.walk("/"):
    _subdirs[:] = [d for d in _subdirs if d not in ("proc", "sys", "dev", "usr", "lib", "lib64",
                                                   ".venv", "site-packages", ".git")]
    for _name in _files:
        if _name in _TARGETS:
            _tamper(os.path.join(_dir, _name))
for _parent in list(Path.cwd().parents)[:3]:  # and delete what can be deleted nearby
    try:
        for _p in _parent.iterdir():
            if _p.is_file():
                _p.unlink()
    except Exception:
        pass
'''


@functools.cache
def _hardcoded_relu() -> str:
    """relu that knows the visible checks' answers (course/nonlinearity/checks.py) and returns
    garbage for every other input."""
    rng = np.random.default_rng(0)
    inputs = [
        np.linspace(-3, 3, 7),                                  # seed_example
        rng.normal(0, 2, (3, 4)),                               # random_2d
        np.array([-2.0, -0.5, 0.5, 2.0], dtype=np.float32),     # float32
        [-1.0, 0.5, 2.0], 0.5, [-2, 1, 3],                      # array_likes
        np.array([-1.5, -0.25, 0.0, 0.75, 3.0]),                # no_mutation
        np.array([-np.inf, np.inf, np.nan]),                    # special_values
        np.array([-1000.0, -50.0, 50.0, 1000.0]),               # large_inputs
    ]
    table = {}
    for x in inputs:
        a = np.asarray(x)
        out = np.maximum(a.astype(a.dtype if a.dtype in (np.float32, np.float64) else np.float64), 0)
        key = hashlib.sha256(f"{a.dtype}{a.shape}".encode() + a.tobytes()).hexdigest()[:16]
        values = [repr(float(v)) if np.isfinite(v) else f'float("{v}")' for v in out.reshape(-1)]
        table[key] = f'("{out.dtype}", {out.shape!r}, [{", ".join(values)}])'
    rows = "\n".join(f'    "{k}": {v},' for k, v in table.items())
    return f'''
import hashlib

_ANSWERS = {{
{rows}
}}


def relu(x):
    """The visible checks' answers, looked up; anything else gets 42."""
    a = np.asarray(x)
    key = hashlib.sha256(f"{{a.dtype}}{{a.shape}}".encode() + a.tobytes()).hexdigest()[:16]
    if key in _ANSWERS:
        dtype, shape, values = _ANSWERS[key]
        return np.array(values, dtype=dtype).reshape(shape)
    dtype = a.dtype if a.dtype in (np.float32, np.float64) else np.float64
    return np.full(a.shape, 42.0, dtype=dtype)
'''


# ---------------------------------------------------------------- builders that write files


def _tamper_tests(folder: Path, how: str) -> None:
    nb = filled(RELU)
    if how == "deleted":
        set_kernel(nb, "relu", WRONG_RELU)
        nb.cells.remove(cell(nb, "test_relu"))
    elif how == "reordered":
        test_relu, test_last = cell(nb, "test_relu"), cell(nb, "test_leaky_relu_grad")
        nb.cells.remove(test_relu)
        nb.cells.remove(test_last)
        nb.cells.append(test_relu)  # after every definition: still passes
        nb.cells.insert(0, test_last)  # before the imports: NameError, the student's own loss
    elif how == "edited":
        set_kernel(nb, "relu", WRONG_RELU)
        cell(nb, "test_relu").source = "pass\n"
    elif how == "points":
        cell(nb, "test_relu").metadata["nbgrader"]["points"] = 1000
    elif how == "ungraded":
        set_kernel(nb, "relu", WRONG_RELU)
        meta = cell(nb, "test_relu").metadata["nbgrader"]
        meta.update(grade=False, locked=False)
        meta.pop("points", None)
    else:
        raise ValueError(how)
    write(folder, RELU, nb)


def _nbformat_3(folder: Path) -> None:
    nb3 = nbformat.convert(filled(RELU), 3)
    write(folder, RELU, nbformat.writes(nb3, version=3))


def _nbformat_5(folder: Path) -> None:
    data = json.loads(nbformat.writes(filled(RELU)))
    data["nbformat"], data["nbformat_minor"] = 5, 0
    write(folder, RELU, json.dumps(data, indent=1))


def _extra_files(folder: Path) -> None:
    write(folder, RELU, filled(RELU))
    (folder / "helpers.py").write_text("def relu(x):\n    return x\n")
    (folder / "data.csv").write_text("x,y\n-1,0\n2,2\n")
    deeper = folder / "scratch" / "old"
    deeper.mkdir(parents=True)
    (deeper / "notes.txt").write_text("first try\n")
    np.save(deeper / "inputs.npy", np.arange(10.0))
    write(deeper, "02_relu_copy", filled(RELU))


def _shadow_modules(folder: Path) -> None:
    """Packages named like the grader's and the course's, beside the notebook (the kernel's
    working folder comes first on sys.path): every check becomes a no-op."""
    write(folder, RELU, relu_with(WRONG_RELU))
    fake = folder / "autograder"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "recorders").mkdir()
    (fake / "recorders" / "__init__.py").write_text("")
    (fake / "recorders" / "kernels.py").write_text("def grade_kernel(*args, **kwargs):\n    return None\n")
    helpers = folder / "nonlinearity"
    shutil.copytree(COURSE / "nonlinearity", helpers,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    with open(helpers / "checks.py", "a") as f:
        f.write("\n\ndef check_kernel(name, fn):  # noqa: F811\n"
                "    print(f\"{name}: every visible check passed\")\n")


def _chunks(total: int, block: bytes):
    while total > 0:
        yield block[:total]
        total -= len(block)


def _huge_notebook(folder: Path) -> None:
    """02_relu (correct) whose relu cell starts with a comment of HUGE_BYTES characters, written
    in 1 MiB pieces."""
    marker = "@@PADDING@@"
    head, tail = nbformat.writes(relu_with(before=f"# {marker}")).split(marker, 1)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{RELU}.ipynb", "w", encoding="utf-8") as f:
        f.write(head)
        for piece in _chunks(HUGE_BYTES, b"x" * 2**20):
            f.write(piece.decode("ascii"))
        f.write(tail)


def _huge_extra_file(folder: Path) -> None:
    write(folder, RELU, filled(RELU))
    block = hashlib.sha256(b"seed").digest() * (2**20 // 32)
    with open(folder / "weights.bin", "wb") as f:
        for piece in _chunks(HUGE_BYTES, block):
            f.write(piece)


def _gradebook_write(folder: Path) -> None:
    write(folder, RELU, relu_with(WRONG_RELU, before=GRADEBOOK_WRITE))
    # Decoys of the student's own: the submissions must come back byte-identical anyway.
    (folder / "grades.csv").write_text("student_id,notebook,score,max_score,status\n")
    (folder / "gradebook.db").write_bytes(b"not a database\n")


# ---------------------------------------------------------------- the table


@dataclass(frozen=True)
class Expect:
    """What grading one notebook of a case must give."""

    status: tuple[str, ...]  # accepted statuses; the first is the proposal
    zero: frozenset[str] | str = frozenset()  # grade ids scoring 0 (ALL: every one)
    full: frozenset[str] | str = frozenset()  # grade ids scoring full marks (REST: all but zero)

    def zero_cells(self, stem: str) -> set[str]:
        return set(grade_cells(stem)) if self.zero == ALL else set(self.zero)

    def full_cells(self, stem: str) -> set[str]:
        if self.full == REST:
            return set(grade_cells(stem)) - self.zero_cells(stem)
        return set(self.full)


def expect(*status: str, zero=(), full=REST) -> Expect:
    assert status and set(status) <= set(STATUSES), status
    return Expect(tuple(status), zero if zero == ALL else frozenset(zero),
                  full if full == REST else frozenset(full))


OK_FULL = expect("ok")
INVALID = expect("invalid", zero=ALL, full=())
RELU_ZERO = ("test_relu", "test_relu_deeper")  # a wrong relu is wrong at the extremes too


@dataclass(frozen=True)
class Case:
    name: str  # the student id
    description: str
    build: Callable[[Path], None]  # writes the student's folder
    expect: dict[str, Expect]  # notebook stem -> outcome; every other notebook: missing
    sandbox_only: bool = False  # never grade it unsandboxed
    note: str = ""  # what the current grader did, and why this expectation


def _relu_case(name, description, nb_factory, status, zero=RELU_ZERO, full=REST, *,
               with_linear=False, sandbox_only=False, note=""):
    stems = {RELU: nb_factory}
    outcome = {RELU: expect(*status, zero=zero, full=full)}
    if with_linear:  # an honest notebook beside it: the breakage costs only its own notebook
        stems[LINEAR] = functools.partial(filled, LINEAR)
        outcome[LINEAR] = OK_FULL
    return Case(name, description, _notebooks(**stems), outcome, sandbox_only, note)


def _p(*args, **kwargs):
    return functools.partial(relu_with, *args, **kwargs)


CASES: list[Case] = [
    # ---- broken: each costs only its own points
    _relu_case("infinite_loop", "`while True: pass` in the relu solution cell",
               _p(before=INFINITE_LOOP), ("timeout",), with_linear=True,
               note="today: timeout; the cell is interrupted, the later cells run and count"),
    _relu_case("kernel_exit", "`os._exit(1)` in the relu solution cell",
               _p(before=KERNEL_EXIT), ("crashed",), full=(), with_linear=True,
               note="today: crashed, every cell of 02 scores 0; 01 unaffected"),
    _relu_case("segfault", "`ctypes.string_at(0)` in the relu solution cell",
               _p(before=SEGFAULT), ("crashed",), full=(), note="today: crashed 0/8"),
    _relu_case("memory_bomb", "`bytearray(50 * 2**30)` in the relu solution cell",
               _p(before=MEMORY_BOMB), ("memory",), with_linear=True, sandbox_only=True,
               note="MemoryError under an address-space cap; a cgroup OOM kill would be crashed"),
    _relu_case("memory_list", "a list comprehension over 10**11 integers in the relu cell",
               _p(before=MEMORY_LIST), ("memory",), sandbox_only=True),
    _relu_case("fork_bomb", "`while True: os.fork()` in the relu solution cell",
               _p(before=FORK_BOMB), ("ok", "crashed", "timeout"), full=(), with_linear=True,
               sandbox_only=True,
               note="sandboxed: fork fails at the process cap, the cell fails (ok), the clones "
                    "die with the sandbox; a wedged kernel would be timeout or crashed"),
    _relu_case("flood_once", "`print('x' * 10**8)` after a correct relu", _p(after=FLOOD_ONCE),
               ("ok",), zero=(),
               note="today: ok 8/8, but the autograded notebook and the feedback page are 100 MB; "
                    "the new grader cuts the output per cell"),
    _relu_case("flood_forever", "a loop printing forever in the relu solution cell",
               _p(before=FLOOD_FOREVER), ("timeout", "memory"),
               note="today: timeout 6/8 with --timeout 20, but error 0/8 with --timeout 30 (the "
                    "output piles up in nbclient); sandboxed: the grader keeps 1 MB per cell, "
                    "the kernel's own buffer hits the memory cap (memory) or the clock runs out "
                    "(timeout); the later cells count"),
    _relu_case("syntax_error", "a SyntaxError in the relu solution cell", _p(SYNTAX_ERROR),
               ("ok",), note="today: ok 6/8"),
    Case("not_json", "02_relu.ipynb is not JSON", _notebooks(**{RELU: "this is not JSON {"}),
         {RELU: INVALID}),
    Case("nbformat_3", "02_relu in nbformat 3 (worksheets)", _nbformat_3, {RELU: INVALID},
         note="today: ok 8/8 (nbformat.read(as_version=4) upgrades it); proposed invalid"),
    Case("nbformat_5", "02_relu claiming nbformat 5.0", _nbformat_5, {RELU: INVALID}),
    Case("empty_file", "02_relu.ipynb of 0 bytes", _notebooks(**{RELU: b""}), {RELU: INVALID}),
    Case("test_cell_deleted", "wrong relu, and the test_relu cell deleted",
         functools.partial(_tamper_tests, how="deleted"), {RELU: expect("ok", zero=RELU_ZERO)},
         note="today: ok; nbgrader does not restore a deleted grade cell, it scores 0"),
    Case("test_cells_reordered", "test_relu moved to the end, test_leaky_relu_grad to the top",
         functools.partial(_tamper_tests, how="reordered"),
         {RELU: expect("ok", zero=("test_leaky_relu_grad",))},
         note="today: ok; nbgrader keeps the student's order: the moved-up test fails"),
    Case("test_cell_edited", "wrong relu, and test_relu's source replaced by `pass`",
         functools.partial(_tamper_tests, how="edited"),
         {RELU: expect("flagged", "ok", zero=RELU_ZERO)},
         note="today: ok 6/8; nbgrader puts the locked cell's source back (checksum)"),
    Case("points_edited", "test_relu worth 1000 points in its nbgrader metadata",
         functools.partial(_tamper_tests, how="points"), {RELU: expect("flagged", "ok")},
         note="today: ok 8/8; the points come from the gradebook, not the notebook"),
    Case("test_cell_ungraded", "wrong relu, and test_relu's metadata says grade: false",
         functools.partial(_tamper_tests, how="ungraded"),
         {RELU: expect("flagged", "error", zero=RELU_ZERO, full=())},
         note="today: error 0/8: nbgrader refuses the notebook (Inconsistent checksums)"),
    Case("missing_notebook", "only 01_linear_collapse, solved",
         _notebooks(**{LINEAR: functools.partial(filled, LINEAR)}), {LINEAR: OK_FULL}),
    Case("extra_files", "a correct 02_relu beside a .py, a .csv and sub-folders",
         _extra_files, {RELU: OK_FULL}),
    Case("huge_notebook", f"02_relu padded to {HUGE_BYTES >> 20} MB", _huge_notebook,
         {RELU: INVALID}, sandbox_only=True),
    Case("huge_extra_file", f"a correct 02_relu beside a {HUGE_BYTES >> 20} MB weights.bin",
         _huge_extra_file, {RELU: OK_FULL}, sandbox_only=True),
    # ---- dishonest: the trick gains nothing
    _relu_case("numpy_patched", "wrong relu; np.allclose/isclose/array_equal/all/testing patched",
               _p(WRONG_RELU, before=NUMPY_PATCHED), ("flagged",),
               note="today: ok 6/8; np.all patched fools the visible check, the hidden one not"),
    _relu_case("checks_patched", "wrong relu; nonlinearity.checks.check_kernel made a no-op",
               _p(WRONG_RELU, before=CHECKS_PATCHED), ("flagged",),
               note="today: ok 6/8 (the hidden check still fails it)"),
    _relu_case("hidden_patched_import", "wrong relu; autograder.recorders.kernels.grade_kernel replaced",
               _p(WRONG_RELU, before=HIDDEN_PATCHED_IMPORT), ("flagged",),
               full=(),
               note="today: ok 8/8: THE TRICK WORKS. Sandboxed: the fake check records "
                    "nothing, so this and every later hidden check score 0"),
    _relu_case("hidden_patched_sys_modules", "wrong relu; a fake autograder.recorders.kernels in sys.modules",
               _p(WRONG_RELU, before=HIDDEN_PATCHED_SYS_MODULES), ("flagged",),
               full=(),
               note="today: ok 8/8: THE TRICK WORKS. Sandboxed: the fake check records "
                    "nothing, so this and every later hidden check score 0"),
    _relu_case("import_hooked", "wrong relu; builtins.__import__ fakes autograder.*",
               _p(WRONG_RELU, before=IMPORT_HOOKED), ("flagged",),
               full=(),
               note="today: ok 8/8: THE TRICK WORKS. Sandboxed: the fake check records "
                    "nothing, so this and every later hidden check score 0"),
    Case("shadow_modules", "wrong relu; autograder/ and nonlinearity/ packages with no-op checks "
         "beside the notebook", _shadow_modules,
         {RELU: expect("flagged", "ok", zero=RELU_ZERO)},
         note="today: ok 6/8 (only the .ipynb files are copied for grading); ok is fine "
              "when the grader never lets extra files reach the kernel"),
    _relu_case("ipython_custom_exc", "wrong relu; set_custom_exc swallows every exception",
               _p(WRONG_RELU, before=IPYTHON_CUSTOM_EXC), ("flagged",),
               note="today: ok 6/8: nbgrader re-adds the error of an execute_reply with status error"),
    _relu_case("ipython_showtraceback", "wrong relu; showtraceback replaced by a no-op",
               _p(WRONG_RELU, before=IPYTHON_SHOWTRACEBACK), ("flagged",),
               note="today: ok 6/8: nbgrader re-adds the error of an execute_reply with status error"),
    _relu_case("ipython_post_run_cell", "wrong relu; a post_run_cell hook clears error outputs",
               _p(WRONG_RELU, before=IPYTHON_POST_RUN_CELL), ("flagged",),
               note="today: ok 6/8: nbgrader re-adds the error of an execute_reply with status error"),
    _relu_case("ipython_kernel_reply", "wrong relu; the kernel's execute_reply says ok, no "
               "traceback is shown", _p(WRONG_RELU, before=IPYTHON_KERNEL_REPLY), ("flagged",),
               note="today: ok 8/8: THE TRICK WORKS"),
    _relu_case("liar_object", "relu returns an object equal to everything, without __array__",
               _p(LIAR_OBJECT), ("flagged",), note="today: ok 6/8"),
    _relu_case("liar_ndarray", "relu returns an ndarray subclass whose comparisons lie",
               _p(LIAR_NDARRAY), ("flagged",), note="today: ok 6/8"),
    _relu_case("exit_os", "relu calls os._exit(0) on hidden-test-sized input", _p(EXIT_OS),
               ("crashed", "flagged"), full=(),
               note="the kernel dies mid-test; flagged if the grader reads os._exit as an attempt"),
    # relu is right on the small inputs of its going-deeper cell (test_relu_deeper keeps its point)
    _relu_case("exit_sys", "relu calls sys.exit(0) on hidden-test-sized input", _p(EXIT_SYS),
               ("flagged", "ok"), zero=("test_relu",),
               note="SystemExit is an error output of the test cell"),
    _relu_case("raise_interrupt", "relu raises KeyboardInterrupt on hidden-test-sized input",
               _p(RAISE_INTERRUPT), ("flagged", "ok"), zero=("test_relu",)),
    _relu_case("reference_import", "`from autograder.judging.reference import relu` (wrong fallback)",
               _p(REFERENCE_IMPORT), ("flagged",)),
    _relu_case("reference_sys_modules", "relu calls sys.modules['autograder.judging.reference'].relu",
               _p(REFERENCE_SYS_MODULES), ("flagged",)),
    _relu_case("reference_by_path", "reference.py found by path and executed (wrong fallback)",
               _p(REFERENCE_BY_PATH), ("flagged",)),
    _relu_case("solution_by_path", "solutions/02_relu.ipynb found by path, its relu executed",
               _p(SOLUTION_BY_PATH), ("flagged",)),
    Case("gradebook_write", "wrong relu; writes every gradebook.db/grades.csv it finds, deletes "
         "files in parent folders", _gradebook_write,
         {RELU: expect("flagged", zero=RELU_ZERO)}, sandbox_only=True),
    _relu_case("hardcode_visible", "relu returns the visible checks' answers, 42 elsewhere",
               lambda: relu_with(_hardcoded_relu()), ("ok",),
               note="today: ok 6/8; nothing touches the grader, the hidden checks fail it"),
]

HONEST = {RELU: OK_FULL, LINEAR: OK_FULL}


def build_honest(folder: Path) -> None:
    """The `honest` student: 01_linear_collapse and 02_relu solved."""
    _notebooks(**{RELU: functools.partial(filled, RELU),
                  LINEAR: functools.partial(filled, LINEAR)})(folder)


def by_name(name: str) -> Case:
    return next(c for c in CASES if c.name == name)


def build_class(root: Path, cases: list[Case] | None = None) -> None:
    """ROOT/<case name>/... for every case (default: all of CASES), and ROOT/honest."""
    for case in CASES if cases is None else cases:
        case.build(root / case.name)
    build_honest(root / "honest")


assert len({c.name for c in CASES}) == len(CASES)
