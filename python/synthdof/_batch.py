"""Dataset generation: a manifest of inputs x seeded lens samples, resumable, run in this process
or on a Dask cluster (`synthdof batch`, see docs/cli.md for the config format).

Each output is one task, identified by "<input name>_<sample index>". Its lens parameters are
drawn from a generator seeded with (seed, input name, sample index, parameter), so a task's
parameters depend neither on the order in which tasks run, nor on the other inputs, nor on
the other parameters' specs. A task is finished when its image exists and metadata.jsonl holds
its record; a rerun skips finished tasks and redoes the rest.

The modules: _batch_config (config validation and the plan), _batch_scene (loading and
rendering one scene, shared with `synthdof render`), _batch_folder (the folder's lock, record log
and stale temporary files) and this runner."""
import collections
import contextlib
import dataclasses
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
import warnings

import numpy as np

from ._batch_config import FORMATS, BatchError, _name_key, load_config, plan  # noqa: F401 (re-exported)
from ._batch_folder import (METADATA, FolderLock, FolderLocked, RecordLog, read_records,  # noqa: F401
                            remove_stale_temps)
from ._batch_scene import (FLOAT_EXT, Scene, coc_stats, load_scene, render_scene,  # noqa: F401
                           scene_coc)

# the failures of one task that are reported as such while the other tasks run on: bad input
# files or values, a full disk, too little memory for the image
_TASK_ERRORS = (OSError, ValueError, TypeError, ImportError, MemoryError)
# bytes one record takes in metadata.jsonl, at most (for the free-space check)
_RECORD_BYTES = 4096


def load_task_scene(inp, num_threads=None):
    """The `Scene` of one normalised config input (the packaged sample for ``"sample": true``).

    Parameters
    ----------
    inp : dict
        One entry of ``load_config(...)["inputs"]``.

    Returns
    -------
    Scene
        The loaded scene, with the time it took.

    Examples
    --------
    >>> s = load_task_scene({"name": "sample", "sample": True})
    >>> s.image.shape[2], s.disparity
    (3, False)
    """
    t0 = time.perf_counter()
    if inp.get("sample"):
        from ._sample import load_sample
        s = load_sample()
        return Scene(s["image"], s["depth"], s["matte"], load_seconds=time.perf_counter() - t0)
    img, d, m = load_scene(inp["image"], inp["depth"], inp["matte"], depth_scale=inp["depth_scale"],
                           disparity=inp["disparity"], refine=inp.get("refine", False), num_threads=num_threads)
    return Scene(img, d, m, inp["disparity"], inp["disparity_scale"], depth_path=inp["depth"],
                 load_seconds=time.perf_counter() - t0)


# The input a process loaded last, for the next task of the same input on a Dask worker (the
# tasks of one input arrive one after another): (key, Scene). One entry: a worker holds at most
# one input's arrays beyond the task at hand.
_last_scene = [None, None]
_last_scene_lock = threading.Lock()


def _input_key(inp):
    """The input's config entry and its files' sizes and modification times: a file rewritten
    between two tasks is loaded again."""
    stats = []
    for k in ("image", "depth", "matte"):
        path = inp.get(k)
        try:
            st = os.stat(path) if isinstance(path, str) else None
        except OSError:
            st = None
        stats.append(None if st is None else (st.st_size, st.st_mtime_ns))
    return json.dumps([inp, stats], sort_keys=True, default=str)


def _load_cached(inp, num_threads):
    """load_task_scene, reusing the scene this process loaded last when it is the same input
    (its load time then 0): on Dask each task arrives alone, and decoding a 12 MP image, its
    depth and matte (and refining them) costs as much CPU as a render."""
    key = _input_key(inp)
    with _last_scene_lock:
        if _last_scene[0] == key:
            return dataclasses.replace(_last_scene[1], load_seconds=0.0)
    scene = load_task_scene(inp, num_threads)
    with _last_scene_lock:
        _last_scene[:] = [key, scene]
    return scene


