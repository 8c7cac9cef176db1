"""Shared pytest fixtures."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:  # helper modules next to the tests (hub_server.py), whatever the import mode
    sys.path.insert(0, _TESTS)


@pytest.fixture
def hub_server(tmp_path_factory, monkeypatch):
    """A local Hugging Face Hub on 127.0.0.1 (tests/hub_server.py), fresh for each test.

    The in-process ``huggingface_hub`` client is made usable against it (xet off, offline mode off,
    no proxy); pass ``endpoint=hub_server.url`` and ``token=hub_server.token`` to it, and use
    ``hub_server.load_dataset(...)`` to run ``datasets.load_dataset`` in a clean subprocess (see
    the module docstring for why).
    """
    from hub_server import HubServer

    server = HubServer(tmp_path_factory.mktemp("hub")).start()
    server.patch_client(monkeypatch)
    yield server
    server.stop()


def run_cli(*args):
    """Run ``procgen ARGS`` in-process; the result keeps stdout and stderr apart (``.stdout``, ``.stderr``).

    Test modules import it (``from conftest import run_cli``); arguments may be paths or numbers.
    """
    from click.testing import CliRunner

    from procgen.cli import cli

    try:  # click < 8.2 mixes stderr into stdout unless told not to
        runner = CliRunner(mix_stderr=False)
    except TypeError:
        runner = CliRunner()
    return runner.invoke(cli, [str(a) for a in args])
