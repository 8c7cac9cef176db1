"""The machinery every ``procgen`` command shares: one-line failures, lazy subcommands, signals.

:class:`CommandFailed` is how a command fails with its own exit status; :class:`ProcgenGroup` (the
root group) turns every other failure into one line ``procgen: error: <message>`` on stderr and an
exit status (2: bad arguments, 1: bad data or I/O, 130: interrupted); :class:`LazyGroup` imports a
subcommand only when it is invoked.
"""

from __future__ import annotations

import importlib
import signal
import sys

import click


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
            code = report(err.format_message() + hint, 2)
        except click.ClickException as err:
            code = report(err.format_message(), err.exit_code)
        except click.exceptions.Abort:
            code = report("aborted", 1)
        except ValueError as err:
            code = report(str(err), 2)
        except _dataset_error() as err:  # incomplete, damaged or invalid dataset on disk
            code = report(str(err), 1)
        except OSError as err:
            code = report(_os_error_message(err), 1)
        except KeyboardInterrupt:
            code = report("interrupted", 130)
        if not standalone_mode:
            return code
        sys.exit(code)


def _dataset_error() -> type:
    """procgen.dataset.DatasetError if that module is loaded (no failure can raise it otherwise)."""
    dataset = sys.modules.get("procgen.dataset")
    return dataset.DatasetError if dataset is not None else ()


def report(message: str, code: int) -> int:
    """Print ``procgen: error: <message>`` as one line on stderr; return ``code`` (the exit status)."""
    click.echo(f"procgen: error: {' '.join(str(message).split())}", err=True)
    return code


def _os_error_message(err: OSError) -> str:
    if err.strerror and err.filename:
        return f"{err.strerror}: {err.filename}"
    return str(err) or type(err).__name__


_OWN_PROCESS = False  # set by claim_signals(): this process is the `procgen` program, its signals are ours


def claim_signals() -> None:
    """Mark this process as the ``procgen`` program, whose SIGINT handling the commands may change."""
    global _OWN_PROCESS
    _OWN_PROCESS = True


def ignore_interrupts() -> None:
    """Ignore Ctrl-C from now on, when it can no longer change the outcome (in the program only)."""
    if _OWN_PROCESS:
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        except (ValueError, KeyboardInterrupt):  # not the main thread; or a Ctrl-C that came just now
            pass