def _task_files(task):
    return [task["output"]] + ([task["coc_output"]] if task["coc_output"] else [])


def _output_dtype(task, img_dtype):
    """The dtype write_image gets for the task's image."""
    float_out = os.path.splitext(task["output"])[1] in FLOAT_EXT and task["bits"] is None
    return np.dtype(np.float32) if float_out else np.dtype(img_dtype), float_out


def run_task(task, outdir, num_threads=None, scene=None):
    """Render one task into `outdir` and return its metadata record.

    Runs on a Dask worker too: `outdir` and the input files must be reachable there under the
    same paths. The free space for the outputs is checked before the render; the image and the
    CoC map are written crash-safely (`write_atomic`): both temporary files are complete before
    either is renamed into place.

    Parameters
    ----------
    task : dict
        One task of `plan`.
    outdir : str
        The output folder.
    num_threads : int, optional
        Threads of the render.
    scene : Scene, optional
        The task's input, already loaded (by a caller that renders several samples of it).
        Default: loaded from its files, or the scene this process loaded last when the input
        and its files (size, modification time) are the same.

    Returns
    -------
    dict
        The record appended to metadata.jsonl.

    Raises
    ------
    OSError, ValueError, MemoryError
        The task failed (a bad input, a full disk, too little memory); nothing was written.

    Examples
    --------
    >>> import tempfile
    >>> cfg = load_config({"inputs": [{"sample": True}], "lens": {"focus": 2.0},
    ...                    "output": {"format": "npy"}})
    >>> d = tempfile.mkdtemp()
    >>> rec = run_task(plan(cfg)[0], d, num_threads=1)
    >>> rec["output"], rec["lens"]["focus_distance"], os.listdir(d)
    ('sample_0000.npy', 2.0, ['sample_0000.npy'])
    """
    return _write_task(_render_task(task, outdir, num_threads, scene))


def _render_task(task, outdir, num_threads, scene):
    """The first half of run_task: check, load and render; returns what _write_task needs."""
    from . import Aperture
    from ._io import _check_format, check_free_space, expected_file_size

    _kill_hook(task["id"])
    if scene is None:
        scene = _load_cached(task["input"], num_threads)
    img, d, m = scene.image, scene.depth, scene.matte
    t1 = time.perf_counter()
    dtype, float_out = _output_dtype(task, img.dtype)
    out_path = os.path.join(outdir, task["output"])
    shape = (img.shape[0], img.shape[1], 3)
    _check_format(out_path, shape, dtype, task["bits"], "output")
    need = expected_file_size(out_path, shape, dtype, task["bits"]) + _RECORD_BYTES
    if task["coc_output"]:
        need += expected_file_size(task["coc_output"], shape[:2], np.float32)
    check_free_space(outdir, need, f"output {task['output']}")
    lp = task["lens"]
    coc, lens, info = scene_coc(d, m, lp, disparity=scene.disparity, disparity_scale=scene.disparity_scale,
                                depth_path=scene.depth_path)
    ap = Aperture(blades=int(lp["blades"]), rotation=float(lp["rotation"]))
    out = render_scene(img, d, m, lens, coc, ap, float_out=float_out, num_threads=num_threads)
    return {"task": task, "outdir": outdir, "out": out, "coc": coc, "info": info,
            "load_s": scene.load_seconds, "render_s": time.perf_counter() - t1}


