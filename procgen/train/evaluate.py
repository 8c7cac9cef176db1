"""Per-token answer accuracy on held-out rows (the paper's scoring of the diagnostic tasks).

Teacher-forced and greedy: the argmax of the logits at position ``t - 1`` predicts token ``t``.
``scoring="all"`` scores every answer token (positions ``>= answer_start``; position 0 has no
prediction); ``scoring="reference"`` scores the positions the paper's official harness scores
(the haystack's value after the query; for arithmetic the answer digits after the first, the stop
token, and the pad token after it where the official fixed-width row has one). Rows come
from the ``test`` split by default, whose stream is independent of the ``train`` split that
training reads, so evaluation never sees a training row.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from procgen._checks import check_choice, check_int
from procgen.batch import IGNORE_INDEX, Batch
from procgen.train.data import collate_batch


def evaluate(model, task: str, n: int = 1000, seed: int = 0, split: str = "test", batch_size: int = 64,
             scoring: str = "all", **params) -> dict:
    """Score ``model`` on ``n`` fresh rows of ``task``.

    Parameters
    ----------
    model : torch.nn.Module
        A procgen :class:`~procgen.train.model.GPT` or a Hugging Face causal LM.
    task : str
        Task name, e.g. ``"haystack"`` or ``"sort"``.
    n : int, default 1000
        Number of rows.
    seed : int, default 0
        Seed of the rows.
    split : str, default "test"
        Split of the rows (``test`` never overlaps the ``train`` rows used for training).
    batch_size : int, default 64
        Rows per forward pass.
    scoring : str, default "all"
        ``"all"``: every answer token; ``"reference"``: the official harness's scored positions.
    **params
        Task parameters.

    Returns
    -------
    dict
        ``accuracy`` (per answer token), ``exact_match`` (rows whose every answer token is right),
        ``loss`` (mean cross-entropy over answer tokens), ``rows``, ``tokens`` (answer tokens scored).

    Example
    -------
    >>> evaluate(model, "sort", n=500, length=8, vocab_size=10)["accuracy"]   # doctest: +SKIP
    0.97
    >>> evaluate(model, "addition", n=4000, scoring="reference")["accuracy"]   # doctest: +SKIP
    0.59
    """
    from procgen.api import generate
    from procgen.tasks import get_task

    check_scoring(scoring)
    resolved = get_task(task).resolve_params(params)
    check_vocab(model, task, resolved)
    batch = generate(task, n, seed=seed, split=split, **resolved)
    return evaluate_batch(model, batch, batch_size=batch_size, scoring=scoring)


def check_scoring(scoring) -> str:
    """``scoring`` itself, or a ValueError naming the allowed values."""
    from procgen.tasks import SCORINGS

    return check_choice(scoring, "scoring", SCORINGS)


def evaluate_batch(model, batch: Batch, batch_size: int = 64, scoring: str = "all") -> dict:
    """Score ``model`` on the rows of an in-memory :class:`procgen.Batch` (see :func:`evaluate`)."""
    from procgen.train.model import GPT

    batch_size = check_int(batch_size, "batch_size", 1)
    check_scoring(scoring)
    check_vocab(model, batch.task, batch.params)
    block_size = model_block_size(model)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    correct = tokens = exact = rows = 0
    loss_sum = 0.0
    try:
        with torch.no_grad():
            for lo in range(0, len(batch), batch_size):
                inputs = collate_batch(batch[lo:lo + batch_size], block_size=block_size, scoring=scoring)
                input_ids, labels = inputs["input_ids"].to(device), inputs["labels"].to(device)
                if isinstance(_unwrap(model), GPT):  # logits only where something is scored
                    logits, targets, _ = _unwrap(model).scored_forward(input_ids, labels)
                    scores = score_predictions(logits, targets)
                else:
                    scores = score_logits(model_logits(model, input_ids), labels)
                correct += scores["correct"]
                tokens += scores["tokens"]
                exact += scores["exact"]
                rows += scores["rows"]
                loss_sum += scores["loss_sum"]
    finally:
        model.train(was_training)
    return {"accuracy": correct / max(tokens, 1), "exact_match": exact / max(rows, 1),
            "loss": loss_sum / max(tokens, 1), "rows": rows, "tokens": tokens}


def score_logits(logits: torch.Tensor, labels: torch.Tensor) -> dict:
    """Counts for one batch: logits ``(B, T, V)`` at ``t - 1`` against labels ``(B, T)`` at ``t``.

    Returns ``correct``, ``tokens`` (answer tokens), ``exact`` (rows all correct), ``rows`` and
    ``loss_sum`` (summed cross-entropy), as Python numbers.
    """
    return score_predictions(logits[:, :-1], labels[:, 1:])


def score_predictions(predicted: torch.Tensor, targets: torch.Tensor) -> dict:
    """Counts for logits ``(B, P, V)`` against aligned targets ``(B, P)`` (``-100``: not scored)."""
    scored = targets != IGNORE_INDEX
    hits = (predicted.argmax(-1) == targets) & scored
    loss_sum = F.cross_entropy(predicted.reshape(-1, predicted.shape[-1]).float(), targets.reshape(-1),
                               ignore_index=IGNORE_INDEX, reduction="sum")
    wrong_in_row = (scored & ~hits).any(dim=1)
    return {"correct": int(hits.sum()), "tokens": int(scored.sum()), "loss_sum": float(loss_sum),
            "exact": int((~wrong_in_row & scored.any(dim=1)).sum()), "rows": int(targets.shape[0])}


def model_logits(model, input_ids: torch.Tensor) -> torch.Tensor:
    """Logits of a procgen GPT (returns a tuple) or a Hugging Face model (returns an output object)."""
    output = model(input_ids)
    return output[0] if isinstance(output, tuple) else output.logits


def model_vocab_size(model) -> int:
    """Vocabulary size from ``model.config`` (procgen GPT and Hugging Face models alike)."""
    return int(_unwrap(model).config.vocab_size)


def model_block_size(model) -> int | None:
    """Context length from ``model.config`` (``block_size``, ``n_positions`` or ``max_position_embeddings``)."""
    config = _unwrap(model).config
    for name in ("block_size", "n_positions", "max_position_embeddings"):
        value = getattr(config, name, None)
        if value is not None:
            return int(value)
    return None


def check_vocab(model, task: str, params: dict) -> None:
    """Raise ValueError if ``task`` with ``params`` emits ids the model's vocabulary lacks."""
    from procgen.tasks import get_task

    needed = get_task(task).vocab_size(params)
    have = model_vocab_size(model)
    if needed > have:
        raise ValueError(f"vocab_size mismatch: task {task} needs {needed} token ids but the model has "
                         f"vocab_size={have}; build the model for this task (or transfer into a new one)")


def _unwrap(model):
    """The module inside a DistributedDataParallel wrapper (or the model itself)."""
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model
