"""``procgen train ...``: warm a GPT up, fine-tune with transferred layers, evaluate.

::

    procgen train warmup --task dyck --model 2_4_16 --steps 1000 --out runs/dyck --k 4
    procgen train finetune --task haystack --init runs/dyck --transfer attn,mlp --embeddings mean \\
        --steps 2000 --out runs/haystack
    procgen train eval --model-dir runs/haystack --task haystack -n 1000
    procgen train reproduce --experiment haystack --seeds 3 --budget small --out results

Task parameters follow the other options as ``--name value`` (``procgen list`` shows them), parsed
from the task's Param specs exactly as ``procgen generate TASK`` does. ``warmup`` and ``finetune``
write ``run_config.json`` (every argument, the resolved task parameters, the transfer report), the
metrics and the checkpoint into ``--out`` (plus ``--out``/hf, the same model as a Hugging Face GPT-2
folder that ``transformers.AutoModelForCausalLM.from_pretrained`` loads); run them under
``torchrun --nproc_per_node=N -m procgen.cli train ...`` for DDP. Bad arguments (unknown component,
missing checkpoint, a task whose vocabulary the model lacks, a ``--device`` not on this machine) give
one error line and exit status 2; a damaged or mismatched checkpoint file (``--init``,
``--model-dir``, ``--resume``) one line naming the file and exit status 1.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from procgen._checks import SPLITS
from procgen.cli.core import CommandFailed
from procgen.cli.generate import given_task_params, task_options
from procgen.train.model import CheckpointError
from procgen.train.reproduce import BUDGETS, experiment_names
from procgen.train.transfer import COMPONENTS, EMBEDDING_POLICIES

RUN_CONFIG_NAME = "run_config.json"
_TASK_PARAMS = {"ignore_unknown_options": True, "allow_extra_args": True,
                "help_option_names": ["-h", "--help"]}


class TrainGroup(click.Group):
    """Turns ValueErrors of the commands into one-line failures, also outside ``procgen``: exit 1
    for a bad checkpoint file (CheckpointError), 2 for a bad option value."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except CheckpointError as err:
            raise CommandFailed(" ".join(str(err).split()), exit_code=1) from err
        except ValueError as err:
            raise CommandFailed(" ".join(str(err).split()), exit_code=2) from err


def _check_device(ctx, param, value):
    """``--device`` callback: refuse a device that is not on this machine before any work."""
    if value is not None:
        from procgen.train.loop import check_device

        try:
            check_device(value)
        except ValueError as err:
            raise CommandFailed(f"--{err}", exit_code=2) from None  # "--device must be ...", "--device 'cuda' is not ..."
    return value


@click.group("train", cls=TrainGroup, context_settings={"help_option_names": ["-h", "--help"]})
def train():
    """Warm up, transfer and evaluate GPT models (needs torch).

    Task parameters follow the options as --name value (see `procgen list`).
    """


