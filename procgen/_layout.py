"""A dataset directory on disk: its file names and limits, and how files in it are written, found and locked.

Writes here are crash-safe (temp file, fsync, rename: :mod:`procgen._files`); what the files hold
is the business of :mod:`procgen._manifest` (the JSON files) and :mod:`procgen._arrow` (the
shards). :class:`DatasetError` is here because every reader of the directory raises it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import socket
import time

from procgen._arrow import MAX_LIST_TOKENS
from procgen._files import atomic_open

FORMAT_VERSION = 4  # bump when a stream or the on-disk layout changes on purpose
MANIFEST_NAME = "procgen.json"
STATE_DIR = ".procgen"  # in-progress state: config.json + shard-XXXXX.json records
CONFIG_NAME = "config.json"
INFO_NAME = "dataset_info.json"
STATE_NAME = "state.json"
# Held (flock) by every write for its whole duration: exclusive, or shared by shard_index jobs.
# Removed when the last holder finishes; one left by a killed writer holds no lock and is reused.
LOCK_NAME = ".procgen.lock"
# A shard must fit int32 list offsets: fewer than 2**31 tokens.
MAX_SHARD_TOKENS = MAX_LIST_TOKENS
# The most shards a dataset may have (5-digit shard names; a rerun checks one record per shard), so
# a dataset holds at most MAX_SHARDS * MAX_SHARD_TOKENS (about 2.1e14) tokens.
MAX_SHARDS = 100_000
MAX_TOKENS = MAX_SHARDS * MAX_SHARD_TOKENS
SHARD_FILE = re.compile(r"data-\d{5,}-of-\d{5,}\.arrow")
OUR_FILE = re.compile(rf"{SHARD_FILE.pattern}|{re.escape(INFO_NAME)}|{re.escape(STATE_NAME)}|"
                      rf"{re.escape(MANIFEST_NAME)}")
OUR_TEMP = re.compile(rf"\.({OUR_FILE.pattern})\.tmp-.+")
RECORD_FILE = re.compile(r"shard-(\d{5,})\.json")  # in STATE_DIR: see record_path


class DatasetError(Exception):
    """A dataset on disk is incomplete, damaged or holds an invalid row.

    Attributes
    ----------
    path : str or None
        The dataset directory.
    shard : int or None
        Index of the shard at fault, if one is.
    row : int or None
        Global index of the first invalid row, if the fault is a row.
    reason : str or None
        Short description (``"incomplete"``, ``"sha256 mismatch"``, the validator's reason ...).
    shards_done : list[int] or None
        For an incomplete dataset: the shards already written.
    """

    def __init__(self, message: str, path=None, shard=None, row=None, reason=None, shards_done=None):
        super().__init__(message)
        self.path = path
        self.shard = shard
        self.row = row
        self.reason = reason
        self.shards_done = shards_done


# Its public home (tracebacks, pickles and the API docs name it procgen.dataset.DatasetError).
DatasetError.__module__ = "procgen.dataset"


# --- names ---------------------------------------------------------------------------------------

def shard_filename(shard: int, num_shards: int) -> str:
    return f"data-{shard:05d}-of-{num_shards:05d}.arrow"


def record_path(out, shard) -> str:
    """The finished-shard record of ``shard`` in a write in progress."""
    return os.path.join(out, STATE_DIR, f"shard-{shard:05d}.json")


def listdir(path) -> list[str]:
    """Entries of ``path``; none if it is missing or not a directory."""
    try:
        return os.listdir(path)
    except (FileNotFoundError, NotADirectoryError):
        return []


# --- files ---------------------------------------------------------------------------------------

def write_json_atomic(path, obj, sort_keys=False) -> None:
    """Write JSON to a temp name, fsync, then ``os.replace`` (readers never see half a file)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with atomic_open(path, "w") as file:
        json.dump(obj, file, indent=2, sort_keys=sort_keys)
        file.write("\n")


def read_json(path) -> dict | None:
    """Parsed JSON object at ``path``; None if the file is missing or not a JSON object."""
    try:
        with open(path, encoding="utf-8") as file:
            value = json.load(file)
    except (FileNotFoundError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def fsync_dir(path) -> None:
    """Persist directory entries (renames); some filesystems refuse, which is harmless here."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def sha256_file(path) -> str:
    digest = hashlib.sha256()
    block = bytearray(1 << 23)
    view = memoryview(block)
    with open(path, "rb", buffering=0) as file:
        while size := file.readinto(block):
            digest.update(view[:size])
    return digest.hexdigest()


def size_matches(out, entry) -> bool:
    """The shard file of a manifest entry or record exists with the recorded size."""
    try:
        return os.stat(os.path.join(out, entry["filename"])).st_size == entry["num_bytes"]
    except FileNotFoundError:
        return False


def shard_intact(out, record) -> bool:
    """The shard file of a record exists with the recorded size and sha256."""
    return size_matches(out, record) and sha256_file(os.path.join(out, record["filename"])) == record["sha256"]


def remove_state_dir(out) -> None:
    # the config first: a removal cut short then leaves records that nothing mistakes for a write in progress
    with contextlib.suppress(FileNotFoundError):
        os.remove(os.path.join(out, STATE_DIR, CONFIG_NAME))
    shutil.rmtree(os.path.join(out, STATE_DIR), ignore_errors=True)


def remove_ours(out) -> None:
    """Delete procgen's own files in ``out`` (shards, json files, temp files, state), nothing else."""
    for entry in os.listdir(out):
        if OUR_FILE.fullmatch(entry) or OUR_TEMP.fullmatch(entry):
            os.remove(os.path.join(out, entry))
    shutil.rmtree(os.path.join(out, STATE_DIR), ignore_errors=True)


def remove_temps(out, filename: str | None) -> None:
    """Remove temp files left by killed writers: all of them, or only those of the file ``filename`` (a shard)."""
    for entry in os.listdir(out):
        match = OUR_TEMP.fullmatch(entry)
        if match and (filename is None or match.group(1) == filename):
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(out, entry))


# --- the lock ------------------------------------------------------------------------------------

@contextlib.contextmanager
def locked(out: str, shared: bool):
    """Hold ``out/.procgen.lock`` (flock) while the body runs; yield its fd, or None if unlockable.

    A write holds it exclusively, shard_index jobs of one dataset share it; a second writer fails
    at once (BlockingIOError naming the holder's pid, which the holder writes into the file). The
    kernel drops a flock when its holder dies, so a file left by ``kill -9`` blocks nobody. The
    last holder removes the file, under the lock; whoever opened the old file meanwhile sees it
    gone after locking and retries on a new one. Where the file cannot be created (a read-only
    directory: no write can succeed there anyway) or the system has no flock, nothing is locked.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX
        fcntl = None
    fd = None if fcntl is None else _lock(fcntl, out, shared)
    if fd is None:
        yield None
        return
    try:
        yield fd
    finally:
        _unlock(fcntl, fd, os.path.join(out, LOCK_NAME))


def _lock(fcntl, out: str, shared: bool) -> int | None:
    """Take the lock of :func:`locked`; return its fd, or None where no lock can be taken."""
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, LOCK_NAME)
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                return None
            raise
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            for _ in range(20):  # the holder writes its pid right after locking
                holder = os.pread(fd, 200, 0).decode("utf-8", "replace").split()
                if holder:
                    break
                time.sleep(0.01)
            os.close(fd)
            who = (f"pid {holder[0]}" + (f" on {holder[1]}" if len(holder) > 1 else "")) if holder else "pid unknown"
            raise BlockingIOError(errno.EWOULDBLOCK, f"out={out!r} is being written by another procgen process "
                                  f"({who}); wait for it to finish or stop it, then rerun", path) from None
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                return None  # a filesystem without flock
            raise
        opened = os.fstat(fd)
        try:
            current = os.stat(path)
        except FileNotFoundError:
            current = None
        if current is not None and (current.st_dev, current.st_ino) == (opened.st_dev, opened.st_ino):
            break
        os.close(fd)  # the last holder removed this file as we opened it: lock the new one
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
    except BaseException:
        _unlock(fcntl, fd, path)
        raise
    return fd


def _unlock(fcntl, fd: int, path: str) -> None:
    """Remove the lock file if no one else holds it (checked by taking it exclusively), then close."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # already ours unless shard jobs share it
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
    except OSError:  # another shard job still holds it: the last one removes it
        pass
    finally:
        os.close(fd)
