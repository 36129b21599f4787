"""The Examples sections of the file, batch and command-line modules run as written."""
import doctest
import importlib

import pytest

pytest.importorskip("PIL.Image")

MODULES = ["synthdof._io", "synthdof._batch", "synthdof._batch_config", "synthdof._batch_folder",
           "synthdof._batch_scene", "synthdof.cli"]


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name):
    module = importlib.import_module(name)
    res = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert res.attempted > 0, f"{name} has no examples"
    assert res.failed == 0, f"{res.failed} of {res.attempted} examples of {name} failed (see the output above)"
