"""The class report in Chromium: it opens from file:// with nothing else (no console errors, no
request leaves the page), every figure decodes and has alt text, and a phone-width window does
not scroll sideways (wide tables scroll inside their own box)."""

from __future__ import annotations

import subprocess
import sys

from _browser import browser, screenshot  # noqa: F401 - fixture
from test_report import make_class


def _watch(page) -> list[str]:
    """Console errors and warnings, page errors, and any request that is not the file itself."""
    problems = []
    page.on("console", lambda msg: problems.append(msg.text)
            if msg.type in ("error", "warning") else None)
    page.on("pageerror", lambda err: problems.append(str(err)))
    page.on("request", lambda req: problems.append(f"request {req.url}")
            if not req.url.startswith(("file:", "data:")) else None)
    return problems


def test_report_opens_offline_with_its_figures(browser, tmp_path):  # noqa: F811
    make_class(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "autograder", "report", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for width, name in ((1200, "report"), (390, "report-phone")):
        context = browser.new_context(viewport={"width": width, "height": 800})
        page = context.new_page()
        problems = _watch(page)
        page.goto((tmp_path / "report.html").as_uri(), wait_until="load")
        images = page.eval_on_selector_all(
            "img", "imgs => imgs.map(i => [i.complete && i.naturalWidth > 0, i.alt.length])")
        assert len(images) == 4 and all(ok and alt > 60 for ok, alt in images), images
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{width}px wide: the page scrolls sideways by {overflow}px"
        assert page.locator("h1").inner_text() == "Class report"
        screenshot(page, name)
        assert not problems, problems
        context.close()
