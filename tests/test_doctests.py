"""The Examples sections of the package's docstrings run as written (doctest), module by module
of the installed package; every public name has one."""
import doctest
import importlib
import pkgutil

import pytest

import synthdof

MODULES = sorted(m.name for m in pkgutil.iter_modules(synthdof.__path__, "synthdof.")
                 if m.name not in ("synthdof._core", "synthdof.__main__")) + ["synthdof"]
# the file, batch and command-line modules: their examples read and write image files
NEEDS_PIL = {"synthdof._io", "synthdof._io_write",
             "synthdof._batch", "synthdof._batch_config", "synthdof._batch_folder",
             "synthdof._batch_scene", "synthdof.cli"}
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _tests(name):
    return [t for t in doctest.DocTestFinder().find(importlib.import_module(name), name) if t.examples]


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name, tmp_path, monkeypatch):
    if name in NEEDS_PIL:
        pytest.importorskip("PIL.Image")
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    for t in _tests(name):
        runner.run(t)
    res = runner.summarize(verbose=False)
    if name in NEEDS_PIL:
        assert res.attempted > 0, f"{name} has no examples"
    assert res.failed == 0, f"{name}: {res.failed} of {res.attempted} doctest examples failed (output above)"


def test_the_examples_are_found():
    n = sum(len(t.examples) for name in MODULES for t in _tests(name))
    assert n >= 100, f"only {n} doctest examples found in the installed synthdof"


def test_every_public_name_has_an_example():
    missing = [n for n in synthdof.__all__ if ">>> " not in (getattr(synthdof, n).__doc__ or "")]
    assert not missing, f"public names without an Examples section: {missing}"
    outside = [n for n in synthdof.__all__ if "Examples\n" not in getattr(synthdof, n).__doc__]
    assert not outside, f"examples outside a numpydoc Examples section: {outside}"
