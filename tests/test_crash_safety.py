"""Nothing lost, nothing half-written: outputs on a full disk, processes killed at the worst
moment, two batch runs on one folder, Ctrl-C, worker deaths on Dask, out-of-memory and bad
values, each driven as a user meets them (subprocesses, a small file system, signals).

Fault injection: a small tmpfs mounted for the test where this user may mount one, else a
file-size limit (RLIMIT_FSIZE) on the writing process, which fails writes the same way; a
private hook (environment variables SYNTHDOF_TEST_KILL_AFTER_TEMP / SYNTHDOF_TEST_KILL_TASK, read
by synthdof._io and synthdof._batch) makes a process SIGKILL itself at a chosen moment."""
import fnmatch
import json
import os
import resource
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import synthdof
from synthdof._batch_folder import LOCK_NAME, FolderLock, RecordLog, read_records, remove_stale_temps

pytest.importorskip("PIL.Image")

IMAGE_EXT = ("*.png", "*.tif", "*.tiff", "*.exr", "*.npy", "*.jpg")
H, W = 64, 96


def run(*args, env=None, preexec_fn=None, timeout=120):
    e = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "synthdof", *map(str, args)], capture_output=True, text=True,
                          env=e, preexec_fn=preexec_fn, timeout=timeout)


def error_line(r):
    """The one error line of a failed run (and that it is the only line, without a traceback)."""
    lines = r.stderr.splitlines()
    assert "Traceback" not in r.stderr, r.stderr
    assert len(lines) == 1 and lines[0].startswith("synthdof: error:"), r.stderr
    return lines[0]


def temp_files(folder):
    return [n for n in os.listdir(folder) if ".synthdof-" in n and n.endswith(".tmp") or ".part" in n]


class SmallDisk:
    """A folder where writes beyond `size` bytes fail: a tmpfs of that size when it can be
    mounted here, else an RLIMIT_FSIZE of that size on the processes started with `preexec`."""

    def __init__(self, root, size):
        self.dir = str(root / "disk")
        os.makedirs(self.dir)
        self.size = self.full_size = size
        self.mounted = False
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", self.dir],
                               capture_output=True)
            self.mounted = r.returncode == 0
        self.mode = "tmpfs" if self.mounted else "rlimit"

    def preexec(self):
        if not self.mounted:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
            resource.setrlimit(resource.RLIMIT_FSIZE, (self.size, self.size))

    def fill(self, leave):
        """Leave about `leave` bytes free (tmpfs), or lower the file-size limit to it."""
        if self.mounted:
            st = os.statvfs(self.dir)
            free = st.f_bavail * st.f_frsize
            with open(os.path.join(self.dir, ".filler"), "wb") as f:
                f.write(b"\0" * max(0, free - leave))
        else:
            self.size = leave

    def free(self):
        """Undo `fill`."""
        if self.mounted:
            os.remove(os.path.join(self.dir, ".filler"))
        else:
            self.size = self.full_size

    def close(self):
        if self.mounted:
            subprocess.run(["umount", self.dir], check=True)


@pytest.fixture
def small_disk(tmp_path):
    disk = SmallDisk(tmp_path, 4 << 20)
    yield disk
    disk.close()