def _write_task(r):
    """The second half of run_task: write the files crash-safely and make the record."""
    from . import __version__
    from ._io import _image_writer, write_files_atomic

    task, out, coc = r["task"], r["out"], r["coc"]
    t2 = time.perf_counter()
    out_path = os.path.join(r["outdir"], task["output"])
    files = [(out_path, _image_writer(out_path, out, task["bits"], "output"), "output")]
    if task["coc_output"]:
        coc_path = os.path.join(r["outdir"], task["coc_output"])
        files.append((coc_path, _image_writer(coc_path, coc, None, "coc_output"), "coc_output"))
    write_files_atomic(files)
    t3 = time.perf_counter()
    lp = task["lens"]
    lens_rec = {"focal_length_mm": float(lp["focal_length_mm"]), "f_number": float(lp["f_number"]),
                "sensor_width_mm": float(lp["sensor_width_mm"]), "model": lp["model"],
                "focus": "auto" if isinstance(lp["focus"], str) else "fixed"}
    lens_rec.update(r["info"])
    return {
        "id": task["id"], "input": task["input"]["name"], "sample": task["sample"], "seed": task["seed"],
        "rng_key": [task["seed"], _name_key(task["input"]["name"]), task["sample"]],
        "output": task["output"], "coc_output": task["coc_output"],
        "width": int(out.shape[1]), "height": int(out.shape[0]),
        "lens": lens_rec, "aperture": {"blades": int(lp["blades"]), "rotation": float(lp["rotation"])},
        "coc": coc_stats(coc),
        "timings": {"load_s": round(r["load_s"], 4), "render_s": round(r["render_s"], 4),
                    "write_s": round(t3 - t2, 4)},
        "host": socket.gethostname(), "pid": os.getpid(), "synthdof": __version__,
        "task_hash": task["task_hash"],
    }


def _kill_hook(task_id):
    # Test hook (private): SYNTHDOF_TEST_KILL_TASK=<task id> makes the process running that task
    # SIGKILL itself, as a task that takes its worker down (out of memory, a crash) does.
    # tests/test_crash_safety.py uses it to check the Dask retries.
    if os.environ.get("SYNTHDOF_TEST_KILL_TASK") == task_id:
        os.kill(os.getpid(), signal.SIGKILL)


def _resume_state(outdir, tasks):
    """The ids of the finished tasks. Refuses a folder holding outputs of other parameters."""
    recs = read_records(outdir)
    by_id = {t["id"]: t for t in tasks}
    done = set()
    for rid, r in recs.items():
        t = by_id.get(rid)
        if t is None:
            continue
        if r.get("task_hash") != t["task_hash"]:
            raise BatchError(f"output: {outdir} already holds {rid} rendered with other parameters "
                             f"(a different config or synthdof version); use a new output directory")
        if all(os.path.exists(os.path.join(outdir, f)) for f in _task_files(t)):
            done.add(rid)
    return done


