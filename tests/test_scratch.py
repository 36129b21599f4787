"""The core keeps large scratch buffers between calls (synthdof.scratch_memory): a call that reuses
them renders exactly what a call on fresh memory renders, the limit is honoured, and bad limits
are refused. NumPy arrays made within pooled_arrays (those of refine, render, scatter, gather and
the CoC maps) come from the same pool: zeros are zero, each thread's arrays are its own, each
function from a pool full of garbage gives what it gives on fresh memory, and a result stays the
caller's."""
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import synthdof

H, W = 600, 800  # large enough for the core's big (mapped, kept) buffers


def _scene(seed):
    rng = np.random.default_rng(seed)
    img = rng.random((H, W, 3), dtype=np.float32)
    img[rng.integers(0, H, 40), rng.integers(0, W, 40)] = 30.0  # point lights
    y, x = np.mgrid[0:H, 0:W]
    coc = np.where(x > W // 2, 40.0, -25.0).astype(np.float32) + rng.normal(0, 2, (H, W)).astype(np.float32)
    matte = (((y - H / 2) / 180.0) ** 2 + ((x - W / 3) / 120.0) ** 2 < 1.0).astype(np.float32)
    coc[matte > 0] = 0.5
    return img, coc, matte


def _render(scene, threads=2):
    img, coc, matte = scene
    return synthdof.render(img, coc=coc, matte=matte, aperture=synthdof.Aperture(blades=6), num_threads=threads)


@pytest.fixture
def default_limit():
    yield
    synthdof.scratch_memory(2048)


def test_reused_scratch_renders_as_fresh_memory(default_limit):
    a, b = _scene(1), _scene(2)
    synthdof.scratch_memory(0)  # nothing kept: the next render maps fresh (zeroed) memory
    fresh = _render(a)
    synthdof.scratch_memory(2048)
    _render(b)  # leaves its buffers, full of b's light, for the next call
    if sys.platform.startswith("linux"):
        assert synthdof.scratch_memory() > 0
    reused = _render(a)
    np.testing.assert_array_equal(reused, fresh)


def test_buffers_left_by_larger_and_other_calls_change_nothing(default_limit):
    # a larger frame's dirty buffers (kept buffers serve requests down to half their size), and
    # scatter's pyramid planes handed back zeroed, reused by render and scatter
    a = _scene(4)
    rng = np.random.default_rng(5)
    big = rng.random((800, 1000, 3), dtype=np.float32) * 5
    big_coc = rng.normal(0, 30, (800, 1000)).astype(np.float32)
    synthdof.scratch_memory(0)
    fresh_render = _render(a)
    fresh_scatter = synthdof.scatter(a[0], a[1], aperture=synthdof.Aperture(blades=5), num_threads=2)
    synthdof.scratch_memory(2048)
    for first in ("render", "scatter"):
        if first == "render":
            synthdof.render(big, coc=big_coc, matte=(big_coc > 20).astype(np.float32), num_threads=2)
        else:
            synthdof.scatter(big, big_coc, aperture=synthdof.Aperture(blades=6), num_threads=2)
        np.testing.assert_array_equal(_render(a), fresh_render)
        np.testing.assert_array_equal(
            synthdof.scatter(a[0], a[1], aperture=synthdof.Aperture(blades=5), num_threads=2), fresh_scatter)


def test_a_longer_buffer_handed_back_zeroed_is_zero_only_where_it_was_used(default_limit):
    # a kept buffer serves requests down to half its size; one that a smaller request zeroed and
    # handed back zeroed still holds the earlier call's data past what that request asked for
    def scatter(h, w):
        r = np.random.default_rng(h)
        img = r.random((h, w, 3), dtype=np.float32)
        coc = r.uniform(-10, 10, (h, w)).astype(np.float32)
        return synthdof.scatter(img, coc, aperture=synthdof.Aperture(blades=5), num_threads=2)

    synthdof.scratch_memory(0)
    fresh = scatter(750, 830)
    synthdof.scratch_memory(2048)
    rng = np.random.default_rng(7)
    big = rng.random((1500, 2000, 3), dtype=np.float32)
    synthdof.render(big, coc=rng.uniform(-10, 10, (1500, 2000)).astype(np.float32), num_threads=2)
    scatter(600, 700)  # its plane in one of the render's frame-sized buffers, handed back zeroed
    np.testing.assert_array_equal(scatter(750, 830), fresh)  # a larger plane from that buffer


def test_limit_zero_keeps_nothing(default_limit):
    _render(_scene(3))
    assert synthdof.scratch_memory(0) == 0
    _render(_scene(3))
    assert synthdof.scratch_memory() == 0
    assert synthdof.scratch_memory(1) == 0  # 1 MB: smaller than any kept buffer


def test_concurrent_renders_share_the_kept_buffers(default_limit):
    scenes = [_scene(s) for s in range(4)]
    sequential = [_render(s, threads=1) for s in scenes]
    with ThreadPoolExecutor(max_workers=4) as ex:
        concurrent = list(ex.map(lambda s: _render(s, threads=1), scenes * 2))
    for k, out in enumerate(concurrent):
        np.testing.assert_array_equal(out, sequential[k % 4])


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), "lots"])
def test_bad_limit_names_the_argument(bad):
    with pytest.raises((ValueError, TypeError), match="limit_mb"):
        synthdof.scratch_memory(bad)