def _training_options(function):
    """Options shared by ``warmup`` and ``finetune`` (the arguments of procgen.train.loop.train)."""
    options = [
        click.option("--steps", type=click.IntRange(min=1), required=True, help="optimizer steps"),
        click.option("--out", "-o", type=click.Path(file_okay=False), required=True, metavar="DIR",
                     help="run directory: config, metrics, checkpoint"),
        click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-3, show_default=True,
                     help="peak learning rate"),
        click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True,
                     help="rows per micro-batch and rank"),
        click.option("--grad-accum", type=click.IntRange(min=1), default=1, show_default=True,
                     help="micro-batches per optimizer step"),
        click.option("--warmup-steps", type=click.IntRange(min=0), default=None,
                     help="linear warm-up steps [default: 10% of --steps]"),
        click.option("--schedule", type=click.Choice(["cosine", "constant"]), default="cosine", show_default=True),
        click.option("--min-lr-ratio", type=click.FloatRange(0, 1), default=0.1, show_default=True,
                     help="final learning rate of the cosine, relative to --lr"),
        click.option("--weight-decay", type=click.FloatRange(min=0), default=0.1, show_default=True),
        click.option("--grad-clip", type=click.FloatRange(min=0), default=1.0, show_default=True,
                     help="gradient-norm clip (0: none)"),
        click.option("--eval-every", type=click.IntRange(min=1), default=None,
                     help="evaluate every N steps [default: at the end only]"),
        click.option("--eval-rows", type=click.IntRange(min=1), default=512, show_default=True,
                     help="test-split rows per evaluation"),
        click.option("--log-every", type=click.IntRange(min=1), default=10, show_default=True),
        click.option("--save-every", type=click.IntRange(min=1), default=None,
                     help="checkpoint every N steps [default: at the end only]"),
        click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
                     help="seed of the training rows and of the model initialisation"),
        click.option("--block-size", type=click.IntRange(min=1), default=None,
                     help="context length [default: the task's longest row; 256 with --pack]"),
        click.option("--pack", is_flag=True, help="pack rows into blocks of --block-size tokens (LM-style tasks)"),
        click.option("--shuffle-tokens", is_flag=True,
                     help="control: permute the tokens within every row (seeded per row)"),
        click.option("--device", default=None, callback=_check_device,
                     help="torch device [default: cuda if available, else cpu]"),
        click.option("--num-workers", type=click.IntRange(min=0), default=0, show_default=True,
                     help="DataLoader worker processes"),
        click.option("--resume", is_flag=True, help="continue the checkpoint in --out"),
        click.option("--quiet", "-q", is_flag=True, help="no progress bar"),
    ]
    for option in reversed(options):
        function = option(function)
    return function


@train.command("warmup", context_settings=_TASK_PARAMS)
@click.option("--task", default="dyck", show_default=True, help="procedural task to warm up on")
@click.option("--model", "model_name", default="2_4_16", show_default=True,
              help="GPT size as layers_heads_width")
@click.option("--dropout", type=click.FloatRange(0, 1, max_open=True), default=0.0, show_default=True)
@_training_options
@click.pass_context
def warmup_command(ctx, task, model_name, dropout, **options):
    """Train a fresh GPT on a procedural task (rows generated on the fly).

    \b
    Example:
      procgen train warmup --task dyck --model 2_4_16 --steps 1000 --out runs/dyck --k 4
    """
    import torch

    from procgen.train.loop import build_model

    params = _task_params(ctx, task)
    torch.manual_seed(options["seed"])
    model = build_model(model_name, task, params, block_size=_block_size(task, params, options), dropout=dropout)
    _run(ctx, model, task, params, options, extra={"model": model_name})


@train.command("finetune", context_settings=_TASK_PARAMS)
@click.option("--task", required=True, help="target task, e.g. haystack")
@click.option("--init", "init_dir", type=click.Path(file_okay=False), required=True, metavar="DIR",
              help="checkpoint to transfer from (a warmup run directory)")
@click.option("--transfer", "components", default="all", show_default=True,
              help=f"comma-separated components to copy: {', '.join(COMPONENTS)}")
@click.option("--embeddings", type=click.Choice(EMBEDDING_POLICIES), default="mean", show_default=True,
              help="token embeddings of the new model: keep its random ones, re-draw, or the donor's mean row")
@click.option("--freeze", "frozen", default=None, help="comma-separated components to freeze after the transfer")
@_training_options
@click.pass_context
def finetune_command(ctx, task, init_dir, components, embeddings, frozen, **options):
    """Train a GPT for TASK whose components come from a warmed-up checkpoint.

    The new model has the donor's architecture and the task's vocabulary.

    \b
    Example:
      procgen train finetune --task haystack --init runs/dyck --transfer attn,mlp \\
          --embeddings mean --steps 2000 --out runs/haystack
    """
    import dataclasses

    import torch

    from procgen.tasks import get_task
    from procgen.train.model import GPT
    from procgen.train.transfer import freeze, transfer

    wanted = _components("--transfer", components)
    frozen = _components("--freeze", frozen) if frozen else []
    params = _task_params(ctx, task)
    donor = _load_model("--init", init_dir)
    torch.manual_seed(options["seed"])
    config = dataclasses.replace(donor.config, vocab_size=get_task(task).vocab_size(params),
                                 block_size=_block_size(task, params, options))
    model = GPT(config)
    report = transfer(donor, model, wanted, embeddings=embeddings)
    if frozen:
        freeze(model, frozen)
    _run(ctx, model, task, params, options,
         extra={"init": str(init_dir), "transfer": {"components": wanted, "embeddings": embeddings,
                                                     "copied": report["copied"], "frozen": frozen}})