class _Progress:
    def __init__(self, total, initial, enabled):
        self.bar = None
        self.total, self.n, self.enabled = total, initial, enabled
        if not enabled:
            return
        try:
            from tqdm import tqdm
        except ImportError:
            print(f"synthdof batch: {initial}/{total} done before this run", file=sys.stderr)
            return
        self.bar = tqdm(total=total, initial=initial, unit="img", desc="synthdof batch", file=sys.stderr)

    def update(self, tid):
        self.n += 1
        if self.bar is not None:
            self.bar.update(1)
        elif self.enabled:
            print(f"synthdof batch: {self.n}/{self.total} {tid}", file=sys.stderr, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def run_batch(config, outdir, *, workers=1, scheduler=None, num_threads=None, progress=True, log=None,
              wait_lock=0.0, retries=2, worker_timeout=60.0):
    """Render every unfinished task of a batch config into a folder.

    One image per (input, sample) and one JSON record per image in ``outdir/metadata.jsonl``;
    finished outputs are skipped, so an interrupted run resumes. The folder is locked while the
    batch runs (a second run refuses, or waits `wait_lock` seconds); temporary files that earlier
    runs left are removed first. Every file is written crash-safely; a task that fails (a bad
    input, a full disk, too little memory, a worker that died `retries` + 1 times) is reported
    while the others run.

    Parameters
    ----------
    config : str, os.PathLike or dict
        A config file or dict, see `load_config` and docs/cli.md.
    outdir : str or os.PathLike
        The output folder (created if needed).
    workers : int, optional
        > 1: a Dask LocalCluster of that many single-threaded worker processes.
    scheduler : str, optional
        "tcp://host:port" of a running Dask scheduler (its workers must see the input files and
        `outdir` under the same paths). Otherwise tasks run in this process.
    num_threads : int, optional
        Threads per render (default: all cores; cores / workers on a LocalCluster).
    progress : bool, optional
        Show a progress bar (tqdm) or progress lines on stderr.
    log : callable, optional
        Receives the one-line messages (default: print to stderr).
    wait_lock : float, optional
        Seconds to wait for another batch that holds the folder (0: refuse at once).
    retries : int, optional
        How many times a task whose Dask worker died (killed, out of memory) is run again, on
        another worker, before it is reported as failed. Each worker thread runs one task at a
        time, so only the task that took its worker down is blamed. (A running scheduler given
        as `scheduler` may also rerun it first, per its ``distributed.scheduler.allowed-failures``.)
    worker_timeout : float, optional
        Seconds without any live Dask worker (or to connect to the scheduler) before the
        remaining tasks are reported as failed.

    Returns
    -------
    dict
        total, skipped, rendered, failed (a list of (id, message)), outdir.

    Raises
    ------
    BatchError
        A bad config, a folder holding outputs of other parameters, or a folder locked by
        another live batch (`FolderLocked`).
    FileNotFoundError, OSError, ImportError
        The config or an input is missing, the folder takes no files, a format's library or
        Dask is not installed.
    KeyboardInterrupt
        Ctrl-C: the workers are shut down, the lock released, no partial file is left.

    Examples
    --------
    >>> import tempfile
    >>> cfg = {"inputs": [{"sample": True}], "lens": {"focus": 2.0}}
    >>> s = run_batch(cfg, tempfile.mkdtemp(), progress=False, log=lambda msg: None)
    >>> s["rendered"], s["failed"]
    (1, [])
    """
    from ._io import check_output

    cfg = load_config(config)
    outdir = os.path.abspath(os.fspath(outdir))
    if os.path.exists(outdir) and not os.path.isdir(outdir):
        raise BatchError(f"output: {outdir} is a file, not a folder")
    os.makedirs(outdir, exist_ok=True)
    tasks = plan(cfg)
    # the format's library, and a folder that takes files, before anything is rendered
    ext, bits = FORMATS[cfg["output"]["format"]]
    check_output(os.path.join(outdir, tasks[0]["output"]), (1, 1, 3),
                 np.float32 if ext in FLOAT_EXT and bits is None else np.uint8, bits=bits, name="output",
                 space=False)
    log = log or (lambda msg: print(msg, file=sys.stderr))
    summary = {"total": len(tasks), "skipped": 0, "rendered": 0, "failed": [], "outdir": outdir}
    with FolderLock(outdir, wait=wait_lock) as lock:
        if lock.previous:
            log(f"synthdof batch: taking over the lock of pid {lock.previous.get('pid', '?')} on "
                f"{lock.previous.get('host', '?')}, which is no longer running")
        names = {METADATA} | {f for t in tasks for f in _task_files(t)}
        removed = remove_stale_temps(outdir, names)
        if removed:
            log(f"synthdof batch: removed {len(removed)} temporary file(s) of an interrupted run")
        with RecordLog(outdir) as rlog:
            done = _resume_state(outdir, tasks)
            todo = [t for t in tasks if t["id"] not in done]
            summary["skipped"] = len(done)
            if not todo:
                log(f"synthdof batch: all {len(tasks)} outputs already in {outdir}")
                return summary
            if done:
                log(f"synthdof batch: resuming, {len(done)} of {len(tasks)} outputs already done")
            bar = _Progress(len(tasks), len(done), progress)
            try:
                if scheduler is None and workers <= 1:
                    _run_local(todo, outdir, num_threads, rlog, bar, summary)
                else:
                    _run_dask(todo, outdir, num_threads, rlog, bar, summary, workers, scheduler, retries,
                              worker_timeout)
            finally:
                bar.close()
    return summary


def _finish(t, rec, rlog, bar, summary):
    """Append a finished task's record (a full disk fails the task, not the batch)."""
    try:
        rlog.append(rec)
    except OSError as e:
        summary["failed"].append((t["id"], str(e)))
        return
    summary["rendered"] += 1
    bar.update(t["id"])


def _run_local(todo, outdir, num_threads, rlog, bar, summary):
    from concurrent.futures import ThreadPoolExecutor

    def write(r):
        rec = _write_task(r)
        rlog.append(rec)
        return rec

    def collect(t, fut):
        try:
            fut.result()
        except _TASK_ERRORS as e:
            summary["failed"].append((t["id"], str(e) or type(e).__name__))
            return
        summary["rendered"] += 1
        bar.update(t["id"])

    # A task's files are written, flushed to the disk and recorded on a thread while the next
    # task renders: the fsyncs wait on the disk, not on the cores. On Ctrl-C the file being
    # written is finished (leaving the executor waits for it), the render in progress dropped.
    cache_key, scene, writing = None, None, None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="synthdof-writer") as writer:
        for t in todo:
            try:
                key = json.dumps(t["input"], sort_keys=True)
                if key != cache_key:  # the samples of one input are consecutive: load it once
                    scene, cache_key = load_task_scene(t["input"], num_threads), key
                rendered = _render_task(t, outdir, num_threads, scene)
            except _TASK_ERRORS as e:
                summary["failed"].append((t["id"], str(e) or type(e).__name__))
                cache_key = None
                continue
            finally:
                if writing is not None:
                    collect(*writing)
                    writing = None
            scene.load_seconds = 0.0  # the next sample of this input reuses it
            writing = (t, writer.submit(write, rendered))
        if writing is not None:
            collect(*writing)


