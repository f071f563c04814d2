"""`make book` (python -m autograder book): the self-study site of the executed course, built
by Sphinx with MyST-NB and the book theme.

Builds the site once for the module. Slow the first time (executes every solution notebook,
about 3 minutes on 2 cores); about 30 s when build/book-cache/ is current. A second, tiny
course (one made-up notebook) checks that whatever solutions/ holds reaches the site, and that
markdown <details> reveals and graded answers render.
"""

from __future__ import annotations

import json
import re
import shutil

import nbformat
import pytest
from _site import SPHINX_PAGES, Page
from conftest import REPO, SOLUTION_NOTEBOOKS, nb_ids

from autograder.site import book


@pytest.fixture(scope="module")
def site(built_site):
    return built_site


def _squash(text: str) -> str:
    return " ".join(text.split())


def test_one_page_per_notebook_and_a_landing_page(site):
    pages = sorted(p.name for p in site.glob("*.html") if p.name not in SPHINX_PAGES)
    assert pages == sorted(["index.html"] + [p.stem + ".html" for p in SOLUTION_NOTEBOOKS])


def test_every_page_links_every_notebook_and_every_link_resolves(site):
    """The sidebar of every page lists every notebook; no link on the site is broken."""
    for page in site.glob("*.html"):
        links = Page(page).links
        for nb in SOLUTION_NOTEBOOKS:  # (the sidebar links the page itself as "#")
            assert nb.stem + ".html" in links or nb.stem == page.stem, f"{page.name} does not link {nb.stem}"
        for href in links:
            if href.startswith(("#", "http://", "https://", "mailto:")):
                continue
            target = href.split("#")[0].split("?")[0]
            assert (site / target).is_file(), f"{page.name}: broken link {href}"


def test_previous_and_next_links_follow_the_course_order(site):
    order = ["index"] + [p.stem for p in SOLUTION_NOTEBOOKS]
    for i, name in enumerate(order):
        html = (site / f"{name}.html").read_text(encoding="utf-8")
        prev = re.search(r'<a class="left-prev"\s+href="([^"]+)"', html)
        nxt = re.search(r'<a class="right-next"\s+href="([^"]+)"', html)
        assert (prev.group(1) if prev else None) == (f"{order[i - 1]}.html" if i else None), name
        assert (nxt.group(1) if nxt else None) == (
            f"{order[i + 1]}.html" if i + 1 < len(order) else None), name


def test_landing_page_says_what_for_whom_how_long_and_how_to_start(site):
    text = _squash(" ".join(Page(site / "index.html").text))
    for needed in ("activation functions", "Who it is for", "How long it takes", "How to start",
                   "make lab", f"{len(SOLUTION_NOTEBOOKS)} notebooks"):
        assert needed in text, f"the landing page does not say {needed!r}"
    minutes = sum(book._minutes(nbformat.read(p, as_version=4)) for p in SOLUTION_NOTEBOOKS)
    assert f"{minutes} minutes" in text


def test_nothing_is_loaded_from_the_network(site):
    """No script, stylesheet or font from elsewhere: the site reads offline."""
    for page in site.glob("*.html"):
        parsed = Page(page)
        for url in parsed.scripts + parsed.stylesheets:
            assert not url.startswith(("http:", "https:", "//")), f"{page.name} loads {url}"
    for css in site.rglob("*.css"):
        text = css.read_text(encoding="utf-8", errors="replace")
        remote = re.findall(r"""(?:url\(\s*["']?|@import\s+["'])((?:https?:)?//[^"')\s]+)""", text)
        assert not remote, f"{css.relative_to(site)} loads {remote[:3]}"


@pytest.mark.parametrize("path", SOLUTION_NOTEBOOKS, ids=nb_ids(SOLUTION_NOTEBOOKS))
def test_each_page_names_its_exercises_and_links_both_notebooks(site, path):
    page = Page(site / f"{path.stem}.html")
    text = _squash(" ".join(page.text))
    found = book.exercises(nbformat.read(path, as_version=4))
    assert any(found.values()), f"{path.stem}: no exercises"
    assert "In this notebook you will write" in text
    for name in found["functions"] + found["values"] + found["questions"]:
        assert name in text, f"{path.stem}: the exercise box does not name {name}"
    downloads = {href.rsplit("/", 1)[-1]: href for href in page.links if href.startswith("_downloads/")}
    student, solution = downloads.get(path.name), downloads.get(f"{path.stem}_solution.ipynb")
    assert student and solution, f"{path.stem}: download links {sorted(downloads)}"
    assert (site / student).read_bytes() == (REPO / "course" / path.name).read_bytes()
    offered = nbformat.read(site / solution, as_version=4)
    assert "HIDDEN TESTS" not in json.dumps(offered), f"{path.stem}: hidden tests in the download"
    assert [c.source for c in offered.cells] == [c.source for c in book.site_source(
        nbformat.read(path, as_version=4)).cells]


