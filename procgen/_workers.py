"""Helper processes that share a list of work items with this one (used by ``procgen.write``).

Every process -- this one and each helper -- claims the next unclaimed item until none is left, so
items balance dynamically and nothing depends on who did what. A helper is a fresh interpreter
(``python -I -c ...``) given this process's ``sys.path``; it imports procgen and the target
function only. Not ``multiprocessing``: its spawn start method re-imports the caller's
``__main__`` in every worker, so a script calling ``procgen.write(..., workers=2)`` at top level,
without an ``if __name__ == "__main__":`` guard, ran the write again inside each worker and died
with a misleading error. Like spawn (unlike fork) a helper inherits no numba/OpenMP thread state.

Protocol over the helper's stdin/stdout (pickle frames: both ends are this program, started by
this process; nothing from disk or the network is unpickled)::

    parent -> helper   sys.path as one JSON line; the registered task modules (a list of names or
                       paths, procgen.tasks.registered()); (target, payload); then per claim: item or None
    helper -> parent   ("claim",) | ("progress", *counts) | ("error", exception)

The helper's own stdout is pointed at stderr, so a stray print cannot corrupt the protocol.

Signals. A helper runs in a session of its own, so a terminal's Ctrl-C (SIGINT to the foreground
process group) reaches this process only, never a helper mid-import (which printed a traceback):
this process then stops the helpers with SIGTERM, which a helper turns into SystemExit at its next
bytecode so that its temp files are removed. A helper also exits (the same way) when this process
dies, even by ``kill -9``: Linux tells it (``prctl(PR_SET_PDEATHSIG)``), and on every platform a
thread in the helper watches its parent pid.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from typing import Callable

from procgen.tasks import register, registered

_BOOTSTRAP = ("import sys, json; sys.path[:] = json.loads(sys.stdin.buffer.readline()); "
              "from procgen._workers import _helper_main; _helper_main()")  # argv[1]: this process's pid
_STOP_SECONDS = 60  # after an error: how long helpers get to stop at a chunk boundary before a kill
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_PARENT_POLL_SECONDS = 0.2  # how often a helper's watch thread checks that its parent lives


def run(target: str, payload, items, helpers: int, here: Callable, report: Callable, keep_fds=()) -> None:
    """Process every item once, in this process and in ``helpers`` helper processes.

    Parameters
    ----------
    target : str
        ``"module:function"`` that a helper calls as ``function(payload, item, report)``.
    payload
        Picklable plain data handed to every helper call (e.g. a write plan).
    items : list
        The work items (picklable, not None), handed out in order.
    helpers : int
        Number of helper processes (0: everything runs here).
    here : callable
        ``here(item, report)`` processes one item in this process.
    report : callable
        ``report(*counts)``: progress, from this process's items and relayed from the helpers'
        (called from several threads; it must be thread-safe).
    keep_fds : tuple of int
        File descriptors the helpers inherit (e.g. a lock that must stay held while any helper lives).

    The first error (here or in a helper) stops all claiming; helpers still busy are asked to stop
    (SIGTERM, handled at the next bytecode so their temp files are cleaned up), and the error is
    raised here once every helper has exited. So is a KeyboardInterrupt here (Ctrl-C), and a
    second one while waiting for the helpers stops them without waiting.
    """
    claims = _Claims(items)
    started = []
    try:
        for _ in range(helpers):
            started.append(_Helper(target, payload, claims, report, keep_fds))
        while (item := claims.claim()) is not None:
            here(item, report)
    except BaseException as err:
        claims.fail(err)
        for helper in started:
            helper.stop()
        raise
    finally:
        try:
            for helper in started:
                helper.join()
        except BaseException:  # e.g. Ctrl-C while waiting: do not leave the rest running
            for helper in started:
                helper.stop()
            raise
    if claims.error is not None:
        raise claims.error


class _Claims:
    """Items handed out once each, to whoever asks first, until the list is done or stopped."""

    def __init__(self, items):
        self._items = list(items)
        self._next = 0
        self._lock = threading.Lock()
        self.error = None  # the first failure, raised by run()

    def claim(self):
        with self._lock:
            if self.error is not None or self._next >= len(self._items):
                return None
            self._next += 1
            return self._items[self._next - 1]

    def fail(self, error: BaseException) -> None:
        with self._lock:
            if self.error is None:
                self.error = error


class _Helper:
    """One helper process plus the thread here that answers its claims and relays its progress."""

    def __init__(self, target, payload, claims: _Claims, report, keep_fds=()):
        self._claims, self._report = claims, report
        # a session of its own: the terminal's Ctrl-C goes to this process only (see the module docstring)
        self._process = subprocess.Popen([sys.executable, "-I", "-c", _BOOTSTRAP, str(os.getpid())],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True,
                                         pass_fds=tuple(keep_fds))
        self._thread = threading.Thread(target=self._serve, args=(target, payload), daemon=True,
                                        name=f"procgen-helper-{self._process.pid}")
        self._thread.start()

    def _serve(self, target, payload) -> None:
        process, reported = self._process, False
        try:
            process.stdin.write(json.dumps(sys.path).encode() + b"\n")
            self._send(registered())  # tasks added by procgen.tasks.register, replayed in the helper
            self._send((target, payload))
            while True:
                try:
                    message = pickle.load(process.stdout)
                except EOFError:
                    break
                if message[0] == "claim":
                    self._send(self._claims.claim())
                elif message[0] == "progress":
                    self._report(*message[1:])
                elif message[0] == "error":
                    reported = True
                    self._claims.fail(message[1])
        except (OSError, pickle.UnpicklingError, EOFError):
            pass  # the helper died mid-message: its exit status tells below
        finally:
            for pipe in (process.stdin, process.stdout):
                try:
                    pipe.close()
                except OSError:
                    pass
            status = process.wait()
        if status != 0 and not reported:
            self._claims.fail(RuntimeError(f"procgen helper process {process.pid} exited with status {status} "
                                           f"(its messages, if any, are above); rerun the same call to resume"))

    def _send(self, obj) -> None:
        pickle.dump(obj, self._process.stdin)
        self._process.stdin.flush()

    def stop(self) -> None:
        """Ask the helper to stop now (it cleans up its temp files on the way out)."""
        if self._process.poll() is None:
            try:
                self._process.terminate()
            except OSError:
                pass

    def join(self) -> None:
        self._thread.join(_STOP_SECONDS)
        if self._thread.is_alive():  # stuck: kill it (a rerun removes the temp file it leaves)
            self._process.kill()
            self._thread.join()


def _helper_main() -> None:
    """Entry point of a helper process (after the bootstrap has set ``sys.path``)."""
    channel = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # prints go to stderr; fd 1's old target is the protocol channel now
    sys.stdout = sys.stderr
    # SIGTERM from the parent: raise SystemExit at the next bytecode, so with-blocks (temp files) clean up
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # interrupting is the parent's decision (it sends SIGTERM)
    _exit_with_parent(int(sys.argv[1]) if len(sys.argv) > 1 else os.getppid())
    source = sys.stdin.buffer

    def send(*message):
        pickle.dump(message, channel)
        channel.flush()

    try:
        for module in pickle.load(source):  # before the payload, which may name a registered task
            register(module)
        target, payload = pickle.load(source)
        module, _, name = target.partition(":")
        function = getattr(__import__(module, fromlist=[name]), name)
        while True:
            send("claim")
            item = pickle.load(source)
            if item is None:
                break
            function(payload, item, lambda *counts: send("progress", *counts))
    except EOFError:
        sys.exit(1)  # the parent went away: nothing to report to
    except BaseException as err:  # noqa: BLE001 -- every failure goes back to the parent
        try:
            pickle.dumps(err)
        except Exception:  # noqa: BLE001
            err = RuntimeError(f"{type(err).__name__}: {err}")
        try:
            send("error", err)
        except OSError:
            pass
        sys.exit(1)


def _exit_with_parent(parent: int) -> None:
    """SIGTERM this helper as soon as ``parent`` dies, so that it stops writing (and cleans up).

    Without this a helper orphaned by ``kill -9`` of its parent went on writing shards that nobody
    would record. On Linux the kernel signals it (``prctl(PR_SET_PDEATHSIG)``, sent when the thread
    that started the helper exits; that thread waits for every helper). A daemon thread also polls
    the parent pid, on every platform and for a parent that died before ``prctl`` took effect.
    """
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        except (OSError, AttributeError):  # no prctl: the thread below still works
            pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_PARENT_POLL_SECONDS)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="procgen-parent-watch", daemon=True).start()
