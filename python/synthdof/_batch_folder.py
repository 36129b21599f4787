"""The batch output folder: its lock, its record log, and the temporary files of earlier runs.

One `synthdof batch` at a time writes into a folder: it holds an advisory lock (a lock file
holding the owner's pid and host, locked with flock where the system has it, so that a dead
owner's lock is released by the system and taken over). Records are appended to
metadata.jsonl as complete lines, each flushed to the disk; the file is never rewritten, and a
line torn by a crash or a full disk is repaired when the folder is opened again."""
import errno
import json
import os
import re
import socket
import time

from ._batch_config import BatchError
from ._io import TEMP_RE

METADATA = "metadata.jsonl"
LOCK_NAME = ".synthdof-batch.lock"
# temporary files of synthdof 0.1.0's batch: ".<stem>.<pid>.part<ext>"
_OLD_TEMP_RE = re.compile(r"^\.(?P<stem>.+)\.\d+\.part(?P<ext>\.[A-Za-z0-9]+)$")

try:
    import fcntl
except ImportError:  # Windows: the lock file alone, its pid checked
    fcntl = None


class FolderLocked(BatchError):
    """Another live process holds the batch folder's lock.

    Examples
    --------
    >>> issubclass(FolderLocked, BatchError)
    True
    """


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


