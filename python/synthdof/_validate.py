"""Argument checking shared by the public functions: every message starts with the argument's name."""
import contextlib
import contextvars
import errno
import functools
import math
import mmap
import numbers
import os
import time

import numpy as np

from . import _core

_FLOAT_KINDS = "f"


def _array(x, name):
    if isinstance(x, np.ndarray):
        return x
    raise TypeError(f"{name}: expected a numpy array, got {type(x).__name__}")


# The C core indexes rows and columns with int and sizes buffers from them.
MAX_SIDE = 2 ** 28 - 1


def _physical_memory():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_size(a, name):
    """Reject arrays the kernels cannot handle before anything is allocated for them: a side
    beyond the core's index range (ValueError), or a float32 working copy larger than the
    machine's memory (MemoryError; e.g. a huge broadcast view that uses no memory itself)."""
    if any(n > MAX_SIDE for n in a.shape[:2]):
        raise ValueError(f"{name}: shape {a.shape} is too large (at most {MAX_SIDE} pixels a side)")
    need = 4 * a.size
    mem = _physical_memory()
    if mem and need > mem:
        raise MemoryError(f"{name}: shape {a.shape} needs {need / 2**30:.0f} GiB as float32, "
                          f"more than this machine's {mem / 2**30:.0f} GiB")


def _check_dtype(a, name, *, allow_int):
    kind = a.dtype.kind
    if kind == "f" and a.dtype.itemsize in (2, 4, 8):
        return
    if allow_int and a.dtype in (np.uint8, np.uint16):
        return
    allowed = "float16/32/64, uint8 or uint16" if allow_int else "float16/32/64"
    raise TypeError(f"{name}: unsupported dtype {a.dtype} (expected {allowed})")


def _core_scannable(a):
    """Whether the core's scan can read `a` in place: native aligned float32, (H, W) or
    (H, W, C <= 4) with packed channels (it needs no temporary array, unlike np.isfinite)."""
    return (a.dtype == np.float32 and a.dtype.isnative and a.flags.aligned and a.size > 0
            and all(s % 4 == 0 for s in a.strides)
            and (a.ndim == 2 or (a.ndim == 3 and a.shape[2] <= 4 and a.strides[2] == 4)))


def check_finite(a, name, threads=1):
    """Raise ValueError naming `name` if float array `a` holds NaN or inf (scanned by `threads`
    threads where the core can)."""
    if a.dtype.kind != "f":
        return
    if _core_scannable(a) and _core.find_nonfinite(a, threads) < 0:
        return
    if np.isfinite(a).all():
        return
    bad = np.argwhere(~np.isfinite(a))[0]
    raise ValueError(f"{name}: contains NaN or inf (first at index {tuple(int(i) for i in bad)})")


def packed_float32(a, threads=1):
    """`a` as a C-contiguous, aligned, native float32 array, copied only if needed; a strided
    float32 view (a resizer's transposed output) by the core on `threads` threads, where NumPy's
    copy of a transposed 12 MP map took 0.12 s."""
    if _core_scannable(a) and not a.flags.c_contiguous:
        out = np.empty(a.shape, np.float32)
        _core.copy_scan(a, out, threads)
        return out
    return np.require(a, dtype=np.float32, requirements=["C", "A"])


def _packed_map(x, name, shape, finite, threads):
    """as_map's work: (map, (min, max) or None). A float32 map the core can read is copied (if
    not C-contiguous: a resizer's transposed output) and checked for NaN and inf by `threads`
    threads in one pass that also finds its range."""
    a = _array(x, name)
    _check_dtype(a, name, allow_int=False)
    if a.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D (H, W) array, got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name}: must not be empty (shape {a.shape})")
    if shape is not None and a.shape != tuple(shape):
        raise ValueError(f"{name}: shape {a.shape} does not match the image's {tuple(shape)}")
    check_size(a, name)
    if finite and _core_scannable(a):
        packed = a if a.flags.c_contiguous else np.empty(a.shape, np.float32)
        first, lo, hi = _core.copy_scan(a, None if packed is a else packed, threads)
        if first >= 0:
            raise ValueError(f"{name}: contains NaN or inf (first at index "
                             f"{tuple(int(i) for i in np.unravel_index(first, a.shape))})")
        return packed, (lo, hi)
    a = packed_float32(a, threads)
    if finite:
        check_finite(a, name, threads)
    return a, None


def as_map(x, name, shape=None, *, finite=True, threads=1):
    """A (H, W) float map as a C-contiguous native float32 array (copied only if needed)."""
    return _packed_map(x, name, shape, finite, threads)[0]


