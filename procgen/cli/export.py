"""``procgen export DIR --out PATH``: a dataset as a nanoGPT ``.bin``, Parquet or JSON lines.

Imported only when invoked (its options name :mod:`procgen.export`'s formats, whose import loads
pyarrow).
"""

from __future__ import annotations

import os

import click

from procgen.export import BIN_DTYPES, FORMATS, META_NAME, TOKEN_STYLES, export


@click.command("export")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="bin", show_default=True,
              help="bin: nanoGPT token file; parquet: folder that datasets.load_dataset reads; jsonl: one row a line")
@click.option("--out", "-o", required=True, metavar="PATH",
              help="bin/jsonl: the file to write; parquet: the folder to write")
@click.option("--dtype", type=click.Choice(BIN_DTYPES), default=None,
              help="bin token dtype [default: uint16, or uint32 above 65536 ids]")
@click.option("--tokens", type=click.Choice(TOKEN_STYLES), default="ids", show_default=True,
              help="jsonl: ids or printable token names")
def export_command(directory, fmt, out, dtype, tokens):
    """Export DIRECTORY for another trainer: nanoGPT .bin, Parquet or JSON lines.

    bin writes every row's tokens back to back as uint16 (what nanoGPT's train.py memory-maps),
    plus meta.pkl (vocab_size, itos, stoi) in the same folder, and row offsets and answer starts
    beside the file. parquet writes OUT/data/<split>-0000k-of-0000N.parquet. Examples:

    \b
        procgen export data/dyck --out nanogpt/dyck/train.bin
        procgen export data/dyck --format parquet --out pq/dyck
        procgen export data/dyck --format jsonl --tokens names --out dyck.jsonl
    """
    summary = export(directory, out, format=fmt, dtype=dtype, tokens=tokens)
    if fmt == "bin":
        meta = os.path.join(os.path.dirname(out), META_NAME)
        click.echo(f"wrote {out} ({summary['num_rows']:,} rows, {summary['num_tokens']:,} tokens, "
                   f"{summary['dtype']}) and {meta}")
    elif fmt == "parquet":
        files = len(summary["files"])
        click.echo(f"wrote {files} Parquet file{'s' * (files != 1)} ({summary['num_rows']:,} rows) to "
                   f"{os.path.join(out, 'data')}")
    else:
        click.echo(f"wrote {out} ({summary['num_rows']:,} rows)")