def noise(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    if dtype == np.float32:
        return rng.random(shape, dtype=np.float32)
    return rng.integers(0, np.iinfo(dtype).max + 1, shape).astype(dtype)


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    d = tmp_path_factory.mktemp("scene")
    s = synthdof.load_sample()
    img = np.ascontiguousarray(s["image"][100:100 + H, 140:140 + W])
    depth = np.ascontiguousarray(s["depth"][100:100 + H, 140:140 + W])
    synthdof.write_image(d / "img.png", img)
    np.save(d / "depth.npy", depth)
    return d


def batch_config(path, samples=2, inputs=("a",), fmt="png", save_coc=False, scene=None):
    """A config rendering `samples` lens samples per name of the 64x96 crop in `scene` (quick),
    or of the packaged 384x256 sample scene."""
    files = {"sample": True} if scene is None else {"image": str(scene / "img.png"), "depth": str(scene / "depth.npy")}
    cfg = {"inputs": [dict(name=n, **files) for n in inputs], "samples_per_input": samples, "seed": 3,
           "lens": {"focus": 2.0, "f_number": [1.4, 4.0]}, "output": {"format": fmt, "save_coc": save_coc}}
    path.write_text(json.dumps(cfg))
    return path


# -- every file goes through a temporary file, and a failure leaves the old one --------------

@pytest.mark.parametrize("ext, dtype, shape", [
    (".png", np.uint8, (400, 400, 3)), (".png", np.uint16, (300, 300, 3)), (".tif", np.float32, (300, 300, 3)),
    (".npy", np.float32, (300, 300, 3)), (".exr", np.float32, (300, 300, 3)), (".jpg", np.uint8, (800, 800, 3)),
])
def test_full_disk_leaves_the_old_file(small_disk, ext, dtype, shape):
    if ext == ".exr":
        pytest.importorskip("OpenEXR")
    if ext == ".png" and dtype == np.uint16:
        pytest.importorskip("imagecodecs")  # 16-bit colour PNG (the io extra; not in the sanitized run)
    path = os.path.join(small_disk.dir, "out" + ext)
    old = noise((4, 4, 3), dtype, seed=1)
    synthdof.write_image(path, old)
    before = open(path, "rb").read()
    small_disk.fill(leave=256 * 1024)  # each new file takes 270 kB to 1 MB
    code = textwrap.dedent(f"""
        import numpy as np, synthdof
        a = np.random.default_rng(0).random({shape}, dtype=np.float32)
        if {dtype.__name__!r} != "float32":
            a = (a * np.iinfo(np.{dtype.__name__}).max).astype(np.{dtype.__name__})
        try:
            synthdof.write_image({path!r}, a)
        except OSError as e:
            print("OSError", e.errno, e)
        else:
            print("written")
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, preexec_fn=small_disk.preexec)
    assert r.stdout.startswith("OSError"), (small_disk.mode, r.stdout, r.stderr)
    assert "out" + ext in r.stdout and "unchanged" in r.stdout
    assert open(path, "rb").read() == before  # the old file, not a truncated new one
    assert temp_files(small_disk.dir) == []


def test_killed_between_temp_and_rename_leaves_the_old_file(scene, tmp_path):
    out = tmp_path / "out.png"
    synthdof.write_image(out, noise((4, 4, 3), np.uint8))
    before = out.read_bytes()
    r = run("render", scene / "img.png", "--depth", scene / "depth.npy", "--focus", 2, "-o", out,
            env={"SYNTHDOF_TEST_KILL_AFTER_TEMP": "out.png"})
    assert r.returncode == -signal.SIGKILL
    assert out.read_bytes() == before
    left = temp_files(tmp_path)
    assert len(left) == 1 and left[0].startswith(".out.png.") and left[0].endswith(".tmp")
    # a script listing images does not pick the temporary file up
    assert not any(fnmatch.fnmatch(left[0], pat) for pat in IMAGE_EXT)


def test_batch_kill_then_rerun_removes_its_temp_files_and_takes_over_the_lock(scene, tmp_path):
    cfg = batch_config(tmp_path / "b.json", samples=4, scene=scene)
    out = tmp_path / "out"
    r = run("batch", cfg, "-o", out, "-q", env={"SYNTHDOF_TEST_KILL_AFTER_TEMP": "a_0002.png"})
    assert r.returncode == -signal.SIGKILL
    left = temp_files(out)
    assert len(left) == 1 and left[0].startswith(".a_0002.png.synthdof-")
    assert not any(fnmatch.fnmatch(n, "*.png") for n in left)
    assert (out / LOCK_NAME).exists()  # the killed run's lock, held by a dead process
    (out / ".a_0003.4242.part.png").write_bytes(b"")  # and one left by synthdof 0.1.0
    r = run("batch", cfg, "-o", out, "-q")
    assert r.returncode == 0, r.stderr
    assert "taking over the lock" in r.stderr and "removed 2 temporary" in r.stderr
    assert "2 rendered, 2 already done" in r.stdout
    assert temp_files(out) == [] and not (out / LOCK_NAME).exists()
    assert sorted(read_records(out)) == ["a_0000", "a_0001", "a_0002", "a_0003"]
    assert sorted(os.listdir(out)) == ["a_0000.png", "a_0001.png", "a_0002.png", "a_0003.png", "metadata.jsonl"]


def test_batch_on_a_full_disk_fails_tasks_cleanly_then_resumes(scene, small_disk, tmp_path):
    cfg = batch_config(tmp_path / "b.json", samples=3, fmt="npy", scene=scene)
    out = os.path.join(small_disk.dir, "out")
    small_disk.fill(leave=16 * 1024)  # each output is 64x96x3 float32, 72 kB
    r = run("batch", cfg, "-o", out, "-q", preexec_fn=small_disk.preexec)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    assert "0 rendered, 0 already done, 3 failed" in r.stdout
    errs = r.stderr.splitlines()
    assert len(errs) == 3 and all(e.startswith("synthdof: error: a_000") for e in errs), r.stderr
    assert all(("bytes free" in e) if small_disk.mounted else ("File too large" in e) for e in errs), r.stderr
    assert temp_files(out) == [] and not os.path.exists(os.path.join(out, LOCK_NAME))
    assert sorted(os.listdir(out)) == ["metadata.jsonl"]
    assert os.path.getsize(os.path.join(out, "metadata.jsonl")) == 0
    small_disk.free()
    r = run("batch", cfg, "-o", out, "-q", preexec_fn=small_disk.preexec)
    assert r.returncode == 0 and "3 rendered, 0 already done, 0 failed" in r.stdout, r.stderr


def test_record_that_does_not_fit_is_cut_back(small_disk):
    with RecordLog(small_disk.dir) as log:
        log.append({"id": "a", "x": 1})
    meta = os.path.join(small_disk.dir, "metadata.jsonl")
    before = open(meta, "rb").read()
    small_disk.fill(leave=8192)
    code = textwrap.dedent(f"""
        from synthdof._batch_folder import RecordLog
        with RecordLog({small_disk.dir!r}) as log:
            try:
                log.append({{"id": "b", "pad": "x" * 200_000}})  # fills the disk half-way through
            except OSError as e:
                print("OSError", e)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, preexec_fn=small_disk.preexec)
    assert r.stdout.startswith("OSError") and "cannot append to" in r.stdout and "metadata.jsonl" in r.stdout, \
        (r.stdout, r.stderr)
    assert open(meta, "rb").read() == before  # no torn line left
    assert list(read_records(small_disk.dir)) == ["a"]


# -- a locked folder, records appended ---------------------------------------------------------

def test_second_batch_on_a_locked_folder_refuses(scene, tmp_path):
    cfg = batch_config(tmp_path / "b.json", samples=2, scene=scene)
    out = tmp_path / "out"
    out.mkdir()
    with FolderLock(out):
        r = run("batch", cfg, "-o", out, "-q")
        assert r.returncode == 1
        line = error_line(r)
        assert f"in use by another synthdof batch (pid {os.getpid()}" in line and "--wait-lock" in line
        assert sorted(os.listdir(out)) == [LOCK_NAME]  # nothing rendered


def test_batch_waits_for_the_lock_when_asked(scene, tmp_path):
    cfg = batch_config(tmp_path / "b.json", samples=2, scene=scene)
    out = tmp_path / "out"
    out.mkdir()
    lock = FolderLock(out).acquire()
    threading.Timer(2.0, lock.release).start()
    t0 = time.monotonic()
    r = run("batch", cfg, "-o", out, "-q", "--wait-lock", 60)
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - t0 > 1.9 and "2 rendered" in r.stdout


def test_two_concurrent_batches_render_each_output_once(scene, tmp_path):
    cfg = batch_config(tmp_path / "b.json", samples=3, inputs=("a", "b"), scene=scene)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "synthdof", "batch", str(cfg), "-o", str(out), "-q", "--wait-lock", "120"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    res = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], res
    rendered = sorted(int(o.split(" rendered")[0].rsplit(" ", 1)[-1]) for o, _ in res)
    assert rendered == [0, 6]  # one run rendered everything, the other found it done
    lines = (out / "metadata.jsonl").read_text().splitlines()
    assert sorted(json.loads(x)["id"] for x in lines) == ["a_0000", "a_0001", "a_0002", "b_0000", "b_0001",
                                                          "b_0002"]


