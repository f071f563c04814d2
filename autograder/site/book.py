"""`python -m autograder book`: the self-study site, built by Sphinx with MyST-NB and the
sphinx-book-theme (conf.py and the theme's few additions in autograder/site/book_conf/).

What this module does, and the tool does not:
  - executes every notebook in solutions/ (whatever is there; cached under build/book-cache/,
    keyed by a hash of the notebook and of the helper package), with a kernel hook that gives
    every figure its alternative text (its titles) and records the colours it draws with;
  - leaves the hidden tests out before execution (### BEGIN HIDDEN TESTS ... ### END HIDDEN
    TESTS), so neither their source nor their output can reach a page, and drops nbgrader's
    BEGIN/END SOLUTION marker lines;
  - puts each solution behind a reveal: code solution cells get MyST-NB's `hide-cell` tag
    (a <details> labelled "Show the solution"), written (markdown) model answers a <details>;
  - drops widget views and widget state (every widget displays a still figure of its starting
    position first), so no page loads the widget manager from the network;
  - writes the Sphinx source: one executed notebook per page (MyST-NB renders it, execution
    off), a box at the top of each page with the exercises it holds (from the graded cells) and
    download links to its student notebook (course/NN.ipynb) and its solution (hidden tests
    left out), and the landing page;
  - copies MathJax 2 (from the jupyter_server_mathjax package) into the site, so formulas are
    typeset offline, from file:// too.
Sphinx builds incrementally: a notebook whose page source did not change is not parsed again.
"""

from __future__ import annotations

import ast
import base64
import copy
import hashlib
import json
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[2]
SOLUTIONS = REPO / "solutions"
COURSE = REPO / "course"
HELPERS = COURSE / "nonlinearity"
BUILD = REPO / "build"
SITE = BUILD / "site"
CACHE = BUILD / "book-cache"
SOURCE = BUILD / "book-source"
CONF_DIR = Path(__file__).resolve().parent / "book_conf"
CELL_TIMEOUT_S = 900
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
ALT_TEXT_FILE = "_alt_text.json"  # read by book_conf/conf.py
DEFAULT_MINUTES = 30  # DESIGN.md: each notebook is 20-40 minutes of student work

HIDDEN_TESTS = re.compile(r"[ \t]*### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS[ \t]*\n?", re.S)
SOLUTION_MARKERS = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n?", re.M)
_TITLE_IN_SOURCE = re.compile(r"""(?:title|suptitle|set_title)\s*[=(]\s*f?(["'])(.+?)\1""")
_MINUTES = re.compile(r"\bAbout (\d+) minutes\b")

# Run in the kernel before the notebook: every PNG the notebook displays carries, as its
# "image/png" metadata, the titles of the figure it shows ("alt") and the colours that figure
# draws with ("colours", for the palette check in tests/test_book.py). Two ways a figure
# becomes a PNG output, both covered: a matplotlib Figure displayed as such, and a Figure saved
# into a bytes buffer and displayed as an IPython Image (the still picture every widget
# explorer shows and redraws: nonlinearity.widgets, cnn.explore). For the second, the hook
# remembers each PNG a Figure writes to a buffer (by its bytes) and describes the Image that
# displays those bytes. (IPython formatters may return (data, metadata).)
ALT_HOOK = """\
import hashlib as _book_hashlib

import matplotlib.pyplot as _book_plt
from IPython import get_ipython as _book_ip
from IPython.display import Image as _BookImage
from matplotlib.figure import Figure as _BookFigure

_book_ip().run_line_magic("matplotlib", "inline")
_book_png = _book_ip().display_formatter.formatters["image/png"]
_book_plain = _book_png.lookup_by_type(_BookFigure)
_book_saved = {}  # sha1 of PNG bytes a Figure saved into a buffer -> that figure's description


def _book_describe(fig):
    titles = [fig._suptitle.get_text()] if fig._suptitle is not None else []
    titles += [ax.get_title() for ax in fig.axes if ax.get_title()]
    meta = {"colours": _book_colours(fig)}
    if titles:
        meta["alt"] = "Figure: " + "; ".join(titles)
    return meta


def _book_png_with_alt(fig):
    data = _book_plain(fig)
    if isinstance(data, tuple):
        data = data[0]
    return data, _book_describe(fig)


def _book_colours(fig):
    # The colours the figure draws with: hex for lines, patches and markers, "cmap:<name>"
    # for anything colour-mapped (images, contours). Invisible ones are left out.
    import matplotlib.colors as mcolors
    from matplotlib.cm import ScalarMappable

    found = set()

    def add(colour):
        rgba = mcolors.to_rgba_array(colour)
        for r, g, b, a in rgba:
            if a > 0:
                found.add(mcolors.to_hex((r, g, b)))

    for artist in fig.findobj():
        if not artist.get_visible() or artist is fig.patch or artist in [ax.patch for ax in fig.axes]:
            continue
        if isinstance(artist, ScalarMappable) and artist.get_array() is not None:
            found.add("cmap:" + artist.get_cmap().name)
            continue
        for getter in ("get_color", "get_facecolor", "get_edgecolor", "get_markerfacecolor",
                       "get_markeredgecolor"):
            method = getattr(artist, getter, None)
            if method is None:
                continue
            try:
                colour = method()
                if isinstance(colour, str) and colour in ("none", "auto"):
                    continue
                add(colour)
            except (TypeError, ValueError):
                pass
    return sorted(found)


_book_savefig = _BookFigure.savefig


def _book_savefig_remembering(self, fname, *args, **kwargs):
    result = _book_savefig(self, fname, *args, **kwargs)
    if hasattr(fname, "getvalue"):
        data = fname.getvalue()
        if data.startswith(b"\\x89PNG"):
            _book_saved[_book_hashlib.sha1(data).hexdigest()] = _book_describe(self)
    return result


def _book_image_png(image):
    shown = image._repr_png_()
    if shown is None:
        return None
    data, meta = shown if isinstance(shown, tuple) else (shown, {})
    raw = image.data if isinstance(image.data, bytes) else b""
    described = _book_saved.get(_book_hashlib.sha1(raw).hexdigest(), {})
    return data, {**described, **meta}


_BookFigure.savefig = _book_savefig_remembering
_book_png.for_type(_BookFigure, _book_png_with_alt)
_book_png.for_type(_BookImage, _book_image_png)
"""


