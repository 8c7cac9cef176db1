"""``procgen.mix``: a weighted mixture of tasks, generated in memory (the task itself: procgen.tasks.mixture)."""

from __future__ import annotations

import math

from procgen.api import check_count, check_memory, generate
from procgen.tasks import get_task
from procgen.tasks.mixture import DEFAULT_PERIOD, VOCAB_MODES  # noqa: F401 (the spec format, documented with mix)


def mix(weights: dict, tokens=None, rows=None, seed: int = 0, split: str = "train", params: dict | None = None,
        vocab: str = "auto", start: int = 0, period: int = DEFAULT_PERIOD):
    """Generate a weighted mixture of tasks in memory.

    Parameters
    ----------
    weights : dict
        ``{task: weight}``; weights are token shares (normalised to sum to 1).
    tokens : int or float, optional
        Approximate total tokens (``4e6`` accepted); rows are added until the expected token
        count reaches it. Give exactly one of ``tokens`` and ``rows``.
    rows : int, optional
        Number of rows.
    seed : int, default 0
    split : {"train", "validation", "test"}, default "train"
    params : dict, optional
        ``{task: {param: value}}`` for the component tasks.
    vocab : {"auto", "shared", "disjoint"}, default "auto"
        Keep ids when the tasks' vocabularies agree, else shift each task into its own id range.
    start : int, default 0
        Global index of the first row.
    period : int, default 10000
        Rows per scheduling period (weights are rounded to whole rows per period).

    Returns
    -------
    Batch
        ``task="mix"``; ``batch.row_task`` / ``batch.task_names`` give each row's task.

    Example
    -------
    >>> b = mix({"set": 0.5, "union": 0.5}, tokens=1e5, seed=0)
    >>> sorted(set(b.task_names[i] for i in b.row_task))
    ['set', 'union']
    """
    if not isinstance(weights, dict) or not weights:
        raise ValueError(f"weights must be a non-empty mapping {{task: weight}}; got {weights!r}")
    params = params or {}
    if not isinstance(params, dict) or set(params) - set(weights):
        extra = sorted(set(params) - set(weights)) if isinstance(params, dict) else params
        raise ValueError(f"params must map task names from weights to parameter dicts; got {extra!r}")
    for name, given in params.items():
        if given is not None and not isinstance(given, dict):
            raise ValueError(f"params[{name!r}] must be a mapping {{param: value}}; got {given!r}")
    if (tokens is None) == (rows is None):
        raise ValueError("give exactly one of tokens= and rows=")
    spec = {"tasks": {name: {"weight": weight, **(params.get(name) or {})} for name, weight in weights.items()},
            "vocab": vocab, "period": period}
    task = get_task("mix")
    resolved = task.resolve_params({"spec": spec})
    if rows is None:
        tokens = check_count(tokens, "tokens")
        info = resolved["spec"]["resolved"]
        counts = info["rows_per_period"]
        mean = sum(c * m for c, m in zip(counts, info["mean_row_tokens"])) / sum(counts)
        rows = max(1, math.ceil(tokens / mean))
        given = f"tokens={tokens}"
    else:
        rows = check_count(rows, "rows")
        given = f"rows={rows}"
    check_memory(task, rows, resolved, given)  # named after the argument the caller gave
    return generate("mix", rows, seed=seed, split=split, start=start, spec=spec)