class FolderLock:
    """An advisory lock on a batch output folder, held by one process at a time.

    The lock file (``.synthdof-batch.lock`` in the folder) records the owner's pid, host and
    start time, and is removed when the lock is released. Where the system has ``flock`` the
    file is also flock-ed, so the lock of a process that died (killed, a crash) is released by
    the system and the next run takes it over; without flock a lock file naming a dead process
    on this host is taken over.

    Parameters
    ----------
    folder : str or os.PathLike
        The folder (it must exist).
    wait : float, optional
        Seconds to wait for another owner to release the lock (0: refuse at once).
    poll : float, optional
        Seconds between attempts while waiting.

    Attributes
    ----------
    previous : dict or None
        The owner recorded in a stale lock file that was taken over.

    Raises
    ------
    FolderLocked
        (from `acquire`) Another live process holds the lock after `wait` seconds; the message
        names its pid and host.

    Examples
    --------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> with FolderLock(d):
    ...     try:
    ...         FolderLock(d).acquire()
    ...     except FolderLocked as e:
    ...         print("refused")
    refused
    >>> with FolderLock(d) as lock:  # released on exit, so it can be taken again
    ...     lock.owner["pid"] == os.getpid()
    True
    """

    def __init__(self, folder, *, wait=0.0, poll=0.1):
        self.folder = os.path.abspath(os.fspath(folder))
        self.path = os.path.join(self.folder, LOCK_NAME)
        self.wait, self.poll = float(wait), float(poll)
        self.fd = None
        self.previous = None
        self.owner = None

    def acquire(self):
        """Take the lock, waiting up to `wait` seconds; returns self."""
        deadline = time.monotonic() + self.wait
        while True:
            holder = self._try()
            if holder is None:
                return self
            if time.monotonic() >= deadline:
                who = (f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, started "
                       f"{holder.get('started', '?')}") if holder else "a process that has not written its name yet"
                raise FolderLocked(f"output: {self.folder} is in use by another synthdof batch ({who}); "
                                   f"wait for it to finish, or pass --wait-lock SECONDS to wait for it"
                                   + ("" if fcntl else f" (if that process is gone, remove {self.path})"))
            time.sleep(max(0.0, min(self.poll, deadline - time.monotonic())))

    def _try(self):
        """None once the lock is ours, else the holder's record ({} when unreadable)."""
        if fcntl is None:
            return self._try_exclusive()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _read_owner(fd)
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return holder
            raise OSError(e.errno, f"output: cannot lock {self.path}: {e.strerror}") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # the previous owner removed the file after we opened it: start over
            os.close(fd)
            return self._try()
        self.previous = _read_owner(fd) or None
        self._own(fd)
        return None

    def _try_exclusive(self):
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            try:
                with open(self.path, "rb") as f:
                    holder = _parse_owner(f.read())
            except FileNotFoundError:
                return self._try_exclusive()
            if holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int) \
                    and not _pid_alive(holder["pid"]):
                self.previous = holder
                try:
                    os.remove(self.path)
                except FileNotFoundError:
                    pass
                return self._try_exclusive()
            return holder
        self._own(fd)
        return None

    def _own(self, fd):
        self.owner = {"pid": os.getpid(), "host": socket.gethostname(),
                      "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.write(fd, (json.dumps(self.owner) + "\n").encode())
        os.fsync(fd)
        self.fd = fd

    def release(self):
        """Remove the lock file and let the lock go (nothing when not held)."""
        if self.fd is None:
            return
        try:
            os.remove(self.path)  # while still locked: a waiter re-checks that its file is this one
        except FileNotFoundError:
            pass
        os.close(self.fd)
        self.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def _parse_owner(data):
    try:
        rec = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return {}
    return rec if isinstance(rec, dict) else {}


def _read_owner(fd):
    try:
        return _parse_owner(os.pread(fd, 4096, 0))
    except OSError:
        return {}


class RecordLog:
    """metadata.jsonl of a batch folder, opened for appending complete, fsynced lines.

    On opening, a torn last line (a crash or a full disk in the middle of a record) is repaired:
    completed with its newline when it holds a whole record, cut off otherwise. The file is
    never rewritten; hold the folder's `FolderLock` while the log is open.

    Parameters
    ----------
    folder : str or os.PathLike
        The batch folder.

    Examples
    --------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> with open(os.path.join(d, METADATA), "w") as f:
    ...     _ = f.write('{"id": "a"}\\n{"id": "b", "out')  # torn by a crash
    >>> with RecordLog(d) as log:
    ...     log.append({"id": "c"})
    >>> sorted(read_records(d))
    ['a', 'c']
    """

    def __init__(self, folder):
        self.path = os.path.join(os.fspath(folder), METADATA)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            self._repair()
        except BaseException:
            os.close(self.fd)
            raise

    def _repair(self):
        size = os.fstat(self.fd).st_size
        if size == 0 or os.pread(self.fd, 1, size - 1) == b"\n":
            return
        start = max(0, size - (1 << 16))
        while True:  # find the start of the last line
            chunk = os.pread(self.fd, size - start, start)
            cut = chunk.rfind(b"\n")
            if cut >= 0 or start == 0:
                line_start = start + cut + 1
                break
            start = max(0, start - (1 << 20))
        tail = os.pread(self.fd, size - line_start, line_start)
        if _parse_owner(tail).get("id") is not None:
            os.write(self.fd, b"\n")
        else:
            os.ftruncate(self.fd, line_start)
        os.fsync(self.fd)

    def append(self, record):
        """Append one record as a JSON line, flushed to the disk.

        Parameters
        ----------
        record : dict
            A JSON-serialisable record.

        Raises
        ------
        OSError
            The line could not be written in full (a full disk); the file is cut back to its
            previous length, so no torn line stays.
        """
        data = (json.dumps(record, sort_keys=True) + "\n").encode("utf-8")
        start = os.fstat(self.fd).st_size
        try:
            done = 0
            while done < len(data):
                done += os.write(self.fd, data[done:])
            os.fsync(self.fd)
        except BaseException as e:
            try:
                os.ftruncate(self.fd, start)
            except OSError:
                pass
            if isinstance(e, OSError):
                raise OSError(e.errno, f"cannot append to {self.path}: {e.strerror}") from None
            raise

    def close(self):
        """Close the file."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_records(outdir):
    """The valid metadata records of a batch folder, the last one per task id.

    Parameters
    ----------
    outdir : str or os.PathLike
        The batch folder.

    Returns
    -------
    dict
        {task id: record}; lines that are not complete JSON records are skipped.

    Examples
    --------
    >>> import tempfile
    >>> read_records(tempfile.mkdtemp())
    {}
    """
    path = os.path.join(os.fspath(outdir), METADATA)
    recs = {}
    if not os.path.exists(path):
        return recs
    with open(path, "r", encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(r, dict) and "id" in r:
                recs[r["id"]] = r
    return recs


def remove_stale_temps(outdir, names):
    """Remove temporary files that earlier runs left for the files `names` in `outdir`.

    A temporary file whose name holds the pid of another live process on this host is kept: it
    is still being written (another run checking the folder before it waits for the lock).

    Parameters
    ----------
    outdir : str or os.PathLike
        The batch folder (whose lock the caller holds).
    names : set of str
        The file names the batch writes; only their temporary files are removed.

    Returns
    -------
    list of str
        The names of the removed files.

    Examples
    --------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> dead = 4194305  # above Linux's largest pid: no live process holds it
    >>> open(os.path.join(d, f".a_0000.png.synthdof-{dead}-0123abcd.tmp"), "w").close()
    >>> remove_stale_temps(d, {"a_0000.png"})
    ['.a_0000.png.synthdof-4194305-0123abcd.tmp']
    """
    removed = []
    for entry in sorted(os.listdir(outdir)):
        m = TEMP_RE.match(entry)
        if m and int(m.group("pid")) != os.getpid() and _pid_alive(int(m.group("pid"))):
            continue  # a live process's file: a second batch probing the folder before it waits for the lock
        target = m.group("target") if m else None
        if target is None:
            old = _OLD_TEMP_RE.match(entry)
            target = old.group("stem") + old.group("ext") if old else None
        if target in names:
            try:
                os.remove(os.path.join(outdir, entry))
                removed.append(entry)
            except FileNotFoundError:
                pass
    return removed