def _child(code, env_value):
    env = dict(os.environ, SYNTHDOF_SCRATCH_MB=env_value)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)


def test_environment_sets_the_limit():
    code = ("import numpy as np, synthdof\n"
            "img = np.random.default_rng(0).random((600, 800, 3), dtype=np.float32)\n"
            "synthdof.render(img, coc=np.full((600, 800), 30, np.float32))\n"
            "print(synthdof.scratch_memory())\n")
    r = _child(code, "0")
    assert r.returncode == 0, r.stderr
    assert int(r.stdout.split()[-1]) == 0
    r = _child(code, "lots")
    assert r.returncode != 0 and "SYNTHDOF_SCRATCH_MB" in r.stderr


@pytest.mark.parametrize("shape, dtype", [((7, 5, 3), np.float32), ((1100, 1000), np.float32),
                                          ((1024, 1024, 3), np.uint16), ((0, 4096, 3), np.float32)])
def test_results_in_mappings_of_their_own_behave_as_arrays(shape, dtype):
    import pickle
    from synthdof._validate import fresh_array
    a, b = fresh_array(shape, dtype), fresh_array(shape, dtype)
    for x in (a, b):
        assert x.shape == shape and x.dtype == dtype
        assert x.flags.c_contiguous and x.flags.writeable and x.flags.aligned
    assert not np.may_share_memory(a, b)
    a[...] = 7
    b[...] = 3
    assert (a == 7).all() and (b == 3).all()
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(a)), a)


def test_a_result_too_large_for_memory_raises_memoryerror():
    from synthdof._validate import fresh_array
    with pytest.raises(MemoryError):
        fresh_array((2 ** 60,), np.float32)


def test_large_render_result_is_the_render():
    """A result of 4 MB and more (its own mapping) holds what an out= array gets."""
    img, coc, _ = _scene(3)
    got = synthdof.scatter(img, coc, aperture=synthdof.Aperture(blades=6))
    assert got.nbytes >= 4 << 20
    out = np.empty_like(got)
    synthdof.scatter(img, coc, aperture=synthdof.Aperture(blades=6), out=out)
    np.testing.assert_array_equal(got, out)


# ---- NumPy arrays from the pool (_validate.pooled_arrays, used by refine) ----------------------

def _handler(a):
    """The memory handler of the array that owns a's memory (a may be a view)."""
    try:
        from numpy._core.multiarray import get_handler_name
    except ImportError:  # NumPy 1
        from numpy.core.multiarray import get_handler_name
    while isinstance(a.base, np.ndarray):
        a = a.base
    return get_handler_name(a)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the pool keeps mappings on Linux only")
def test_pooled_zeros_are_zero_in_a_reused_dirty_buffer(default_limit):
    from synthdof._validate import pooled_arrays
    synthdof.scratch_memory(0)
    synthdof.scratch_memory(2048)
    with pooled_arrays(2):
        dirty = np.empty((1500, 2000), np.float32)  # 12 MB: a mapping of its own
        dirty[...] = np.nan
        del dirty
        kept = synthdof.scratch_memory()
        assert kept >= 12_000_000
        # the kept buffer serves requests down to half its size: a smaller one reuses it
        z = np.zeros((1000, 2000), np.float32)
        assert synthdof.scratch_memory() < kept  # taken from the pool, not fresh
        assert _handler(z) == "synthdof_scratch_pool"
        assert not z.view(np.uint32).any()  # every byte zero, not only equal to 0.0
        z[...] = 5
        del z
        b = np.zeros(8_000_000, bool)
        assert not b.view(np.uint8).any()


