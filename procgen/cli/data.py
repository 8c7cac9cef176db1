"""``procgen validate | info | show DIR``: check, summarise and print a dataset on disk."""

from __future__ import annotations

import json

import click

from procgen.cli.generate import cli_value


@click.command("validate")
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


@click.command("info")
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
    lines = [
        ("task", manifest["task"]),
        ("params", " ".join(f"{k}={cli_value(v)}" for k, v in manifest["params"].items())),
        ("seed", manifest["seed"]),
        ("split", manifest["split"]),
        ("rows", f"{manifest['num_rows']:,}"),
        ("tokens", f"{manifest['num_tokens']:,}"),
        ("shards", len(manifest["shards"])),
        ("dtype", manifest["dtype"]),
        ("vocab size", manifest["vocab_size"]),
        ("longest row", f"{manifest['max_row_length']} tokens at most (a model's n_positions)"),
        ("regenerate", manifest["command"]),  # rebuilt from task, params, seed and split: never the stored string
    ]
    for key, value in lines:
        click.echo(f"{key + ':':<12} {value}")


@click.command("show")
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
