"""The self-study site in Chromium: every page loads cleanly, links and images resolve, the
reveals (solutions, check-your-understanding answers) open, every image has alt text, formulas
are typeset by the site's own MathJax (no raw TeX left, also from file://), search finds a
term of notebook 7 from the landing page, a phone-width viewport does not scroll sideways, and
the dark theme keeps the figures on a light background. About a minute once the site is built
(see test_book.py for the build)."""

from __future__ import annotations

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
from _browser import browser, screenshot  # noqa: F401 - fixture
from conftest import SOLUTION_NOTEBOOKS

PAGES = ["index"] + [p.stem for p in SOLUTION_NOTEBOOKS]
# A page with math, and formulas on it that must be typeset, not shown as TeX.
MATH_PAGE = "04_sigmoid_tanh"
FORMULAS = [r"\sigma(x) = 1/(1+e^{-x})", r"\tanh", r"\sigma"]
# A word only notebook 7 uses (its initialisation section), and that page.
SEARCH_TERM, SEARCH_PAGE = "Xavier", "07_vanishing_gradients"


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site_folder(built_site):
    return built_site


@pytest.fixture(scope="module")
def site(site_folder):
    """The built site served over HTTP on a free local port; yields its base URL."""
    folder = site_folder
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=folder))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _open(browser, url, **context_args):  # noqa: F811
    context = browser.new_context(**context_args)
    page = context.new_page()
    problems = []
    page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}")
            if msg.type in ("error", "warning") else None)
    page.on("pageerror", lambda err: problems.append(f"page error: {err}"))
    page.on("requestfailed", lambda req: problems.append(f"request failed: {req.url}"))
    page.on("response", lambda resp: problems.append(f"HTTP {resp.status}: {resp.url}")
            if resp.status >= 400 else None)
    page.goto(url, wait_until="load")
    _wait_for_math(page)
    return context, page, problems


def _wait_for_math(page) -> None:
    """Wait until MathJax has typeset the page (Sphinx loads it only on pages with formulas)."""
    if not page.locator("script[src*='MathJax.js']").count():
        return
    page.wait_for_function("() => window.MathJax && MathJax.Hub", timeout=30_000)
    page.evaluate("() => new Promise(done => MathJax.Hub.Register.StartupHook('End', done))")


@pytest.mark.parametrize("name", PAGES)
def test_page_loads_cleanly_with_working_links_and_images(browser, site, name):  # noqa: F811
    context, page, problems = _open(browser, f"{site}/{name}.html")
    try:
        images = page.eval_on_selector_all(
            "img", "els => els.map(e => [e.getAttribute('src'), e.complete && e.naturalWidth > 0,"
                   " (e.getAttribute('alt') || '').trim()])")
        for src, loaded, alt in images:
            assert loaded, f"{name}: image {src} did not load"
            assert alt, f"{name}: image {src} has no alt text"
        hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
        for href in sorted({h.split("#")[0] for h in hrefs if h.startswith(site)}):
            response = page.request.get(href)
            assert response.ok, f"{name}: broken link {href}"
        assert not problems, f"{name}: " + "; ".join(problems)
    finally:
        context.close()


def test_sidebar_lists_every_notebook_and_the_page_sections(browser, site):  # noqa: F811
    context, page, problems = _open(browser, f"{site}/02_relu.html",
                                    viewport={"width": 1400, "height": 900})
    try:
        sidebar = page.locator(".bd-sidebar-primary nav a")
        hrefs = sidebar.evaluate_all("els => els.map(e => e.getAttribute('href'))")
        for stem in PAGES[1:]:
            assert f"{stem}.html" in hrefs or stem == "02_relu", f"the sidebar lacks {stem}"
        sections = page.locator(".bd-sidebar-secondary nav a")
        assert sections.count() >= 5 and sections.first.is_visible(), "no section list beside the page"
        screenshot(page, "site_sidebar_02_relu")
        assert not problems, "; ".join(problems)
    finally:
        context.close()


def test_search_from_the_landing_page_finds_notebook_7(browser, site):  # noqa: F811
    context, page, problems = _open(browser, f"{site}/index.html",
                                    viewport={"width": 1280, "height": 900})
    try:
        page.locator("button.search-button-field").first.click()
        field = page.locator("input[name=q]:visible").first
        field.fill(SEARCH_TERM)
        field.press("Enter")
        page.wait_for_url("**/search.html?*")
        result = page.locator(f"#search-results ul.search li a[href^='{SEARCH_PAGE}.html']").first
        result.wait_for(timeout=30_000)
        page.locator("#search-results ul.search li p.context").first.wait_for(timeout=30_000)
        screenshot(page, "site_search_result")
        result.click()
        page.wait_for_url(f"**/{SEARCH_PAGE}.html*")
        assert SEARCH_TERM in page.locator("article").inner_text()
        assert not problems, "; ".join(problems)
    finally:
        context.close()


