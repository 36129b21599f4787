"""The kernels release the GIL and share no state between calls: Python threads running them
concurrently get exactly what sequential calls get, and render is deterministic."""
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import synthdof

CROPS = [(0, 0), (40, 96), (120, 200), (90, 30)]  # (row, column) of 112 x 144 crops of the sample


@pytest.fixture(scope="module")
def scenes():
    s = synthdof.load_sample()
    lens = synthdof.ThinLens(**s["lens"])
    out = []
    for k, (y, x) in enumerate(CROPS):
        sl = (slice(y, y + 112), slice(x, x + 144))
        img = np.ascontiguousarray(s["image"][sl])
        out.append(dict(image=img, depth=np.ascontiguousarray(s["depth"][sl]),
                        matte=np.ascontiguousarray(s["matte"][sl]), lens=lens,
                        aperture=synthdof.Aperture([0, 6, 5, 0][k])))
    return out


def _render(sc, threads=None):
    return synthdof.render(sc["image"], sc["depth"], matte=sc["matte"], lens=sc["lens"],
                           aperture=sc["aperture"], num_threads=threads)


def _scatter(sc, threads=None):
    lin = synthdof.srgb_to_linear(sc["image"])
    coc = sc["lens"].coc(sc["depth"], 384)  # the sample's full width: CoCs up to ~40 px
    return synthdof.scatter(lin, coc, aperture=sc["aperture"], num_threads=threads)


@pytest.mark.parametrize("fn", [_render, _scatter], ids=["render", "scatter"])
def test_concurrent_python_threads_match_sequential(fn, scenes):
    sequential = [fn(sc) for sc in scenes]
    assert all(not np.array_equal(sequential[0], r) for r in sequential[1:])  # the jobs differ
    with ThreadPoolExecutor(max_workers=4) as ex:
        # every scene twice, interleaved, so the same kernels overlap with themselves too
        futures = [ex.submit(fn, scenes[i % 4]) for i in range(8)]
        concurrent = [f.result() for f in futures]
    for i, r in enumerate(concurrent):
        np.testing.assert_array_equal(r, sequential[i % 4])


def test_concurrent_mixed_kernels_and_thread_counts(scenes):
    jobs = [(_render, scenes[0], 1), (_scatter, scenes[1], 2), (_render, scenes[2], None),
            (_scatter, scenes[3], -1)]
    expected = [fn(sc, 1) for fn, sc, _ in jobs]
    with ThreadPoolExecutor(max_workers=4) as ex:
        got = list(ex.map(lambda j: j[0](j[1], j[2]), jobs))
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g, e)


def test_render_is_deterministic(scenes):
    sc = scenes[1]
    a = _render(sc)
    b = _render(sc)
    np.testing.assert_array_equal(a, b)
    # float input with a CoC map goes through the same path without the sRGB round trip
    lin = synthdof.srgb_to_linear(sc["image"])
    coc = sc["lens"].coc(sc["depth"], 384)
    r1 = synthdof.render(lin, coc=coc, matte=sc["matte"], aperture=sc["aperture"])
    r2 = synthdof.render(lin, coc=coc, matte=sc["matte"], aperture=sc["aperture"])
    np.testing.assert_array_equal(r1, r2)


@pytest.mark.skipif(not synthdof.openmp_enabled(), reason="built without OpenMP")
def test_render_thread_count_invariance(scenes):
    sc = scenes[2]
    np.testing.assert_array_equal(_render(sc, 1), _render(sc, 2))


@pytest.mark.skipif(not synthdof.openmp_enabled(), reason="built without OpenMP")
@pytest.mark.parametrize("noise", [0.0, 0.01], ids=["exact", "noisy"])
def test_render_thread_count_invariance_large(noise, monkeypatch):
    """A frame large enough that the core's loops split between threads (a loop of fewer than
    2^17 cells runs on one), with coarse slices, holes, highlights and, for the noisy depth, a
    speckle of interleaved slices: the same bits for 1, 2 and 3 threads (the counts as asked,
    whatever else runs on the machine)."""
    monkeypatch.setenv("OMP_DYNAMIC", "false")
    s = synthdof.load_sample()
    img, depth, matte = (np.ascontiguousarray(np.tile(s[k], (3, 3, 1) if s[k].ndim == 3 else (3, 3)))
                         for k in ("image", "depth", "matte"))
    if noise:
        rng = np.random.default_rng(5)
        depth = (depth * (1 + noise * rng.standard_normal(depth.shape))).astype(np.float32)
    lens = synthdof.ThinLens(**s["lens"])
    assert np.abs(lens.coc(depth)).max() > 48  # coarse slices (levels above 0) too
    ap = synthdof.Aperture(6)
    one = synthdof.render(img, depth, matte=matte, lens=lens, aperture=ap, num_threads=1)
    for nt in (2, 3):
        np.testing.assert_array_equal(synthdof.render(img, depth, matte=matte, lens=lens, aperture=ap,
                                                      num_threads=nt), one)


