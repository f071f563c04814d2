"""Sphinx configuration of the self-study site (used by autograder/site/book.py through
`sphinx-build -c autograder/site/book_conf`; the source folder is written by book.py).

Offline by construction: MathJax 2 is loaded from the site's own _static/mathjax/ (copied from
jupyter_server_mathjax by book.py), the ipywidgets scripts MyST-NB would load from a CDN are
switched off (the site shows widgets' still figures), and the theme ships its fonts and icons.
"""

import json
from pathlib import Path

from docutils import nodes

project = "Where neurons get their nonlinearity"
html_title = project
extensions = ["myst_nb"]
exclude_patterns = ["downloads", "**/.ipynb_checkpoints"]
smartquotes = False  # the text keeps the notebooks' quotes, as JupyterLab shows them

myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3
# MyST's MathJax settings are for MathJax 3; this site loads MathJax 2 and configures it below.
myst_update_mathjax = False
# The notebooks' heading levels are written for JupyterLab (a notebook title, then ## sections).
suppress_warnings = ["myst.header"]

nb_execution_mode = "off"  # book.py executes the notebooks, with its own cache
nb_ipywidgets_js = {}  # no require.js / widget manager from a CDN

html_theme = "sphinx_book_theme"
html_theme_options = {
    "home_page_in_toc": True,
    "show_toc_level": 2,  # the page's sections in the right-hand sidebar
    "use_download_button": False,  # each page's box links the student and solution notebooks
    "use_fullscreen_button": False,
    "navigation_with_keys": False,
    "footer_content_items": [],
}
html_context = {"default_mode": "auto"}  # light or dark as the reader's system prefers
html_static_path = ["_static"]
html_css_files = ["book.css"]
html_favicon = "_static/favicon.svg"
html_copy_source = False
html_show_sourcelink = False
html_show_copyright = False
html_use_index = False  # no general index: the course has no index entries
html_last_updated_fmt = None

# MathJax 2, relative to _static/: works from file:// as from a server.
mathjax_path = "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe"
mathjax2_config = {
    "tex2jax": {"inlineMath": [["\\(", "\\)"]], "displayMath": [["\\[", "\\]"]],
                "processEscapes": False, "processEnvironments": True},
    "messageStyle": "none",
    # jupyter_server_mathjax ships the STIX-Web fonts only (as the classic notebook used them).
    "HTML-CSS": {"availableFonts": [], "webFont": "STIX-Web", "imageFont": None,
                 "preferredFont": None, "linebreaks": {"automatic": True},
                 # MathJax's stand-in font is url('about:blank'), which Chromium reports as a
                 # CORS error; a local() source that is never there fails quietly instead.
                 "styles": {"@font-face": {"font-family": "MathJax_Blank",
                                           "src": "local('MathJax_Blank')"}}},
    "CommonHTML": {"linebreaks": {"automatic": True}},
}


def _figure_alt_text(app, doctree, docname):
    """Alternative text for the notebooks' figures: MyST-NB names an output image by the
    SHA-256 of its bytes; book.py wrote each figure's text under that name."""
    path = Path(app.srcdir) / "_alt_text.json"
    alt_text = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    for image in doctree.findall(nodes.image):
        if not image.get("alt"):
            image["alt"] = alt_text.get(Path(image["uri"]).stem, "")


def setup(app):
    app.connect("doctree-resolved", _figure_alt_text)
