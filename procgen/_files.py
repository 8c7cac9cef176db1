"""Crash-safe file writes shared by the dataset writer and the exporters."""

from __future__ import annotations

import contextlib
import os
import re
import socket


def as_path(value, name: str, what: str) -> str:
    """``value`` as a ``str`` path, or a one-line ValueError naming the parameter ``name``.

    >>> as_path(None, "path", "a dataset folder")
    Traceback (most recent call last):
    ValueError: path must be a path (str or os.PathLike) to a dataset folder; got None
    """
    try:
        text = os.fspath(value)
    except TypeError:
        text = None
    if not isinstance(text, str):  # None, a number, bytes...
        raise ValueError(f"{name} must be a path (str or os.PathLike) to {what}; got {value!r}")
    return text


def writer_id() -> str:
    """``host-pid``: tells apart temp files of concurrent writers (also across machines)."""
    host = re.sub(r"[^A-Za-z0-9_.-]", "_", socket.gethostname()) or "host"
    return f"{host}-{os.getpid()}"


@contextlib.contextmanager
def atomic_open(path, mode: str = "wb"):
    """Open ``path`` for writing through a hidden temp file beside it.

    On success the temp file is flushed, fsync'd and renamed onto ``path`` (readers see the old
    file or the whole new one, never half of it); on any error it is removed. The temp name is
    ``.<name>.tmp-<host>-<pid>``.

    >>> with atomic_open("out.json", "w") as file:   # doctest: +SKIP
    ...     file.write("{}")
    """
    directory, name = os.path.split(os.fspath(path))
    temp = os.path.join(directory, f".{name}.tmp-{writer_id()}")
    encoding = None if "b" in mode else "utf-8"
    try:
        with open(temp, mode, encoding=encoding) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temp)
        raise