def as_matte(x, shape, name="matte", threads=1):
    a, value_range = _packed_map(x, name, shape, True, threads)
    lo, hi = value_range if value_range is not None else (float(a.min()), float(a.max()))
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"{name}: values must lie in [0, 1], got [{lo:g}, {hi:g}]")
    return a


def as_image(x, name="image", *, channels=None, allow_gray=True, threads=1):
    """Returns (linear float32 image, encoding) where encoding is None for float input or the
    integer dtype of an sRGB-encoded input that was linearised (`threads` scan it for NaN)."""
    from ._color import srgb_to_linear

    a = _array(x, name)
    _check_dtype(a, name, allow_int=True)
    if a.ndim not in ((2, 3) if allow_gray else (3,)):
        want = "(H, W) or (H, W, C)" if allow_gray else "(H, W, 3)"
        raise ValueError(f"{name}: expected shape {want}, got {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name}: must not be empty (shape {a.shape})")
    if channels is not None and (a.ndim != 3 or a.shape[2] != channels):
        raise ValueError(f"{name}: expected {channels} channels in the last axis, got shape {a.shape}")
    check_size(a, name)
    if a.dtype.kind == "u":
        return srgb_to_linear(a), a.dtype
    # the core walks rows and pixels by their strides but expects each pixel's channels packed
    # (Fortran order or a reversed channel axis is copied) and float-aligned data
    packed = a.ndim == 2 or a.strides[2] == a.itemsize
    if a.dtype == np.float32 and a.dtype.isnative and packed and a.flags.aligned:
        lin = a
    else:
        lin = np.require(a, dtype=np.float32, requirements=["C", "A"])
    check_finite(lin, name, threads)
    return lin, None


# Results of at least this many bytes are memory mappings of their own (fresh_array).
MAPPED_BYTES = 4 << 20


