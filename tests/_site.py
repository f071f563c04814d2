"""Shared by the site tests: build the self-study site once per test module, and parse pages."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

# The page Sphinx writes beside the course's own: the search page.
SPHINX_PAGES = {"search.html"}


def build_site(tmp_path_factory) -> Path:
    """The site built into a temporary folder (executed notebooks come from build/book-cache/)."""
    from autograder.site import book

    site = tmp_path_factory.mktemp("site")
    book.build(site)
    return site


class Page(HTMLParser):
    """Links, images, scripts, stylesheets, the text, and the text inside each <details> block
    (with the block's class) of one HTML page."""

    def __init__(self, path: Path):
        super().__init__()
        self.links: list[str] = []
        self.images: list[dict[str, str | None]] = []
        self.scripts: list[str] = []
        self.stylesheets: list[str] = []
        self.details: list[str] = []
        self.details_classes: list[str] = []
        self.text: list[str] = []
        self._details_depth = 0
        self.feed(path.read_text(encoding="utf-8"))

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        elif tag == "img":
            self.images.append(attrs)
        elif tag == "script" and attrs.get("src"):
            self.scripts.append(attrs["src"])
        elif tag == "link" and attrs.get("href"):
            self.stylesheets.append(attrs["href"])
        if tag == "details":
            if self._details_depth == 0:
                self.details.append("")
                self.details_classes.append(attrs.get("class") or "")
            self._details_depth += 1

    def handle_endtag(self, tag):
        if tag == "details":
            self._details_depth -= 1

    def handle_data(self, data):
        self.text.append(data)
        if self._details_depth:
            self.details[-1] += data