def test_the_exercises_of_notebook_2():
    nb = nbformat.read(REPO / "solutions" / "02_relu.ipynb", as_version=4)
    assert book.exercises(nb)["functions"] == ["relu", "relu_grad", "leaky_relu", "leaky_relu_grad"]


@pytest.mark.parametrize("path", SOLUTION_NOTEBOOKS, ids=nb_ids(SOLUTION_NOTEBOOKS))
def test_every_figure_is_there_with_alt_text(site, path):
    page = Page(site / f"{path.stem}.html")
    executed = book.execute(path)  # cached by the build
    pngs = sum("image/png" in out.get("data", {}) for cell in executed.cells
               for out in cell.get("outputs", []))
    assert pngs > 0, f"{path.name} displays no figure"
    assert len(page.images) == pngs, f"{path.name}: {pngs} figures, {len(page.images)} <img> on the page"
    for img in page.images:
        assert (site / img["src"]).is_file(), f"{path.stem}: missing image {img['src']}"
        assert (img.get("alt") or "").strip(), f"{path.stem}: {img['src']} has no alt text"


@pytest.mark.parametrize("path", SOLUTION_NOTEBOOKS, ids=nb_ids(SOLUTION_NOTEBOOKS))
def test_student_text_and_outputs_are_on_the_page(site, path):
    executed = book.execute(path)
    text = _squash("".join(Page(site / f"{path.stem}.html").text))
    for cell in executed.cells:
        if cell.cell_type == "markdown":
            heading = re.search(r"^#+\s+(.+)$", cell.source, re.M)
            if heading and "$" not in heading.group(1) and "`" not in heading.group(1):
                assert _squash(heading.group(1).replace("*", "")) in text
        for out in cell.get("outputs", []):
            assert out.output_type != "error", f"{path.name}: a cell failed: {out.get('ename')}"
            if out.output_type == "stream" and out.name == "stdout":
                for line in out.text.splitlines()[:3]:
                    assert _squash(line) in text, f"{path.name}: output line {line!r} missing"


@pytest.mark.parametrize("path", SOLUTION_NOTEBOOKS, ids=nb_ids(SOLUTION_NOTEBOOKS))
def test_each_solution_is_behind_a_reveal(site, path):
    page = Page(site / f"{path.stem}.html")
    details = [_squash(d) for d in page.details if "Show the solution" in d or "model answer" in d]
    nb = book.site_source(nbformat.read(path, as_version=4))
    solutions = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")]
    assert solutions and len(details) == len(solutions)
    for cell in (c for c in solutions if c.cell_type == "code"):
        assert any(_squash(cell.source) in d for d in details), (
            f"{path.stem}: solution {cell.metadata['nbgrader']['grade_id']} is not inside a <details>"
        )


@pytest.mark.parametrize("path", SOLUTION_NOTEBOOKS, ids=nb_ids(SOLUTION_NOTEBOOKS))
def test_no_hidden_tests_and_no_widget_placeholders(site, path):
    html = (site / f"{path.stem}.html").read_text(encoding="utf-8")
    for forbidden in ("HIDDEN TESTS", "autograder.recorders.kernels", "grade_kernel", "BEGIN SOLUTION",
                      "Loading widget", "application/vnd.jupyter.widget", "cdnjs", "unpkg",
                      "cdn.jsdelivr"):
        assert forbidden not in html, f"{path.stem}.html contains {forbidden!r}"
    source = nbformat.read(path, as_version=4)
    for cell in source.cells:
        for block in re.findall(r"### BEGIN HIDDEN TESTS(.*?)### END HIDDEN TESTS", cell.source, re.S):
            for line in block.splitlines():
                if line.strip() and not line.strip().startswith(("from ", "import ")):
                    assert _squash(line) not in _squash(html), f"hidden test line on the site: {line}"


# Colour maps that read for colour-blind readers: the course's two-class map (Okabe–Ito sky blue,
# white, orange), cividis and viridis, diverging PuOr, greys; "unnamed" is what matplotlib calls
# the map of a contour drawn with an explicit colors= list (its colours are checked elsewhere).
SAFE_COLOUR_MAPS = {"course_two_class", "cividis", "viridis", "PuOr", "gray", "Greys", "unnamed"}


