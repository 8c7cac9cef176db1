"""``procgen push DIR REPO``: upload a dataset to the Hugging Face Hub (see :func:`procgen.hub.push`).

Imported only when invoked (:mod:`procgen.hub` loads pyarrow). The library's failures become one
line: bad arguments exit 2, an invalid local dataset or a Hub/network failure exit 1.
"""

from __future__ import annotations

import os

import click

from procgen.cli.core import CommandFailed
from procgen.dataset import DatasetError, read_manifest
from procgen.hub import DEFAULT_CONFIG, HubError, push


@click.command("push")
@click.argument("directory", type=click.Path(file_okay=False))
@click.argument("repo")
@click.option("--private", is_flag=True, help="create the repo private")
@click.option("--config-name", default=None, metavar="NAME",
              help="config (subset) to push into, e.g. one per task [default: default]")
@click.option("--split", default=None, metavar="NAME", help="split name on the Hub [default: the dataset's split]")
@click.option("--token-env", default="HF_TOKEN", show_default=True, metavar="VAR",
              help="environment variable holding the token; if unset, the `hf auth login` token is used")
@click.option("--endpoint", default=None, metavar="URL", help="Hub URL [default: HF_ENDPOINT or huggingface.co]")
@click.option("--message", "-m", default=None, help="commit message")
@click.option("--license", "license_", default=None, metavar="ID",
              help="licence of the data on the card, e.g. apache-2.0, mit, cc-by-4.0 [default: the card's "
                   "licence, else apache-2.0]")
@click.option("--quiet", "-q", is_flag=True, help="no progress bars and no summary line")
def push_command(directory, repo, private, config_name, split, token_env, endpoint, message, license_, quiet):
    """Upload DIRECTORY to the Hub dataset repo REPO as Parquet + a dataset card.

    The dataset is validated first; the card records the task, parameters, seed and the command
    that regenerates the rows. Push more configs (--config-name) and splits (--split) to the same
    repo: the card is merged. Example:

        procgen push data/dyck me/dyck-k4 --config-name k4 --license cc-by-4.0
    """
    token = os.environ.get(token_env) or None
    if token is None and token_env != "HF_TOKEN":
        raise CommandFailed(f"--token-env {token_env}: that environment variable is not set", exit_code=2)
    try:
        url = push(directory, repo, private=private, token=token, config_name=config_name, split=split,
                   endpoint=endpoint, commit_message=message, progress=not quiet, license=license_)
    except ValueError as err:
        raise CommandFailed(str(err), exit_code=2) from err
    except DatasetError as err:
        raise CommandFailed(f"{directory}: not pushed: {err}", exit_code=1) from err
    except HubError as err:
        raise CommandFailed(str(err), exit_code=1) from err
    if not quiet:
        manifest = read_manifest(directory)
        click.echo(f"pushed {manifest['num_rows']:,} rows ({manifest['num_tokens']:,} tokens) of "
                   f"{manifest['task']} to {repo} (config {config_name or DEFAULT_CONFIG}, split "
                   f"{split or manifest['split']}): {url}")
