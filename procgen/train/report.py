"""The reproduction's report: the Markdown tables and the figures of docs/results.md."""

from __future__ import annotations

import math
from pathlib import Path

from procgen.train.experiments import WARMUP_RECIPES, Budget, Condition, Experiment, warmup_lr_warmup

# --- reporting ----------------------------------------------------------------------------------

def _scores(records, experiment: Experiment, condition: Condition, target: str | None,
            field: str = "accuracy") -> list[float]:
    """Accuracy in percent per seed; ``target=None``: the mean over the experiment's targets.

    ``field``: ``"accuracy"`` (official scored positions) or ``"accuracy_all"`` (every answer token).
    """
    mine = [r for r in records if r["experiment"] == experiment.name and r["condition"] == condition.name]
    seeds = sorted({r["seed"] for r in mine})
    values = []
    for seed in seeds:
        accs = [100 * r.get(field, r["accuracy"]) for r in mine
                if r["seed"] == seed and (target is None or r["target"] == target)]
        if accs and (target is not None or len(accs) == len(experiment.targets)):
            values.append(sum(accs) / len(accs))
    return values


def _mean_std(values) -> tuple[float, float]:
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return mean, std


def _cell(values, reference) -> str:
    ref = f" (ref {reference:.1f})" if reference is not None else ""
    if not values:
        return "–" + ref
    mean, std = _mean_std(values)
    return f"**{mean:.1f}** ± {std:.1f}{ref}"


def _describe(experiment: Experiment) -> str:
    return ", ".join([experiment.model] + [f"{k}={v}" for k, v in experiment.params])