def test_stale_temp_cleanup_keeps_the_files_of_live_processes(tmp_path):
    # a second batch probes the folder (creates and removes a temporary file) before it waits for
    # the lock; the batch holding the lock must not take that file for an interrupted run's
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        names = {f".a_0000.png.synthdof-{pid}-0123abcd.tmp": pid for pid in (live.pid, dead.pid)}
        for n in names:
            (tmp_path / n).write_bytes(b"")
        removed = remove_stale_temps(tmp_path, {"a_0000.png"})
    finally:
        live.kill()
        live.wait()
    assert removed == [f".a_0000.png.synthdof-{dead.pid}-0123abcd.tmp"]
    assert sorted(os.listdir(tmp_path)) == [f".a_0000.png.synthdof-{live.pid}-0123abcd.tmp"]


def test_records_are_appended_never_rewritten_and_torn_lines_repaired(scene, tmp_path):
    cfg = batch_config(tmp_path / "b.json", samples=4, scene=scene)
    out = tmp_path / "out"
    assert run("batch", cfg, "-o", out, "-q").returncode == 0
    meta = out / "metadata.jsonl"
    text = meta.read_text()
    inode = meta.stat().st_ino
    lines = text.splitlines(keepends=True)
    # a crash left the last record without its newline, and a second one torn
    (out / "a_0001.png").unlink()
    (out / "a_0002.png").unlink()
    whole = "".join(ln for ln in lines if '"a_0001"' not in ln and '"a_0002"' not in ln)
    rec1 = [ln for ln in lines if '"a_0001"' in ln][0]
    meta.write_text(whole + rec1.rstrip("\n"))
    inode = meta.stat().st_ino
    r = run("batch", cfg, "-o", out, "-q")
    assert r.returncode == 0 and "2 rendered" in r.stdout, r.stderr
    new = meta.read_text()
    assert meta.stat().st_ino == inode and new.startswith(whole + rec1)  # completed, then appended
    assert all(json.loads(x) for x in new.splitlines())
    # torn in the middle of a record: cut off at the start of its line (a_0002's record goes too)
    meta.write_text(whole + rec1[:30])
    (out / "a_0001.png").unlink()
    r = run("batch", cfg, "-o", out, "-q")
    assert r.returncode == 0 and "2 rendered" in r.stdout, r.stderr
    new = meta.read_text()
    assert new.startswith(whole) and all(json.loads(x) for x in new.splitlines())
    assert sorted(read_records(out)) == ["a_0000", "a_0001", "a_0002", "a_0003"]


