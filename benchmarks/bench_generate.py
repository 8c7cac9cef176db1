"""In-memory generation speed: procgen kernels vs plain-Python reference processes, same run.

Usage::

    python -m benchmarks.bench_generate                 # every registered task with a reference
    python -m benchmarks.bench_generate --tasks dyck dyck_shuffle --repeats 7

For each task: procgen tokens/s (median of ``--repeats`` calls on one core, after a warm-up call
that compiles the kernel) and the plain-Python reference process (``benchmarks/reference_*.py``)
at the same parameters, and their ratio. Targets (DESIGN §8): >= 100 M tokens/s and >= 100x.
The tasks come from the registry; one without a plain-Python reference is skipped with a note.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import pkgutil
import random
import statistics
import time
from pathlib import Path

import procgen
from procgen.tasks import available_tasks, get_task


def reference_processes() -> dict:
    """Merge the ``REFERENCE`` dicts of every ``benchmarks/reference_*.py`` module.

    Each maps a task name to ``(function, params)``: the plain-Python process and the parameters it
    is timed at (procgen runs at the same ones).
    """
    merged = {}
    folder = Path(__file__).parent
    for module in pkgutil.iter_modules([str(folder)]):
        if module.name.startswith("reference_"):
            merged.update(importlib.import_module(f"benchmarks.{module.name}").REFERENCE)
    return merged


def variant_processes() -> dict:
    """Merge the ``VARIANTS`` dicts of ``benchmarks/reference_*.py``: a label (e.g. ``"eca random_rule"``)
    -> ``(function, task, procgen params, function params)``, for a task measured at a second setting
    whose plain-Python process takes other parameters."""
    merged = {}
    for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if module.name.startswith("reference_"):
            merged.update(getattr(importlib.import_module(f"benchmarks.{module.name}"), "VARIANTS", {}))
    return merged


def time_call(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_task(task: str, reference, params: dict, repeats: int, target_tokens: float, ref_seconds: float,
               ref_params: dict | None = None, label: str | None = None) -> dict:
    """Measure one task; returns a table row. ``ref_params``: the reference's own parameters (default
    ``params``); ``label``: the row's name (default ``task``)."""
    ref_params = params if ref_params is None else ref_params
    probe = procgen.generate(task, 1000, seed=0, **params)  # compiles the kernel (or loads numba's cache)
    tokens_per_row = probe.num_tokens / len(probe)
    n = max(1000, int(target_tokens / tokens_per_row))
    procgen_s = time_call(lambda: procgen.generate(task, n, seed=0, **params), repeats)
    procgen_rate = n * tokens_per_row / procgen_s

    row = {"task": label or task, "params": params, "procgen_mtok_s": procgen_rate / 1e6, "ref_mtok_s": None,
           "ratio": None}
    if reference is not None:
        rng = random.Random(0)
        calibration = reference(10, rng, **ref_params)
        per_row = max(1e-7, time_call(lambda: reference(10, rng, **ref_params), 1) / 10)
        n_ref = max(10, int(ref_seconds / per_row))
        ref_tokens = sum(len(r) for r in calibration) / len(calibration) * n_ref
        ref_s = time_call(lambda: reference(n_ref, rng, **ref_params), max(1, repeats // 2))
        row["ref_mtok_s"] = ref_tokens / ref_s / 1e6
        row["ratio"] = procgen_rate / (ref_tokens / ref_s)
    return row


def format_table(rows: list[dict]) -> str:
    """Markdown table of benchmark rows."""
    lines = ["| task | params | procgen M tok/s | reference M tok/s | ratio |", "|---|---|---:|---:|---:|"]
    for row in rows:
        params = " ".join(f"{k}={v}" for k, v in row["params"].items()) or "defaults"
        ref = f"{row['ref_mtok_s']:.2f}" if row["ref_mtok_s"] is not None else "n/a"
        ratio = f"{row['ratio']:.0f}x" if row["ratio"] is not None else "n/a"
        lines.append(f"| {row['task']} | {params} | {row['procgen_mtok_s']:.0f} | {ref} | {ratio} |")
    return "\n".join(lines)


def task_params(task: str, references: dict) -> dict:
    """The parameters ``task`` is measured at: its reference's, else the task's ``example_params``."""
    if task in references:
        return dict(references[task][1])
    return copy.deepcopy(get_task(task).example_params)


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="*", help="tasks to measure (default: all with a reference)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per task (median reported)")
    parser.add_argument("--tokens", type=float, default=3e7, help="tokens per procgen call")
    parser.add_argument("--ref-seconds", type=float, default=1.0, help="approximate seconds per reference call")
    args = parser.parse_args(argv)

    references = reference_processes()
    rows = []
    for task in args.tasks or available_tasks():
        if task not in references:
            print(f"  skipped {task}: no plain-Python reference in benchmarks/reference_*.py", flush=True)
            continue
        reference = references[task][0]
        rows.append(bench_task(task, reference, task_params(task, references), args.repeats, args.tokens,
                               args.ref_seconds))
        print(f"  measured {task}", flush=True)
    for label, (reference, task, params, ref_params) in variant_processes().items():
        if task in (args.tasks or available_tasks()):
            rows.append(bench_task(task, reference, params, args.repeats, args.tokens, args.ref_seconds, ref_params,
                                   label))
            print(f"  measured {label}", flush=True)
    print(format_table(rows))
    return rows


if __name__ == "__main__":
    main()
