"""End-to-end ``procgen.write`` throughput and peak memory (DESIGN §8: ≥100 M tokens/s with 2 workers).

Times ``procgen.write("dyck", tmpdir, n=N, k=4, length=64, workers=W)`` for W in (1, 2) (or another
``--task`` with its defaults, or ``--params``; ``--tokens`` sets N from the task's mean row length). Each run
happens in a fresh Python process (so imports, worker start-up and numba cache loading count, as
they do for a user), which reports its own wall time and peak RSS and that of its worker
processes (``getrusage``: the largest child). "peak RSS" below is parent + W x largest worker, an
upper bound on the simultaneous total.

    python benchmarks/bench_write.py                 # n=1e7, 3 repeats
    python benchmarks/bench_write.py --n 1e8 --repeats 1 --workers 2
    python benchmarks/bench_write.py --profile       # where one worker's time goes
    python -m benchmarks.bench_write --task identity --tokens 1e9 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import json, resource, sys, time
import procgen
out, n, workers, task, params = sys.argv[1], int(float(sys.argv[2])), int(sys.argv[3]), sys.argv[4], json.loads(sys.argv[5])
if sys.argv[6] == "1":  # one core: this process and its helpers on the lowest CPU it may use
    import os
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
def cpu(who):
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime
cpu0 = cpu(resource.RUSAGE_SELF)
t0 = time.perf_counter()
manifest = procgen.write(task, out, n=n, workers=workers, progress=False, **params)
seconds = time.perf_counter() - t0
kib = 1024 if sys.platform != "darwin" else 1
print(json.dumps({"seconds": seconds, "tokens": manifest["num_tokens"], "shards": len(manifest["shards"]),
                  "cpu_seconds": cpu(resource.RUSAGE_SELF) - cpu0 + cpu(resource.RUSAGE_CHILDREN),
                  "self_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * kib / 2**20,
                  "child_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * kib / 2**20}))
"""


def run_once(n: int, workers: int, directory: str, task: str = "dyck", params: dict | None = None,
             env: dict | None = None, one_core: bool = False) -> dict:
    """Time ``procgen.write(task, ..., n=n, workers=workers, **params)`` in a fresh Python process.

    Returns the child's report: ``seconds``, ``tokens``, ``shards``, ``cpu_seconds`` (user + system
    time of the write in the process and its workers, the workers' start-up included:
    ``cpu_seconds / seconds`` is the number of cores the write kept busy), ``self_mb`` (its peak
    RSS) and ``child_mb`` (the largest worker's peak RSS). ``params`` defaults to ``k=4, length=64``;
    ``env`` adds environment variables (e.g. ``{"PROCGEN_DIRECT_IO": "0"}``); ``one_core`` pins the write
    to one CPU (Linux), which tells how a write scales per core from how it uses spare cores.
    """
    params = {"k": 4, "length": 64} if params is None else params
    out = os.path.join(directory, f"{task}-w{workers}")
    shutil.rmtree(out, ignore_errors=True)
    if hasattr(os, "sync"):
        os.sync()  # start from a quiet disk: no dirty pages (or discards) left by the previous run
    try:
        result = subprocess.run([sys.executable, "-c", CHILD, out, str(n), str(workers), task, json.dumps(params),
                                 "1" if one_core else "0"],
                                check=True, capture_output=True, text=True, env={**os.environ, **(env or {})})
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def peak_rss_mb(runs: list[dict], workers: int) -> float:
    """Peak RSS bound of ``run_once`` reports: parent + workers x largest worker (MB); parent alone for 1."""
    parent = max(r["self_mb"] for r in runs)
    if workers == 1:
        return parent
    return parent + workers * max(r["child_mb"] for r in runs)