def _cache_key(path: Path) -> str:
    digest = hashlib.sha256(path.read_bytes())
    digest.update(ALT_HOOK.encode())
    for helper in sorted(HELPERS.glob("*.py")):
        digest.update(helper.name.encode() + helper.read_bytes())
    return digest.hexdigest()[:16]


def site_source(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The notebook as the site shows it, before execution: no hidden tests, no markers."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.source = HIDDEN_TESTS.sub("", cell.source).rstrip()
        if cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = SOLUTION_MARKERS.sub("", cell.source)
    return nb


def execute(path: Path) -> nbformat.NotebookNode:
    """The solution notebook at `path`, prepared by site_source and executed (cached)."""
    cached = CACHE / f"{path.stem}-{_cache_key(path)}.ipynb"
    if cached.exists():
        return nbformat.read(cached, as_version=4)
    from nbclient import NotebookClient

    nb = site_source(nbformat.read(path, as_version=4))
    nb.cells.insert(0, nbformat.v4.new_code_cell(ALT_HOOK))
    NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    del nb.cells[0]
    CACHE.mkdir(parents=True, exist_ok=True)
    for old in CACHE.glob(f"{path.stem}-*.ipynb"):
        old.unlink()
    nbformat.write(nb, cached)
    return nb


def _title(nb: nbformat.NotebookNode, fallback: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            match = re.search(r"^#\s+(.+)$", cell.source, re.M)
            if match:
                return match.group(1).strip()
    return fallback


def _summary(nb: nbformat.NotebookNode) -> str:
    """The first paragraph after the title, for the landing page."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            paragraphs = [p for p in re.split(r"\n\s*\n", cell.source) if not p.startswith("#")]
            return " ".join(paragraphs[0].split()) if paragraphs else ""
    return ""


def _minutes(nb: nbformat.NotebookNode) -> int:
    """The notebook's own estimate ("About 30 minutes"), else the course's usual one."""
    for cell in nb.cells:
        if cell.cell_type == "markdown" and (found := _MINUTES.search(cell.source)):
            return int(found.group(1))
    return DEFAULT_MINUTES


def exercises(nb: nbformat.NotebookNode) -> dict[str, list[str]]:
    """What the reader writes in this notebook, from its graded (nbgrader solution) cells:
    the functions (and classes) and the other values its code solutions define, the
    check-your-understanding questions they answer (`answer_q02_1 = ...`), and its written
    (markdown) answers; each name once, in the notebook's order."""
    found: dict[str, list[str]] = {"functions": [], "values": [], "questions": [], "written": []}

    def add(kind: str, name: str) -> None:
        if not name.startswith("_") and name not in found[kind]:
            found[kind].append(name)

    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if not meta.get("solution"):
            continue
        if cell.cell_type == "markdown":
            add("written", meta.get("grade_id", "written"))
            continue
        try:
            tree = ast.parse(SOLUTION_MARKERS.sub("", cell.source))
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                add("functions", node.name)
            targets = node.targets if isinstance(node, ast.Assign) else (
                [node.target] if isinstance(node, ast.AnnAssign) else [])
            for target in (t for t in targets if isinstance(t, ast.Name)):
                if target.id.startswith("answer_"):
                    add("questions", target.id.removeprefix("answer_"))
                else:
                    add("values", target.id)
    return found


def _plural(word: str, names: list[str]) -> str:
    return word + ("s" if len(names) > 1 else "")


def _exercise_box(stem: str, found: dict[str, list[str]], has_student_copy: bool) -> str:
    lines = []
    for kind, word in (("functions", "function"), ("values", "value")):
        if found[kind]:
            lines.append(f"- the {_plural(word, found[kind])} "
                         + ", ".join(f"`{name}`" for name in found[kind]))
    if questions := found["questions"]:
        lines.append(f"- your {_plural('answer', questions)} to the check-your-understanding "
                     f"{_plural('question', questions)} " + ", ".join(questions))
    if found["written"]:
        count = len(found["written"])
        lines.append("- a written answer" if count == 1 else f"- {count} written answers")
    body = ("In this notebook you will write:\n\n" + "\n".join(lines) if lines
            else "This notebook has no graded exercises.")
    links = []
    if has_student_copy:
        links.append(f"{{download}}`the student notebook <downloads/course/{stem}.ipynb>` "
                     "(open it in JupyterLab from the course folder: `make lab`)")
    links.append(f"{{download}}`the solution notebook <downloads/solutions/{stem}_solution.ipynb>`")
    return (":::{admonition} Exercises and downloads\n:class: tip book-exercises\n\n"
            f"{body}\n\nDownload {' or '.join(links)}.\n:::\n")


def _alt_text(cell, out, heading: str) -> str:
    meta = out.get("metadata", {}).get("image/png", {})
    if meta.get("alt"):
        return meta["alt"]
    titles = [m.group(2) for m in _TITLE_IN_SOURCE.finditer(cell.source) if "{" not in m.group(2)]
    return "Figure: " + "; ".join(titles) if titles else f"Figure in the section “{heading}”"


def page_notebook(nb: nbformat.NotebookNode, box: str, alt_text: dict[str, str]):
    """The executed notebook as its page shows it: solutions behind reveals, the exercise box
    after the title cell, no widget views or state. Adds each figure's alternative text to
    `alt_text`, keyed as MyST-NB names the image file (the SHA-256 of its bytes)."""
    nb = copy.deepcopy(nb)
    nb.metadata.pop("widgets", None)
    heading = _title(nb, "the notebook")
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id", "")
        solution = cell.metadata.get("nbgrader", {}).get("solution", False)
        if cell.cell_type == "markdown":
            found = re.findall(r"^#+\s+(.+)$", cell.source, re.M)
            heading = found[-1].strip() if found else heading
            if solution:  # a written answer: the model answer (and its rubric) behind a reveal
                cell.source = ('<details class="solution">\n<summary>Show the model answer</summary>'
                               f"\n\n{cell.source}\n\n</details>")
            continue
        if cell.cell_type != "code":
            continue
        if solution:
            cell.metadata.setdefault("tags", []).extend(["hide-cell", "solution"])
            cell.metadata["mystnb"] = {
                "code_prompt_show": f"Show the solution ({grade_id.removesuffix('_solution')})",
                "code_prompt_hide": "Hide the solution"}
        outputs = []
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if WIDGET_VIEW in data:
                data.pop(WIDGET_VIEW)
                data.pop("text/plain", None)
                if not data:
                    continue
            if "image/png" in data:
                png = base64.b64decode(data["image/png"])
                alt_text[hashlib.sha256(png).hexdigest()] = _alt_text(cell, out, heading)
            outputs.append(out)
        cell.outputs = outputs
    first = next((i for i, c in enumerate(nb.cells) if c.cell_type == "markdown"), -1)
    box_cell = nbformat.v4.new_markdown_cell(box)
    box_cell["id"] = "book-exercises"  # not random: an unchanged page stays unchanged
    nb.cells.insert(first + 1, box_cell)
    return nb


def _landing_page(pages: list[tuple[str, str, str, int]]) -> str:
    """index.md: what the course is, for whom, how long it takes, how to start, the contents."""
    minutes = sum(m for *_, m in pages)
    first = pages[0][0] if pages else ""
    toc = "\n".join(stem for stem, *_ in pages)
    glance = "\n".join(f"{i}. [{title}]({stem}.ipynb): {summary}"
                       for i, (stem, title, summary, _) in enumerate(pages, 1))
    return f"""# Where neurons get their nonlinearity

A course on activation functions in neural networks: why a network needs a nonlinearity at all,
how ReLU, Leaky ReLU, GELU, SiLU, sigmoid, tanh and softmax behave and how to compute them
safely, what goes wrong in training (dead units, vanishing gradients), and how to choose one.
It has {len(pages)} Jupyter notebooks, shown here executed, with every figure and with each
exercise's solution behind a *Show the solution* reveal, so you can try first.

## Who it is for

Anyone who knows Python and a little numpy, has met a neural network (a weighted sum, a loss,
gradient descent) and wants to know what the activation function does and why. Derivatives and
the chain rule are used; everything else is explained on the way. A laptop CPU is enough.

## How long it takes

About {minutes / 60:.0f} hours in all: {len(pages)} notebooks of 20 to 40 minutes each
({minutes} minutes by the notebooks' own estimates), best spread over several sittings.

## How to start

- **Read here.** Start with [the first notebook]({first}.ipynb) and follow the *Next* links at
  the bottom of each page, or jump through the sidebar; search is at the top. At the top of
  each page a box lists the exercises it holds. Check-your-understanding questions have their
  answer behind a reveal: answer first, then open it.
- **Work the exercises yourself.** Download a page's student notebook (the link is in its box),
  or clone the course and run `make lab`: it installs what the course needs and opens the
  student notebooks in JupyterLab, with nbgrader's *Validate* button to check your work.

## Contents

{glance}

```{{toctree}}
:hidden:

{toc}
```
"""


def _write_if_changed(path: Path, text: str) -> None:
    """Write `text` unless the file already holds it (Sphinx rebuilds what changed)."""
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def write_source(source: Path, solutions: Path = SOLUTIONS, course: Path = COURSE,
                 workers: int = 2) -> list[str]:
    """The Sphinx source folder: one page notebook per solution notebook, the downloads, the
    landing page and the figures' alternative text. Returns the page names."""
    paths = sorted(solutions.glob("*.ipynb"))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        executed = list(pool.map(execute, paths))
    alt_text: dict[str, str] = {}
    pages = []
    for path, nb in zip(paths, executed, strict=True):
        student = course / path.name
        if student.exists():
            _write_if_changed(source / "downloads" / "course" / path.name,
                              student.read_text(encoding="utf-8"))
        solution = site_source(nbformat.read(path, as_version=4))
        _write_if_changed(source / "downloads" / "solutions" / f"{path.stem}_solution.ipynb",
                          nbformat.writes(solution))
        box = _exercise_box(path.stem, exercises(nb), student.exists())
        _write_if_changed(source / path.name, nbformat.writes(page_notebook(nb, box, alt_text)))
        pages.append((path.stem, _title(nb, path.stem), _summary(nb), _minutes(nb)))
    names = {stem for stem, *_ in pages}
    for stale in source.glob("*.ipynb"):  # a notebook removed from solutions/ leaves the site
        if stale.stem not in names:
            stale.unlink()
    _write_if_changed(source / ALT_TEXT_FILE, json.dumps(alt_text, indent=0, sort_keys=True))
    _write_if_changed(source / "index.md", _landing_page(pages))
    return ["index"] + [stem for stem, *_ in pages]


def build(site: Path = SITE, solutions: Path = SOLUTIONS, course: Path = COURSE,
          source: Path | None = None) -> list[Path]:
    """Execute (or reuse) every solution notebook and write the site; return its pages."""
    from sphinx.cmd.build import build_main

    source = source or (SOURCE if solutions == SOLUTIONS else site.parent / f"{site.name}-source")
    names = write_source(source, solutions, course)
    doctrees = source.parent / f"{source.name}-doctrees"
    status = build_main(["-b", "html", "-q", "-c", str(CONF_DIR), "-d", str(doctrees),
                         str(source), str(site)])
    if status:
        raise RuntimeError(f"sphinx-build failed (exit status {status}); see the messages above")
    import jupyter_server_mathjax

    static = Path(jupyter_server_mathjax.__file__).resolve().parent / "static"
    shutil.copytree(static, site / "_static" / "mathjax", dirs_exist_ok=True)
    return [site / f"{name}.html" for name in names]


def main(site: str | None = None) -> int:
    pages = build(Path(site) if site else SITE)
    print(f"wrote {len(pages)} pages to {pages[0].parent}")
    return 0
