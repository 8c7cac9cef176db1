"""The ``procgen`` command line (DESIGN §3).

::

    procgen list [--json]
    procgen generate dyck -n 1e6 --out data/dyck --shards 4 --workers 2 --k 4 --max-depth 16
    procgen validate data/dyck
    procgen info data/dyck [--json]
    procgen show data/dyck -n 5
    procgen export data/dyck --out nanogpt/dyck/train.bin      # or --format parquet|jsonl
    procgen bench | train ... | push DIR REPO

Task parameters are not written per task: ``procgen generate TASK`` builds its options from the
task's :class:`procgen.tasks.Param` specs (``max_depth`` -> ``--max-depth``; booleans as
``--closed`` / ``--no-closed`` / ``--closed false``; ``none`` for nullable parameters;
comma-separated lists for multi-valued ones, e.g. ``--rule 30,90,110``).

Errors are one line on stderr, ``procgen: error: <message>``: exit 2 for bad arguments (click
usage errors and the library's ValueErrors), 1 for invalid or incomplete datasets and I/O errors,
130 when interrupted. Importing this module is cheap: numba, pyarrow and datasets load inside the
commands that need them, and ``train``/``push``/``export`` are imported only when invoked.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import re
import signal
import sys
import time
from pathlib import Path

import click

import procgen

# procgen._rng.SPLITS, repeated here because importing _rng loads numba (tests keep them equal)
SPLITS = ("train", "validation", "test")

# command name -> ("module:attribute", one-line help shown by `procgen --help`, install hint)
LAZY_COMMANDS = {
    "train": ("procgen.train.cli:train", "Warm up, transfer and evaluate GPT models (needs torch).",
              'pip install "procgen-data[train]"'),
    "push": ("procgen.hub:push_command", "Upload a dataset to the Hugging Face Hub as Parquet + card.", ""),
    "export": ("procgen.export:export_command", "Export a dataset to another format.", ""),
}

# options of `procgen generate TASK` that are not task parameters (a task parameter may not reuse them)
_GENERIC_OPTIONS = ("n", "tokens", "out", "shards", "workers", "seed", "split", "shard_index", "overwrite", "quiet")
_NONE_WORDS = ("none", "null")
_TRUE_WORDS = ("true", "yes", "on", "1")
_FALSE_WORDS = ("false", "no", "off", "0")


class CommandFailed(click.ClickException):
    """A one-line failure with an explicit exit status (1: bad data or I/O, 2: bad usage)."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


