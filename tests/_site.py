"""Shared by the site tests: build the self-study site once per test module, and parse pages."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path


def build_site(tmp_path_factory) -> Path:
    """The site built into a temporary folder (executed notebooks come from build/book-cache/)."""
    from autograder.site import book

    site = tmp_path_factory.mktemp("site")
    book.build(site)
    return site


class Page(HTMLParser):
    """Links, images and the text inside <details> blocks of one HTML page."""

    def __init__(self, path: Path):
        super().__init__()
        self.links: list[str] = []
        self.images: list[dict[str, str | None]] = []
        self.details: list[str] = []
        self.text = []
        self._details_depth = 0
        self.feed(path.read_text(encoding="utf-8"))

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        elif tag == "img":
            self.images.append(attrs)
        elif tag == "details":
            if self._details_depth == 0:
                self.details.append("")
            self._details_depth += 1

    def handle_endtag(self, tag):
        if tag == "details":
            self._details_depth -= 1

    def handle_data(self, data):
        self.text.append(data)
        if self._details_depth:
            self.details[-1] += data