def fresh_array(shape, dtype):
    """np.empty(shape, dtype), except that a large array is an anonymous private mapping of its
    own, released with the array. NumPy marks its large arrays for transparent huge pages, and on
    a virtual machine that hands freed memory back to its host a fresh huge page costs several
    times the system time of the same bytes in 4 KiB pages (the scratch pool's mappings are left
    unmarked for the same reason, csrc/sd_alloc.c; benchmarks/README.md). Within pooled_arrays it
    is np.empty: a buffer from the pool, where the previous call's result or scratch left pages
    already faulted in."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes < MAPPED_BYTES or not hasattr(mmap, "MAP_PRIVATE") or _POOLED.get():
        return np.empty(shape, dtype=dtype)
    try:
        m = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    except (OSError, OverflowError) as e:
        if isinstance(e, OSError) and e.errno != errno.ENOMEM:
            return np.empty(shape, dtype=dtype)
        # no room in the address space or the memory: so would malloc have found, and asking it for
        # an absurd size aborts the process under AddressSanitizer instead of raising
        raise MemoryError(f"Unable to allocate {nbytes / 2**30:.3g} GiB for an array with shape "
                          f"{tuple(shape)} and data type {dtype}") from e
    return np.frombuffer(m, dtype=dtype).reshape(shape)


# Whether this thread's (context's) NumPy arrays come from the scratch pool (pooled_arrays).
_POOLED = contextvars.ContextVar("synthdof_pooled_arrays", default=False)


@contextlib.contextmanager
def pooled_arrays(threads=1):
    """Within it, the NumPy arrays this thread makes (np.empty, np.zeros, results of ufuncs and
    copies) come from the core's scratch pool, as the kernels' own buffers do: a large array
    reuses a mapping a freed array or kernel left instead of faulting in fresh pages (a 12 MP
    refine faults in none, for 4-8 % less CPU time), and goes back to the pool when it is freed,
    whenever that is (arrays remember their memory handler). np.zeros is zero: a reused buffer
    is zeroed on `threads` threads unless the pool knows it is zero already. The pool keeps at
    most synthdof.scratch_memory()'s limit of freed buffers; what is over it goes back to the
    system. The small pages of csrc/sd_alloc.c apply (fresh_array says why). Other threads keep
    their own handler (NumPy's is a context variable)."""
    old = _core.array_pool(True, threads)
    token = _POOLED.set(True)
    try:
        yield
    finally:
        _POOLED.reset(token)
        _core.array_pool(old, 1)


def arrays_from_pool(func):
    """Decorator: func's NumPy arrays come from the scratch pool (pooled_arrays), zeroed on its
    `num_threads` threads (an int, else the core's default)."""
    @functools.wraps(func)
    def call(*args, **kwargs):
        nt = kwargs.get("num_threads")
        if isinstance(nt, bool) or not isinstance(nt, numbers.Integral) or nt < 1:
            nt = _core.default_threads()  # func itself checks num_threads
        with pooled_arrays(min(int(nt), MAX_THREADS_PER_CORE * (os.cpu_count() or 1))):
            return func(*args, **kwargs)
    return call


def prepare_out(out, shape, inputs, dtype=np.float32):
    """Validates a caller-supplied `out` or allocates one."""
    if out is None:
        return fresh_array(shape, dtype)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out: expected a numpy array, got {type(out).__name__}")
    if out.shape != tuple(shape):
        raise ValueError(f"out: expected shape {tuple(shape)}, got {out.shape}")
    if out.dtype != np.dtype(dtype) or not out.dtype.isnative:
        raise TypeError(f"out: expected dtype {np.dtype(dtype)}, got {out.dtype}")
    if not out.flags.c_contiguous:
        raise ValueError("out: must be C-contiguous")
    if not out.flags.writeable:
        raise ValueError("out: array is read-only")
    for nm, arr in inputs:
        if isinstance(arr, np.ndarray) and np.may_share_memory(out, arr):
            raise ValueError(f"out: must not overlap {nm}")
    return out


MAX_THREADS_PER_CORE = 4


def runnable_elsewhere():
    """How many threads of other processes are running or waiting for a core right now (Linux:
    /proc/loadavg's count of the machine's runnable threads less this process's own); None where
    unknown. This process's threads do not count: a batch's writer thread encoding the previous
    image is the caller's own choice, and the render is the longer of the two."""
    try:
        with open("/proc/loadavg", "rb") as f:
            runnable = int(f.read().split()[3].split(b"/")[0])
    except (OSError, ValueError, IndexError):
        return None
    return 0 if runnable <= 1 else max(0, runnable - own_runnable())


def own_runnable():
    """This process's threads running or waiting for a core (the calling one among them; Linux's
    /proc/self/task/*/stat state R), at least 1."""
    n = 0
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return 1
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/stat", "rb") as f:
                stat = f.read()
        except OSError:  # the thread has ended
            continue
        n += stat[stat.rfind(b")") + 2:][:1] == b"R"
    return max(n, 1)


def _adapt_threads():
    """Whether thread counts give way to other busy processes: unless OMP_DYNAMIC says false."""
    return os.environ.get("OMP_DYNAMIC", "").strip().lower() not in ("false", "0", "no", "off")


def threads_beside_others(n):
    """n threads, or fewer when other processes keep cores busy: then as many as there are
    cores nobody else is running on, at least 1. Each parallel step of the core waits for all its
    threads, and a thread that shares its core with a busy process runs half the time, so beside
    one busy process on 2 cores, 2 threads were slower than 1 (benchmarks/README.md, "Threads next
    to other busy processes"). A runnable thread seen once may be passing through (a shell, a
    kernel worker): it counts only when it is still there a millisecond later."""
    if n <= 1 or not _adapt_threads():
        return n
    ncpu = os.cpu_count() or 1
    busy = runnable_elsewhere()
    if not busy or ncpu - busy >= n:
        return n
    time.sleep(0.001)
    again = runnable_elsewhere()
    busy = min(busy, again if again is not None else busy)
    return n if busy == 0 else max(1, min(n, ncpu - busy))


def resolve_threads(num_threads):
    """None: all cores (OMP_NUM_THREADS respected); n >= 1: n (at most 4 per core); -1: all
    cores, -2: all but one... Then fewer where other processes keep cores busy
    (threads_beside_others; results do not depend on the thread count)."""
    return threads_beside_others(_requested_threads(num_threads))


def _requested_threads(num_threads):
    if num_threads is None:
        return max(1, _core.default_threads())  # OpenMP's count: OMP_NUM_THREADS or all cores
    if isinstance(num_threads, bool) or not isinstance(num_threads, numbers.Integral):
        raise TypeError(f"num_threads: expected an int or None, got {type(num_threads).__name__}")
    n = int(num_threads)
    ncpu = os.cpu_count() or 1
    if n >= 1:
        # more threads than cores gains nothing, and the process crashes when OpenMP cannot
        # create them (10**5 does); results do not depend on the thread count
        return min(n, MAX_THREADS_PER_CORE * ncpu)
    if n == 0 or n < -ncpu:
        raise ValueError(f"num_threads: must be >= 1, or -1 to -{ncpu} for 'all cores but n-1'; got {n}")
    return ncpu + 1 + n


def positive(x, name, *, allow_zero=False):
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise TypeError(f"{name}: expected a number, got {type(x).__name__}")
    v = float(x)
    if not np.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{name}: must be a finite number {'>=' if allow_zero else '>'} 0, got {x!r}")
    return v


def finite(x, name):
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise TypeError(f"{name}: expected a number, got {type(x).__name__}")
    v = float(x)
    if not np.isfinite(v):
        raise ValueError(f"{name}: must be finite, got {x!r}")
    return v
