"""Where a shard's Arrow stream goes: a write-only file object that hashes (sha256) and counts it.

pyarrow's IPC writer calls :meth:`ShardSink.write` with each piece of the stream. The bytes reach
the file one of two ways, with the same result (bytes, size and sha256):

* **buffered**: ``file.write`` through the page cache; sha256 runs on a thread of its own.
* **direct** (``O_DIRECT``, Linux): the stream is gathered into page-aligned blocks of
  ``block_bytes``; a full block is hashed by one thread and written by another straight from our
  memory to the device while the next block fills. The last, partial block goes through the page
  cache. Why: on the machines we measured, the page-cache copy of a buffered write costs about as
  much CPU as generating the tokens (dyck, 1e9 tokens, one worker: buffered 387-442 M tok/s,
  direct 505-573, generation alone 625), and a write of many GB does not evict what the page
  cache held.

Direct is only a request: where the file system refuses ``O_DIRECT`` (tmpfs, some network file
systems: ``EINVAL`` at open or at the first write), the sink carries on buffered, silently and with
the same bytes. ``PROCGEN_DIRECT_IO=0`` in the environment turns direct writes off.
"""

from __future__ import annotations

import collections
import errno
import hashlib
import mmap
import os
from concurrent.futures import ThreadPoolExecutor

DIRECT_IO_ENV = "PROCGEN_DIRECT_IO"
BLOCK_BYTES = 8 << 20  # a direct write: a multiple of every block size O_DIRECT may require (512 B .. 4 KiB)
BLOCKS = 3  # one filling, two being hashed / written
_HASH_QUEUE_BYTES = 64 << 20  # buffered: the most bytes waiting for the hash thread (bounds memory)


def direct_io_enabled() -> bool:
    """Whether this platform has ``O_DIRECT`` and the environment does not turn it off."""
    return hasattr(os, "O_DIRECT") and os.environ.get(DIRECT_IO_ENV, "1").strip() != "0"


