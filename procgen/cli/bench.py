"""``procgen bench``: the benchmark report of a source checkout, ``python -m benchmarks`` run there.

The benchmarks are not part of the installed package: they live in ``benchmarks/`` of the
repository. ``procgen bench`` runs them only from the root of a checkout (the current directory
holds ``benchmarks/`` and the ``pyproject.toml`` of procgen-data), as ``python -m benchmarks`` in
a subprocess started there, and exits with its status; anywhere else it fails with one line that
says where to run it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import click

from procgen.cli.core import CommandFailed

_PROJECT_NAME = re.compile(r"""^\s*name\s*=\s*["']procgen-data["']""", re.MULTILINE)
NOT_A_CHECKOUT = ("procgen bench runs the benchmarks of a source checkout: run it from the repository root (the "
                  "folder with pyproject.toml and benchmarks/), or run `python -m benchmarks` there (one part "
                  "alone: `python -m benchmarks.bench_generate`, `python -m benchmarks.bench_write`)")


def is_checkout(folder: Path) -> bool:
    """Whether ``folder`` is the root of a procgen source checkout (``python -m benchmarks`` runs there)."""
    benchmarks = folder / "benchmarks"
    if not ((benchmarks / "__init__.py").is_file() and (benchmarks / "__main__.py").is_file()):
        return False
    try:
        return bool(_PROJECT_NAME.search((folder / "pyproject.toml").read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError):
        return False


@click.command("bench", add_help_option=False,
               context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def bench_command(ctx):
    """Run the full benchmark report (from the root of a source checkout).

    Every argument, --help included, is passed on to `python -m benchmarks` (benchmarks/report.py),
    run in the current directory: e.g. `procgen bench --quick --no-page`.
    """
    root = Path.cwd()
    if not is_checkout(root):
        raise CommandFailed(NOT_A_CHECKOUT, exit_code=2)
    code = subprocess.run([sys.executable, "-m", "benchmarks", *ctx.args], cwd=root, check=False).returncode
    return code if code >= 0 else 128 - code  # killed by signal N: 128 + N, as a shell reports it