class LazyGroup(click.Group):
    """A click group whose ``lazy`` subcommands are imported from ``"module:attr"`` when invoked.

    ``lazy`` maps a command name to ``(import path, short help, install hint)``; the short help is
    shown by ``--help`` without importing anything. A module that cannot be imported turns the
    command into the one-line error ``procgen NAME is not available: <reason>`` (exit 2).
    """

    def __init__(self, *args, lazy: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def get_command(self, ctx, name):
        if name in self.commands or name not in self.lazy:
            return super().get_command(ctx, name)
        target, _, hint = self.lazy[name]
        module_name, attribute = target.split(":")
        try:
            command = getattr(importlib.import_module(module_name), attribute)
        except ImportError as err:
            missing = getattr(err, "name", None) or ""
            ours = missing == "procgen" or missing.startswith("procgen.")  # a part of procgen not there yet
            advice = f" (install it with: {hint})" if hint and not ours else ""
            raise CommandFailed(f"procgen {name} is not available: {err}{advice}", exit_code=2) from err
        except AttributeError as err:
            raise CommandFailed(f"procgen {name} is not available: {err}", exit_code=2) from err
        self.add_command(command, name)
        return command

    def format_commands(self, ctx, formatter):
        rows = []
        width = formatter.width - 6 - max((len(name) for name in self.list_commands(ctx)), default=0)
        for name in self.list_commands(ctx):
            if name in self.lazy and name not in self.commands:
                rows.append((name, self.lazy[name][1]))
            elif not self.commands[name].hidden:
                rows.append((name, self.commands[name].get_short_help_str(width)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


class ProcgenGroup(LazyGroup):
    """The root group: every failure becomes one ``procgen: error: ...`` line and an exit status."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:  # before click turns it into Abort and prints a blank line
            raise CommandFailed("interrupted", exit_code=130) from None

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        no_args_is_help = getattr(click.exceptions, "NoArgsIsHelpError", ())
        try:
            result = super().main(args, prog_name or "procgen", complete_var, standalone_mode=False, **extra)
            code = result if isinstance(result, int) and not isinstance(result, bool) else 0
        except no_args_is_help as err:  # `procgen` or `procgen generate` alone: print the help
            click.echo(err.ctx.get_help())
            code = 0
        except click.UsageError as err:
            hint = f" (see '{err.ctx.command_path} --help')" if err.ctx is not None else ""
            code = _report(err.format_message() + hint, 2)
        except click.ClickException as err:
            code = _report(err.format_message(), err.exit_code)
        except click.exceptions.Abort:
            code = _report("aborted", 1)
        except ValueError as err:
            code = _report(str(err), 2)
        except _dataset_error() as err:  # incomplete, damaged or invalid dataset on disk
            code = _report(str(err), 1)
        except OSError as err:
            code = _report(_os_error_message(err), 1)
        except KeyboardInterrupt:
            code = _report("interrupted", 130)
        if not standalone_mode:
            return code
        sys.exit(code)


def _dataset_error() -> type:
    """procgen.dataset.DatasetError if that module is loaded (no failure can raise it otherwise)."""
    dataset = sys.modules.get("procgen.dataset")
    return dataset.DatasetError if dataset is not None else ()


def _report(message: str, code: int) -> int:
    click.echo(f"procgen: error: {' '.join(str(message).split())}", err=True)
    return code


def _os_error_message(err: OSError) -> str:
    if err.strerror and err.filename:
        return f"{err.strerror}: {err.filename}"
    return str(err) or type(err).__name__


@click.group(cls=ProcgenGroup, lazy=LAZY_COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(procgen.__version__, "-V", "--version", prog_name="procgen")
def cli():
    """Fast, seeded, validated procedural pretraining data.

    Generate a task's rows into a sharded Arrow dataset that `datasets.load_from_disk` opens
    memory-mapped, check it, inspect it, push it to the Hub.
    """


# --- list ---------------------------------------------------------------------------------------

@cli.command("list")
@click.option("--json", "as_json", is_flag=True,
              help="print the registry as JSON: task -> summary and parameters (type, default, range)")
def list_command(as_json):
    """List the tasks, their parameters, defaults and allowed values."""
    from procgen.tasks import available_tasks, get_task

    if as_json:
        click.echo(json.dumps(registry_listing(), indent=2))
        return
    for index, name in enumerate(available_tasks()):
        task = get_task(name)
        if index:
            click.echo()
        click.echo(f"{name}: {task.summary}")
        rows = [(_flag(p.name), _cli_value(p.default), p.allowed()) for p in task.params]
        widths = [max(len(row[column]) for row in rows) for column in range(2)] if rows else [0, 0]
        for flag, default, allowed in rows:
            click.echo(f"  {flag:<{widths[0]}}  default {default:<{widths[1]}}  {allowed}")
    click.echo("\nRun 'procgen generate TASK --help' for what each parameter means.")


def registry_listing() -> dict:
    """Every registered task as plain JSON-ready data (what ``procgen list --json`` prints).

    ``{task: {"summary": str, "params": {name: {"flag", "type", "default", "allowed", "low",
    "high", "low_open", "high_open", "choices", "nullable", "multiple", "help"}}}}``; ``low`` /
    ``high`` are the bounds (None: unbounded), inclusive unless ``low_open`` / ``high_open``;
    ``allowed`` says the same in words.

    >>> registry_listing()["dyck"]["params"]["k"]["type"]
    'int'
    """
    from procgen.tasks import available_tasks, get_task

    def plain(value):  # tuples (multi-valued defaults, choices) as JSON lists
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        return value

    listing = {}
    for name in available_tasks():
        task = get_task(name)
        listing[name] = {"summary": task.summary, "params": {
            p.name: {"flag": _flag(p.name), "type": p.kind.__name__, "default": plain(p.default),
                     "allowed": p.allowed(), "low": p.low, "high": p.high, "low_open": p.low_open,
                     "high_open": p.high_open, "choices": plain(p.choices), "nullable": p.nullable,
                     "multiple": p.multiple, "help": p.help}
            for p in task.params}}
    return listing


# --- generate -----------------------------------------------------------------------------------

class CountType(click.ParamType):
    """A row count: a positive integer, also written as an integral float such as ``1e7``."""

    name = "count"

    def get_metavar(self, param, ctx=None):
        return "N"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        text = str(value).strip()
        try:
            number = int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                number = None
        if isinstance(number, float) and math.isfinite(number) and number.is_integer():
            number = int(number)
        if not isinstance(number, int) or number < 1:
            self.fail(f"must be an integer >= 1 (integral floats such as 1e6 are accepted); got {text!r}",
                      param, ctx)
        return number


class TaskParamType(click.ParamType):
    """Parses one task parameter from text, then checks it with its :class:`~procgen.tasks.Param`."""

    def __init__(self, spec):
        self.spec = spec
        self.name = spec.kind.__name__

    def get_metavar(self, param, ctx=None):
        spec = self.spec
        if spec.choices is not None:
            metavar = "[" + "|".join(str(c) for c in spec.choices) + "]"
        else:
            metavar = {int: "INT", float: "FLOAT", bool: "[true|false]", str: "TEXT", dict: "FILE|JSON"}[spec.kind]
        if spec.multiple:
            metavar += f"[,{metavar}...]"
        if spec.nullable:
            metavar += "|none"
        return metavar

    def convert(self, value, param, ctx):
        if not isinstance(value, str):  # a flag's value (--closed / --no-closed) is already typed
            return value
        if self.spec.kind is dict:
            return self.spec.check(_load_mapping(value, self, param, ctx))
        pieces = value.split(",") if self.spec.multiple else [value]
        try:
            parsed = [self._parse(piece.strip()) for piece in pieces]
            return self.spec.check(parsed if self.spec.multiple and len(parsed) > 1 else parsed[0])
        except ValueError:
            self.fail(f"must be {self.spec.allowed()}; got {value!r}", param, ctx)

    def _parse(self, text: str):
        kind = self.spec.kind
        if text.lower() in _NONE_WORDS:
            return None
        if kind is bool:
            if text.lower() in _TRUE_WORDS:
                return True
            if text.lower() in _FALSE_WORDS:
                return False
            raise ValueError(text)
        if kind is int:
            try:
                return int(text)
            except ValueError:
                return float(text)  # "1e3" -> 1000.0, which Param.check accepts when integral
        if kind is float:
            return float(text)
        return text


def _load_mapping(text: str, param_type, param, ctx):
    """A mapping given as a YAML/JSON file path or inline (e.g. ``--spec mix.yaml``)."""
    import yaml

    try:
        if os.path.isfile(text):
            with open(text, encoding="utf-8") as file:
                value = yaml.safe_load(file)
        else:
            value = yaml.safe_load(text)
    except (OSError, yaml.YAMLError) as err:
        param_type.fail(f"must be a YAML/JSON file or inline mapping; could not read {text!r}: "
                        f"{str(err).splitlines()[0]}", param, ctx)
    if not isinstance(value, dict):
        param_type.fail(f"must be a YAML/JSON mapping (a file path or inline); got {text!r}", param, ctx)
    return value


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _cli_value(value) -> str:
    """A parameter value as typed on the command line: none, true/false, comma-separated lists."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(_cli_value(v) for v in value)
    return str(value)


def _task_options(task) -> list[click.Option]:
    """Click options for every parameter of ``task``, built from its Param specs."""
    options = []
    for spec in task.params:
        if spec.name in _GENERIC_OPTIONS:
            raise RuntimeError(f"task {task.name!r}: parameter {spec.name!r} clashes with a generate option")
        text = f"{spec.help}; {spec.allowed()} [default: {_cli_value(spec.default)}]"
        if spec.kind is bool and not spec.multiple:
            # --closed, --closed true|false, and the separate flag --no-closed
            options.append(click.Option([_flag(spec.name), spec.name], type=TaskParamType(spec), is_flag=False,
                                        flag_value=True, default=None, help=text))
            options.append(click.Option(["--no-" + spec.name.replace("_", "-"), "no_" + spec.name],
                                        is_flag=True, default=None, help=f"same as {_flag(spec.name)} false"))
        else:
            options.append(click.Option([_flag(spec.name), spec.name], type=TaskParamType(spec), default=None,
                                        help=text))
    return options


def _given_task_params(ctx, task) -> dict:
    """The task parameters the user typed (defaults are left to the library to fill in)."""
    given = {}
    source = click.core.ParameterSource
    for spec in task.params:
        typed = ctx.get_parameter_source(spec.name) in (source.COMMANDLINE, source.ENVIRONMENT)
        negated = spec.kind is bool and not spec.multiple and ctx.params.get("no_" + spec.name)
        if typed and negated:
            raise click.UsageError(f"{_flag(spec.name)} and --no-{spec.name.replace('_', '-')} contradict "
                                   f"each other", ctx)
        if typed:
            given[spec.name] = ctx.params[spec.name]
        elif negated:
            given[spec.name] = False
    return given


_GENERATE_OPTIONS = [
    click.Option(["-n", "--rows", "n"], type=CountType(), default=None,
                 help="number of rows to generate (1e7 is accepted); this or --tokens"),
    click.Option(["--tokens"], type=CountType(), default=None, metavar="TOKENS",
                 help="instead of -n: about this many tokens, ceil(TOKENS / mean row length) rows (at least "
                      "TOKENS for fixed-length rows); the exact count written is reported"),
    click.Option(["--out", "-o", "out"], type=click.Path(file_okay=False, dir_okay=True), required=True,
                 metavar="DIR", help="output dataset directory"),
    click.Option(["--shards"], type=click.IntRange(min=1), default=None,
                 help="number of shard files [default: chosen from the size]"),
    click.Option(["--workers"], type=click.IntRange(min=1), default=1, show_default=True,
                 help="processes generating shards in parallel"),
    click.Option(["--seed"], type=click.IntRange(min=0), default=0, show_default=True,
                 help="seed; row i depends only on (task, params, seed, split, i)"),
    click.Option(["--split"], type=click.Choice(SPLITS), default="train", show_default=True,
                 help="independent stream per split, so splits never share rows"),
    click.Option(["--shard-index"], type=click.IntRange(min=0), default=None,
                 help="write only this shard (to spread one dataset over several machines)"),
    click.Option(["--overwrite"], is_flag=True, help="replace an existing dataset with different settings"),
    click.Option(["--quiet", "-q"], is_flag=True, help="no progress bar and no summary line"),
]


def _task_command(name: str) -> click.Command:
    from procgen.tasks import get_task

    task = get_task(name)

    def run(**_):
        ctx = click.get_current_context()
        _generate(ctx, task, _given_task_params(ctx, task))

    return TaskCommand(
        name, callback=run, params=[*_GENERATE_OPTIONS, *_task_options(task)],
        help=f"Generate {name} rows into a sharded dataset.\n\n{task.summary}.",
        short_help=task.summary, context_settings={"help_option_names": ["-h", "--help"]},
    )


class TaskCommand(click.Command):
    """``procgen generate TASK``; its help lists the task's parameters in their own section."""

    def format_options(self, ctx, formatter):
        generic, task = [], []
        generic_names = {option.name for option in _GENERATE_OPTIONS}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is not None:
                (generic if param.name in generic_names or param is self.get_help_option(ctx) else task
                 ).append(record)
        with formatter.section("Options"):
            formatter.write_dl(generic)
        if task:
            with formatter.section(f"{self.name} parameters"):
                formatter.write_dl(task)


_INTERRUPTED = "interrupted; re-run the same command to resume"


def _generate(ctx, task, params: dict) -> None:
    options = ctx.params
    if (options["n"] is None) == (options["tokens"] is None):
        raise click.UsageError("-n/--rows and --tokens are mutually exclusive: give one of them" if options["n"]
                               else "give the size: -n/--rows ROWS or --tokens TOKENS", ctx)
    began = time.perf_counter()
    try:
        from procgen.dataset import write

        manifest = write(task.name, options["out"], options["n"], shards=options["shards"],
                         workers=options["workers"], seed=options["seed"], split=options["split"],
                         shard_index=options["shard_index"], overwrite=options["overwrite"],
                         progress=not options["quiet"], tokens=options["tokens"], **params)
    except ValueError as err:
        raise ValueError(_as_flags(str(err))) from None
    except KeyboardInterrupt as err:  # procgen.dataset.WriteInterrupted, or before write began
        manifest = getattr(err, "manifest", None)
        if manifest is None:
            raise CommandFailed(_INTERRUPTED, exit_code=130) from None
    _ignore_interrupts()  # the dataset is complete: a late Ctrl-C must not turn the summary into an error
    seconds = time.perf_counter() - began
    if options["quiet"]:
        return
    if manifest.get("complete", True):
        rows, tokens, shards = _totals(manifest)
        asked = "" if options["tokens"] is None else f" (--tokens {options['tokens']:,})"
        click.echo(f"wrote {rows:,} rows, {tokens:,} tokens{asked} in {shards} shard{'s' * (shards != 1)} to "
                   f"{options['out']} ({_per_second(tokens, seconds)} tokens/s)")
    else:  # --shard-index: other shards are still missing
        shard = manifest["shard"]
        click.echo(f"wrote shard {options['shard_index']} ({shard['num_rows']:,} rows, {shard['num_tokens']:,} "
                   f"tokens) to {options['out']}; {len(manifest['shards_done'])} of {manifest['num_shards']} "
                   f"shards done, the job that writes the last one finalises the dataset")


def _as_flags(message: str) -> str:
    """A library error reworded for the command line: ``overwrite=True`` -> ``--overwrite``."""
    message = re.sub(r"\boverwrite=True\b", "--overwrite", message)
    return re.sub(r"\bwith shard_index\b", "with --shard-index", message)


def _per_second(count: int, seconds: float) -> str:
    """``count / seconds`` with a k/M/G suffix, e.g. ``'153.2 M'``."""
    rate = count / max(seconds, 1e-9)
    for suffix, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if rate >= scale:
            return f"{rate / scale:.1f} {suffix}"
    return f"{rate:.0f}"


class TaskGroup(click.Group):
    """``procgen generate TASK``: one subcommand per available task, built from its Param specs."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:  # while the task's module loads, before _generate's own handler
            raise CommandFailed(_INTERRUPTED, exit_code=130) from None

    def format_commands(self, ctx, formatter):
        with formatter.section("Tasks"):
            formatter.write_dl([(name, self.get_command(ctx, name).short_help) for name in self.list_commands(ctx)])

    def list_commands(self, ctx):
        from procgen.tasks import available_tasks

        return available_tasks()

    def get_command(self, ctx, name):
        from procgen.tasks import _MODULES, available_tasks

        if name not in _MODULES:
            raise click.UsageError(f"unknown task {name!r}; tasks: {', '.join(available_tasks())}", ctx)
        try:
            return _task_command(name)
        except ModuleNotFoundError as err:
            raise click.UsageError(f"task {name!r} is not available in this installation: {err}", ctx) from err


@cli.group("generate", cls=TaskGroup, subcommand_metavar="TASK [OPTIONS]", options_metavar="")
def generate_command():
    """Generate TASK rows into a sharded Arrow dataset.

    Task parameters are options of the task's command: see `procgen generate TASK --help`, or
    `procgen list` for all tasks. Example:

    \b
        procgen generate dyck -n 1e6 --out data/dyck --shards 4 --k 4
    """


# --- validate / info / show ---------------------------------------------------------------------

def _totals(manifest: dict) -> tuple[int, int, int]:
    return manifest["num_rows"], manifest["num_tokens"], len(manifest["shards"])


@cli.command("validate")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--quiet", "-q", is_flag=True, help="no progress bar")
def validate_command(directory, quiet):
    """Check every row and every shard checksum of a dataset.

    Rows are checked by the task's independent validator. On failure the error line names the
    shard, the global row index, the reason and the rendered row, and the exit status is 1.
    """
    from procgen.dataset import validate

    report = validate(directory, progress=not quiet)
    click.echo(f"{directory}: ok: {report['rows']:,} rows, {report['tokens']:,} tokens in {report['shards']} "
               f"shard{'s' * (report['shards'] != 1)} valid ({report['task']}), checksums match")


@cli.command("info")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True,
              help="print the checked manifest as JSON (its command rebuilt from task, params, seed and split)")
def info_command(directory, as_json):
    """Summarise a dataset (task, parameters, size, how to regenerate it)."""
    from procgen.dataset import info

    manifest = info(directory)
    if as_json:
        click.echo(json.dumps(manifest, indent=2))
        return
    rows, tokens, shards = _totals(manifest)
    lines = [
        ("task", manifest["task"]),
        ("params", " ".join(f"{k}={_cli_value(v)}" for k, v in manifest["params"].items())),
        ("seed", manifest["seed"]),
        ("split", manifest["split"]),
        ("rows", f"{rows:,}"),
        ("tokens", f"{tokens:,}"),
        ("shards", shards),
        ("dtype", manifest["dtype"]),
        ("vocab size", manifest["vocab_size"]),
        ("longest row", f"{manifest['max_row_length']} tokens at most (a model's n_positions)"),
        ("regenerate", manifest["command"]),  # rebuilt from task, params, seed and split: never the stored string
    ]
    for key, value in lines:
        click.echo(f"{key + ':':<12} {value}")


@cli.command("show")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("-n", "count", type=click.IntRange(min=1), default=5, show_default=True, help="rows to show")
def show_command(directory, count):
    """Print the first rows of a dataset with readable token names.

    A '|' marks where the answer starts (tasks with a prompt).
    """
    from procgen.dataset import iter_batches

    for batch in iter_batches(directory):
        for i in range(min(count, len(batch))):
            click.echo(f"[{batch.start + i}] {batch.render(i)}")
        count -= len(batch)
        if count <= 0:
            break


# --- bench --------------------------------------------------------------------------------------

@cli.command("bench", add_help_option=False,
             context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def bench_command(ctx):
    """Run the full benchmark report (needs a source checkout).

    Every argument, --help included, is passed on to `python -m benchmarks` (benchmarks/report.py):
    e.g. `procgen bench --quick --no-page`.
    """
    module = _import_benchmarks()
    if module is None:
        raise CommandFailed("procgen bench needs the benchmarks/ folder of a source checkout: run "
                            "`python -m benchmarks` there (one part alone: `python -m benchmarks.bench_generate`, "
                            "`python -m benchmarks.bench_write`)", exit_code=2)
    module.main(list(ctx.args))


def _import_benchmarks():
    """``benchmarks.report`` (also found next to an editable install's package), else None."""
    checkout = str(Path(procgen.__file__).resolve().parent.parent)
    if Path(checkout, "benchmarks", "report.py").is_file() and checkout not in sys.path:
        sys.path.insert(0, checkout)
    try:
        return importlib.import_module("benchmarks.report")
    except ModuleNotFoundError as err:
        if err.name in ("benchmarks", "benchmarks.report"):
            return None
        raise


_OWN_PROCESS = False  # set by main(): this process is the `procgen` program, its signals are ours to set


def _ignore_interrupts() -> None:
    """Ignore Ctrl-C from now on, when it can no longer change the outcome (in the program only)."""
    if _OWN_PROCESS:
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        except (ValueError, KeyboardInterrupt):  # not the main thread; or a Ctrl-C that came just now
            pass


def main(argv=None) -> None:
    """Console entry point (``procgen = procgen.cli:main``)."""
    global _OWN_PROCESS
    _OWN_PROCESS = True
    try:
        code = cli.main(argv, prog_name="procgen", standalone_mode=False)
    except KeyboardInterrupt:  # between the command's own handlers and here
        code = _report("interrupted", 130)
    # The command is over. A Ctrl-C from now on would land while the interpreter shuts down, with
    # SIGINT's default action back: exit -2 and no message, after the work was done.
    _ignore_interrupts()
    sys.exit(code)


if __name__ == "__main__":
    main()