@pytest.mark.parametrize("name", PAGES[1:])
def test_every_reveal_opens_on_click(browser, site, name):  # noqa: F811
    """Solutions (MyST-NB's hide-cell) and the answers written as <details> in the notebooks'
    markdown (check your understanding) start closed and open with a click."""
    context, page, problems = _open(browser, f"{site}/{name}.html",
                                    viewport={"width": 1100, "height": 900})
    try:
        reveals = page.locator("article details")
        assert reveals.count() > 0, f"{name}: no reveal on the page"
        for i in range(reveals.count()):
            details = reveals.nth(i)
            assert not details.evaluate("d => d.open"), f"{name}: reveal {i} starts open"
            details.locator("summary").first.click()
            assert details.evaluate("d => d.open"), f"{name}: reveal {i} did not open"
            body = details.locator(":scope > :not(summary)").first
            assert body.is_visible(), f"{name}: reveal {i} opened but shows nothing"
        if name == "02_relu":
            solution = page.locator(".tag_solution details").first
            solution.scroll_into_view_if_needed()
            screenshot(page, "site_solution_revealed")
        assert not problems, "; ".join(problems)
    finally:
        context.close()


@pytest.mark.parametrize("name", PAGES)
def test_phone_viewport_has_no_horizontal_overflow(browser, site, name):  # noqa: F811
    context, page, _ = _open(browser, f"{site}/{name}.html",
                             viewport={"width": 390, "height": 844}, device_scale_factor=2,
                             is_mobile=True, has_touch=True)
    try:
        scroll, client = page.evaluate(
            "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        if name == "02_relu":
            screenshot(page, "site_phone_02_relu")
        assert scroll <= client + 1, f"{name}: {scroll}px wide content in a {client}px viewport"
    finally:
        context.close()


# The luminance (0-255) of each figure as the reader sees it in the dark theme: the colour of
# its top-left pixel over the background the page paints behind it.
_FIGURE_BACKGROUNDS = """() => [...document.querySelectorAll('article .cell_output img')].map(img => {
  const canvas = document.createElement('canvas');
  canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
  const ctx = canvas.getContext('2d');
  ctx.drawImage(img, 0, 0);
  const [r, g, b, a] = ctx.getImageData(2, 2, 1, 1).data;
  const behind = getComputedStyle(img).backgroundColor.match(/[\\d.]+/g).map(Number);
  const under = behind.length > 3 && behind[3] === 0 ? [0, 0, 0] : behind;
  const mix = (c, u) => (c * a + u * (255 - a)) / 255;
  return [img.getAttribute('src'), 0.2126 * mix(r, under[0]) + 0.7152 * mix(g, under[1])
          + 0.0722 * mix(b, under[2])];
})"""


@pytest.mark.parametrize("name", PAGES[1:])
def test_dark_theme_keeps_figures_on_a_light_background(browser, site, name):  # noqa: F811
    context, page, problems = _open(browser, f"{site}/{name}.html", color_scheme="dark",
                                    viewport={"width": 1280, "height": 900})
    try:
        assert page.evaluate("() => document.documentElement.dataset.theme") == "dark"
        for src, luminance in page.evaluate(_FIGURE_BACKGROUNDS):
            assert luminance > 200, f"{name}: {src} sits on a dark background ({luminance:.0f})"
        if name == "04_sigmoid_tanh":
            page.locator("article .cell_output img").first.scroll_into_view_if_needed()
            screenshot(page, "site_dark_04_sigmoid_tanh")
        assert not problems, "; ".join(problems)
    finally:
        context.close()


@pytest.mark.parametrize("scheme", ["http", "file"])
def test_formulas_are_typeset_offline(browser, site, site_folder, scheme):  # noqa: F811
    url = f"{site}/{MATH_PAGE}.html" if scheme == "http" else (site_folder / f"{MATH_PAGE}.html").as_uri()
    context, page, problems = _open(browser, url, viewport={"width": 1100, "height": 900})
    try:
        typeset, errors, font = page.evaluate(
            "() => [document.querySelectorAll('.MathJax, .MathJax_Display').length,"
            " document.querySelectorAll('.MathJax_Error, merror').length,"
            " MathJax.OutputJax['HTML-CSS'] && MathJax.OutputJax['HTML-CSS'].fontInUse]")
        text = page.evaluate(  # the prose: not code, not MathJax's own scripts and previews
            "() => { const copy = document.querySelector('article').cloneNode(true);"
            " copy.querySelectorAll('code, pre, script, .MathJax, .MathJax_Display,"
            " .MathJax_Preview, .cell_input, .cell_output').forEach(e => e.remove());"
            " return copy.textContent; }")
        assert typeset >= 20, f"{MATH_PAGE}: only {typeset} formulas typeset"
        assert errors == 0, f"{MATH_PAGE}: {errors} formulas failed to typeset"
        assert font == "STIX-Web", f"MathJax could not load its web font (uses {font!r})"
        for formula in FORMULAS:
            assert formula not in text, f"{MATH_PAGE}: raw TeX {formula!r} on the page"
        assert "\\(" not in text and "$" not in text, f"{MATH_PAGE}: a TeX delimiter is left in the text"
        src = page.eval_on_selector("script[src*='MathJax.js']", "s => s.getAttribute('src')")
        assert not src.startswith(("http:", "https:", "//", "/")), f"MathJax from {src}"
        page.locator(".MathJax").nth(3).scroll_into_view_if_needed()
        screenshot(page, f"site_math_{scheme}")
        assert not problems, "; ".join(problems)
    finally:
        context.close()