@pytest.mark.parametrize("path", SOLUTION_NOTEBOOKS, ids=nb_ids(SOLUTION_NOTEBOOKS))
def test_figures_use_the_colour_blind_safe_palette(site, path):
    """Every colour a displayed figure draws with (recorded by the kernel, see book.ALT_HOOK)
    is an Okabe–Ito colour or a grey, and every colour map is colour-blind safe. The still
    images widgets display are covered too (book.ALT_HOOK attaches their figure's colours);
    a PNG without recorded colours fails rather than passing unchecked."""
    from nonlinearity.plots import OKABE_ITO

    palette = {c.lower() for c in OKABE_ITO.values()}
    executed = book.execute(path)
    for i, cell in enumerate(executed.cells):
        for out in cell.get("outputs", []):
            if "image/png" in out.get("data", {}):
                assert "colours" in out.get("metadata", {}).get("image/png", {}), \
                    f"{path.stem}, cell {i}: an image whose colours were not recorded"
            for colour in out.get("metadata", {}).get("image/png", {}).get("colours", []):
                where = f"{path.stem}, cell {i}"
                if colour.startswith("cmap:"):
                    assert colour[5:] in SAFE_COLOUR_MAPS, f"{where}: colour map {colour[5:]}"
                    continue
                r, g, b = (colour[1:3], colour[3:5], colour[5:7])
                assert colour in palette or r == g == b, f"{where}: {colour} is not Okabe–Ito or grey"


# A made-up notebook 09: a check-your-understanding question with a markdown reveal, a graded
# answer with a hidden test, a written answer, and a figure.
TINY_CELLS = [
    ("markdown", {}, "# 9. A tiny notebook\n\nAbout 5 minutes."),
    ("code", {}, "import matplotlib.pyplot as plt\n\nfig, ax = plt.subplots()\n"
                 "ax.plot([0, 1], [0, 1])\nax.set_title('A straight line')\nplt.show()"),
    ("markdown", {}, "### Check your understanding\n\n1. Is ReLU linear?\n\n"
                     "<details><summary>Answer</summary>\n\nOnly **piecewise**: the tinyrevealword.\n\n"
                     "</details>"),
    ("code", {"solution": True, "grade": False, "locked": False, "grade_id": "q09_1_solution"},
     "### BEGIN SOLUTION\nanswer_q09_1 = \"b\"  # the kink at 0\n### END SOLUTION"),
    ("code", {"solution": False, "grade": True, "locked": True, "points": 1, "grade_id": "q09_1"},
     "assert isinstance(answer_q09_1, str)\n### BEGIN HIDDEN TESTS\n"
     "assert answer_q09_1 == 'tinysecretword'\n### END HIDDEN TESTS"),
    ("markdown", {"solution": True, "grade": True, "locked": False, "points": 2,
                  "grade_id": "written_09"}, "A model answer with the tinymodelword."),
]


@pytest.fixture(scope="module")
def tiny_site(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    solutions = root / "solutions"
    solutions.mkdir()
    shutil.copy(REPO / "solutions" / "01_linear_collapse.ipynb", solutions)
    nb = nbformat.v4.new_notebook()
    for kind, meta, source in TINY_CELLS:
        cell = (nbformat.v4.new_code_cell if kind == "code" else nbformat.v4.new_markdown_cell)(source)
        if meta:
            cell.metadata["nbgrader"] = {**meta, "schema_version": 3}
        nb.cells.append(cell)
    nbformat.write(nb, solutions / "09_tiny.ipynb")
    site = root / "site"
    book.build(site, solutions=solutions, course=REPO / "course")
    return site


def test_a_new_notebook_reaches_the_sidebar_search_and_downloads(tiny_site):
    for page in ("index.html", "01_linear_collapse.html"):
        assert "09_tiny.html" in Page(tiny_site / page).links, f"{page} does not link the new notebook"
    assert "tinyrevealword" in (tiny_site / "searchindex.js").read_text(encoding="utf-8")
    links = Page(tiny_site / "09_tiny.html").links
    assert any(href.endswith("/09_tiny_solution.ipynb") for href in links)
    text = _squash(" ".join(Page(tiny_site / "index.html").text))
    first = book._minutes(nbformat.read(SOLUTION_NOTEBOOKS[0], as_version=4))  # its own estimate
    assert "2 notebooks" in text and f"{first + 5} minutes" in text  # + the tiny one's 5


def test_markdown_reveals_render_and_graded_answers_hide_their_key(tiny_site):
    html = (tiny_site / "09_tiny.html").read_text(encoding="utf-8")
    page = Page(tiny_site / "09_tiny.html")
    answer = [d for d in page.details if "tinyrevealword" in d]
    assert answer and "<strong>piecewise</strong>" in html, "the markdown inside <details> is not rendered"
    model = [d for d in page.details if "tinymodelword" in d]
    assert model and "model answer" in model[0]
    revealed = [d for d in page.details if "Show the solution (q09_1)" in d]
    assert revealed and 'answer_q09_1' in revealed[0]
    assert "tinysecretword" not in html and "HIDDEN TESTS" not in html
    text = _squash(" ".join(page.text))
    assert "check-your-understanding question q09_1" in text and "a written answer" in text
    assert all((img.get("alt") or "").startswith("Figure: A straight line") for img in page.images)
