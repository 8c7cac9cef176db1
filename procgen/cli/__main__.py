"""``python -m procgen.cli ...``: the ``procgen`` program (e.g. under ``torchrun ... -m procgen.cli train``)."""

from procgen.cli import main

main()
