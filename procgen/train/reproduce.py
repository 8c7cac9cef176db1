"""Reproduce the paper's diagnostic results with procgen data alone.

One run = (optional) procedural warm-up of a fresh GPT, transfer of some of its components into a
fresh GPT for a diagnostic task (token embeddings set to the mean of the warm-up embeddings),
fine-tuning on freshly generated rows, and per-token answer accuracy on held-out ``test`` rows.
Experiments, conditions and budgets are plain data (the dataclasses below); :func:`reproduce`
runs them over seeds and writes

* ``runs.jsonl`` -- one record per finished run, appended as runs finish (a re-run with the same
  settings skips them, so an interrupted reproduction resumes where it stopped; a fine-tune that
  was interrupted itself resumes from its last checkpoint under ``finetunes/``);
* ``runs.json`` -- every run of this reproduction (settings, accuracy, learning curve, seconds);
* ``results.md`` -- per experiment, mean +- std over seeds next to the paper's numbers;
* ``results-<experiment>.png`` -- the same as bars (reference numbers as black ticks),
  ``curves-<experiment>.png`` -- held-out accuracy during fine-tuning, per seed and mean;
* ``warmups/`` -- the warm-up checkpoints (shared by every condition that uses them).

Every run is scored twice on the same held-out rows: ``accuracy`` with the official harness's
scored positions (``scoring="reference"``, the number to put next to the paper's) and
``accuracy_all`` on every answer token. ``jobs=N`` runs independent warm-ups and fine-tunes in N
worker processes (spawned, one thread each by default); a run's result does not depend on it.

The experiments and budgets are data in :mod:`procgen.train.experiments`; the tables and figures
come from :mod:`procgen.train.report`.

Seeds: every random draw of a run (the models' initialisation, the weight-shuffle control) is
seeded by :func:`procgen._rng.derive_seed` from the run's seed and a purpose. Records of version 2
(written before that, with another derivation of the same seeds) are still read back as finished
runs of the same settings, so the published tables re-render without re-training; they say
``"version": 2`` in their spec.

>>> reproduce("haystack", seeds=3, budget="quarter", out="results", jobs=2)      # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import torch

from procgen._checks import check_int
from procgen._rng import derive_seed
from procgen.train.experiments import (BUDGETS, EXPERIMENTS, WARMUP_RECIPES, Budget, Condition,  # noqa: F401
                                       Donor, Experiment, WarmUp, experiment_names, get_budget, get_experiments,
                                       warmup_lr_warmup)
from procgen.train.report import plot_results, results_table

EVAL_SEED = 0  # every condition and seed is scored on the same held-out rows
CURVE_SEED = 1  # rows of the learning curves (test split too, other rows than the final score's)
RUNS_LOG = "runs.jsonl"
RUNS_JSON = "runs.json"
TABLE_NAME = "results.md"
WARMUP_DIR = "warmups"
FINETUNE_DIR = "finetunes"
# context lengths of the official harness's fine-tune models (n_positions in its task files)
OFFICIAL_POSITIONS = {"haystack": 100, "addition": 40, "reversed_addition": 40, "multiplication": 40}
OFFICIAL_BATCH = {"multiplication": 64}  # task_multiplication.py overrides the harness's batch of 1000
_RECORD_VERSION = 3  # 3: seeds from derive_seed; 2: both scorings, protocol fields (still read back); 1: not reused
_LEGACY_VERSION = 2


# --- running ------------------------------------------------------------------------------------

def _derived_seed(seed: int, *names: str) -> int:
    """An independent torch seed per (seed, purpose), never ``seed + i`` arithmetic."""
    return derive_seed(seed, "reproduce", *names)


def _key(value) -> str:
    return hashlib.sha1(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:12]


def warmup_accuracy(model, task: str, params: dict, rows: int = 1000) -> float:
    """A warm-up's own held-out accuracy on the tokens a perfect model predicts.

    For ``dyck``/``dyck_shuffle`` the closing brackets (whether a bracket closes is a coin flip,
    which one closes is determined); for every other task the answer tokens. ``rows`` rows of the
    ``test`` split, seed 0.
    """
    from procgen.api import generate
    from procgen.train.data import collate_batch
    from procgen.train.evaluate import evaluate_batch

    batch = generate(task, rows, seed=0, split="test", **params)
    if task not in ("dyck", "dyck_shuffle"):
        return evaluate_batch(model, batch, batch_size=500)["accuracy"]
    k = batch.params["k"]
    inputs = collate_batch(batch, block_size=model.config.block_size)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        predicted = model(inputs["input_ids"])[0][:, :-1].argmax(-1)
    model.train(was_training)
    target = inputs["input_ids"][:, 1:]
    closing = (target >= k) & (inputs["attention_mask"][:, 1:] == 1)
    return float(((predicted == target) & closing).sum() / closing.sum())


def _warmup_steps_lr(warmup: WarmUp, budget: Budget) -> tuple[int, float]:
    """The warm-up's steps and peak lr: its recipe's where the budget runs real warm-ups."""
    if budget.official_model and warmup.steps is not None:
        return warmup.steps, warmup.lr
    return budget.warmup_steps, budget.warmup_lr


def _warmup_spec(warmup: WarmUp, model: str, seed: int, budget: Budget, version: int = _RECORD_VERSION) -> dict:
    steps, lr = _warmup_steps_lr(warmup, budget)
    seeding = {} if version == _LEGACY_VERSION else {"seeding": version}  # a warm-up's init depends on it
    # the n-gram control's key only where it is set, so that every other warm-up keeps its run keys
    ngram = {} if warmup.ngram_order is None else {"ngram_order": warmup.ngram_order}
    return {**seeding, "task": warmup.task, "params": dict(warmup.params), "shuffle_tokens": warmup.shuffle_tokens,
            **ngram, "model": model, "seed": seed, "steps": steps, "batch_size": budget.warmup_batch_size,
            "lr": lr, "lr_warmup_steps": min(warmup_lr_warmup(budget), steps),
            "weight_decay": budget.weight_decay}


def _run_spec(experiment: Experiment, condition: Condition, target: str, seed: int, budget: Budget,
              version: int = _RECORD_VERSION) -> dict:
    """Everything that determines a run's result (its identity for resuming and sharing).

    ``version=2``: the spec the same run had before seeds came from derive_seed (to find its record).
    """
    extra = {"target_params": dict(experiment.params)} if experiment.params else {}
    return {"version": version, "target": target, **extra, "model": experiment.model, "seed": seed,
            "donors": [{"components": list(d.components), "warmup": _warmup_spec(d.warmup, experiment.model,
                                                                                  seed, budget, version)}
                       for d in condition.donors],
            "shuffle_weights": condition.shuffle_weights,
            "finetune": {k: v for k, v in asdict(budget).items() if k not in ("name", "seeds")}}


class _Runner:
    """Runs warm-ups (each once, checkpointed under ``out/warmups``) and fine-tunes."""

    def __init__(self, out: Path, budget: Budget, device, progress: bool, log):
        self.out, self.budget, self.device, self.progress, self.log = out, budget, device, progress, log
        self.models = {}

    def warm_model(self, warmup: WarmUp, model_name: str, seed: int):
        """The warmed-up model for ``warmup`` and ``seed`` (trained once, then loaded)."""
        from procgen.train.loop import build_model, train
        from procgen.train.model import GPT

        spec = _warmup_spec(warmup, model_name, seed, self.budget)
        key = _key(spec)
        if key in self.models:
            return self.models[key]
        suffix = "-shuffled" if warmup.shuffle_tokens else ""
        suffix += "" if warmup.ngram_order is None else f"-{warmup.ngram_order}gram"
        directory = self.out / WARMUP_DIR / f"{warmup.task}{suffix}-{model_name}-seed{seed}-{key}"
        record_path = directory / "warmup.json"
        if record_path.is_file() and (directory / "model.safetensors").is_file():
            model = GPT.from_pretrained(directory)
        else:
            self.log(f"warm-up {warmup.label()} ({model_name}, seed {seed})")
            task, params = warmup.data()  # the task itself, or its n-gram control (task "ngram")
            torch.manual_seed(_derived_seed(seed, "warmup", model_name, warmup.task))
            model = build_model(model_name, task, params)
            b = self.budget
            # the shuffled control reads the same rows (same seed), only permuted within each row
            steps, lr = _warmup_steps_lr(warmup, b)
            summary = train(model, task, steps, params=params, lr=lr,
                            batch_size=b.warmup_batch_size, warmup_steps=min(warmup_lr_warmup(b), steps),
                            weight_decay=b.weight_decay, eval_data=False, out=directory, seed=seed,
                            resume=True,  # an interrupted warm-up continues from its last checkpoint
                            save_every=max(1, steps // 8),  # long warm-ups (8000 steps) span sessions
                            progress=self.progress, device=self.device, shuffle_tokens=warmup.shuffle_tokens,
                            log_every=max(1, steps // 50))
            (directory / "trainer_state.pt").unlink(missing_ok=True)  # only the weights are needed
            shutil.rmtree(directory / "checkpoints", ignore_errors=True)  # hard links to the top-level files
            model = summary["model"].cpu()
            # a control has no held-out accuracy of its own task to report
            controlled = warmup.shuffle_tokens or warmup.ngram_order is not None
            accuracy = None if controlled else warmup_accuracy(model, warmup.task, params)
            record_path.write_text(json.dumps({**spec, "final_loss": summary["loss"], "heldout_accuracy": accuracy,
                                               "seconds": round(summary["seconds"], 2)}, indent=2) + "\n")
        self.models[key] = model
        return model

    def finetune(self, experiment: Experiment, condition: Condition, target: str, seed: int,
                 directory: Path | None = None) -> dict:
        """Initialise a model for ``target`` as ``condition`` says, fine-tune it, score it.

        With ``directory``, the fine-tune checkpoints there every ``eval_every`` steps and resumes
        from it; the directory is removed once the run is scored.
        """
        from procgen.api import generate
        from procgen.tasks import get_task
        from procgen.train.evaluate import evaluate
        from procgen.train.loop import METRICS_NAME, train
        from procgen.train.model import GPT, GPTConfig

        b = self.budget
        began = time.perf_counter()
        spec = get_task(target)
        params = spec.resolve_params(dict(experiment.params))
        block_size = spec.max_row_length(params)
        if b.official_model and target in OFFICIAL_POSITIONS:
            block_size = max(block_size, OFFICIAL_POSITIONS[target])
        torch.manual_seed(_derived_seed(seed, "target", experiment.model, target))
        model = GPT(GPTConfig.from_name(experiment.model, vocab_size=spec.vocab_size(params), block_size=block_size,
                                        tie_embeddings=b.tie_embeddings))
        self._initialise(model, condition, experiment.model, seed)
        curve_rows = generate(target, b.curve_rows, seed=CURVE_SEED, split="test", **params)
        resume = directory is not None
        batch_size = OFFICIAL_BATCH.get(target, b.finetune_batch_size) if b.official_model else b.finetune_batch_size
        summary = train(model, target, b.finetune_steps, params=params, lr=b.finetune_lr,
                        batch_size=batch_size, warmup_steps=min(b.lr_warmup_steps, b.finetune_steps),
                        min_lr_ratio=b.min_lr_ratio, betas=b.betas, weight_decay=b.weight_decay,
                        scoring=b.scoring, eval_every=b.eval_every, eval_data=curve_rows, seed=seed,
                        progress=self.progress, device=self.device, log_every=max(1, b.finetune_steps // 50),
                        out=directory, resume=resume, save_every=b.eval_every if resume else None)
        model = summary["model"]
        history = summary["history"]
        if resume:  # the whole run's records, also those written before an interruption
            lines = (directory / METRICS_NAME).read_text().splitlines()
            history = [json.loads(line) for line in lines if line.strip()]
        scores = {scoring: evaluate(model, target, n=b.eval_rows, seed=EVAL_SEED, split="test", batch_size=500,
                                    scoring=scoring, **params) for scoring in ("reference", "all")}
        curve = [[r["step"], r["eval_accuracy"]] for r in history if "eval_accuracy" in r]
        losses = [[r["step"], r["loss"]] for r in history if "loss" in r]
        if resume:
            shutil.rmtree(directory, ignore_errors=True)
        reference, every = scores["reference"], scores["all"]
        return {"accuracy": reference["accuracy"], "accuracy_all": every["accuracy"],
                "exact_match": every["exact_match"], "eval_loss": reference["loss"], "eval_rows": reference["rows"],
                "scored_tokens": reference["tokens"], "answer_tokens": every["tokens"],
                "final_train_loss": summary["loss"], "curve": curve, "train_loss": losses,
                "seconds": round(time.perf_counter() - began, 2)}

    def _initialise(self, model, condition: Condition, model_name: str, seed: int) -> None:
        """Copy the donors' components into ``model`` (nothing for no warm-up)."""
        from procgen.train.transfer import assemble, shuffle_weights, transfer

        donors = {}
        everything = any("all" in d.components for d in condition.donors)
        for donor in condition.donors:
            source = self.warm_model(donor.warmup, model_name, seed)
            components = list(donor.components)
            if self.budget.official_model and "all" in components and \
                    source.config.block_size < model.config.block_size:
                components = ["attn", "mlp", "ln"]  # official: positions too short to cover the target stay random
            if condition.shuffle_weights:
                source = _copy(source)
                shuffle_weights(source, components, seed=_derived_seed(seed, "shuffle_weights"))
            donors.update({component: source for component in components})
        # official: token embeddings are the donor's mean only when everything is transferred
        embeddings = "mean" if everything or not self.budget.official_model else "keep"
        if len({id(source) for source in donors.values()}) == 1:
            source = next(iter(donors.values()))
            transfer(source, model, list(donors), embeddings=embeddings)
        elif donors:
            assemble(donors, into=model, embeddings=embeddings)