def profile(n: int) -> None:
    """Split one in-process write into generation, Arrow serialisation, sha256 and fsync."""
    import hashlib

    import pyarrow as pa

    import procgen
    from procgen import _arrow, _shards
    from procgen._rng import base_key
    from procgen.tasks import get_task

    spec = get_task("dyck")
    params = spec.resolve_params({"k": 4, "length": 64})
    dtype = spec.token_dtype(params)
    base = base_key(0, "dyck", "train")
    chunk = _shards.CHUNK_TOKENS // 64
    schema = _arrow.arrow_schema(dtype)
    spec.kernel(base, 0, 10, params, dtype)  # compile / load the cache
    times = dict.fromkeys(("generate", "arrow write", "sha256", "fsync"), 0.0)
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "shard.arrow")
        with open(path, "wb") as file, pa.ipc.new_stream(file, schema) as writer:
            digest = hashlib.sha256()
            for lo in range(0, n, chunk):
                t0 = time.perf_counter()
                tokens, offsets, answer_start = spec.kernel(base, lo, min(chunk, n - lo), params, dtype)
                t1 = time.perf_counter()
                writer.write_batch(_arrow.record_batch(tokens, offsets, answer_start, schema))
                t2 = time.perf_counter()
                digest.update(tokens)
                t3 = time.perf_counter()
                times["generate"] += t1 - t0
                times["arrow write"] += t2 - t1
                times["sha256"] += t3 - t2
            t0 = time.perf_counter()
            file.flush()
            os.fsync(file.fileno())
            times["fsync"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        procgen.write("dyck", os.path.join(directory, "full"), n=n, k=4, length=64, shards=1, progress=False)
        whole = time.perf_counter() - t0
    tokens = 64 * n
    print(f"one process, n={n:,} rows ({tokens / 1e6:.0f} M tokens), chunk={chunk:,} rows")
    for name, seconds in times.items():
        print(f"  {name:12s} {seconds:7.3f} s  {tokens / seconds / 1e6 if seconds else float('inf'):8.0f} M tokens/s")
    print(f"  {'procgen.write':12s} {whole:7.3f} s  {tokens / whole / 1e6:8.0f} M tokens/s (shards=1, workers=1)")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=float, default=1e7, help="rows; default 1e7")
    parser.add_argument("--tokens", type=float, help="tokens instead of rows (rows = procgen.api.rows_for_tokens)")
    parser.add_argument("--task", default="dyck", help="default dyck (with k=4, length=64)")
    parser.add_argument("--params", type=json.loads, help='task parameters as JSON, e.g. \'{"length": 128}\'')
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--dir", default=None, help="scratch directory (default: the system temp dir)")
    parser.add_argument("--profile", action="store_true", help="time the stages of one in-process write")
    args = parser.parse_args(argv)
    params = args.params if args.params is not None else {"k": 4, "length": 64} if args.task == "dyck" else {}
    if args.tokens is not None:
        from procgen.api import rows_for_tokens

        n = rows_for_tokens(args.task, args.tokens, **params)
    else:
        n = int(args.n)
    if args.profile:
        profile(n)
        return
    directory = tempfile.mkdtemp(prefix="procgen-bench-", dir=args.dir)
    try:
        print(f"{args.task} {params}, load average before: {os.getloadavg()[0]:.2f}")
        print(f"{'workers':>7} {'rows':>12} {'tokens':>14} {'shards':>6} {'seconds':>8} {'M tok/s':>8} "
              f"{'cores busy':>10} {'parent MB':>9} {'worker MB':>9} {'peak RSS MB':>11}")
        for workers in args.workers:
            runs = [run_once(n, workers, directory, args.task, params) for _ in range(args.repeats)]
            seconds = statistics.median(r["seconds"] for r in runs)
            parent = max(r["self_mb"] for r in runs)
            child = max(r["child_mb"] for r in runs) if workers > 1 else 0.0
            cores = statistics.median(r["cpu_seconds"] / r["seconds"] for r in runs)
            print(f"{workers:>7} {n:>12,} {runs[0]['tokens']:>14,} {runs[0]['shards']:>6} {seconds:>8.2f} "
                  f"{runs[0]['tokens'] / seconds / 1e6:>8.0f} {cores:>10.2f} {parent:>9.0f} {child:>9.0f} "
                  f"{peak_rss_mb(runs, workers):>11.0f}", flush=True)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
