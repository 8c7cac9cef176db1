"""Training speed: the paper's probe fine-tune step, three ways, and LM-style throughput vs GPT-2.

Probe table (default). One optimizer step of the official fine-tune protocol (2_4_16 GPT, batch
1000, untied embeddings, AdamW, gradient clip 1, loss on the official scored positions), on the
same rows, done three ways:

* ``official way``: what the official harness does -- ``transformers.GPT2LMHeadModel``, logits at
  every position of the fixed-width rows, cross-entropy everywhere, masked to the scored positions;
* ``full forward``: procgen's GPT through ``forward`` (the loop before the fast path): logits and
  log-softmax at every position, loss on the scored ones;
* ``fast path``: procgen's GPT through ``scored_forward`` as ``procgen.train`` now trains it (the
  last block, ``ln_f`` and the output layer only where a label is predicted; rows in 8 length groups).

Steps of the three alternate (a noisy shared machine slows all alike); medians of ``--steps``
steps after ``--warmup``. ``data`` is procgen's generate + collate of one batch (included in the
projection), next to a plain-Python generator of the official process (the harness's own way).
The projection: the haystack experiment (4 conditions x 3 seeds) of the ``quarter`` protocol
(2 500 steps), ``--jobs`` runs at once, fine-tunes only (the warm-ups are a separate, smaller cost).

    python benchmarks/bench_train.py                      # probes, one thread (the reproduction's setting)
    python benchmarks/bench_train.py --throughput         # LM-style tokens/s of procgen's GPT vs GPT-2
    python benchmarks/bench_train.py --device cuda --throughput --sizes 4_8_512:32x512,12_12_768:16x1024
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import transformers

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/bench_train.py`

import procgen  # noqa: E402
from procgen.tasks import get_task  # noqa: E402
from procgen.train.data import collate_batch  # noqa: E402
from procgen.train.model import GPT, GPTConfig  # noqa: E402
from procgen.train.reproduce import OFFICIAL_POSITIONS  # noqa: E402

DEFAULT_SIZES = "2_4_16:32x128,4_8_512:8x128"
PROBES = ("haystack", "addition")
OFFICIAL_PAD = {"haystack": 0, "addition": 12}  # the harness pads its fixed-width rows with these ids


def parse_sizes(text: str) -> list[tuple[str, int, int]]:
    """"2_4_16:32x128,..." -> [("2_4_16", 32, 128), ...] (model name : batch x sequence length)."""
    sizes = []
    for item in text.split(","):
        try:
            name, shape = item.split(":")
            batch, length = map(int, shape.split("x"))
        except ValueError:
            raise SystemExit(f"--sizes: expected 'layers_heads_width:BATCHxLENGTH', got {item!r}") from None
        sizes.append((name, batch, length))
    return sizes


def timed(step) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def print_table(columns, rows) -> None:
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(columns)]
    print("| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(v.rjust(w) for v, w in zip(row, widths)) + " |")


# --- the probe fine-tune step ---------------------------------------------------------------------

def official_rows(task: str, batch_size: int, seed: int) -> list[list[int]]:
    """The harness's own way to make a batch: a Python loop over rows (our plain-Python replica)."""
    from benchmarks.reference_eca_diagnostics import REFERENCE

    function, params = REFERENCE[task]
    return function(batch_size, random.Random(seed), **params)


def probe_steps(task: str, batch_size: int, device):
    """Three step closures (official way, full forward, fast path) and the data closure, one batch."""
    rows = procgen.generate(task, batch_size, seed=0, split="train")
    inputs = collate_batch(rows, block_size=OFFICIAL_POSITIONS[task], scoring="reference")
    ids, labels = inputs["input_ids"].to(device), inputs["labels"].to(device)
    official_ids = ids.masked_fill(inputs["attention_mask"].to(device) == 0, OFFICIAL_PAD[task])
    torch.manual_seed(0)
    vocab_size = get_task(task).vocab_size(rows.params)
    config = GPTConfig.from_name("2_4_16", vocab_size=vocab_size, block_size=OFFICIAL_POSITIONS[task],
                                 tie_embeddings=False)
    ours = GPT(config).to(device).train()
    fast = GPT(config).to(device).train()
    fast.load_state_dict(ours.state_dict())
    hf = ours.to_hf().to(device).train()
    wanted = (labels[:, 1:] != -100).reshape(-1)  # the harness's mask: current token >= threshold

    def official_loss():
        logits = hf(input_ids=official_ids).logits[:, :-1]
        losses = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), official_ids[:, 1:].reshape(-1),
                                 reduction="none")
        return (losses * wanted).sum() / wanted.sum()

    def make(model, loss_fn):
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.999), weight_decay=1e-3)

        def step():
            loss = loss_fn()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.synchronize()

        return step

    steps = {
        "official way": make(hf, official_loss),
        "full forward": make(ours, lambda: ours(ids, labels=labels)[1]),
        "fast path": make(fast, lambda: fast.scored_forward(ids, labels, length_groups=8)[2]),
    }

    def data():
        batch = procgen.generate(task, batch_size, seed=1, split="train")
        collate_batch(batch, block_size=OFFICIAL_POSITIONS[task], scoring="reference")

    return steps, data, lambda: official_rows(task, batch_size, 1)