def test_inputs_untouched_by_concurrent_calls(scenes):
    before = [{k: v.copy() for k, v in sc.items() if isinstance(v, np.ndarray)} for sc in scenes]
    with ThreadPoolExecutor(max_workers=4) as ex:
        list(ex.map(_render, scenes))
    for sc, b in zip(scenes, before):
        for k, v in b.items():
            np.testing.assert_array_equal(sc[k], v)


@pytest.mark.parametrize("env, want", [
    ({}, "PASSIVE"),                                  # the package's choice: waiting threads sleep
    ({"OMP_WAIT_POLICY": "ACTIVE"}, "ACTIVE"),        # the user's own choice stands
    ({"GOMP_SPINCOUNT": "20000"}, None),              # ... and so does a spin count of their own
])
def test_import_sets_passive_waiting_unless_chosen(env, want):
    import os
    import subprocess
    import sys
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    code = "import os, synthdof; print(os.environ.get('OMP_WAIT_POLICY'))"
    r = subprocess.run([sys.executable, "-c", code], env={**base, **env}, capture_output=True, text=True,
                       check=True)
    assert r.stdout.strip() == str(want)


@pytest.mark.parametrize("others, again, cores, asked, want", [
    (0, 0, 2, 2, 2),        # idle machine: as asked
    (1, 1, 2, 2, 1),        # one busy process on 2 cores: the free core only
    (1, 0, 2, 2, 2),        # a thread passing through, gone a moment later: as asked
    (3, 3, 8, 8, 5),        # 3 busy of 8: the 5 free
    (9, 9, 8, 4, 1),        # more busy threads than cores: 1
    (1, 1, 2, 1, 1),
    (None, None, 2, 2, 2),  # no /proc/loadavg: as asked
])
def test_threads_give_way_to_busy_processes(monkeypatch, others, again, cores, asked, want):
    from synthdof import _validate
    seen = iter([others, again])
    monkeypatch.setattr(_validate, "runnable_elsewhere", lambda: next(seen))
    monkeypatch.setattr(_validate.os, "cpu_count", lambda: cores)
    monkeypatch.delenv("OMP_DYNAMIC", raising=False)
    assert _validate.resolve_threads(asked) == want
    monkeypatch.setenv("OMP_DYNAMIC", "false")  # the count as asked, however busy
    seen = iter([others, again])
    assert _validate.resolve_threads(asked) == asked


def test_runnable_elsewhere_reads_the_machine():
    import os
    from synthdof import _validate
    n = _validate.runnable_elsewhere()
    if os.path.exists("/proc/loadavg"):
        assert isinstance(n, int) and n >= 0
    else:
        assert n is None


@pytest.mark.skipif(not __import__("os").path.isdir("/proc/self/task"), reason="Linux's /proc only")
def test_own_threads_running_are_counted_as_own():
    """The calling thread is running; a second thread of this process hashing outside the GIL is
    running too, and is seen so within the 2 s it hashes."""
    import hashlib
    import threading
    import time
    from synthdof import _validate
    assert _validate.own_runnable() >= 1
    started, stop = threading.Event(), threading.Event()
    buf = bytes(1 << 24)

    def spin():  # hashing a large buffer releases the GIL
        started.set()
        t0 = time.perf_counter()
        while not stop.is_set() and time.perf_counter() - t0 < 2.0:
            hashlib.sha256(buf).digest()

    th = threading.Thread(target=spin)
    th.start()
    started.wait()
    seen, t0 = 0, time.perf_counter()
    try:
        while seen < 2 and time.perf_counter() - t0 < 2.0:
            seen = max(seen, _validate.own_runnable())
    finally:
        stop.set()
        th.join()
    assert seen >= 2
