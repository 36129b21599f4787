"""Shared fixtures: the ground-truth scenes beside the repository and small random generators."""
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

# tests/reference.py is imported as a plain module by the test files
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

GT_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "gt"
GT_SCENES = ("portrait", "lights", "slant", "occluder")


@pytest.fixture(scope="session")
def gt_dir():
    """Directory of the Cycles ground truth (skips the test when it is not checked out)."""
    if not (GT_DIR / "portrait.npz").is_file():
        pytest.skip(f"ground truth not found at {GT_DIR}")
    return GT_DIR


@pytest.fixture(scope="session")
def load_gt(gt_dir):
    """load_gt(name) -> dict of the scene's arrays plus 'meta' parsed from JSON (cached)."""
    cache = {}

    def load(name):
        if name not in cache:
            with np.load(gt_dir / f"{name}.npz") as z:
                d = {k: z[k] for k in z.files if k != "meta"}
                d["meta"] = json.loads(str(z["meta"]))
            cache[name] = d
        return cache[name]

    return load


@pytest.fixture
def small_rng():
    """A fixed-seed generator, fresh for every test (tests do not depend on each other's draws)."""
    return np.random.default_rng(20240611)


def ncpu():
    return os.cpu_count() or 1
