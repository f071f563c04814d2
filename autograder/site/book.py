"""`python -m autograder book`: the self-study site, the executed course as static HTML.

The solution notebooks (solutions/) are executed (cached under build/book-cache/, keyed by a
hash of the notebook and of the helper package) and exported with nbconvert's JupyterLab
template (autograder/book_template/book.html.j2) into build/site/: index.html with the table of
contents and one page per notebook, figures as PNG files beside the pages.

What the site shows and what it leaves out:
  - hidden tests (### BEGIN HIDDEN TESTS ... ### END HIDDEN TESTS) are removed before the
    notebook is executed, so neither their source nor their output can reach a page;
  - solution cells (nbgrader metadata solution=true) appear inside <details class="solution">,
    without nbgrader's BEGIN/END SOLUTION marker lines;
  - widget views are dropped (every widget displays a static figure of its initial state
    first), and so is the notebook's widget state: no "Loading widget..." placeholders;
  - no script is loaded from the network (nbconvert's CDN require.js and widget manager are
    left out), so the site works offline; formulas are typeset by MathJax 2, whose files
    (from the jupyter_server_mathjax package, as the classic notebook served them) are copied
    into site/mathjax/ and loaded by a relative URL, so the site works from file:// too;
  - every image gets alternative text: the figure's titles (recorded by the kernel when the
    figure is displayed), else the titles named in the cell's source, else the section heading.
"""

from __future__ import annotations

import copy
import hashlib
import html
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[2]
SOLUTIONS = REPO / "solutions"
HELPERS = REPO / "course" / "nonlinearity"
BUILD = REPO / "build"
SITE = BUILD / "site"
CACHE = BUILD / "book-cache"
TEMPLATE_DIR = Path(__file__).resolve().parent / "book_template"
CELL_TIMEOUT_S = 900
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
MATHJAX_DIR = "mathjax"
MATHJAX_URL = f"{MATHJAX_DIR}/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe"

HIDDEN_TESTS = re.compile(r"[ \t]*### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS[ \t]*\n?", re.S)
SOLUTION_MARKERS = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n?", re.M)
_TITLE_IN_SOURCE = re.compile(r"""(?:title|suptitle|set_title)\s*[=(]\s*f?(["'])(.+?)\1""")

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


def tidy_outputs(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Drop widget views and widget state; give every PNG alternative text."""
    nb = copy.deepcopy(nb)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:  # the prompts count from 1: the kernel's first cell was ALT_HOOK
        if cell.cell_type == "code" and cell.get("execution_count"):
            cell.execution_count -= 1
            for out in cell.get("outputs", []):
                if out.get("execution_count"):
                    out.execution_count -= 1
    heading = _title(nb, "the notebook")
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            found = re.findall(r"^#+\s+(.+)$", cell.source, re.M)
            heading = found[-1].strip() if found else heading
            continue
        if cell.cell_type != "code":
            continue
        source_titles = [m.group(2) for m in _TITLE_IN_SOURCE.finditer(cell.source)
                         if "{" not in m.group(2)]
        outputs = []
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if WIDGET_VIEW in data:
                data.pop(WIDGET_VIEW)
                data.pop("text/plain", None)
                if not data:
                    continue
            if "image/png" in data:
                meta = out.setdefault("metadata", {}).setdefault("image/png", {})
                if not meta.get("alt"):
                    meta["alt"] = ("Figure: " + "; ".join(source_titles) if source_titles
                                   else f"Figure in the section “{heading}”")
            outputs.append(out)
        cell.outputs = outputs
    return nb


def _copy_mathjax(site: Path) -> None:
    """MathJax 2 (MathJax.js, its configs, extensions, fonts) into site/mathjax/."""
    import jupyter_server_mathjax

    static = Path(jupyter_server_mathjax.__file__).resolve().parent / "static"
    shutil.copytree(static, site / MATHJAX_DIR)


def _exporter():
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab", extra_template_paths=[str(TEMPLATE_DIR)],
                            mathjax_url=MATHJAX_URL)
    exporter.template_file = "book.html.j2"
    exporter.register_preprocessor("nbconvert.preprocessors.ExtractOutputPreprocessor", enabled=True)
    return exporter


def _write_page(site: Path, exporter, nb, name: str, title: str, prev=None, nxt=None) -> None:
    nb.metadata["title"] = title
    resources = {"metadata": {"name": name}, "output_files_dir": f"{name}_files",
                 "book_prev": prev, "book_next": nxt}
    body, resources = exporter.from_notebook_node(nb, resources=resources)
    (site / f"{name}.html").write_text(body, encoding="utf-8")
    for filename, data in resources.get("outputs", {}).items():
        target = site / filename
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def _summary(nb: nbformat.NotebookNode) -> str:
    """The first paragraph after the title, for the table of contents."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            paragraphs = [p for p in re.split(r"\n\s*\n", cell.source) if not p.startswith("#")]
            return " ".join(paragraphs[0].split()) if paragraphs else ""
    return ""


def build(site: Path = SITE, workers: int = 2) -> list[Path]:
    """Execute (or reuse) every solution notebook and write the site; return the pages."""
    paths = sorted(SOLUTIONS.glob("*.ipynb"))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        executed = list(pool.map(execute, paths))
    if site.exists():
        shutil.rmtree(site)
    site.mkdir(parents=True)
    _copy_mathjax(site)
    exporter = _exporter()
    titles = [_title(nb, p.stem) for nb, p in zip(executed, paths, strict=True)]
    pages = [(p.stem + ".html", t) for p, t in zip(paths, titles, strict=True)]
    for i, (nb, path) in enumerate(zip(executed, paths, strict=True)):
        prev = pages[i - 1] if i > 0 else None
        nxt = pages[i + 1] if i + 1 < len(pages) else None
        _write_page(site, exporter, tidy_outputs(nb), path.stem, titles[i], prev, nxt)
    toc = ["# Where neurons get their nonlinearity", "",
           "A course on neural-network activation functions, executed, with every exercise's "
           "solution behind a *Show the solution* reveal. To work the exercises yourself, open "
           "the student notebooks in JupyterLab (`make lab`).", "", "## Contents", ""]
    for (href, title), nb in zip(pages, executed, strict=True):
        toc.append(f"1. [{html.escape(title)}]({href}): {_summary(nb)}")
    index = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("\n".join(toc))])
    _write_page(site, exporter, index, "index", "Where neurons get their nonlinearity")
    return [site / "index.html"] + [site / href for href, _ in pages]


def main(site: str | None = None) -> int:
    pages = build(Path(site) if site else SITE)
    print(f"wrote {len(pages)} pages to {pages[0].parent}")
    return 0