def _copy(model):
    clone = type(model)(model.config)
    clone.load_state_dict(model.state_dict())
    return clone


def reproduce(experiments="haystack", seeds: int | None = None, budget="small", out="results", device=None,
              progress: bool = False, log=print, jobs: int = 1, threads: int | None = None) -> dict:
    """Run ``experiments`` over ``seeds`` seeds with ``budget``; write the results into ``out``.

    Parameters
    ----------
    experiments : str or list of str, default "haystack"
        Experiment names (see :data:`EXPERIMENTS`), comma-separated, or ``"all"``.
    seeds : int, optional
        Seeds 0 .. seeds-1 (default: the budget's).
    budget : str or Budget, default "small"
        The protocol: ``"paper"`` (the official fine-tune exactly), ``"quarter"`` (the same at a
        quarter of its rows), ``"small"`` (a short CPU budget), ``"smoke"`` (seconds, a pipeline
        check) or a :class:`Budget`.
    out : path, default "results"
        Output directory (see the module docstring). Finished runs found in ``out/runs.jsonl``
        with identical settings are reused, not re-run.
    device : str, optional
        Torch device (default: cuda if available, else cpu).
    progress : bool, default False
        Progress bars for every training run.
    log : callable, default print
        Receives one line per run started and finished (``None`` for silence).
    jobs : int, default 1
        Runs at once, in this many spawned worker processes (1: in this process).
    threads : int, optional
        Torch threads per run (default: 1 with several jobs, else torch's own default).

    Returns
    -------
    dict
        ``runs`` (the records), ``table`` (the Markdown text), ``files`` (paths written) and
        ``seconds`` (wall-clock time of this call).
    """
    chosen = get_experiments(experiments)
    budget = get_budget(budget)
    seeds = budget.seeds if seeds is None else seeds
    seeds = check_int(seeds, "seeds", 1)
    jobs = check_int(jobs, "jobs", 1)
    if threads is not None:
        try:
            threads = check_int(threads, "threads", 1)
        except ValueError:
            raise ValueError(f"threads must be None or an integer >= 1; got {threads!r}") from None
    threads = threads if threads is not None else (1 if jobs > 1 else None)
    log = log or (lambda line: None)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    finished = _read_log(out / RUNS_LOG)
    # seeds outermost: a reproduction stopped early still has complete seeds for every condition
    plan = [(experiment, condition, target, seed)
            for seed in range(seeds) for experiment in chosen
            for condition in experiment.conditions for target in experiment.targets]
    keys = [_finished_key(finished, e, c, t, s, budget) for e, c, t, s in plan]
    todo = [(run, key) for run, key in zip(plan, keys) if key not in finished]
    warmups = list(dict.fromkeys((d.warmup, run[0].model, run[3]) for run, _ in todo for d in run[1].donors))

    def record_result(run, key, result):
        experiment, condition, target, seed = run
        finished[key] = {"key": key, "spec": _run_spec(experiment, condition, target, seed, budget), "result": result}
        with open(out / RUNS_LOG, "a") as handle:
            handle.write(json.dumps(finished[key]) + "\n")
        log(f"    [{experiment.name}] {condition.name} -> {target}, seed {seed}: accuracy "
            f"{100 * result['accuracy']:.1f}% (all answer tokens {100 * result['accuracy_all']:.1f}%, "
            f"{result['seconds']:.0f} s)")

    for run, _ in todo:
        log(f"[{run[0].name}] {run[1].name} -> {run[2]}, seed {run[3]}: queued")
    settings = (str(out), budget, device, progress, threads)
    if jobs == 1:
        with _torch_threads(threads):
            runner = _Runner(out, budget, device, progress, log)
            for run, key in todo:
                record_result(run, key, runner.finetune(*run, directory=out / FINETUNE_DIR / key))
    elif todo:
        from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, as_completed, wait

        # spawn, never fork: numba's parallel kernels may already have started OpenMP threads here
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            # warm-ups first (each trained once, shared by the conditions that use it), queued with
            # the fine-tunes that need none; the others once every warm-up is there
            pending = [pool.submit(_warmup_job, settings, *w) for w in warmups]
            futures = {pool.submit(_finetune_job, settings, run, key): (run, key)
                       for run, key in todo if not run[1].donors}
            done, _ = wait(pending, return_when=FIRST_EXCEPTION)
            for future in done:
                future.result()  # re-raises a worker's error here
            futures.update({pool.submit(_finetune_job, settings, run, key): (run, key)
                            for run, key in todo if run[1].donors})
            for future in as_completed(futures):
                run, key = futures[future]
                record_result(run, key, future.result())
    records = []
    for (experiment, condition, target, seed), key in zip(plan, keys):
        records.append({"experiment": experiment.name, "condition": condition.name,
                        "recipe": condition.recipe(), "target": target, "seed": seed,
                        "budget": budget.name, "key": key, "spec": finished[key]["spec"],
                        **finished[key]["result"]})
    seconds = time.perf_counter() - began
    table = results_table(chosen, records, budget, seeds)
    (out / TABLE_NAME).write_text(table)
    (out / RUNS_JSON).write_text(json.dumps({"budget": asdict(budget), "seeds": seeds,
                                             "experiments": [e.name for e in chosen],
                                             "seconds": round(seconds, 1), "runs": records}, indent=1) + "\n")
    files = [out / TABLE_NAME, out / RUNS_JSON]
    files += plot_results(chosen, records, out)
    return {"runs": records, "table": table, "files": [str(f) for f in files], "seconds": seconds}