class ShardSink:
    """Write-only file object for pyarrow over ``file`` (open, binary, empty), hashing what passes through.

    Parameters
    ----------
    file : binary file object
        The destination, e.g. from :func:`procgen._files.atomic_open`; its owner flushes, fsyncs
        and closes it after :meth:`finish`.
    path : str
        Named in errors (the shard's final name, not the temp file's).
    direct : bool, default False
        Ask for ``O_DIRECT`` writes (see the module docstring); :attr:`direct` says whether any
        block went that way.
    block_bytes : int, optional
        Size of a direct write (a multiple of 4096); default :data:`BLOCK_BYTES`.

    Use it as a context manager and call :meth:`finish` once everything is written; leaving the
    ``with`` stops its threads (also on an error, without writing what is still buffered).

    >>> with open("shard.arrow", "wb") as file, ShardSink(file, "shard.arrow") as sink:  # doctest: +SKIP
    ...     size = sink.write(b"abc")
    ...     sink.finish()
    >>> sink.hexdigest()[:8]  # doctest: +SKIP
    'ba7816bf'
    """

    def __init__(self, file, path: str, direct: bool = False, block_bytes: int | None = None):
        block_bytes = BLOCK_BYTES if block_bytes is None else block_bytes
        if block_bytes <= 0 or block_bytes % 4096:
            raise ValueError(f"block_bytes must be a positive multiple of 4096; got {block_bytes}")
        self._file, self._path = file, path
        self._hash = hashlib.sha256()
        self._hash_thread = ThreadPoolExecutor(1, thread_name_prefix="procgen-sha256")
        self._hashing = collections.deque()  # buffered: (future, bytes) not yet hashed, oldest first
        self._hashing_bytes = 0
        self.size = 0
        self.closed = False
        self.direct = False
        self._direct_fd = None
        if direct:
            self._direct_fd = _open_direct(file)
        if self._direct_fd is not None:
            self.direct = True
            self._disk_thread = ThreadPoolExecutor(1, thread_name_prefix="procgen-write")
            self._blocks = [memoryview(mmap.mmap(-1, block_bytes)) for _ in range(BLOCKS)]  # page-aligned
            self._busy = [()] * BLOCKS  # futures that still read each block
            self._block, self._fill = 0, 0  # the block being filled, and its bytes so far
            self._written = 0  # bytes handed to the disk thread (its next file offset)

    # --- the file-object interface pyarrow uses --------------------------------------------------

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        if self._direct_fd is None:
            self._write_buffered(view)
        else:
            self._gather(view)
        self.size += len(view)
        return len(view)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        if self._direct_fd is None:
            self._file.flush()

    def close(self) -> None:
        self.closed = True  # the real file is closed by its owner

    def writable(self) -> bool:
        return True

    # --- finishing -------------------------------------------------------------------------------

    def finish(self) -> None:
        """Write what is still buffered and wait for every write and hash (errors are raised here)."""
        if self._direct_fd is not None:
            block = self._blocks[self._block]
            self._wait(range(BLOCKS))
            tail = block[:self._fill]
            self._hash.update(tail)
            self._pwrite(self._file.fileno(), tail, self._written)  # not block-sized: through the page cache
        while self._hashing:
            self._wait_hash()

    def hexdigest(self) -> str:
        """sha256 of everything written (after :meth:`finish`)."""
        return self._hash.hexdigest()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self._hash_thread.shutdown(wait=True)
        if self._direct_fd is not None:
            self._disk_thread.shutdown(wait=True)
            os.close(self._direct_fd)
            self._direct_fd = None

    # --- buffered ----------------------------------------------------------------------------------

    def _write_buffered(self, view) -> None:
        try:
            self._file.write(view)
        except OSError as err:
            raise self._named(err) from None
        # the hash reads `view` later: hold the object that owns its memory (bytes or pyarrow.Buffer)
        self._hashing.append((self._hash_thread.submit(self._hash.update, view), view))
        self._hashing_bytes += len(view)
        while self._hashing_bytes > _HASH_QUEUE_BYTES:
            self._wait_hash()

    def _wait_hash(self) -> None:
        future, view = self._hashing.popleft()
        self._hashing_bytes -= len(view)
        future.result()

    # --- direct ------------------------------------------------------------------------------------

    def _gather(self, view) -> None:
        """Copy ``view`` into the blocks; hand each block that fills to the hash and disk threads."""
        pos = 0
        while pos < len(view):
            block = self._blocks[self._block]
            take = min(len(view) - pos, len(block) - self._fill)
            block[self._fill:self._fill + take] = view[pos:pos + take]
            self._fill += take
            pos += take
            if self._fill == len(block):
                self._busy[self._block] = (self._hash_thread.submit(self._hash.update, block),
                                           self._disk_thread.submit(self._write_block, block, self._written))
                self._written += len(block)
                self._block = (self._block + 1) % BLOCKS
                self._fill = 0
                self._wait([self._block])  # the next block is free once its last hash and write are done

    def _write_block(self, block, offset: int) -> None:
        """On the disk thread: one full block at ``offset``, direct unless the file system refuses."""
        if self.direct:  # (False once the file system refused an O_DIRECT write)
            try:
                self._pwrite(self._direct_fd, block, offset)
                return
            except OSError as err:
                if err.errno != errno.EINVAL:
                    raise
                self.direct = False  # the file system opened the file O_DIRECT but refuses such writes
        self._pwrite(self._file.fileno(), block, offset)

    def _pwrite(self, fd: int, view, offset: int) -> None:
        try:
            while len(view):
                done = os.pwrite(fd, view, offset)
                view, offset = view[done:], offset + done
        except OSError as err:
            raise self._named(err) from None

    def _wait(self, blocks) -> None:
        for index in blocks:
            for future in self._busy[index]:
                future.result()
            self._busy[index] = ()

    def _named(self, err: OSError) -> OSError:
        """``err`` naming the shard (write errors carry no path)."""
        if err.filename is None and err.errno is not None:
            return type(err)(err.errno, err.strerror, self._path)
        return err


def _open_direct(file):
    """A second descriptor on ``file``'s path with ``O_DIRECT``, or None where it cannot be had."""
    if not hasattr(os, "O_DIRECT") or not isinstance(getattr(file, "name", None), str):
        return None
    try:
        return os.open(file.name, os.O_WRONLY | os.O_DIRECT)
    except OSError:
        return None  # EINVAL: the file system has no O_DIRECT; anything else shows on the buffered path