def test_pooled_arrays_have_the_shape_dtype_and_flags_asked_for():
    from synthdof._validate import pooled_arrays
    cases = [((7, 5, 3), np.float32), ((1100, 1000), np.float32), ((1024, 1024, 3), np.uint16),
             ((0, 4096, 3), np.float32), ((3000, 2000), bool), ((600, 800), np.complex128),
             ((1030, 1030), np.dtype([("a", "<f4"), ("b", "u1")]))]
    with pooled_arrays(1):
        for shape, dtype in cases:
            for make in (np.empty, np.zeros, np.ones):
                a = make(shape, dtype)
                assert a.shape == shape and a.dtype == dtype, (make, shape, dtype)
                assert a.flags.c_contiguous and a.flags.writeable and a.flags.aligned and a.flags.owndata
                assert a.ctypes.data % 16 == 0
                if make is not np.empty:
                    assert (a == make((), dtype)).all()
                assert _handler(a) == "synthdof_scratch_pool"
        # resized in place (the handler's realloc): the first bytes stay, NumPy zeroes the rest
        for n0, n1 in [(100, 2_000_000), (3_000_000, 5_000_000), (5_000_000, 1000), (2_000_000, 2_000_001)]:
            a = np.arange(n0, dtype=np.float32)
            a.resize(n1, refcheck=False)
            m = min(n0, n1)
            np.testing.assert_array_equal(a[:m], np.arange(m, dtype=np.float32))
            assert not a[m:].any()


def test_pooled_arrays_are_this_threads_only_and_the_default_comes_back():
    from synthdof._validate import pooled_arrays
    before = _handler(np.empty(1))
    seen = {}
    go, done = threading.Event(), threading.Event()

    def other():
        go.wait(30)
        seen["other"] = _handler(np.empty((1000, 1100), np.float32))
        done.set()

    t = threading.Thread(target=other)
    t.start()
    with pooled_arrays(1):
        go.set()
        done.wait(30)
        mine = _handler(np.empty((1000, 1100), np.float32))
    t.join()
    assert mine == "synthdof_scratch_pool"
    assert seen["other"] == before != mine
    assert _handler(np.empty((1000, 1100), np.float32)) == before
    with pytest.raises(RuntimeError):
        with pooled_arrays(1):
            raise RuntimeError("out of the block")
    assert _handler(np.empty((1000, 1100), np.float32)) == before


def test_concurrent_pooled_arrays_are_distinct_buffers(default_limit):
    from synthdof._validate import pooled_arrays
    n_threads, per_thread = 4, 3
    barrier = threading.Barrier(n_threads)

    def work(k):
        with pooled_arrays(1):
            arrays = []
            for r in range(2):  # the second round takes the first round's freed buffers
                arrays = [np.full((1100, 1000 + 10 * j), k * 10 + j, np.float32) for j in range(per_thread)]
                zeros = np.zeros((1100, 1000), np.float32)
                barrier.wait(60)  # all threads' arrays alive at once
                ok = all((a == k * 10 + j).all() for j, a in enumerate(arrays)) and not zeros.any()
                barrier.wait(60)
                if r == 0:
                    del zeros
                    arrays.clear()
            return ok, [(a.ctypes.data, a.nbytes) for a in arrays]

    with ThreadPoolExecutor(max_workers=n_threads) as ex:
        results = list(ex.map(work, range(n_threads)))
    assert all(ok for ok, _ in results)
    spans = sorted(s for _, spans in results for s in spans)
    for (a0, an), (b0, _) in zip(spans, spans[1:]):
        assert a0 + an <= b0  # no two live arrays share a byte


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the pool keeps mappings on Linux only")
def test_freed_pooled_arrays_keep_no_more_than_the_limit(default_limit):
    from synthdof._validate import pooled_arrays
    synthdof.scratch_memory(0)
    synthdof.scratch_memory(20)  # MB
    with pooled_arrays(1):
        arrays = [np.ones((1000, 2000), np.float32) for _ in range(4)]  # 8 MB each
    del arrays
    assert 0 < synthdof.scratch_memory() <= 20 << 20
    synthdof.scratch_memory(0)
    assert synthdof.scratch_memory() == 0


def _refine_case():
    rng = np.random.default_rng(11)
    H, W = 1200, 1600  # its planes are mappings of their own (4 MB and more)
    y, x = np.mgrid[0:H, 0:W]
    disk = ((y - 600) / 350.0) ** 2 + ((x - 700) / 300.0) ** 2 < 1
    img = np.where(disk[..., None], [0.8, 0.3, 0.2], [0.1, 0.4, 0.6]).astype(np.float32)
    img += rng.normal(0, 0.01, img.shape).astype(np.float32)
    depth = np.where(disk, 2.0, 6.0).astype(np.float32) * (1 + 0.02 * rng.standard_normal((H, W))).astype(np.float32)
    depth[rng.random((H, W)) < 0.01] = np.nan
    small = depth[::8, ::8].copy()
    return img, depth, small, disk.astype(np.float32)


