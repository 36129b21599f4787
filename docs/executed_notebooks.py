"""The notebooks as the tests executed them, kept for the site so that each notebook runs once.

tests/test_notebooks.py executes every notebook of notebooks/ and keeps the executed copy here
(docs/_build/executed_notebooks/); docs/conf.py renders a kept copy instead of executing the
notebook again, but only one executed from the same notebook file with the same installed synthdof
(every file of the package, the compiled core included). Otherwise the build executes the notebook
itself, as it does on a fresh checkout.
"""
import hashlib
import json
from pathlib import Path

import synthdof

DIR = Path(__file__).resolve().parent / "_build" / "executed_notebooks"
KEY = "synthdof_executed_from"  # the notebook metadata entry that holds the fingerprint


def fingerprint(source):
    """SHA-256 of the notebook file `source` and of every file of the installed synthdof package."""
    h = hashlib.sha256(Path(source).read_bytes())
    package = Path(synthdof.__file__).resolve().parent
    for f in sorted(p for p in package.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        h.update(f.relative_to(package).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def keep(nb, source):
    """Keep `nb` (an nbformat notebook), executed from the notebook file `source`."""
    import nbformat

    nb.metadata[KEY] = fingerprint(source)
    DIR.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, DIR / Path(source).name)


def kept(source):
    """The kept copy of the notebook file `source` executed from it as it is, with the installed
    synthdof; None when there is none."""
    path = DIR / Path(source).name
    if not path.is_file():
        return None
    metadata = json.loads(path.read_text(encoding="utf-8")).get("metadata", {})
    return path if metadata.get(KEY) == fingerprint(source) else None
