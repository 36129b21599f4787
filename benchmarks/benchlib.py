"""Shared helpers for the benchmark scripts: timing, memory, worker processes, tables, JSON."""
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time

# A worker timing another build (bench_refine.py --against): its synthdof comes from this directory
# (a `pip install --target` of another commit). PYTHONPATH alone is not enough: an editable
# install's import hook comes before sys.path and would load this checkout's build again.
PACKAGE_DIR_ENV = "SYNTHDOF_PACKAGE_DIR"
if os.environ.get(PACKAGE_DIR_ENV):
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in type(f).__module__.lower()]
    sys.path.insert(0, os.environ[PACKAGE_DIR_ENV])

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")


def gt_names():
    """Names of the ground-truth scenes shipped with the package (synthdof.load_ground_truth)."""
    from synthdof._sample import GROUND_TRUTH_SCENES
    return GROUND_TRUTH_SCENES


def gt_scenes():
    """The ground-truth scenes with their scorer (benchmarks/score_gt.py): yields (score module,
    name, arrays, meta, synthdof.ThinLens, synthdof.Aperture) per scene."""
    import score_gt as score
    import synthdof
    for name in gt_names():
        g, m = score.load(name)
        lens = synthdof.ThinLens(focal_length_mm=m["focal_length_mm"], f_number=m["f_number"],
                                 focus_distance=m["focus_distance_m"], sensor_width_mm=m["sensor_width_mm"])
        ap = synthdof.Aperture(blades=m["aperture_blades"], rotation=m["aperture_rotation_rad"])
        yield score, name, g, m, lens, ap


# Other programs on the machine distort timings. Before each timed call we wait (up to
# QUIET_WAIT_S) until the rest of the machine uses less than QUIET_CORES cores, and we record
# how much CPU other processes used during each call ("foreign" core-seconds).
QUIET_CORES = 0.25
QUIET_WAIT_S = float(os.environ.get("BENCH_QUIET_WAIT", "30"))


def _busy_jiffies():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v) - v[3] - v[4]  # all but idle and iowait


def _own_cpu():
    a = resource.getrusage(resource.RUSAGE_SELF)
    b = resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


class Foreign:
    """CPU seconds used by other processes between start() and stop()."""

    tick = os.sysconf("SC_CLK_TCK")

    def start(self):
        self.j, self.c = _busy_jiffies(), _own_cpu()
        return self

    def stop(self):
        return max(0.0, (_busy_jiffies() - self.j) / self.tick - (_own_cpu() - self.c))


def wait_quiet(max_wait=None, window=0.5):
    """Wait until other processes use < QUIET_CORES cores over `window` s; returns seconds waited."""
    max_wait = QUIET_WAIT_S if max_wait is None else max_wait
    t0 = time.perf_counter()
    while True:
        f = Foreign().start()
        time.sleep(window)
        if f.stop() / window < QUIET_CORES or time.perf_counter() - t0 > max_wait:
            return time.perf_counter() - t0


def timeit(fn, repeats, warmup=1, quiet=True):
    """Call fn() `warmup` times untimed, then `repeats` times; wall-clock seconds, plus the CPU
    seconds other processes used during each timed call.

    The calls run back to back, as a script rendering a dataset makes them; only when other
    processes kept more than QUIET_CORES busy during the previous call (or nothing was measured
    yet) does it wait for the machine to be quiet first. An idle pause before every call would
    measure something else on virtual machines that hand freed memory back to the host: the
    next call's fresh NumPy arrays (the returned image) then fault their pages in from the host
    again, which cost a 12 MP render 0.2-0.7 s."""
    loaded = True  # unknown until a call was measured

    def call():
        f = Foreign().start()
        t = time.perf_counter()
        fn()
        dt = time.perf_counter() - t
        return dt, f.stop()

    for _ in range(warmup):
        dt, fs = call()
        loaded = fs / dt >= QUIET_CORES
    times, foreign, waited = [], [], 0.0
    for _ in range(repeats):
        if quiet and loaded:
            waited += wait_quiet()
        dt, fs = call()
        times.append(dt)
        foreign.append(fs)
        loaded = fs / dt >= QUIET_CORES
    return summary(times, foreign, waited)


