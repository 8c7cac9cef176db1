"""procgen.train: the PyTorch side (optional extra ``procgen-data[train]``).

A minimal GPT (:mod:`procgen.train.model`), moving warmed-up layers between models
(:mod:`procgen.train.transfer`), data loading, the training loop and evaluation on the diagnostics.
``import procgen`` never imports this package; importing it needs PyTorch.
"""

try:
    import torch  # noqa: F401
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError("procgen.train needs PyTorch: pip install 'procgen-data[train]'") from error

from procgen.train.model import GPT, GPTConfig, state_dict_from_hf, state_dict_to_hf
from procgen.train.transfer import (COMPONENTS, add_noise, assemble, freeze, parameter_names,
                                    shuffle_weights, transfer)
from procgen.train.collate import DataCollatorForProcgen, collate, collate_batch, pack, trainer_dataset
from procgen.train.data import ProcgenIterableDataset
from procgen.train.evaluate import evaluate
from procgen.train.loop import build_model, train, warmup

__all__ = ["GPT", "GPTConfig", "state_dict_from_hf", "state_dict_to_hf", "COMPONENTS", "add_noise",
           "assemble", "freeze", "parameter_names", "shuffle_weights", "transfer", "ProcgenIterableDataset",
           "DataCollatorForProcgen", "collate", "collate_batch", "pack", "trainer_dataset", "evaluate", "build_model",
           "train", "warmup"]
