"""``procgen list`` and ``procgen generate TASK``: command-line options built from the tasks' Param specs.

Task parameters are not written per task: :func:`task_options` turns a task's
:class:`procgen.tasks.Param` specs into click options (``max_depth`` -> ``--max-depth``; booleans as
``--closed`` / ``--no-closed`` / ``--closed false``; ``none`` for nullable parameters;
comma-separated lists for multi-valued ones, e.g. ``--rule 30,90,110``), and
:func:`given_task_params` reads back what the user typed. ``procgen train`` parses its task
parameters with the same two functions.
"""

from __future__ import annotations

import json
import os
import re
import time

import click

from procgen._checks import SPLITS, allowed_range, check_int
from procgen.cli.core import CommandFailed, ignore_interrupts

# options of `procgen generate TASK` that are not task parameters (a task parameter may not reuse them)
_GENERIC_OPTIONS = ("n", "tokens", "out", "shards", "workers", "seed", "split", "shard_index", "overwrite", "quiet")
_NONE_WORDS = ("none", "null")
_TRUE_WORDS = ("true", "yes", "on", "1")
_FALSE_WORDS = ("false", "no", "off", "0")
_INTERRUPTED = "interrupted; re-run the same command to resume"


# --- list ---------------------------------------------------------------------------------------

@click.command("list")
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
        rows = [(flag(p.name), cli_value(p.default), p.allowed()) for p in task.params]
        widths = [max(len(row[column]) for row in rows) for column in range(2)] if rows else [0, 0]
        for option, default, allowed in rows:
            click.echo(f"  {option:<{widths[0]}}  default {default:<{widths[1]}}  {allowed}")
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
            p.name: {"flag": flag(p.name), "type": p.kind.__name__, "default": plain(p.default),
                     "allowed": p.allowed(), "low": p.low, "high": p.high, "low_open": p.low_open,
                     "high_open": p.high_open, "choices": plain(p.choices), "nullable": p.nullable,
                     "multiple": p.multiple, "help": p.help}
            for p in task.params}}
    return listing


# --- task parameters as options -----------------------------------------------------------------

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
        try:
            return check_int(number, "count", 1, integral_floats=True)
        except ValueError:
            self.fail(f"must be {allowed_range(1)} (integral floats such as 1e6 are accepted); got {text!r}",
                      param, ctx)


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


def flag(name: str) -> str:
    """The option a parameter name becomes: ``max_depth`` -> ``--max-depth``."""
    return "--" + name.replace("_", "-")


def cli_value(value) -> str:
    """A parameter value as typed on the command line: none, true/false, comma-separated lists."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(cli_value(v) for v in value)
    return str(value)


def task_options(task) -> list[click.Option]:
    """Click options for every parameter of ``task``, built from its Param specs."""
    options = []
    for spec in task.params:
        if spec.name in _GENERIC_OPTIONS:
            raise RuntimeError(f"task {task.name!r}: parameter {spec.name!r} clashes with a generate option")
        text = f"{spec.help}; {spec.allowed()} [default: {cli_value(spec.default)}]"
        if spec.kind is bool and not spec.multiple:
            # --closed, --closed true|false, and the separate flag --no-closed
            options.append(click.Option([flag(spec.name), spec.name], type=TaskParamType(spec), is_flag=False,
                                        flag_value=True, default=None, help=text))
            options.append(click.Option(["--no-" + spec.name.replace("_", "-"), "no_" + spec.name],
                                        is_flag=True, default=None, help=f"same as {flag(spec.name)} false"))
        else:
            options.append(click.Option([flag(spec.name), spec.name], type=TaskParamType(spec), default=None,
                                        help=text))
    return options


def given_task_params(ctx, task) -> dict:
    """The task parameters the user typed (defaults are left to the library to fill in)."""
    given = {}
    source = click.core.ParameterSource
    for spec in task.params:
        typed = ctx.get_parameter_source(spec.name) in (source.COMMANDLINE, source.ENVIRONMENT)
        negated = spec.kind is bool and not spec.multiple and ctx.params.get("no_" + spec.name)
        if typed and negated:
            raise click.UsageError(f"{flag(spec.name)} and --no-{spec.name.replace('_', '-')} contradict "
                                   f"each other", ctx)
        if typed:
            given[spec.name] = ctx.params[spec.name]
        elif negated:
            given[spec.name] = False
    return given


# --- generate -----------------------------------------------------------------------------------

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
        _generate(ctx, task, given_task_params(ctx, task))

    return TaskCommand(
        name, callback=run, params=[*_GENERATE_OPTIONS, *task_options(task)],
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
    ignore_interrupts()  # the dataset is complete: a late Ctrl-C must not turn the summary into an error
    seconds = time.perf_counter() - began
    if options["quiet"]:
        return
    if manifest.get("complete", True):
        rows, tokens, shards = manifest["num_rows"], manifest["num_tokens"], len(manifest["shards"])
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
        from procgen.tasks import available_tasks, task_names

        if name not in task_names():
            raise click.UsageError(f"unknown task {name!r}; tasks: {', '.join(available_tasks())}", ctx)
        try:
            return _task_command(name)
        except ModuleNotFoundError as err:
            raise click.UsageError(f"task {name!r} is not available in this installation: {err}", ctx) from err


@click.group("generate", cls=TaskGroup, subcommand_metavar="TASK [OPTIONS]", options_metavar="")
def generate_command():
    """Generate TASK rows into a sharded Arrow dataset.

    Task parameters are options of the task's command: see `procgen generate TASK --help`, or
    `procgen list` for all tasks. Example:

    \b
        procgen generate dyck -n 1e6 --out data/dyck --shards 4 --k 4
    """