def results_table(experiments, records, budget: Budget, seeds: int) -> str:
    """Markdown: one table per experiment, accuracy in % as mean ± std over seeds (paper's value
    in parentheses), then the per-seed values."""
    lines = [f"# procgen reproduction: `{budget.name}` budget, {seeds} seed(s)", "",
             "Per-token accuracy (%) on held-out rows, mean ± std over seeds, at the positions the official "
             "harness scores (its haystack: the value after the query; its arithmetic: the answer digits "
             "after the first, the stop token and the pad after it); (ref x) is the paper's number. "
             "\"all tokens\": every answer token scored.", "",
             f"Budget: warm-up {budget.warmup_steps} steps × {budget.warmup_batch_size} rows at lr "
             f"{budget.warmup_lr:g} ({warmup_lr_warmup(budget)} lr warm-up steps; per-task recipes: "
             f"{WARMUP_RECIPES or 'none'}); fine-tune {budget.finetune_steps} steps × {budget.finetune_batch_size} rows "
             f"at lr {budget.finetune_lr:g}; {budget.lr_warmup_steps} lr warm-up steps, cosine, weight decay "
             f"{budget.weight_decay:g}, AdamW betas {tuple(budget.betas)}, cosine floor {budget.min_lr_ratio:g}; "
             f"{'untied' if not budget.tie_embeddings else 'tied'} embeddings, loss on "
             f"{'the official scored positions' if budget.scoring == 'reference' else 'every answer token'}"
             f"{', official context lengths and transfer rules' if budget.official_model else ''}; "
             f"{budget.eval_rows} test rows.", ""]
    for experiment in experiments:
        many = len(experiment.targets) > 1
        header = (["condition", "recipe", *experiment.targets] + (["mean"] if many else [])
                  + [f"{t}, all tokens" for t in experiment.targets] + ["per seed"])
        lines += [f"## {experiment.name} ({_describe(experiment)})", "", experiment.summary + ".", "",
                  "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for condition in experiment.conditions:
            cells = [condition.name, condition.recipe()]
            for target in experiment.targets:
                cells.append(_cell(_scores(records, experiment, condition, target), condition.reference_for(target)))
            summary = _scores(records, experiment, condition, None)
            if many:
                cells.append(_cell(summary, condition.reference_for("mean")))
            for target in experiment.targets:
                cells.append(_cell(_scores(records, experiment, condition, target, "accuracy_all"), None))
            cells.append(", ".join(f"{v:.1f}" for v in summary) or "–")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def plot_results(experiments, records, out: Path) -> list[Path]:
    """Per experiment, ``results-<name>.png`` (bars: mean ± std over seeds at the official scored
    positions, hatched bars every answer token, the paper's numbers as black ticks) and
    ``curves-<name>.png`` (held-out accuracy during fine-tuning, one thin line per seed and the
    mean). Fonts >= 10 pt at 100 dpi, so labels stay readable at page width. [] without matplotlib.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    plt.rcParams.update({"font.size": 11, "legend.fontsize": 10, "xtick.labelsize": 10, "ytick.labelsize": 10})
    written = []
    for experiment in experiments:
        keys = list(experiment.targets) + (["mean"] if len(experiment.targets) > 1 else [])
        conditions = experiment.conditions
        figure, ax = plt.subplots(figsize=(max(6.4, 1.6 * len(conditions) * len(keys)), 4.2))
        width = 0.8 / len(conditions)
        for i, condition in enumerate(conditions):
            for j, key in enumerate(keys):
                target = None if key == "mean" else key
                x = j + (i - (len(conditions) - 1) / 2) * width
                values = _scores(records, experiment, condition, target)
                if values:
                    mean, std = _mean_std(values)
                    ax.bar(x - width * 0.22, mean, width * 0.44, yerr=std, color=f"C{i}", capsize=3,
                           label=condition.name if j == 0 else None)
                    ax.scatter([x - width * 0.22] * len(values), values, color="black", s=8, zorder=3)
                every = _scores(records, experiment, condition, target, "accuracy_all")
                if every:
                    mean, std = _mean_std(every)
                    ax.bar(x + width * 0.22, mean, width * 0.44, yerr=std, color=f"C{i}", alpha=0.45,
                           hatch="//", capsize=3)
                reference = condition.reference_for(key)
                if reference is not None:
                    ax.plot([x - width * 0.45, x + width * 0.45], [reference] * 2, color="black", lw=2.5)
        ax.set_xticks(range(len(keys)), [k.replace("_", " ") for k in keys])
        ax.set_ylim(0, 100)
        ax.set_ylabel("accuracy (%)")
        ax.set_title(f"{experiment.name} ({_describe(experiment)})\nsolid: official scoring, "
                     f"hatched: all answer tokens, black: paper", fontsize=10)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
        figure.tight_layout()
        path = out / f"results-{experiment.name}.png"
        figure.savefig(path, dpi=100)
        plt.close(figure)
        written.append(path)

        figure, ax = plt.subplots(figsize=(9.0, 4.2))
        for i, condition in enumerate(conditions):
            mine = [r for r in records if r["experiment"] == experiment.name and r["condition"] == condition.name]
            by_step = {}
            for record in mine:
                steps = [step for step, _ in record["curve"]]
                ax.plot(steps, [100 * a for _, a in record["curve"]], color=f"C{i}", lw=0.7, alpha=0.5)
                for step, accuracy in record["curve"]:
                    by_step.setdefault(step, []).append(100 * accuracy)
            if by_step:
                steps = sorted(by_step)
                ax.plot(steps, [sum(by_step[s]) / len(by_step[s]) for s in steps], color=f"C{i}", lw=2.2,
                        label=condition.name)
        ax.set_ylim(0, 100)
        ax.set_xlabel("fine-tune step")
        ax.set_ylabel("held-out accuracy (%)")
        ax.set_title(f"{experiment.name}: learning curves (thin: seeds, thick: mean)", fontsize=10)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
        figure.tight_layout()
        path = out / f"curves-{experiment.name}.png"
        figure.savefig(path, dpi=100)
        plt.close(figure)
        written.append(path)
    return written