@train.command("eval", context_settings=_TASK_PARAMS)
@click.option("--model-dir", type=click.Path(file_okay=False), required=True, metavar="DIR",
              help="checkpoint directory (model.safetensors + config.json)")
@click.option("--task", required=True, help="task to score, e.g. haystack")
@click.option("-n", "--rows", "n", type=click.IntRange(min=1), default=1000, show_default=True, help="rows to score")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--split", type=click.Choice(SPLITS), default="test", show_default=True,
              help="split of the rows (training reads train, so test never overlaps it)")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--device", default=None, callback=_check_device,
              help="torch device [default: cuda if available, else cpu]")
@click.option("--scoring", type=click.Choice(["reference", "all"]), default="all", show_default=True,
              help="reference: the positions the paper's official harness scores; all: every answer token")
@click.option("--out", "-o", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="also write the result (with its arguments) as JSON to FILE")
@click.pass_context
def eval_command(ctx, model_dir, task, n, seed, split, batch_size, device, scoring, out):
    """Per-token answer accuracy, exact match and loss of a checkpoint on TASK.

    \b
    Example:
      procgen train eval --model-dir runs/haystack --task haystack -n 1000
    """
    import torch

    from procgen.train.evaluate import evaluate
    from procgen.train.loop import check_device

    params = _task_params(ctx, task)
    model = _load_model("--model-dir", model_dir)
    model.to(check_device(device or ("cuda" if torch.cuda.is_available() else "cpu")))
    result = evaluate(model, task, n=n, seed=seed, split=split, batch_size=batch_size, scoring=scoring, **params)
    text = json.dumps(result)
    click.echo(text)
    if out is not None:
        record = {"command": "eval", "options": dict(ctx.params), "task_params": params, "result": result}
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(record, indent=2) + "\n")


@train.command("reproduce", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--experiment", "experiments", default="haystack", show_default=True,
              help=f"comma-separated experiments ({', '.join(experiment_names())}) or all")
@click.option("--seeds", type=click.IntRange(min=1), default=None, help="number of seeds [default: the budget's]")
@click.option("--budget", "--protocol", "budget", type=click.Choice(list(BUDGETS)), default="small",
              show_default=True, help="paper: the official fine-tune protocol exactly; quarter: the same at a "
              "quarter of its rows; small: a short CPU budget; smoke: a seconds-long pipeline check")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=1, show_default=True,
              help="runs at once, in spawned worker processes (one torch thread each)")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="torch threads per run [default: 1 with --jobs > 1, else torch's default]")
@click.option("--out", "-o", type=click.Path(file_okay=False), default="results", show_default=True, metavar="DIR",
              help="results.md, runs.json, results-*.png, curves-*.png, warm-up checkpoints; finished runs are reused")
@click.option("--device", default=None, callback=_check_device,
              help="torch device [default: cuda if available, else cpu]")
@click.option("--progress", is_flag=True, help="a progress bar for every training run")
@click.option("--quiet", "-q", is_flag=True, help="print only the table")
def reproduce_command(experiments, seeds, budget, jobs, threads, out, device, progress, quiet):
    """Warm up, transfer, fine-tune and score the paper's diagnostic experiments over seeds.

    Writes a Markdown table (mean ± std next to the paper's numbers), a JSON of every run and
    PNG plots into --out.

    \b
    Example:
      procgen train reproduce --experiment haystack --seeds 3 --budget quarter --jobs 2 --out results
    """
    from procgen.train.reproduce import reproduce

    result = reproduce(experiments, seeds=seeds, budget=budget, out=out, device=device, progress=progress,
                       log=None if quiet else click.echo, jobs=jobs, threads=threads)
    click.echo(result["table"])
    click.echo(f"{len(result['runs'])} runs, {result['seconds']:.0f} s -> {', '.join(result['files'])}")