# -- checked before the render -----------------------------------------------------------------

def test_outputs_are_checked_before_the_render(scene, tmp_path):
    out = tmp_path / "out.png"
    synthdof.write_image(out, noise((4, 4, 3), np.uint8))
    before = out.read_bytes()
    args = ["render", scene / "img.png", "--depth", scene / "depth.npy", "--focus", 2]
    # --save-coc into a missing folder: refused before anything is written
    r = run(*args, "-o", out, "--save-coc", tmp_path / "missing" / "coc.npy")
    assert r.returncode == 1 and "--save-coc: directory does not exist" in error_line(r)
    assert out.read_bytes() == before
    # an unknown extension, and 16 bits in a JPEG, are refused before the inputs are even read
    r = run("render", tmp_path / "nope.png", "--depth", tmp_path / "nope.npy", "--focus", 2, "-o", tmp_path / "o.xyz")
    assert r.returncode == 1 and "unsupported file type '.xyz'" in error_line(r)
    r = run("render", tmp_path / "nope.png", "--depth", tmp_path / "nope.npy", "--focus", 2, "--bits", 16,
            "-o", tmp_path / "o.jpg")
    assert r.returncode == 1 and "JPEG holds 8 bits" in error_line(r)
    r = run(*args, "-o", out, "--save-coc", tmp_path / "coc.xyz")
    assert r.returncode == 1 and "--save-coc: unsupported file type" in error_line(r)
    assert out.read_bytes() == before and not (tmp_path / "coc.xyz").exists()


