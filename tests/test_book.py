"""`make book` (python -m autograder book): the self-study site of the executed course.

Builds the site once for the module. Slow the first time (executes every solution notebook,
about 3 minutes on 2 cores); seconds when build/book-cache/ is current.
"""

from __future__ import annotations

import re

import nbformat
import pytest
from _site import Page, build_site
from conftest import SOLUTION_NOTEBOOKS, nb_ids

from autograder.site import book


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return build_site(tmp_path_factory)


def _squash(text: str) -> str:
    return " ".join(text.split())


def test_one_page_per_notebook_and_an_index(site):
    pages = sorted(p.name for p in site.glob("*.html"))
    assert pages == sorted(["index.html"] + [p.stem + ".html" for p in SOLUTION_NOTEBOOKS])


def test_table_of_contents_links_every_notebook_and_resolves(site):
    links = Page(site / "index.html").links
    for nb in SOLUTION_NOTEBOOKS:
        assert nb.stem + ".html" in links, f"index.html does not link {nb.stem}"
    for page in site.glob("*.html"):
        for href in Page(page).links:
            if href.startswith(("#", "http://", "https://", "mailto:")):
                continue
            assert (site / href.split("#")[0]).is_file(), f"{page.name}: broken link {href}"


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
    details = [_squash(d) for d in Page(site / f"{path.stem}.html").details]
    nb = book.site_source(nbformat.read(path, as_version=4))
    solutions = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")]
    assert solutions and len(details) == len(solutions)
    for cell in solutions:
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