# --- helpers ------------------------------------------------------------------------------------

def _run(ctx, model, task: str, params: dict, options: dict, extra: dict) -> None:
    """Write ``run_config.json`` (rank 0), train, and print a one-line summary."""
    from procgen.train.loop import train as train_loop

    out = Path(options["out"])
    record = {"command": ctx.info_name, "options": dict(ctx.params), "task": task, "task_params": params,
              "model_config": _jsonable(vars(model.config)), **extra}
    if int(os.environ.get("RANK", "0")) == 0:
        out.mkdir(parents=True, exist_ok=True)
        config_path = out / RUN_CONFIG_NAME
        if options["resume"] and config_path.is_file():
            config_path = out / f"run_config.resume-{_count_resumes(out)}.json"
        config_path.write_text(json.dumps(_jsonable(record), indent=2) + "\n")
    summary = train_loop(
        model, task, options["steps"], params=params, lr=options["lr"], batch_size=options["batch_size"],
        grad_accum=options["grad_accum"], warmup_steps=options["warmup_steps"], schedule=options["schedule"],
        min_lr_ratio=options["min_lr_ratio"], weight_decay=options["weight_decay"],
        grad_clip=options["grad_clip"] or None, eval_every=options["eval_every"], eval_rows=options["eval_rows"],
        log_every=options["log_every"], save_every=options["save_every"], out=out, resume=options["resume"],
        seed=options["seed"], progress=not options["quiet"], device=options["device"],
        num_workers=options["num_workers"], pack=options["pack"], shuffle_tokens=options["shuffle_tokens"])
    if int(os.environ.get("RANK", "0")) == 0:
        line = f"step {summary['step']}: loss {summary['loss']:.4f}" if summary["loss"] is not None else \
            f"step {summary['step']}: nothing left to train"
        if summary["eval"]:
            scores = summary["eval"]
            line += f", test accuracy {scores['accuracy']:.4f}, exact match {scores['exact_match']:.4f}"
        click.echo(f"{line} -> {out}")


def _task_params(ctx, task: str) -> dict:
    """Resolve the ``--name value`` task parameters left over in ``ctx.args`` with the task's specs."""
    from procgen.tasks import get_task

    spec = get_task(task)
    parser = click.Command(f"--task {task}", params=task_options(spec))  # errors name "... warmup --task dyck"
    with parser.make_context(parser.name, list(ctx.args), parent=ctx) as sub:
        return spec.resolve_params(given_task_params(sub, spec))


def _block_size(task: str, params: dict, options: dict) -> int:
    """``--block-size``, checked against the task's longest row; by default just long enough."""
    from procgen.tasks import get_task

    longest = get_task(task).max_row_length(params)
    block_size = options["block_size"]
    if block_size is None:
        return 256 if options["pack"] else longest
    if block_size < longest and not options["pack"]:
        raise click.UsageError(f"--block-size must be >= the longest row of {task} ({longest} tokens) unless "
                               f"--pack; got {block_size}")
    return block_size


def _components(option: str, text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in COMPONENTS]
    if not names or unknown:
        got = repr(unknown[0]) if unknown else "nothing"
        raise click.UsageError(f"{option}: unknown component {got}; choose from {', '.join(COMPONENTS)} "
                               f"(comma-separated)")
    return names


def _load_model(option: str, directory):
    from procgen.train.model import GPT

    path = Path(directory)
    if not path.is_dir():
        raise click.UsageError(f"{option}: checkpoint directory {str(path)!r} does not exist")
    try:
        return GPT.from_pretrained(path)
    except FileNotFoundError as err:
        raise click.UsageError(f"{option}: {err}") from err
    except CheckpointError as err:  # damaged or mismatched files: exit 1, naming them
        raise CommandFailed(f"{option}: {' '.join(str(err).split())}", exit_code=1) from err


def _count_resumes(out: Path) -> int:
    return 1 + sum(1 for _ in out.glob("run_config.resume-*.json"))


def _jsonable(value):
    """``value`` with tuples as lists and non-JSON leaves as strings."""
    return json.loads(json.dumps(value, default=str))
