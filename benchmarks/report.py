"""The full benchmark report: ``python -m benchmarks [--quick]`` (also ``procgen bench``).

For every registered task it measures, in one run on one machine:

* in-memory generation, procgen vs the plain-Python reference process (``bench_generate``);
* ``procgen.write`` to disk with 1 and 2 workers, in fresh processes, and their peak RSS
  (``bench_write``);
* the latency of the first ``procgen.generate`` call in a fresh process: *cold* (an empty numba
  cache directory: the kernels compile) and *cached* (a second process on the same cache);

plus the time of ``import procgen`` (median of 5 fresh processes) and a scaling run (dyck, time
vs n rows from 1e4 to 1e8, streamed in bounded memory). It prints the table and writes
``docs/benchmarks.md`` with ``docs/img/benchmarks.png`` (throughput, log scale) and
``docs/img/scaling.png`` (log-log). ``--quick`` uses smaller sizes and caps the scaling run at 1e7
rows; ``--no-page`` only prints.

    python -m benchmarks                       # the full report (about 10 minutes on 2 cores)
    python -m benchmarks --quick --no-page     # a smoke run
    python -m benchmarks --tasks dyck sort --note "laptop on battery"
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import procgen
from benchmarks.bench_generate import bench_task, reference_processes, task_params, variant_processes
from benchmarks.bench_write import peak_rss_mb, run_once
from procgen.tasks import available_tasks

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "benchmarks.md"
IMAGES = ROOT / "docs" / "img"

FULL = {"gen_tokens": 3e7, "write_tokens": 5e8, "write_repeats": 2, "ref_seconds": 1.0, "scaling_max": 1e8,
        "scale": [(1e9, 3), (1e10, 1)]}  # writes at scale: (tokens, repeats)
QUICK = {"gen_tokens": 5e6, "write_tokens": 2e7, "write_repeats": 1, "ref_seconds": 0.3, "scaling_max": 1e7,
         "scale": [(1e8, 1)]}
SCALE_TASKS = ("dyck", "identity")  # uint8 tasks: one slow and one fast generator

FIRST_CALL = r"""
import json, sys, time
import procgen
task, params = sys.argv[1], json.loads(sys.argv[2])
t0 = time.perf_counter()
procgen.generate(task, 10, seed=0, **params)
print(json.dumps({"seconds": time.perf_counter() - t0}))
"""

IMPORT = "import time; t0 = time.perf_counter(); import procgen; print(time.perf_counter() - t0)"


# --- measurements -------------------------------------------------------------------------------

def _python(code: str, *args: str, env: dict | None = None) -> str:
    """Run ``code`` in a fresh interpreter; return its last stdout line."""
    done = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    return done.stdout.strip().splitlines()[-1]


def import_seconds(repeats: int = 5) -> float:
    """Median wall time of ``import procgen`` in ``repeats`` fresh processes."""
    return statistics.median(float(_python(IMPORT)) for _ in range(repeats))


def first_call_seconds(task: str, params: dict) -> tuple[float, float]:
    """``(cold, cached)`` seconds of the first ``generate`` call of a fresh process.

    Cold: an empty ``NUMBA_CACHE_DIR``, so the task's kernels compile. Cached: a second process on
    the cache the first one filled. Both include the lazy imports (numba) the first call triggers.
    """
    with tempfile.TemporaryDirectory(prefix="procgen-numba-") as cache:
        env = {"NUMBA_CACHE_DIR": cache}
        cold = json.loads(_python(FIRST_CALL, task, json.dumps(params), env=env))["seconds"]
        cached = json.loads(_python(FIRST_CALL, task, json.dumps(params), env=env))["seconds"]
    return cold, cached


def write_rates(task: str, params: dict, tokens: float, repeats: int, directory: str,
                settings=((1, None), (2, None))) -> dict:
    """Disk write M tokens/s, peak RSS (MB) and cores busy for each ``(workers, variant)`` of ``settings``
    (default 1 and 2 workers), via ``bench_write.run_once``; keyed by workers, or ``(workers, variant)``
    for a variant: ``"page cache"`` (``PROCGEN_DIRECT_IO=0``) or ``"one core"`` (pinned to one CPU)."""
    probe = procgen.generate(task, 1000, seed=0, **params)
    n = max(1000, int(tokens / (probe.num_tokens / len(probe))))
    result = {}
    for workers, variant in settings:
        env = {"PROCGEN_DIRECT_IO": "0"} if variant == "page cache" else None
        runs = [run_once(n, workers, directory, task, params, env, variant == "one core") for _ in range(repeats)]
        seconds = statistics.median(r["seconds"] for r in runs)
        result[workers if variant is None else (workers, variant)] = {
            "mtok_s": runs[0]["tokens"] / seconds / 1e6, "rss_mb": peak_rss_mb(runs, workers),
            "cores": statistics.median(r["cpu_seconds"] / r["seconds"] for r in runs)}
    return result


def writes_at_scale(rows: list[dict], settings: dict, directory: str) -> list[dict]:
    """Writes of SCALE_TASKS (at the table's parameters) at each ``settings["scale"]`` size: 1 and 2 workers,
    1 worker pinned to one core (Linux), and 1 worker through the page cache (direct writes off)."""
    points = []
    for task in SCALE_TASKS:
        row = next((r for r in rows if r["task"] == task and not r.get("label")), None)
        if row is None:
            continue
        for tokens, repeats in settings["scale"]:
            rates = write_rates(task, row["params"], tokens, repeats, directory,
                                ((1, None), (2, None), (1, "page cache"))
                                + (((1, "one core"),) if hasattr(os, "sched_setaffinity") else ()))
            points.append({"task": task, "tokens": tokens, "repeats": repeats, "in_memory": row["procgen_mtok_s"],
                           "write": rates})
            print(f"  write {task} {tokens:.0e} tokens: {rates[1]['mtok_s']:.0f} / {rates[2]['mtok_s']:.0f} "
                  f"M tok/s", flush=True)
    return points


def scaling(task: str, ns: list[int]) -> list[dict]:
    """Seconds to generate ``n`` rows of ``task`` (defaults) for each ``n``, streamed in bounded memory."""
    procgen.generate(task, 10)  # compile / load the cache outside the timings
    points = []
    for n in ns:
        repeats = max(1, min(20, int(1e6 // n)))
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            tokens = sum(batch.num_tokens for batch in procgen.stream(task, n=n))
            times.append(time.perf_counter() - start)
        seconds = statistics.median(times)
        points.append({"n": n, "seconds": seconds, "tokens": tokens, "mtok_s": tokens / seconds / 1e6})
        print(f"  scaling {task} n={n:.0e}: {seconds:.4f} s", flush=True)
    return points


def machine() -> dict:
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        cpu = next(line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        pass
    memory = None
    try:
        with open("/proc/meminfo") as file:
            memory = int(file.readline().split()[1]) / 2**20  # MemTotal, kB -> GiB
    except (OSError, ValueError, IndexError):
        pass
    import numba
    import numpy

    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": memory, "os": platform.platform(),
            "python": platform.python_version(), "numpy": numpy.__version__, "numba": numba.__version__,
            "procgen": procgen.__version__,
            "load": os.getloadavg() if hasattr(os, "getloadavg") else None}


# --- report -------------------------------------------------------------------------------------

def _fmt(value, spec: str, suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:{spec}}{suffix}"


def _write_cell(result: dict | None) -> str:
    """``M tok/s (cores busy)`` of one write setting."""
    if not result:
        return "n/a"
    cores = f" ({result['cores']:.1f})" if "cores" in result else ""
    return f"{result['mtok_s']:.0f}{cores}"


def format_table(rows: list[dict]) -> str:
    """The full Markdown table, one row per task."""
    lines = ["| task | params | procgen M tok/s | reference M tok/s | ratio | write 1 worker M tok/s | "
             "write 2 workers M tok/s | peak RSS MB (1 / 2 workers) | first call cold s | first call cached s |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        params = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in row["params"].items() if k != "spec") or "defaults"
        if "spec" in row["params"]:
            params = "spec: " + " + ".join(row["params"]["spec"]["tasks"])
        write = row.get("write") or {}
        rss = " / ".join(_fmt(write.get(w, {}).get("rss_mb"), ".0f") for w in (1, 2)) if write else "n/a"
        lines.append(
            f"| {row['task']} | {params} | {row['procgen_mtok_s']:.0f} | {_fmt(row['ref_mtok_s'], '.2f')} | "
            f"{_fmt(row['ratio'], '.0f', 'x')} | {_write_cell(write.get(1))} | "
            f"{_write_cell(write.get(2))} | {rss} | {_fmt(row.get('cold_s'), '.2f')} | "
            f"{_fmt(row.get('cached_s'), '.2f')} |")
    return "\n".join(lines)


def format_scale(points: list[dict]) -> str:
    """Markdown table of the writes at scale."""
    lines = ["| task | tokens | median of | in memory M tok/s | write 1 worker M tok/s | 1 worker / in memory | "
             "write 2 workers M tok/s | 2 / 1 workers | 1 worker on 1 core M tok/s | 2 workers / 1 on 1 core | "
             "1 worker, page cache M tok/s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for p in points:
        one, two, cached = p["write"][1], p["write"][2], p["write"][(1, "page cache")]
        pinned = p["write"].get((1, "one core"))
        per_core = f"{two['mtok_s'] / pinned['mtok_s']:.2f}x" if pinned else "n/a"
        lines.append(f"| {p['task']} | {p['tokens']:.0e} | {p['repeats']} | {p['in_memory']:.0f} | "
                     f"{_write_cell(one)} | {one['mtok_s'] / p['in_memory']:.0%} | {_write_cell(two)} | "
                     f"{two['mtok_s'] / one['mtok_s']:.2f}x | {_write_cell(pinned)} | {per_core} | "
                     f"{_write_cell(cached)} |")
    return "\n".join(lines)


def format_scaling(points: list[dict]) -> str:
    """Markdown table of the scaling run."""
    lines = ["| rows | tokens | seconds | M tok/s |", "|---:|---:|---:|---:|"]
    lines += [f"| {p['n']:.0e} | {p['tokens']:.2e} | {p['seconds']:.4f} | {p['mtok_s']:.0f} |" for p in points]
    return "\n".join(lines)


def format_page(rows, points, import_s, info, command, note, settings, scale=()) -> str:
    """The whole docs/benchmarks.md page."""
    load = info["load"]
    memory = f"{info['memory_gib']:.0f} GiB RAM" if info["memory_gib"] else "RAM unknown"
    load_text = ("" if load is None else
                 f" Load average when the run started: {load[0]:.2f} on {info['cores']} cores"
                 + (" — other processes were competing for the CPU, so every number here is a pessimistic "
                    "lower bound." if load[0] >= 0.5 * info["cores"] else "."))
    lines = [
        "# Benchmarks", "",
        "Generated by `python -m benchmarks` (`benchmarks/report.py`; also `procgen bench`): do not edit "
        "by hand, re-run it.", "",
        f"**Command:** `{command}`  ",
        f"**Machine:** {info['cpu']}, {info['cores']} cores, {memory}; {info['os']}; Python {info['python']}, "
        f"numpy {info['numpy']}, numba {info['numba']}, procgen {info['procgen']}.{load_text}", "",
    ]
    if note:
        lines += ["!!! note", f"    {note}", ""]
    lines += [
        "## Every task", "",
        "- **procgen M tok/s**: `procgen.generate` in memory, one core, median of the timed calls after a "
        f"warm-up call (about {settings['gen_tokens']:.0e} tokens per call).",
        "- **reference M tok/s**: the plain-Python reference process (`benchmarks/reference_*.py`, one "
        "`random` call per decision, like the paper's scripts) at the same parameters; **ratio** = procgen / "
        "reference. `n/a`: no reference process exists (the mixture).",
        f"- **write**: `procgen.write` to a temporary directory, end to end in a fresh process (imports, "
        f"worker start-up, Arrow serialisation, sha256, fsync), about {settings['write_tokens']:.0e} tokens, "
        f"median of {settings['write_repeats']}; in brackets, the cores it kept busy (CPU seconds of the "
        "process and its workers / wall seconds: one worker generates on one core while its I/O thread "
        "serialises, hashes and writes on another). **Peak RSS**: the writing process, plus for 2 workers "
        "2 × the largest worker (an upper bound).",
        "- **first call**: the first `procgen.generate(task, 10)` of a fresh process after `import procgen`, "
        "lazy imports included: *cold* with an empty numba cache (the kernels compile), *cached* with the "
        "cache the cold run filled.", "",
        f"`import procgen`: **{import_s * 1000:.1f} ms** (median of 5 fresh processes; it compiles nothing "
        "and imports neither numba nor pyarrow).", "",
        format_table(rows), "",
        "![Throughput per task, log scale](img/benchmarks.png)", "",
    ]
    if scale:
        lines += [
            "## Writes at scale", "",
            "`procgen.write` of about 1e9 and 1e10 tokens (uint8 tasks, the table's parameters), measured as in "
            "the table; in brackets the cores busy. Shards of 64 MiB or more are written with `O_DIRECT` where "
            "the file system allows (`procgen/_sink.py`): the last column turns that off (`PROCGEN_DIRECT_IO=0`) "
            "and writes through the page cache. **2 / 1 workers** is bounded by the cores: one worker already "
            "keeps more than one core busy (generation on one; serialisation, sha256 and the write on the "
            "other), so on 2 cores two workers can at most reach 2 / (cores busy of one). **1 worker on 1 "
            "core** pins that worker to one CPU: **2 workers / 1 on 1 core** is how the worker pool scales "
            "per core, the number that carries over to a machine with cores to spare.", "",
            format_scale(scale), "",
        ]
    lines += [
        "## Scaling", "",
        "`dyck` at its defaults (k=4, 64 tokens per row): time to generate n rows, streamed with "
        "`procgen.stream` in batches of bounded size (memory stays flat), median of up to 20 runs for "
        "small n. The cost is linear in n.", "",
        format_scaling(points), "",
        "![Time vs rows, log-log](img/scaling.png)", "",
    ]
    return "\n".join(lines)


def plot_throughput(rows: list[dict], path: Path) -> None:
    """Horizontal log-scale bars per task: in memory, write with 2 workers, reference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    series = [("procgen, in memory", [r["procgen_mtok_s"] for r in rows], "#1f77b4"),
              ("procgen.write, 2 workers", [(r.get("write") or {}).get(2, {}).get("mtok_s") for r in rows], "#2ca02c"),
              ("plain-Python reference", [r["ref_mtok_s"] for r in rows], "#d62728")]
    y = np.arange(len(rows))
    height = 0.27
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.5))
    for j, (label, values, color) in enumerate(series):
        present = [(yi, v) for yi, v in zip(y, values) if v]
        if present:
            ax.barh([p[0] + (j - 1) * height for p in present], [p[1] for p in present], height, label=label,
                    color=color)
    ax.set_xscale("log")
    ax.set_yticks(y, [r["task"] for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel("M tokens / s (log scale)")
    ax.axvline(100, color="gray", linestyle=":", linewidth=1)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("procgen vs the plain-Python reference processes")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_scaling(points: list[dict], path: Path) -> None:
    """Log-log time vs rows, with the line of exactly linear cost through the largest point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = [p["n"] for p in points]
    seconds = [p["seconds"] for p in points]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.loglog(ns, seconds, "o-", label="measured")
    ax.loglog(ns, [seconds[-1] * n / ns[-1] for n in ns], ":", color="gray", label="linear (slope 1)")
    ax.set_xlabel("rows (dyck, 64 tokens each)")
    ax.set_ylabel("seconds")
    ax.set_title("Generation time vs rows")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# --- entry point ----------------------------------------------------------------------------------

def measure(tasks: list[str], settings: dict, repeats: int) -> list[dict]:
    """Generation, write and first-call numbers for each task."""
    references = reference_processes()
    rows = []
    with tempfile.TemporaryDirectory(prefix="procgen-bench-") as directory:
        for task in tasks:
            reference = references.get(task, (None, None))[0]
            params = task_params(task, references)  # the reference's parameters, else Task.example_params
            row = bench_task(task, reference, params, repeats, settings["gen_tokens"], settings["ref_seconds"])
            row["write"] = write_rates(task, params, settings["write_tokens"], settings["write_repeats"], directory)
            row["cold_s"], row["cached_s"] = first_call_seconds(task, params)
            rows.append(row)
            print(f"  measured {task}: {row['procgen_mtok_s']:.0f} M tok/s", flush=True)
        for label, (reference, task, params, ref_params) in variant_processes().items():
            if task in tasks:  # a second setting of a task (in-memory only: its writes are the task's)
                rows.append(bench_task(task, reference, params, repeats, settings["gen_tokens"],
                                       settings["ref_seconds"], ref_params, label))
    return rows


def main(argv=None) -> dict:
    """Run the benchmarks, print the tables, write the page and plots unless ``--no-page``."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=(
        "The full benchmark report: in-memory generation (procgen vs a plain-Python reference), writes "
        "to disk with 1 and 2 workers, first-call latency, import time and a scaling run; prints the "
        "table and writes docs/benchmarks.md with its plots (unless --no-page). Examples: "
        "`python -m benchmarks`, `python -m benchmarks --quick --no-page`."))
    parser.add_argument("--quick", action="store_true", help="smaller sizes; scaling up to 1e7 rows")
    parser.add_argument("--tasks", nargs="*", help="tasks to measure (default: every registered task)")
    parser.add_argument("--repeats", type=int, default=5, help="timed in-memory calls per task (median)")
    parser.add_argument("--no-page", action="store_true", help="print only; leave docs/ alone")
    parser.add_argument("--note", default="", help="a remark for the page (e.g. what else was running)")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    known = available_tasks()
    unknown = [t for t in args.tasks or [] if t not in known]
    if unknown:
        parser.error(f"unknown task {unknown[0]!r}; choose from: {', '.join(known)}")
    tasks = args.tasks or known
    command = "python -m benchmarks" + "".join(" " + shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))

    info = machine()
    rows = measure(tasks, settings, args.repeats)
    with tempfile.TemporaryDirectory(prefix="procgen-bench-") as directory:
        scale = writes_at_scale(rows, settings, directory)
    import_s = import_seconds()
    ns = [10 ** e for e in range(4, 9) if 10 ** e <= settings["scaling_max"]]
    points = scaling("dyck", ns)

    print(f"\nimport procgen: {import_s * 1000:.1f} ms\n")
    print(format_table(rows))
    print()
    print(format_scaling(points))
    if scale:
        print()
        print(format_scale(scale))
    if not args.no_page:
        IMAGES.mkdir(parents=True, exist_ok=True)
        PAGE.write_text(format_page(rows, points, import_s, info, command, args.note, settings, scale) + "\n")
        try:
            plot_throughput(rows, IMAGES / "benchmarks.png")
            plot_scaling(points, IMAGES / "scaling.png")
        except ImportError:
            print("matplotlib is not installed: no plots (pip install 'procgen-data[plot]')", file=sys.stderr)
        print(f"\nwrote {PAGE.relative_to(ROOT)} and {IMAGES.relative_to(ROOT)}/{{benchmarks,scaling}}.png")
    return {"rows": rows, "scaling": points, "import_s": import_s, "machine": info, "scale": scale}
