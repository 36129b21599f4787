"""Shared fixtures: the ground-truth scenes shipped with the package, their scorer, and small
random generators."""
import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest

import synthdof

# Thread counts exactly as the tests ask, also on a busy machine: a test of 1 against 4 threads
# must run 4 (by default fewer run when other processes keep the cores busy).
os.environ["OMP_DYNAMIC"] = "false"

# tests/reference.py is imported as a plain module by the test files
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# The scorer of the ground-truth table (benchmarks/score_gt.py): the metrics, the bar and the
# input recipes the tests check the renderer against.
SCORER = Path(__file__).resolve().parents[1] / "benchmarks" / "score_gt.py"
GT_SCENES = ("portrait", "lights", "slant", "occluder")


class SceneCalls:
    """render and diagnose a scene's image with its own depth, matte, lens and aperture unless a
    keyword overrides them (mixed into the test modules' scene classes, which set those)."""

    def render(self, **kw):
        kw.setdefault("matte", self.matte)
        kw.setdefault("aperture", self.aperture)
        if "coc" in kw:
            return synthdof.render(self.image, **kw)
        kw.setdefault("lens", self.lens)
        return synthdof.render(self.image, kw.pop("depth", self.depth), **kw)

    def diagnose(self, rendered, **kw):
        kw.setdefault("depth", self.depth)
        kw.setdefault("matte", self.matte)
        kw.setdefault("lens", self.lens)
        kw.setdefault("aperture", self.aperture)
        return synthdof.diagnose(self.image, rendered, **kw)


def load_scorer():
    """benchmarks/score_gt.py as a module (a missing file fails the test that needs it)."""
    spec = importlib.util.spec_from_file_location("score_gt", SCORER)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def load_gt():
    """load_gt(name) -> synthdof.load_ground_truth(name), cached: float32 arrays and 'meta'."""
    cache = {}

    def load(name):
        if name not in cache:
            cache[name] = synthdof.load_ground_truth(name)
        return cache[name]

    return load


@pytest.fixture
def small_rng():
    """A fixed-seed generator, fresh for every test (tests do not depend on each other's draws)."""
    return np.random.default_rng(20240611)


def ncpu():
    return os.cpu_count() or 1