def test_render_on_a_full_disk_is_one_line_and_keeps_the_old_output(scene, small_disk):
    out = os.path.join(small_disk.dir, "out.npy")
    np.save(out, np.zeros(3))
    before = open(out, "rb").read()
    small_disk.fill(leave=16 * 1024)  # the render is 64x96x3 float32 = 72 kB
    r = run("render", scene / "img.png", "--depth", scene / "depth.npy", "--focus", 2, "-o", out,
            preexec_fn=small_disk.preexec)
    assert r.returncode == 1
    line = error_line(r)
    assert "out.npy" in line
    if small_disk.mounted:  # refused before the render
        assert "bytes free" in line and "rendered" not in r.stdout
    assert open(out, "rb").read() == before
    assert temp_files(small_disk.dir) == []


# -- Ctrl-C, worker deaths, no hang --------------------------------------------------------------

def wait_for(cond, timeout, what):
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def interrupt_batch(tmp_path, extra, before=None):
    """Start a batch in its own process group, press Ctrl-C (SIGINT to the whole group, as a
    terminal does) once its first record is written (and before(process) has returned), and
    return (process, stderr). The batch holds far more work than the wait can take (a few
    hundredths of a second per frame): with 40 frames, a machine too busy to wake this process
    for a second let it finish first."""
    cfg = batch_config(tmp_path / "b.json", samples=2000)
    out = tmp_path / "out"
    # (SIGINT back to its default in the child: a test runner started as a shell's background job
    # inherits it ignored, and Python then installs no KeyboardInterrupt handler)
    p = subprocess.Popen([sys.executable, "-m", "synthdof", "batch", str(cfg), "-o", str(out), "-q", *map(str, extra)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    meta = out / "metadata.jsonl"
    try:
        wait_for(lambda: meta.exists() and meta.stat().st_size > 0, 120, "the first record")
        if before is not None:
            before(p)
        os.killpg(p.pid, signal.SIGINT)
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    return p, err, out


def group_gone(pgid):
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def test_ctrl_c_in_a_batch_is_one_line_and_exit_130(tmp_path):
    p, err, out = interrupt_batch(tmp_path, [])
    assert p.returncode == 130 and err == "synthdof: interrupted\n", err
    assert temp_files(out) == [] and not (out / LOCK_NAME).exists()
    assert all(json.loads(x) for x in (out / "metadata.jsonl").read_text().splitlines())


def test_ctrl_c_on_dask_shuts_the_workers_down(tmp_path):
    pytest.importorskip("dask.distributed")
    p, err, out = interrupt_batch(tmp_path, ["--workers", 2])
    assert p.returncode == 130 and err == "synthdof: interrupted\n", err
    wait_for(lambda: group_gone(p.pid), 30, "the worker processes to exit")
    assert temp_files(out) == [] and not (out / LOCK_NAME).exists()


def worker_processes(pgid):
    """The pids of the Dask worker processes in process group pgid (multiprocessing's spawned
    children; the resource tracker is not one)."""
    pids = set()
    for d in os.listdir("/proc"):
        try:
            stat = open(f"/proc/{d}/stat").read()
            cmd = open(f"/proc/{d}/cmdline", "rb").read()
        except (OSError, ValueError):
            continue
        if int(stat.rsplit(")", 1)[1].split()[2]) == pgid and b"spawn_main" in cmd:  # field 5: pgrp
            pids.add(int(d))
    return pids


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="finds the worker processes in /proc (Linux)")
def test_ctrl_c_while_a_dead_worker_is_replaced_is_one_line(tmp_path):
    """A worker process killed mid-batch is started again by its nanny, after the batch has
    stopped ignoring SIGINT; a Ctrl-C while the new one still imports Dask ends the batch with the
    one line (before the fix, the new worker's KeyboardInterrupt traceback came too), and the
    workers exit."""
    pytest.importorskip("dask.distributed")

    killed = []

    def kill_a_worker(p):
        wait_for(lambda: len(worker_processes(p.pid)) >= 2, 60, "two worker processes")
        old = worker_processes(p.pid)
        killed.append(min(old))
        os.kill(killed[0], signal.SIGKILL)
        wait_for(lambda: worker_processes(p.pid) - old, 60, "the worker started in its place")

    p, err, out = interrupt_batch(tmp_path, ["--workers", 2], before=kill_a_worker)
    assert p.returncode == 130 and err == "synthdof: interrupted\n", err
    wait_for(lambda: group_gone(p.pid), 30, "the worker processes to exit")
    # only the killed worker's file in progress is left (the next run removes it)
    assert all(f".synthdof-{killed[0]}-" in f for f in temp_files(out)), temp_files(out)
    assert not (out / LOCK_NAME).exists()


def test_task_that_kills_its_worker_is_retried_then_reported(scene, tmp_path):
    pytest.importorskip("dask.distributed")
    cfg = batch_config(tmp_path / "b.json", samples=4, scene=scene)
    out = tmp_path / "out"
    r = run("batch", cfg, "-o", out, "-q", "--workers", 2, env={"SYNTHDOF_TEST_KILL_TASK": "a_0001"}, timeout=180)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "3 rendered, 0 already done, 1 failed" in r.stdout
    line = error_line(r)
    assert line.startswith("synthdof: error: a_0001:") and "died each time it ran it (3 attempts" in line  # 2 retries
    assert sorted(read_records(out)) == ["a_0000", "a_0002", "a_0003"]
    r = run("batch", cfg, "-o", tmp_path / "out0", "-q", "--workers", 2, "--retries", 0,
            env={"SYNTHDOF_TEST_KILL_TASK": "a_0002"}, timeout=180)
    assert r.returncode == 1 and "3 rendered, 0 already done, 1 failed" in r.stdout, (r.stdout, r.stderr)
    assert "a_0002: its worker process died each time it ran it (1 attempt:" in error_line(r)


def test_dask_without_workers_does_not_hang(scene, tmp_path):
    pytest.importorskip("dask.distributed")
    cfg = batch_config(tmp_path / "b.json", samples=2, scene=scene)
    code = textwrap.dedent(f"""
        from dask.distributed import LocalCluster
        import synthdof
        if __name__ == "__main__":
            with LocalCluster(n_workers=0, processes=False, dashboard_address=None) as cluster:
                s = synthdof.run_batch({str(cfg)!r}, {str(tmp_path / "out")!r}, scheduler=cluster.scheduler_address,
                                       progress=False, worker_timeout=2)
            print(s["rendered"], [m for _, m in s["failed"]])
    """)
    (tmp_path / "nohang.py").write_text(code)
    r = subprocess.run([sys.executable, str(tmp_path / "nohang.py")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "0 ['no Dask worker alive for 2 s', 'no Dask worker alive for 2 s']"


# -- clear errors: memory, bad values, readers ----------------------------------------------------

MEMORY_CODE = """
import resource, sys
import numpy as np
import synthdof
n = 2000
img = np.random.default_rng(0).random((n, n, 3), dtype=np.float32)
coc = np.linspace(-40, 40, n, dtype=np.float32)[:, None].repeat(n, 1)
synthdof.render(img[:64, :64], coc=coc[:64, :64], num_threads=1)  # threads and small buffers made
vm = [int(x.split()[1]) * 1024 for x in open("/proc/self/status") if x.startswith("VmSize")][0]
resource.setrlimit(resource.RLIMIT_AS, (vm + (100 << 20), resource.RLIM_INFINITY))
try:
    synthdof.render(img, coc=coc, num_threads=1)
except MemoryError as e:
    print("MemoryError:", e)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc are Linux's")
def test_memory_error_names_the_image_size_and_the_request():
    import re
    r = subprocess.run([sys.executable, "-c", MEMORY_CODE], capture_output=True, text=True, timeout=120)
    assert r.stdout.startswith("MemoryError: render: out of memory for a 2000x2000 image"), (r.stdout, r.stderr)
    assert "16000000 bytes" in r.stdout  # one float plane
    failed = re.search(r"a request of (\d+) bytes failed", r.stdout)
    assert failed, r.stdout
    assert 1 << 20 < int(failed.group(1)) < 1 << 34  # a scratch plane set of the 2000 x 2000 render


def test_cli_memory_error_is_one_line(scene, tmp_path):
    code = textwrap.dedent("""
        import sys
        def no_memory(*a, **k):
            raise MemoryError("render: out of memory for a 96x64 image (6144 pixels; one float plane of it "
                              "is 24576 bytes)")
        import synthdof._render  # the core's MemoryError, without needing the memory to run out
        synthdof._render.render = no_memory
        from synthdof.cli import main
        sys.exit(main(sys.argv[1:]))
    """)
    r = subprocess.run([sys.executable, "-c", code, "render", str(scene / "img.png"), "--depth",
                        str(scene / "depth.npy"), "--focus", "2", "-o", str(tmp_path / "o.png")],
                       capture_output=True, text=True)
    assert r.returncode == 1
    line = error_line(r)
    assert str(scene / "img.png") in line and "out of memory for a 96x64 image" in line


def test_bad_depth_values_name_the_file(scene, tmp_path):
    z = np.load(scene / "depth.npy")
    z[3, 5] = 0.0  # a hole the reader keeps, the lens refuses
    np.save(tmp_path / "holes.npy", z)
    r = run("render", scene / "img.png", "--depth", tmp_path / "holes.npy", "--focus", 2, "-o", tmp_path / "o.png")
    assert r.returncode == 1
    line = error_line(r)
    assert "depth" in line and "holes.npy" in line and "row 3, column 5" in line
    z[3, 5] = np.nan
    np.save(tmp_path / "nan.npy", z)
    with pytest.raises(ValueError, match=r"nan.npy holds depth value nan at row 3, column 5"):
        synthdof.read_depth(tmp_path / "nan.npy")


def test_read_matte_validates_float_files(tmp_path):
    m = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    np.save(tmp_path / "ok.npy", m)
    np.testing.assert_array_equal(synthdof.read_matte(tmp_path / "ok.npy"), m)
    np.save(tmp_path / "round.npy", m + np.float32(5e-5))  # rounding of compositing: clipped
    got = synthdof.read_matte(tmp_path / "round.npy")
    assert got.max() == 1.0 and got.min() >= 0.0
    for bad, what in [(8.0, "8.0"), (np.nan, "nan"), (-0.5, "-0.5")]:
        b = m.copy()
        b[2, 1] = bad
        np.save(tmp_path / "bad.npy", b)
        with pytest.raises(ValueError, match=rf"bad.npy holds matte value {what} at row 2, column 1"):
            synthdof.read_matte(tmp_path / "bad.npy")
