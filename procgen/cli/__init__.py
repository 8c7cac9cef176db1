"""The ``procgen`` command line (DESIGN §3): the only part of procgen that imports click.

::

    procgen list [--json]
    procgen generate dyck -n 1e6 --out data/dyck --shards 4 --workers 2 --k 4 --max-depth 16
    procgen validate data/dyck
    procgen info data/dyck [--json]
    procgen show data/dyck -n 5
    procgen export data/dyck --out nanogpt/dyck/train.bin      # or --format parquet|jsonl
    procgen bench | train ... | push DIR REPO

One module per group of commands: :mod:`procgen.cli.generate` (``list``, ``generate``, and the
options built from the tasks' Param specs, which ``train`` reuses), :mod:`procgen.cli.data`
(``validate``, ``info``, ``show``), :mod:`procgen.cli.export`, :mod:`procgen.cli.push`,
:mod:`procgen.cli.train` and :mod:`procgen.cli.bench`; :mod:`procgen.cli.core` holds the group
machinery they share.

Errors are one line on stderr, ``procgen: error: <message>``: exit 2 for bad arguments (click
usage errors and the library's ValueErrors), 1 for invalid or incomplete datasets and I/O errors,
130 when interrupted. Importing this package is cheap: numba, pyarrow and datasets load inside the
commands that need them, and ``train``/``push``/``export`` are imported only when invoked.
"""

from __future__ import annotations

import sys

import click

import procgen
from procgen.cli.bench import bench_command
from procgen.cli.core import CommandFailed, LazyGroup, ProcgenGroup, claim_signals, ignore_interrupts, report
from procgen.cli.data import info_command, show_command, validate_command
from procgen.cli.generate import generate_command, list_command

__all__ = ["CommandFailed", "LazyGroup", "ProcgenGroup", "cli", "main"]

# command name -> ("module:attribute", one-line help shown by `procgen --help`, install hint)
LAZY_COMMANDS = {
    "train": ("procgen.cli.train:train", "Warm up, transfer and evaluate GPT models (needs torch).",
              'pip install "procgen-data[train]"'),
    "push": ("procgen.cli.push:push_command", "Upload a dataset to the Hugging Face Hub as Parquet + card.", ""),
    "export": ("procgen.cli.export:export_command", "Export a dataset to another format.", ""),
}


@click.group(cls=ProcgenGroup, lazy=LAZY_COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(procgen.__version__, "-V", "--version", prog_name="procgen")
def cli():
    """Fast, seeded, validated procedural pretraining data.

    Generate a task's rows into a sharded Arrow dataset that `datasets.load_from_disk` opens
    memory-mapped, check it, inspect it, push it to the Hub.
    """


for _command in (list_command, generate_command, validate_command, info_command, show_command, bench_command):
    cli.add_command(_command)


def main(argv=None) -> None:
    """Console entry point (``procgen = procgen.cli:main``)."""
    claim_signals()
    try:
        code = cli.main(argv, prog_name="procgen", standalone_mode=False)
    except KeyboardInterrupt:  # between the command's own handlers and here
        code = report("interrupted", 130)
    # The command is over. A Ctrl-C from now on would land while the interpreter shuts down, with
    # SIGINT's default action back: exit -2 and no message, after the work was done.
    ignore_interrupts()
    sys.exit(code)