def test_refine_from_a_dirty_pool_equals_refine_from_fresh_memory(default_limit):
    from synthdof._validate import pooled_arrays
    img, depth, small, matte = _refine_case()
    synthdof.scratch_memory(0)
    fresh = [synthdof.refine(img, d, matte=matte, num_threads=2) for d in (depth, small)]
    assert _handler(fresh[0][0]) == "synthdof_scratch_pool"
    synthdof.scratch_memory(2048)
    for fill in (np.nan, 7.0):  # the pool full of garbage of every size refine asks for
        with pooled_arrays(2):
            junk = [np.full(n, fill, np.float32) for n in (1_200_000, 1_920_000, 3_000_000, 5_760_000, 6_000_000)]
        del junk
        for d, (d0, m0) in zip((depth, small), fresh):
            d1, m1 = synthdof.refine(img, d, matte=matte, num_threads=2)
            np.testing.assert_array_equal(d1, d0)
            np.testing.assert_array_equal(m1, m0)
    assert _handler(np.empty((1000, 1100), np.float32)) == "default_allocator"


def _public_calls():
    """render (depth and lens: its CoC map; uint8: its encoding's temporaries), scatter, gather and
    the CoC maps at 1200 x 1600, where every result is a mapping of its own (4 MB and more)."""
    img, depth, _, matte = _refine_case()
    depth = np.nan_to_num(depth, nan=3.0)
    lens = synthdof.ThinLens(focal_length_mm=50, f_number=2.0, focus_distance=2.0)
    coc = lens.coc(depth, max_coc=60)
    img8 = (np.clip(img, 0, 1) * 255).astype(np.uint8)
    ap = synthdof.Aperture(blades=5)
    return {
        "render": lambda: synthdof.render(img, depth, matte=matte, lens=lens, aperture=ap, num_threads=2),
        "render_uint8": lambda: synthdof.render(img8, coc=coc, background=img8, num_threads=2),
        "scatter": lambda: synthdof.scatter(img, coc, aperture=ap, num_threads=2),
        "gather": lambda: synthdof.gather(img, coc, aperture=ap, num_threads=1),
        "coc": lambda: lens.coc(depth, max_coc=60, num_threads=2),
        "coc_from_disparity": lambda: synthdof.coc_from_disparity(1 / depth, K=40.0, focus_disparity=0.5),
    }


def test_results_from_a_dirty_pool_equal_results_on_fresh_memory(default_limit):
    from synthdof._validate import pooled_arrays
    calls = _public_calls()
    synthdof.scratch_memory(0)  # nothing kept: every result and map is a fresh (zeroed) mapping
    fresh = {name: f() for name, f in calls.items()}
    assert all(_handler(r) == "synthdof_scratch_pool" for r in fresh.values())
    synthdof.scratch_memory(2048)
    for fill in (np.nan, 7.0):  # the pool full of garbage of every size the calls ask for
        with pooled_arrays(2):  # (results of 23, 7.7 and 5.8 MB; the maps' copies and temporaries)
            junk = [np.full(n, fill, np.float32) for n in (1_440_000, 1_920_000, 2_000_000, 5_760_000, 6_000_000)]
        del junk
        for name, f in calls.items():
            np.testing.assert_array_equal(f(), fresh[name], err_msg=name)


def test_a_pooled_result_stays_the_callers_through_later_calls(default_limit):
    calls = _public_calls()
    synthdof.scratch_memory(2048)
    first = {name: f() for name, f in calls.items()}  # each may be a buffer an earlier call freed
    copies = {name: r.copy() for name, r in first.items()}
    later = [f() for _ in range(2) for f in calls.values()]  # the pool's buffers reused meanwhile
    for name, r in first.items():
        np.testing.assert_array_equal(r, copies[name], err_msg=name)
        assert not any(np.may_share_memory(r, x) for x in later), name
    del later
    for name, r in first.items():  # and after those calls' results went back to the pool
        np.testing.assert_array_equal(r, copies[name], err_msg=name)


def test_concurrent_refines_from_the_pool_equal_sequential_ones(default_limit):
    img, depth, small, matte = _refine_case()
    cases = [(depth, matte, 1), (small, matte, 2), (depth, None, 2), (small, None, 1)]
    sequential = [synthdof.refine(img, d, matte=m, num_threads=nt) for d, m, nt in cases]
    with ThreadPoolExecutor(max_workers=4) as ex:  # the GIL is released in the kernels: the calls overlap
        concurrent = list(ex.map(lambda c: synthdof.refine(img, c[0], matte=c[1], num_threads=c[2]), cases * 2))
    for k, (d, m) in enumerate(concurrent):
        d0, m0 = sequential[k % len(cases)]
        np.testing.assert_array_equal(d, d0)
        if m0 is None:
            assert m is None
        else:
            np.testing.assert_array_equal(m, m0)
