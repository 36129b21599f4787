"""Sphinx configuration of the synthdof documentation site.

    pip install ".[docs]" && python -m sphinx -W --keep-going -q -b html docs docs/_build/html

The Markdown pages are read by MyST (myst-nb), the API reference comes from the docstrings
(autodoc + napoleon: numpydoc sections), the gallery (docs/examples/plot_*.py) and the notebooks
(notebooks/*.ipynb, copied into docs/_notebooks) are executed during the build, so every figure on
the site is drawn by the code beside it; a notebook the tests have just executed with the same
synthdof is rendered from their copy instead of being executed again (docs/executed_notebooks.py).
No network: nothing is fetched at build time, and the built pages load no script or style sheet
from the network (checked when the build finishes).
"""
import re
import shutil
import sys
from html.parser import HTMLParser
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

import synthdof  # noqa: E402  (the installed package: the site documents what pip installs)

sys.path.insert(0, str(HERE))
from executed_notebooks import kept  # noqa: E402

project = "synthdof"
author = "synthdof developers"
copyright = "synthdof developers, BSD-3-Clause"
release = synthdof.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    # MathJax's files from the installed package, copied into the site (_static/mathjax/), instead
    # of a script from a CDN: the formulas render without the network
    "sphinx-mathjax-offline",
    "myst_nb",
    "sphinx_gallery.gen_gallery",
]

# The notebooks live in notebooks/ (run by the tests from there); the site executes copies, or
# renders the tests' executed copy of a notebook when it is of this notebook and this synthdof.
_NB_OUT = HERE / "_notebooks"
shutil.rmtree(_NB_OUT, ignore_errors=True)
_NB_OUT.mkdir()
_NB_EXECUTED = []
for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
    executed = kept(nb)
    shutil.copy(executed or nb, _NB_OUT / nb.name)
    if executed:
        _NB_EXECUTED.append(f"_notebooks/{nb.name}")

exclude_patterns = ["_build", "figures/*.py", "examples/*.py", "examples/README.txt", "**.ipynb_checkpoints",
                    "jupyter_execute", "auto_examples/*.ipynb",  # the gallery's notebook copies: not pages
                    "**sg_execution_times.rst"]  # timing pages an older build left (write_computation_times)
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}

# Markdown
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 4
# Links from the pages to files of the repository outside docs/ (notebooks/, benchmarks/) are for
# readers of the repository; tests/test_docs.py checks that they resolve there.
suppress_warnings = ["myst.xref_missing"]

# notebooks: executed at build time, in their own folder (they write small files there), but for
# those the tests executed
nb_execution_mode = "force"
nb_execution_excludepatterns = _NB_EXECUTED
nb_execution_timeout = 600
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True

# API reference
autodoc_default_options = {"members": True, "undoc-members": False}
autodoc_typehints = "none"
autosummary_generate = True
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False

# gallery
sphinx_gallery_conf = {
    "examples_dirs": str(HERE / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "matplotlib_animations": False,
    "show_memory": False,
    "image_scrapers": ("matplotlib",),
    "reset_modules": ("matplotlib",),
    "capture_repr": (),
    # the timing pages (sg_execution_times) load jQuery and DataTables from CDNs
    "write_computation_times": False,
}

html_theme = "pydata_sphinx_theme"
html_title = "synthdof"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
}
html_static_path = []
html_last_updated_fmt = None


class _Loads(HTMLParser):
    """The scripts and style sheets an HTML page loads."""

    def __init__(self):
        super().__init__()
        self.urls = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script" and a.get("src"):
            self.urls.append(a["src"])
        elif tag == "link" and "stylesheet" in (a.get("rel") or "").split() and a.get("href"):
            self.urls.append(a["href"])


def _check_offline(app, exc):
    """Warn (an error under -W) for each page that loads a script or style sheet from the network
    or from a file missing from the site: the site is read offline, formulas included."""
    if exc is not None or app.builder.format != "html":
        return
    from sphinx.util import logging

    log = logging.getLogger("synthdof.docs")
    out = Path(app.outdir)
    mathjax = 0
    for page in sorted(out.rglob("*.html")):
        if page.relative_to(out).parts[0] == "_static":  # the theme's templates, not pages
            continue
        loads = _Loads()
        loads.feed(page.read_text(encoding="utf-8"))
        for url in loads.urls:
            local = url.split("?", 1)[0].split("#", 1)[0]
            if re.match(r"^([a-z][a-z0-9+.-]*:)?//", url, re.I):
                log.warning("%s loads %s from the network", page.relative_to(out), url)
            elif not (page.parent / local).is_file():
                log.warning("%s loads %s, which is not in the site", page.relative_to(out), url)
            mathjax += local.endswith("_static/mathjax/tex-chtml.js")
    if mathjax == 0:
        log.warning("no page loads MathJax from _static/mathjax/")


def setup(app):
    # after sphinx-mathjax-offline's own build-finished handler has copied MathJax into the site
    app.connect("build-finished", _check_offline, priority=900)