def summary(times, foreign=None, waited=0.0):
    r = dict(median=statistics.median(times), min=min(times), max=max(times),
             repeats=len(times), times=[round(t, 5) for t in times])
    if foreign is not None:
        # fraction of the machine's cores other processes kept busy during the timed calls
        r["foreign_load"] = sum(foreign) / (sum(times) * (os.cpu_count() or 1))
        r["waited_s"] = round(waited, 1)
    return r


def rss_bytes():
    """Current resident set size of this process."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes():
    """Peak resident set size of this process so far (getrusage; kilobytes on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def machine():
    import numpy as np
    info = dict(python=platform.python_version(), numpy=np.__version__, cores=os.cpu_count(),
                platform=platform.platform())
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        info["loadavg_at_start"] = os.getloadavg()
    except OSError:
        pass
    try:
        import synthdof
        core = synthdof._core.__file__
        info.update(synthdof=synthdof.__version__, openmp=synthdof.openmp_enabled(), core=core,
                    core_built=time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(os.path.getmtime(core))))
    except ImportError:
        info["synthdof"] = None
    info["git"] = _git()
    return info


def _git():
    """Commit of the source tree beside this folder, and whether csrc/ or python/ differ from it
    (the installed package is built from the tree; rebuild after changing it)."""
    repo = os.path.dirname(HERE)
    try:
        head = subprocess.run(["git", "-C", repo, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=20).stdout.strip()
        dirty = subprocess.run(["git", "-C", repo, "status", "--porcelain", "--", "csrc", "python"],
                               capture_output=True, text=True, timeout=20).stdout.strip()
        return dict(head=head or None, source_modified=bool(dirty))
    except (OSError, subprocess.SubprocessError):
        return None


def write_json(path, data):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f, indent=1, default=_jsonable)
    print(f"wrote {path}")


def _jsonable(x):
    if hasattr(x, "item"):
        return x.item()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def run_worker(script, payload, timeout=900, env=None):
    """Run `python script --worker JSON` in a fresh process and return the JSON object it prints
    on its last stdout line (clean memory numbers: nothing else lives in that process); `env`
    adds to the environment (e.g. PYTHONPATH to time another build)."""
    cmd = [sys.executable, os.path.join(HERE, script), "--worker", json.dumps(payload)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                       env=None if env is None else {**os.environ, **env})
    if r.returncode != 0:
        raise RuntimeError(f"worker {script} {payload} failed (exit {r.returncode}):\n{r.stderr[-4000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def which(name):
    return shutil.which(name)


def table(rows, columns):
    """Plain-text table. columns: list of (key, header, format)."""
    head = [h for _, h, _ in columns]
    body = [[("-" if r.get(k) is None else fmt.format(r[k])) for k, _, fmt in columns] for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(head, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.rjust(w) for c, w in zip(b, widths)) for b in body]
    return "\n".join(lines)


def mb(nbytes):
    return nbytes / 2 ** 20


def recorded_render_time(size, threads, path=None):
    """Median synthdof.render time on the synthetic scene of `size` with `threads` threads from a
    bench_render.py result (default results/render.json), if that file was measured with the
    C core that is installed now; else None (the caller then measures it)."""
    path = path or os.path.join(RESULTS, "render.json")
    try:
        with open(path) as f:
            rd = json.load(f)
        import synthdof
        built = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(os.path.getmtime(synthdof._core.__file__)))
    except (OSError, ValueError, ImportError):
        return None
    if list(rd.get("size", [])) != list(size) or rd.get("machine", {}).get("core_built") != built:
        return None
    for r in rd["rows"]:
        if r["label"] == "render" and r["threads"] == threads:
            return r["median_s"]
    return None
