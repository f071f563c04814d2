"""Flag code that reaches for the grading machinery, for the instructor to look at.

The trusted judging (autograder.judging.trusted) already makes such tricks worthless for the kernels and
the replayable model exercises; revive_dead_units and the CNN checks still decide inside the
kernel, where determined tampering could pass them.
So every code cell the student controls (solution cells and cells they added; nbgrader restores
the others) is read for: IPython hooks, process exits, reaching into sys.modules, builtins or
our modules, replacing attributes of imported modules (`np.allclose = ...`), objects that lie
about equality or intercept numpy, and paths of grader files. `grade` marks such a notebook
`flagged` in grades.csv and lists the reasons in flags.csv; the score is left as graded.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat

HOOKS = {  # as attributes or names: obj.set_custom_exc(...), from os import _exit
    "set_custom_exc": "installs an IPython exception handler",
    "showtraceback": "replaces IPython's error display",
    "showsyntaxerror": "replaces IPython's error display",
    "excepthook": "replaces the exception hook",
    "_exit": "exits the kernel",
    "kill": "kills processes",
    "killpg": "kills processes",
    "abort": "aborts the kernel",
    "settrace": "installs a tracer",
    "setprofile": "installs a profiler hook",
}
BUILTINS = {  # as bare names only (model.eval() is innocent)
    "__import__": "imports dynamically",
    "exec": "runs code built at run time",
    "eval": "runs code built at run time",
    "compile": "compiles code at run time",
}
NAMES = {
    "get_ipython": "uses the IPython shell object",
    "__builtins__": "reaches into builtins",
    "builtins": "reaches into builtins",
    "modules": None,  # only as sys.modules
    "SystemExit": "raises SystemExit",
    "KeyboardInterrupt": "raises KeyboardInterrupt",
}
IMPORTS = {
    "autograder": "imports the grader",
    "ctypes": "uses ctypes",
    "importlib": "imports dynamically",
    "gc": "walks the garbage collector's objects",
    "inspect": "inspects the caller's frames",
    "signal": "handles signals",
    "subprocess": "starts processes",
    "multiprocessing": "starts processes",
}
DUNDERS = {"__eq__", "__ne__", "__bool__", "__array_ufunc__", "__array_function__",
           "__array_finalize__", "__array_wrap__", "__array_priority__"}
PATHS = re.compile(r"gradebook|grades\.csv|exercises\.csv|autograder|solutions/|reference\.py|"
                   r"\.\./\.\.", re.IGNORECASE)
_MAGIC = re.compile(r"^\s*[%!]")


def _root(node: ast.AST) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def _module_names(trees: list[ast.AST]) -> set[str]:
    """Names bound by import statements anywhere in the notebook (np, torch, nn, checks ...)."""
    names = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def _cell_reasons(tree: ast.AST, modules: set[str]) -> list[str]:
    reasons = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for mod in mods:
                top = mod.split(".")[0]
                if top in IMPORTS:
                    reasons.append(IMPORTS[top])
                if mod.startswith("nonlinearity.checks") and isinstance(node, ast.Import):
                    reasons.append("imports the course's checking code")
        elif isinstance(node, ast.Attribute):
            if node.attr in HOOKS:
                reasons.append(HOOKS[node.attr])
            elif node.attr == "register" and _root(node.value) and "events" in ast.unparse(node.value):
                reasons.append("registers an IPython event callback")
            elif node.attr == "modules" and _root(node) == "sys":
                reasons.append("reaches into sys.modules")
            elif node.attr == "exit" and _root(node) in ("sys", "os"):
                reasons.append("exits the kernel")
            elif node.attr in NAMES and NAMES[node.attr]:
                reasons.append(NAMES[node.attr])
        elif isinstance(node, ast.Name):
            if node.id in HOOKS or node.id in BUILTINS:
                reasons.append(HOOKS.get(node.id) or BUILTINS[node.id])
            elif node.id in NAMES and NAMES[node.id]:
                reasons.append(NAMES[node.id])
            elif node.id in ("exit", "quit") and isinstance(node.ctx, ast.Load):
                reasons.append("exits the kernel")
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            for target in targets:
                if isinstance(target, ast.Attribute) and _root(target) in modules:
                    reasons.append(f"replaces {ast.unparse(target)} of an imported module")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id in ("setattr", "delattr") and node.args \
                and _root(node.args[0]) in modules:
            reasons.append(f"{node.func.id} on an imported module")
        elif isinstance(node, ast.ClassDef):
            for base in node.bases:
                if "ndarray" in ast.unparse(base):
                    reasons.append("subclasses numpy.ndarray")
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name in DUNDERS:
                    reasons.append(f"defines {item.name} (an object that decides its own comparisons)")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and PATHS.search(node.value):
            reasons.append(f"names grader files ({PATHS.search(node.value).group(0)!r})")
    return reasons


def _parse(source: str) -> ast.AST | None:
    code = "\n".join("" if _MAGIC.match(line) else line for line in source.split("\n"))
    try:
        return ast.parse(code)
    except SyntaxError:
        return None


def student_cells(nb) -> list[tuple[int, str]]:
    """(cell number, source) of the code cells nbgrader does not restore from the release."""
    cells = []
    for i, cell in enumerate(nb.cells, 1):
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and (meta.get("solution") or not (meta.get("locked")
                                                                      or meta.get("grade"))):
            cells.append((i, cell.source))
    return cells


def scan(path: Path) -> list[str]:
    """'cell N: reason' for each suspicious construct in the submitted notebook at `path`."""
    nb = nbformat.read(path, as_version=4)
    trees = [t for t in (_parse(c.source) for c in nb.cells if c.cell_type == "code") if t]
    modules = _module_names(trees)
    found = []
    for number, source in student_cells(nb):
        tree = _parse(source)
        if tree is None:
            continue  # a syntax error fails on its own
        for reason in dict.fromkeys(_cell_reasons(tree, modules)):
            found.append(f"cell {number}: {reason}")
    return found
