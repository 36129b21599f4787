"""Sphinx configuration of the synthdof documentation site.

    pip install ".[docs]" && python -m sphinx -W --keep-going -q -b html docs docs/_build/html

The Markdown pages are read by MyST (myst-nb), the API reference comes from the docstrings
(autodoc + napoleon: numpydoc sections), the gallery (docs/examples/plot_*.py) and the notebooks
(notebooks/*.ipynb, copied into docs/_notebooks) are executed during the build, so every figure on
the site is drawn by the code beside it. No network: nothing is fetched at build time.
"""
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

import synthdof  # noqa: E402  (the installed package: the site documents what pip installs)

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
    "myst_nb",
    "sphinx_gallery.gen_gallery",
]

# The notebooks live in notebooks/ (run by the tests from there); the site executes copies.
_NB_OUT = HERE / "_notebooks"
shutil.rmtree(_NB_OUT, ignore_errors=True)
_NB_OUT.mkdir()
for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
    shutil.copy(nb, _NB_OUT / nb.name)

exclude_patterns = ["_build", "figures/*.py", "examples/*.py", "examples/README.txt", "**.ipynb_checkpoints",
                    "jupyter_execute", "auto_examples/*.ipynb"]  # the gallery's notebook copies: not pages
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}

# Markdown
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 4
# Links from the pages to files of the repository outside docs/ (notebooks/, benchmarks/) are for
# readers of the repository; tests/test_docs.py checks that they resolve there.
suppress_warnings = ["myst.xref_missing"]

# notebooks: executed at build time, in their own folder (they write small files there)
nb_execution_mode = "force"
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
sys.path.insert(0, str(HERE))