class _torch_threads:
    """Context manager: torch's intra-op thread count set to ``threads`` (None: unchanged)."""

    def __init__(self, threads: int | None):
        self.threads, self.before = threads, None

    def __enter__(self):
        if self.threads is not None:
            self.before = torch.get_num_threads()
            torch.set_num_threads(self.threads)

    def __exit__(self, *exc):
        if self.before is not None:
            torch.set_num_threads(self.before)


def _warmup_job(settings, warmup: WarmUp, model_name: str, seed: int) -> None:
    """Worker process: train (or find) one warm-up checkpoint."""
    out, budget, device, progress, threads = settings
    with _torch_threads(threads):
        _Runner(Path(out), budget, device, progress, lambda line: None).warm_model(warmup, model_name, seed)


def _finetune_job(settings, run, key: str) -> dict:
    """Worker process: one fine-tune (resumable under ``finetunes/<key>``), scored."""
    out, budget, device, progress, threads = settings
    with _torch_threads(threads):
        runner = _Runner(Path(out), budget, device, progress, lambda line: None)
        return runner.finetune(*run, directory=Path(out) / FINETUNE_DIR / key)


def _finished_key(finished: dict, experiment, condition, target, seed, budget) -> str:
    """The run's key; that of its version-2 record instead when only that one is finished."""
    key = _key(_run_spec(experiment, condition, target, seed, budget))
    if key not in finished:
        legacy = _key(_run_spec(experiment, condition, target, seed, budget, _LEGACY_VERSION))
        if legacy in finished:
            return legacy
    return key


def _read_log(path: Path) -> dict:
    """Finished runs of earlier calls, by key (a torn last line from a killed run is ignored)."""
    finished = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            finished[record["key"]] = record
    return finished