def probe_table(args, device) -> dict:
    columns = ["probe", "official way ms", "full forward ms", "fast path ms", "fast / official",
               "fast / full", "data ms (procgen)", "data ms (Python)"]
    rows, results = [], {}
    for task in PROBES:
        steps, data, python_data = probe_steps(task, args.batch, device)
        times = {name: [] for name in steps}
        for _ in range(args.warmup):
            for step in steps.values():
                step()
        for _ in range(args.steps):
            for name, step in steps.items():
                times[name].append(timed(step))
        data_ms = 1000 * statistics.median(timed(data) for _ in range(args.steps))
        python_ms = 1000 * statistics.median(timed(python_data) for _ in range(3))
        ms = {name: 1000 * statistics.median(values) for name, values in times.items()}
        results[task] = {**ms, "data": data_ms}
        rows.append([task, f"{ms['official way']:.0f}", f"{ms['full forward']:.0f}", f"{ms['fast path']:.0f}",
                     f"{ms['official way'] / ms['fast path']:.2f}x", f"{ms['full forward'] / ms['fast path']:.2f}x",
                     f"{data_ms:.1f}", f"{python_ms:.1f}"])
    print_table(columns, rows)
    haystack = results["haystack"]
    runs, steps = 4 * 3, 2500
    for name in ("official way", "full forward", "fast path"):
        hours = runs * steps * (haystack[name] + haystack["data"]) / 1000 / 3600 / args.jobs
        print(f"projected haystack experiment, quarter protocol (12 runs x {steps} steps, {args.jobs} at once), "
              f"{name}: {hours:.2f} h of fine-tuning")
    return results


# --- LM-style throughput (procgen GPT vs GPT-2, random ids) ---------------------------------------

def make_lm_step(model, optimizer, ids, device):
    """A closure running one training step; returns nothing, waits for the device."""
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
                else contextlib.nullcontext())
    is_procgen = isinstance(model, GPT)

    def step():
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            loss = model(ids, labels=ids)[1] if is_procgen else model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    return step


def bench_size(name, batch, length, vocab, device, steps, warmup):
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_name(name, vocab_size=vocab, block_size=length)).to(device).train()
    hf_model = model.to_hf().to(device).train()  # same weights, same architecture
    ids = torch.randint(0, vocab, (batch, length), device=device)
    fused = {"fused": True} if device.type == "cuda" else {}
    step_ours = make_lm_step(model, torch.optim.AdamW(model.parameters(), lr=1e-4, **fused), ids, device)
    step_hf = make_lm_step(hf_model, torch.optim.AdamW(hf_model.parameters(), lr=1e-4, **fused), ids, device)
    for _ in range(warmup):
        step_ours()
        step_hf()
    ours, hf = [], []
    for _ in range(steps):
        ours.append(timed(step_ours))
        hf.append(timed(step_hf))
    tokens = batch * length
    return dict(name=name, batch=batch, length=length, params=model.num_params(),
                flops=model.estimate_flops_per_token(length),
                ours=tokens / statistics.median(ours), hf=tokens / statistics.median(hf))


def throughput_table(args, device) -> None:
    columns = ["model", "batch x len", "params", "procgen tok/s", "HF GPT-2 tok/s", "procgen / HF"]
    if device.type == "cuda":
        columns += ["procgen MFU", "HF MFU"]
    rows = []
    for name, batch, length in parse_sizes(args.sizes):
        r = bench_size(name, batch, length, args.vocab, device, args.steps, args.warmup)
        row = [name, f"{batch} x {length}", f"{r['params'] / 1e6:.2f} M", f"{r['ours']:,.0f}",
               f"{r['hf']:,.0f}", f"{r['ours'] / r['hf']:.2f}x"]
        if device.type == "cuda":
            peak = args.peak_tflops * 1e12
            row += [f"{r['ours'] * r['flops'] / peak:.1%}", f"{r['hf'] * r['flops'] / peak:.1%}"]
        rows.append(row)
    print_table(columns, rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--throughput", action="store_true", help="LM-style tokens/s table instead of the probes")
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help=f"throughput sizes, default {DEFAULT_SIZES}")
    parser.add_argument("--vocab", type=int, default=128, help="throughput vocabulary size")
    parser.add_argument("--batch", type=int, default=1000, help="probe rows per step (the paper's 1000)")
    parser.add_argument("--jobs", type=int, default=2, help="runs at once in the projection (cores)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: 1 for the probes, all cores for throughput)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per way")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--peak-tflops", type=float, default=989.0,
                        help="device peak for MFU (default: H100 SXM dense bf16, 989)")
    args = parser.parse_args(argv)

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = args.threads or (cores if args.throughput else 1)
    torch.set_num_threads(threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, {device.type} ({where}), "
          f"{threads} thread(s), load average {load:.2f}, median of {args.steps} steps after {args.warmup} "
          f"warm-up" + (", bf16 autocast (throughput)" if device.type == "cuda" else ""))
    if args.throughput:
        throughput_table(args, device)
    else:
        probe_table(args, device)


if __name__ == "__main__":
    main()