@contextlib.contextmanager
def _sigint_ignored():
    """SIGINT ignored while worker processes start: they inherit it, so a Ctrl-C in the terminal
    (sent to the whole process group) reaches this process only, which shuts them down."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def _sigint_blocked_on_loop(loop):
    """SIGINT blocked in the thread of the cluster's event loop (its own, which ends with it). A
    nanny starts the worker it replaces after a crash from there, after _sigint_ignored's window:
    the new process inherits the block, so a Ctrl-C does not interrupt it while it imports Dask
    (it printed a KeyboardInterrupt traceback) and reaches this process only, as for the others."""
    mask = getattr(signal, "pthread_sigmask", None)  # (not on Windows)
    if mask is None:
        return
    done = threading.Event()

    def block():
        try:
            mask(signal.SIG_BLOCK, {signal.SIGINT})
        finally:
            done.set()

    loop.add_callback(block)
    done.wait(10.0)


@contextlib.contextmanager
def _environ(**values):
    """Environment variables set for the processes started meanwhile."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _run_dask(todo, outdir, num_threads, rlog, bar, summary, workers, scheduler, retries, worker_timeout):
    try:
        import dask
        from dask.distributed import Client, LocalCluster, wait
        from distributed import KilledWorker
    except ImportError:
        raise ImportError("synthdof batch: --workers/--scheduler run on Dask: pip install \"synthdof[dask]\"") from None
    quiet = logging.CRITICAL  # a Ctrl-C or a lost worker is reported by the batch, not by Dask's logs
    loggers = [logging.getLogger(n) for n in ("distributed", "tornado", "asyncio")]
    levels = [lg.level for lg in loggers]
    cluster = client = None
    try:
        for lg in loggers:
            lg.setLevel(quiet)
        # The scheduler does not run a task again after its worker died (allowed-failures 0 on a
        # LocalCluster); this loop does, up to `retries` times, blaming only the task that took
        # the worker down: each worker thread holds one running and one waiting task (no idle gap
        # between tasks), and the tasks of a worker that died holding several are suspects, run
        # again alone on an idle worker, where a death is theirs and counts.
        with dask.config.set({"distributed.scheduler.allowed-failures": 0, "logging.distributed": "critical"}):
            if scheduler is not None:
                client = Client(scheduler, timeout=f"{worker_timeout}s")
            else:
                if num_threads is None:
                    num_threads = max(1, (os.cpu_count() or 1) // workers)
                with _sigint_ignored(), _environ(DASK_LOGGING__DISTRIBUTED="critical", PYTHONWARNINGS="ignore"), \
                        warnings.catch_warnings():
                    # the worker processes inherit these, also those a nanny starts after a death:
                    # Dask's own messages (a busy dashboard port, a closed connection) are not ours
                    warnings.simplefilter("ignore")
                    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                           dashboard_address=None, silence_logs=quiet)
                    _sigint_blocked_on_loop(cluster.loop)
                client = Client(cluster, timeout=f"{worker_timeout}s")
        queue = collections.deque(todo)
        inflight = {}  # future -> (task, worker address, alone)
        attempts, suspects = {}, set()
        last_worker_seen = time.monotonic()
        workers_at, known = 0.0, {}
        finished = []
        while queue or inflight or finished:
            if time.monotonic() - workers_at > 1.0 or not known:  # the worker list, once a second
                known, workers_at = _worker_slots(client), time.monotonic()
            if known:
                last_worker_seen = time.monotonic()
            elif time.monotonic() - last_worker_seen > worker_timeout and not finished:
                for t in list(queue) + [v[0] for v in inflight.values()]:
                    summary["failed"].append((t["id"], f"no Dask worker alive for {worker_timeout:g} s"))
                return
            held = collections.Counter(w for _, w, _ in inflight.values())
            alone_on = {w for _, w, alone in inflight.values() if alone}
            for w, threads in known.items():
                while queue and w not in alone_on:
                    t = queue[0]
                    alone = t["id"] in suspects
                    if (alone and held[w]) or held[w] >= 2 * threads:
                        break
                    queue.popleft()
                    fut = client.submit(run_task, t, outdir, num_threads, workers=[w], allow_other_workers=True,
                                        key=f"synthdof-{t['id']}-{t['task_hash']}-{attempts.get(t['id'], 0)}"
                                            f"{'-alone' if alone else ''}", pure=False)
                    inflight[fut] = (t, w, alone)
                    held[w] += 1
                    if alone:
                        alone_on.add(w)
            # the records of the last round, appended once the freed workers have their next tasks
            for t, rec in finished:
                _finish(t, rec, rlog, bar, summary)
            finished = []
            if not inflight:
                if queue:
                    time.sleep(0.5)  # no worker yet: wait for one (up to worker_timeout)
                continue
            try:
                done, _ = wait(list(inflight), timeout=1.0, return_when="FIRST_COMPLETED")
            except TimeoutError:
                continue
            for fut in done:  # results are fetched at once: the worker holding one may die next
                t, _, alone = inflight.pop(fut)
                try:
                    finished.append((t, fut.result(timeout=worker_timeout)))
                except KilledWorker:
                    workers_at = 0.0  # that worker is gone
                    if not alone:
                        suspects.add(t["id"])
                        queue.appendleft(t)
                        continue
                    n = attempts[t["id"]] = attempts.get(t["id"], 0) + 1
                    if n <= retries:
                        queue.appendleft(t)
                    else:
                        summary["failed"].append((t["id"], f"its worker process died each time it ran it ({n} "
                                                           f"attempt{'s' if n > 1 else ''}: killed, or out of memory)"))
                except _TASK_ERRORS as e:
                    summary["failed"].append((t["id"], str(e) or type(e).__name__))
                except Exception as e:  # noqa: BLE001 - any other task failure is the task's
                    summary["failed"].append((t["id"], f"{type(e).__name__}: {e}"))
    finally:
        with _sigint_ignored():  # a second Ctrl-C must not leave the workers behind
            if client is not None:
                with contextlib.suppress(Exception):
                    client.close(timeout=10)
            if cluster is not None:
                with contextlib.suppress(Exception):
                    cluster.close(timeout=10)
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)


def _worker_slots(client):
    """{worker address: threads} of the scheduler's workers ({} when it cannot be asked)."""
    try:
        return dict(client.nthreads())
    except Exception:  # noqa: BLE001 - a lost scheduler has no workers for us
        return {}
