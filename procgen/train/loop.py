"""A small, readable training loop: AdamW, warm-up + cosine/constant, checkpoints, exact resume, DDP.

``train(model, "dyck", steps=1000, out="runs/dyck")`` trains on rows generated on the fly from
their indices. Everything a step depends on is a function of the step number: the rows (the
global batch of step ``s`` is a fixed row range, see :mod:`procgen.train.data`), the learning rate,
and the random state (re-seeded from ``(seed, step, rank)`` before every step, which drives
dropout). A checkpoint therefore only needs the weights, the optimizer state and the step, and a
run interrupted at step ``k`` and resumed yields the same losses from step ``k + 1`` on as a run
that never stopped.

Files written to ``out`` (by rank 0 only): ``model.safetensors`` + ``config.json``
(``save_pretrained``; ``GPT.from_pretrained(out)`` loads them), ``hf/`` (the same weights as a
Hugging Face GPT-2 folder, for procgen GPTs: ``AutoModelForCausalLM.from_pretrained(out / "hf")``),
``trainer_state.pt`` (optimizer state, step, next row; loaded only with
``torch.load(..., weights_only=True)``), ``metrics.jsonl`` (one JSON record per log or eval) and
``loss.png`` (when matplotlib is installed). A checkpoint is atomic as a whole: its weights go to a
new folder ``checkpoints/step-NNNNNN/`` and ``trainer_state.pt``, replaced last, commits it; a run
killed at any moment resumes from the last committed checkpoint (:mod:`procgen.train.checkpoint`).

Under ``torchrun --nproc_per_node=N`` (``WORLD_SIZE > 1``) the loop initialises the process group
(gloo on CPU, nccl on CUDA), wraps the model in DistributedDataParallel, and every rank reads its
own rows. Set ``PROCGEN_DEBUG_ROWS=1`` to have rank 0 write ``rows_seen.json``: the row indices
each rank trained on.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist

from procgen._checks import check_int
from procgen._rng import derive_seed
from procgen.train import checkpoint
from procgen.train.checkpoint import HF_DIR, STATE_NAME  # noqa: F401 (names of the run directory's files)
from procgen.train.data import ProcgenIterableDataset, TaskRows
from procgen.train.evaluate import check_vocab, evaluate_batch, model_block_size

METRICS_NAME = "metrics.jsonl"
PLOT_NAME = "loss.png"
ROWS_NAME = "rows_seen.json"
DEBUG_ROWS_ENV = "PROCGEN_DEBUG_ROWS"
SCHEDULES = ("cosine", "constant")


def lr_at(step: int, steps: int, lr: float, warmup_steps: int = 0, schedule: str = "cosine",
          min_lr_ratio: float = 0.1) -> float:
    """Learning rate of optimizer step ``step`` (1-based): linear warm-up, then cosine or constant.

    The cosine decays from ``lr`` to ``lr * min_lr_ratio`` at the last step.

    >>> lr_at(1, 100, 1e-3, warmup_steps=10), lr_at(100, 100, 1e-3, warmup_steps=10)
    (0.0001, 0.0001)
    """
    if step <= warmup_steps:
        return lr * step / warmup_steps
    if schedule == "constant":
        return lr
    progress = (step - warmup_steps) / max(steps - warmup_steps, 1)
    return lr * (min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def build_model(name: str, task: str, params: dict | None = None, block_size: int | None = None, **config):
    """A fresh procgen GPT named ``"layers_heads_width"`` (e.g. ``"2_4_16"``) sized for ``task``.

    The vocabulary is the task's; ``block_size`` defaults to the task's longest row.

    >>> build_model("2_4_16", "dyck", {"k": 2, "length": 16}).config.vocab_size
    5
    """
    from procgen.tasks import get_task
    from procgen.train.model import GPT, GPTConfig

    spec = get_task(task)
    resolved = spec.resolve_params(params or {})
    block_size = spec.max_row_length(resolved) if block_size is None else block_size
    return GPT(GPTConfig.from_name(name, vocab_size=spec.vocab_size(resolved), block_size=block_size, **config))


def train(model, data, steps: int, *, params: dict | None = None, lr: float = 1e-3, batch_size: int = 32,
          warmup_steps: int | None = None, schedule: str = "cosine", min_lr_ratio: float = 0.1,
          weight_decay: float = 0.1, betas: tuple = (0.9, 0.95), grad_clip: float | None = 1.0,
          grad_accum: int = 1, eval_every: int | None = None, eval_data=None, eval_rows: int = 512,
          log_every: int = 10, save_every: int | None = None, out=None, resume: bool = False, seed: int = 0,
          progress: bool = True, device=None, num_workers: int = 0, pack: bool = False,
          eos_id: int | None = None, shuffle_tokens: bool = False, scoring: str = "all",
          length_groups: int | None = None, callback=None) -> dict:
    """Train ``model`` for ``steps`` optimizer steps; return a summary.

    Parameters
    ----------
    model : torch.nn.Module
        A procgen GPT (or a Hugging Face causal LM) taking ``(input_ids, labels=...)``.
    data : str, procgen.Batch, path or ProcgenIterableDataset
        A task name (rows of the ``train`` split generated on the fly with ``seed`` and
        ``params``), an in-memory Batch or a dataset directory (cycled), or a ready dataset.
    steps : int
        Total optimizer steps of the run (a resumed run counts the steps already done).
    params : dict, optional
        Task parameters, when ``data`` is a task name.
    lr, warmup_steps, schedule, min_lr_ratio
        Peak learning rate; linear warm-up over ``warmup_steps`` (default 10% of ``steps``),
        then ``"cosine"`` decay to ``lr * min_lr_ratio`` or ``"constant"``.
    batch_size, grad_accum
        Rows per micro-batch per rank, and micro-batches per optimizer step (a step sees
        ``batch_size * grad_accum * world_size`` rows; the loss is averaged per answer token).
    weight_decay, betas, grad_clip
        AdamW settings (decay on 2-D weights only) and the gradient-norm clip (None: no clip).
    eval_every, eval_data, eval_rows
        Evaluate every ``eval_every`` steps and at the end on ``eval_data``: a Batch, a task name
        (``eval_rows`` rows of its ``test`` split, with ``params`` if it is the training task), or
        None for the training task's ``test`` split (no evaluation for other data); False: never.
    log_every, save_every
        Log the training loss every ``log_every`` steps; checkpoint every ``save_every`` steps
        (default: only at the end).
    out : path, optional
        Run directory for checkpoints and metrics (nothing is written without it).
    resume : bool, default False
        Continue from the checkpoint in ``out`` (a fresh start when there is none). Without
        ``resume``, an ``out`` that already holds a checkpoint is refused.
    seed : int, default 0
        Seed of the training rows and of the per-step random state.
    progress : bool, default True
        Show a tqdm progress bar.
    device : str or torch.device, optional
        Default: ``cuda`` (this rank's GPU) when available, else ``cpu``. A device that is not
        on this machine is refused (see :func:`check_device`).
    num_workers : int, default 0
        DataLoader worker processes (rows stay disjoint across workers and ranks).
    pack, eos_id, shuffle_tokens, scoring
        Data options of :class:`~procgen.train.data.ProcgenIterableDataset`; ``scoring`` chooses
        the positions that carry the loss (``"all"`` answer tokens, or ``"reference"``: those the
        paper's official harness trains on) and, for evaluations, those that are scored.
    length_groups : int, optional
        procgen GPTs train through :meth:`~procgen.train.model.GPT.scored_forward` (the last
        block, ``ln_f`` and the output layer only where a label is predicted), with the rows of a
        micro-batch run in this many groups of similar length (default: one group per 125 rows,
        at most 8). Other models (Hugging Face) run their full forward pass.
    callback : callable, optional
        ``callback(step, metrics) -> bool`` after every step (``metrics`` holds what was logged
        at that step); a true result stops the run there, with a checkpoint. Under DDP, rank 0
        decides.

    Returns
    -------
    dict
        ``step``, ``loss`` (last logged), ``eval`` (last evaluation or None), ``rows`` and
        ``tokens`` trained on in this call, ``seconds``, ``stopped`` (by the callback),
        ``history`` (the records of this call) and ``model`` (the trained module).

    Example
    -------
    >>> model = build_model("2_4_16", "identity", {"length": 8, "vocab_size": 10})
    >>> train(model, "identity", 300, params={"length": 8, "vocab_size": 10}, progress=False)["eval"]  # doctest: +SKIP
    {'accuracy': 0.99, ...}
    """
    _check_arguments(steps=steps, lr=lr, batch_size=batch_size, warmup_steps=warmup_steps, schedule=schedule,
                     min_lr_ratio=min_lr_ratio, grad_accum=grad_accum, eval_every=eval_every, log_every=log_every,
                     save_every=save_every, num_workers=num_workers, length_groups=length_groups)
    warmup_steps = steps // 10 if warmup_steps is None else warmup_steps
    out = Path(out) if out is not None else None
    distributed, created_group, device = _setup_distributed(device)
    rank, world_size = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    try:
        summary = _Run(**locals()).run()
        if created_group:
            dist.barrier()  # every rank done before gloo tears down (a rank leaving early aborted its peer)
        return summary
    finally:
        if created_group:
            dist.destroy_process_group()


def warmup(model="2_4_16", task: str = "dyck", steps: int = 1000, *, params: dict | None = None,
           lr: float = 1e-3, batch_size: int = 32, eval_data=False, **kwargs) -> dict:
    """Procedural warm-up: :func:`train` on a procedural task, with warm-up defaults.

    ``model`` may be a size name such as ``"2_4_16"`` (a fresh GPT sized for ``task``); no
    evaluation by default (a warm-up is judged by what it transfers). Other arguments as in
    :func:`train`; the warmed-up model is ``summary["model"]``.

    >>> summary = warmup("2_4_16", "dyck", steps=200, params={"k": 4}, out="runs/dyck")  # doctest: +SKIP
    >>> summary["model"].save_pretrained("runs/dyck-copy")                                # doctest: +SKIP
    """
    if isinstance(model, str):
        model = build_model(model, task, params)
    return train(model, task, steps, params=params, lr=lr, batch_size=batch_size, eval_data=eval_data, **kwargs)


# --- the run ------------------------------------------------------------------------------------

class _Run:
    """State of one call of :func:`train` (split into methods so each piece stays readable)."""

    def __init__(self, **arguments):
        self.__dict__.update(arguments)
        self.is_main = self.rank == 0
        self.module = self.model.to(self.device)  # the bare model: saved, evaluated, loaded into
        self.ddp = self.module
        if self.distributed:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = torch.nn.parallel.DistributedDataParallel(self.module, device_ids=device_ids)
        self.dataset = self._dataset()
        check_vocab(self.module, self.dataset.source.task, self.dataset.source.params)
        self.evaluator = self._evaluator()
        self.optimizer = _adamw(self.module, self.lr, self.weight_decay, self.betas)
        self.history = []
        self.debug_rows = [] if os.environ.get(DEBUG_ROWS_ENV) else None

    def _dataset(self) -> ProcgenIterableDataset:
        if isinstance(self.data, ProcgenIterableDataset):
            if self.params or self.pack or self.shuffle_tokens or self.eos_id is not None or self.scoring != "all":
                raise ValueError("params, pack, eos_id, shuffle_tokens and scoring are options of the dataset "
                                 "when data is a ProcgenIterableDataset; set them there")
            return self.data
        return ProcgenIterableDataset(self.data, seed=self.seed, split="train", batch_size=self.batch_size,
                                      repeat=True, pack=self.pack, block_size=model_block_size(self.module),
                                      eos_id=self.eos_id, shuffle_tokens=self.shuffle_tokens, scoring=self.scoring,
                                      rank=self.rank, world_size=self.world_size, **(self.params or {}))

    def _evaluator(self):
        """A function ``model -> metrics`` for the evaluation rows, or None (no evaluation)."""
        from procgen.api import generate
        from procgen.batch import Batch

        eval_data = self.eval_data
        source = self.dataset.source
        if eval_data is False or (eval_data is None and not isinstance(source, TaskRows)):
            return None
        if isinstance(eval_data, Batch):
            rows = eval_data
        else:
            task = source.task if eval_data is None else eval_data
            if not isinstance(task, str):
                raise ValueError(f"eval_data must be None, False, a task name or a procgen.Batch; "
                                 f"got {type(task).__name__}")
            same_task = isinstance(source, TaskRows) and task == source.task
            params = source.params if same_task else {}
            rows = generate(task, self.eval_rows, seed=self.seed, split="test", **params)
        check_vocab(self.module, rows.task, rows.params)
        scoring = self.dataset.scoring
        return lambda model: evaluate_batch(model, rows, scoring=scoring)

    # --- checkpoints ----------------------------------------------------------------------------

    def _restore(self) -> tuple[int, int]:
        """Load the checkpoint in ``out`` when resuming; return ``(step, next row)``."""
        has_checkpoint = self.out is not None and checkpoint.exists(self.out)
        if has_checkpoint and not self.resume:
            raise ValueError(f"out={str(self.out)!r} already holds a checkpoint; resume it (resume=True, "
                             f"--resume) or choose another directory")
        if not (self.resume and has_checkpoint):
            if self.is_main and self.out is not None:
                self.out.mkdir(parents=True, exist_ok=True)
                (self.out / METRICS_NAME).unlink(missing_ok=True)
            return 0, self.dataset.start
        state = checkpoint.read_state(self.out)
        self._check_same_data(json.loads(state["data"]))
        folder = checkpoint.restore(self.out, state, self.module, self.optimizer)
        if self.is_main:
            checkpoint.publish(folder, self.out)  # a run killed after its last commit left stale copies
            _truncate_metrics(self.out / METRICS_NAME, state["step"])
        return state["step"], state["next_row"]

    def _check_same_data(self, saved: dict) -> None:
        """Refuse to resume a checkpoint on other rows (another task, parameters, seed or source)."""
        current = json.loads(json.dumps(self.dataset.describe(), default=str))
        keys = ("source", "task", "params", "seed", "split", "path", "shuffle_tokens", "scoring")
        saved = {"scoring": "all", **saved}  # checkpoints from before the scoring option trained on every answer token
        before = {k: saved.get(k) for k in keys if saved.get(k) != current.get(k)}
        if before:
            now = {k: current.get(k) for k in before}
            raise ValueError(f"resume: the checkpoint in {str(self.out)!r} was trained on {before}, not {now}; "
                             f"use the same data or another out directory")

    def _save(self, step: int, next_row: int) -> None:
        """Commit a checkpoint (atomic as a whole, see :mod:`procgen.train.checkpoint`); rank 0 only."""
        if not self.is_main or self.out is None:
            return
        state = {"step": step, "next_row": next_row, "optimizer": self.optimizer.state_dict(),
                 "seed": self.seed, "world_size": self.world_size, "batch_size": self.dataset.batch_size,
                 "grad_accum": self.grad_accum, "data": json.dumps(self.dataset.describe(), default=str)}
        checkpoint.save(self.out, self.module, state)
        _plot_losses(self.out / METRICS_NAME, self.out / PLOT_NAME)

    def _record(self, record: dict) -> None:
        self.history.append(record)
        if self.is_main and self.out is not None:
            with open(self.out / METRICS_NAME, "a") as handle:
                handle.write(json.dumps(record) + "\n")

    # --- the loop -------------------------------------------------------------------------------

    def run(self) -> dict:
        from torch.utils.data import DataLoader
        from tqdm.auto import tqdm

        began = time.perf_counter()
        first_step, next_row = self._restore()
        rows_per_step = self.dataset.batch_size * self.grad_accum * self.world_size
        dataset = self.dataset.with_start(next_row)
        loader = DataLoader(dataset, batch_size=None, num_workers=self.num_workers,
                            pin_memory=self.device.type == "cuda")
        batches = iter(loader)
        bar = tqdm(total=self.steps, initial=first_step, desc="train", dynamic_ncols=True,
                   disable=not (self.progress and self.is_main))
        loss_sum = torch.zeros((), device=self.device)
        token_count = torch.zeros((), device=self.device)
        steps_since_log = 0
        last_loss, last_eval, tokens, stopped = None, None, 0, False
        step = first_step
        self.ddp.train()
        for step in range(first_step + 1, self.steps + 1):
            torch.manual_seed(_step_seed(self.seed, step, self.rank))
            lr = lr_at(step, self.steps, self.lr, self.warmup_steps, self.schedule, self.min_lr_ratio)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            loss, seen, grad_norm = self._step(batches, step)
            loss_sum += loss
            token_count += seen
            steps_since_log += 1
            next_row += rows_per_step
            metrics = {}
            if step % self.log_every == 0 or step == self.steps:
                totals = self._all_reduce(torch.stack([loss_sum / steps_since_log, token_count]))
                last_loss = totals[0].item() / self.world_size
                tokens += int(totals[1].item())
                metrics = {"step": step, "loss": last_loss, "lr": lr, "tokens": tokens,
                           "elapsed": round(time.perf_counter() - began, 3)}
                if grad_norm is not None:
                    metrics["grad_norm"] = float(grad_norm)
                self._record(metrics)
                bar.set_postfix(loss=f"{last_loss:.4f}", lr=f"{lr:.2e}")
                loss_sum.zero_()
                token_count.zero_()
                steps_since_log = 0
            if self.evaluator is not None and ((self.eval_every and step % self.eval_every == 0)
                                               or step == self.steps):
                last_eval = self._evaluate(step)
                metrics = {**metrics, **{f"eval_{k}": v for k, v in (last_eval or {}).items()}}
            bar.update(1)
            stopped = self.callback is not None and self._callback(step, metrics)
            if stopped or step == self.steps or (self.save_every and step % self.save_every == 0):
                self._save(step, next_row)
            if stopped:
                break
        bar.close()
        del batches  # stops DataLoader workers
        self._write_debug_rows()
        return {"step": step, "loss": last_loss, "eval": last_eval,
                "rows": (step - first_step) * rows_per_step, "tokens": tokens,
                "seconds": time.perf_counter() - began, "stopped": stopped, "history": self.history,
                "model": self.module}

    def _step(self, batches, step: int):
        """One optimizer step over ``grad_accum`` micro-batches; returns (loss, tokens, grad norm)."""
        micro = []
        for _ in range(self.grad_accum):
            try:
                micro.append(next(batches))
            except StopIteration:
                raise ValueError(f"the training data ran out at step {step}; use a larger stop or "
                                 f"repeat=True") from None
        answer_tokens = [int((m["labels"][:, 1:] != -100).sum()) for m in micro]
        total = sum(answer_tokens)
        step_loss = torch.zeros((), device=self.device)
        seen = torch.zeros((), device=self.device)
        for index, batch in enumerate(micro):
            if self.debug_rows is not None:
                self.debug_rows.extend(batch["row_index"].tolist())
            weight = answer_tokens[index] / total if total else 1 / len(micro)  # loss per answer token
            last = index == len(micro) - 1
            sync = contextlib.nullcontext() if last or not self.distributed else self.ddp.no_sync()
            with sync:
                input_ids = batch["input_ids"].to(self.device, non_blocking=True)
                labels = batch["labels"].to(self.device, non_blocking=True)
                output = self.ddp(input_ids, labels=labels, **self._fast_path(len(input_ids)))
                loss = output[1] if isinstance(output, tuple) else output.loss
                (loss * weight).backward()
            step_loss += loss.detach() * weight
            seen += batch["attention_mask"].sum().to(self.device)
        grad_norm = None
        if self.grad_clip:
            grad_norm = torch.nn.utils.clip_grad_norm_(self.module.parameters(), self.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return step_loss, seen, grad_norm

    def _fast_path(self, rows: int) -> dict:
        """Keyword arguments that select the procgen GPT's scored-positions path (none for others)."""
        from procgen.train.model import GPT

        if not isinstance(self.module, GPT):
            return {}
        groups = self.length_groups if self.length_groups is not None else min(8, max(1, rows // 125))
        return {"only_scored": True, "length_groups": groups}

    def _evaluate(self, step: int) -> dict | None:
        """Rank 0 scores the bare model (no collectives, so the other ranks need not wait)."""
        if not self.is_main:
            return None
        result = self.evaluator(self.module)
        self._record({"step": step, **{f"eval_{k}": v for k, v in result.items()}})
        return result

    def _callback(self, step: int, metrics: dict) -> bool:
        decision = [bool(self.callback(step, metrics))] if self.is_main else [False]
        if self.distributed:
            dist.broadcast_object_list(decision, src=0)
        return decision[0]

    def _all_reduce(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.distributed:
            dist.all_reduce(tensor)
        return tensor

    def _write_debug_rows(self) -> None:
        if self.debug_rows is None:
            return
        gathered = [None] * self.world_size
        if self.distributed:
            dist.all_gather_object(gathered, self.debug_rows)
        else:
            gathered = [self.debug_rows]
        if self.is_main and self.out is not None:
            (self.out / ROWS_NAME).write_text(json.dumps({str(r): rows for r, rows in enumerate(gathered)}))


# --- helpers ------------------------------------------------------------------------------------

def _adamw(model, lr: float, weight_decay: float, betas) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices (2-D and up) only: not on biases, norms' gains."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise ValueError("the model has no trainable parameters (all frozen?)")
    groups = [{"params": [p for p in trainable if p.dim() >= 2], "weight_decay": weight_decay},
              {"params": [p for p in trainable if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, betas=tuple(betas))


def _step_seed(seed: int, step: int, rank: int) -> int:
    """Seed of the random state at ``step`` on ``rank`` (independent streams, never ``seed + step``)."""
    return derive_seed(seed, "train-step", step, rank)


def check_device(device) -> torch.device:
    """``device`` as a ``torch.device``; a one-line ValueError when it is no device name or the
    device is not on this machine (``"cuda"`` without CUDA, ``"cuda:3"`` with two GPUs).

    >>> check_device("cpu")
    device(type='cpu')
    """
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"device must be a torch device such as 'cpu', 'cuda' or 'cuda:1'; got {device!r}") from None
    if parsed.type == "cuda":  # checked without initialising CUDA (reproduce spawns its workers after this)
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if not count:
            raise ValueError(f"device {str(device)!r} is not available: torch.cuda.is_available() is False "
                             f"(no CUDA GPU, driver or CUDA build of torch here)")
        if parsed.index is not None and parsed.index >= count:
            raise ValueError(f"device {str(device)!r} is not available: this machine has {count} CUDA "
                             f"device(s), cuda:0 to cuda:{count - 1}")
    elif parsed.type == "meta":
        raise ValueError("device 'meta' holds no data to train or evaluate; choose cpu or cuda")
    elif parsed.type != "cpu":
        try:
            torch.empty(0, device=parsed)
        except Exception as err:  # RuntimeError, AssertionError, NotImplementedError, by backend
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0].split(". ")[0]
            raise ValueError(f"device {str(device)!r} is not available: {reason}") from None
    return parsed


def _setup_distributed(device):
    """Initialise torch.distributed under torchrun; return ``(distributed, created_group, device)``."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = f"cuda:{local_rank}" if torch.cuda.is_available() and world_size > 1 else (
            "cuda" if torch.cuda.is_available() else "cpu")
    device = check_device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    distributed = world_size > 1 or (dist.is_available() and dist.is_initialized())
    created = False
    if distributed and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        created = True
    return distributed, created, device


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop records after ``step`` (written after the last checkpoint by a run that then died)."""
    if not path.is_file():
        return
    kept = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
    path.write_text("".join(line + "\n" for line in kept))


def _plot_losses(metrics_path: Path, image_path: Path) -> None:
    """Plot training (and evaluation) loss against step; skipped when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    records = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()] \
        if metrics_path.is_file() else []
    train_points = [(r["step"], r["loss"]) for r in records if "loss" in r]
    eval_points = [(r["step"], r["eval_loss"]) for r in records if "eval_loss" in r]
    if not train_points and not eval_points:
        return
    figure, axes = plt.subplots(figsize=(6, 4))
    for points, label in ((train_points, "train"), (eval_points, "eval")):
        if points:
            axes.plot(*zip(*points), label=label, marker="o" if len(points) < 20 else None)
    axes.set_xlabel("step")
    axes.set_ylabel("loss (per answer token)")
    axes.set_yscale("log")
    axes.legend()
    figure.tight_layout()
    figure.savefig(image_path, dpi=100)
    plt.close(figure)


def _check_arguments(**values) -> None:
    """ValueError naming the first bad training argument and its allowed range."""
    positive_ints = ("steps", "batch_size", "grad_accum", "log_every")
    optional_positive_ints = ("eval_every", "save_every")
    for name in positive_ints:
        check_int(values[name], name, 1)
    for name in optional_positive_ints:
        check_int(values[name], name, 1, allow_none=True)
    check_int(values["warmup_steps"], "warmup_steps", 0, allow_none=True)
    check_int(values["num_workers"], "num_workers", 0)
    check_int(values["length_groups"], "length_groups", 1, allow_none=True)
    lr = values["lr"]
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"lr must be a number > 0; got {lr!r}")
    if values["schedule"] not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}; got {values['schedule']!r}")
    ratio = values["min_lr_ratio"]
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 <= ratio <= 1:
        raise ValueError(f"min_lr_ratio must be a number in [0, 1]; got {ratio!r}")
