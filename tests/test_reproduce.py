"""``procgen train reproduce``: a miniature end-to-end run (seconds) that writes the table, the JSON
of every run and the plots; the real numbers come from the command, not from CI."""

import dataclasses
import importlib
import json

import pytest

torch = pytest.importorskip("torch")

from click.testing import CliRunner  # noqa: E402

from procgen.cli import cli  # noqa: E402
from procgen.tasks import get_task  # noqa: E402
from procgen.train import reproduce as rp  # noqa: E402

transfer_module = importlib.import_module("procgen.train.transfer")  # the package re-exports a function of that name

torch.set_num_threads(1)

TINY = rp.Budget("tiny", warmup_steps=2, warmup_batch_size=4, warmup_lr=1e-3, finetune_steps=2,
                 finetune_batch_size=4, finetune_lr=1e-3, lr_warmup_steps=1, weight_decay=1e-3,
                 eval_rows=8, eval_every=1, curve_rows=4, seeds=2)


@pytest.fixture(scope="module")
def haystack_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("reproduce")
    result = CliRunner().invoke(cli, ["train", "reproduce", "--experiment", "haystack", "--budget", "smoke",
                                      "--seeds", "2", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    return out, result.output


def test_cli_writes_table_json_and_plots_with_every_condition(haystack_run):
    out, output = haystack_run
    experiment = rp.get_experiments("haystack")[0]
    table = (out / "results.md").read_text()
    assert table in output  # the table is also printed
    for condition in experiment.conditions:
        row = next(line for line in table.splitlines() if line.startswith(f"| {condition.name} |"))
        # official scoring and every answer token; two seeds
        assert row.count(" ± ") == 2 and len(row.split(" | ")[-1].split(", ")) == 2
        reference = condition.reference_for("haystack")
        assert ("(ref " in row) == (reference is not None)
        if reference is not None:
            assert f"(ref {reference:.1f})" in row
    runs = json.loads((out / "runs.json").read_text())
    assert runs["budget"]["name"] == "smoke" and runs["seeds"] == 2
    got = {(r["condition"], r["seed"]) for r in runs["runs"]}
    assert got == {(c.name, s) for c in experiment.conditions for s in (0, 1)}
    for record in runs["runs"]:
        assert 0.0 <= record["accuracy"] <= 1.0 and record["eval_rows"] == rp.BUDGETS["smoke"].eval_rows
        assert 0.0 <= record["accuracy_all"] <= 1.0
        assert record["scored_tokens"] == record["eval_rows"]  # official haystack scoring: one value per row
        assert [step for step, _ in record["curve"]] == [1, 2]
    for name in ("results-haystack.png", "curves-haystack.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_warmups_are_trained_once_and_shared(haystack_run):
    out, _ = haystack_run
    # dyck serves two conditions (plain and weights shuffled); dyck with shuffled tokens is its own
    names = sorted(p.name.rsplit("-", 1)[0] for p in (out / "warmups").iterdir())
    assert names == ["dyck-2_4_16-seed0", "dyck-2_4_16-seed1", "dyck-shuffled-2_4_16-seed0",
                     "dyck-shuffled-2_4_16-seed1"]
    record = json.loads(next((out / "warmups").glob("dyck-shuffled-2_4_16-seed0-*/warmup.json")).read_text())
    assert record["shuffle_tokens"] is True and record["steps"] == rp.BUDGETS["smoke"].warmup_steps


def test_rerun_reuses_finished_runs_and_extends_seeds(tmp_path):
    lines = []
    first = rp.reproduce("components", seeds=1, budget=TINY, out=tmp_path, log=lines.append)
    started = [line for line in lines if line.startswith("[components]")]
    assert len(started) == 4 and len(first["runs"]) == 4
    assert len([line for line in lines if line.startswith("    [components]")]) == 4  # finished
    lines.clear()
    second = rp.reproduce("components", seeds=2, budget=TINY, out=tmp_path, log=lines.append)
    started = [line for line in lines if line.startswith("[components]")]
    assert len(started) == 4 and all("seed 1" in line for line in started)  # seed 0 came from runs.jsonl
    assert [r["accuracy"] for r in second["runs"] if r["seed"] == 0] == [r["accuracy"] for r in first["runs"]]


def test_version_2_records_are_read_back_and_new_runs_use_derived_seeds(tmp_path):
    """Runs recorded before seeds came from derive_seed (spec version 2) still count as finished, so
    published tables re-render without re-training; a new run is version 3, and its warm-ups are keyed
    apart from version-2 warm-ups (their initialisation differs)."""
    first = rp.reproduce("haystack", seeds=1, budget=TINY, out=tmp_path, log=None)
    assert {r["spec"]["version"] for r in first["runs"]} == {3}
    assert all(d["warmup"]["seeding"] == 3 for r in first["runs"] for d in r["spec"]["donors"])
    experiment = rp.get_experiments("haystack")[0]
    budget = rp.get_budget(TINY)
    legacy = []
    for record in first["runs"]:  # rewrite the log as version 2 would have keyed the same runs
        condition = next(c for c in experiment.conditions if c.name == record["condition"])
        spec = rp._run_spec(experiment, condition, record["target"], record["seed"], budget, 2)
        assert spec["version"] == 2 and all("seeding" not in d["warmup"] for d in spec["donors"])
        legacy.append({"key": rp._key(spec), "spec": spec, "result": {k: record[k] for k in (
            "accuracy", "accuracy_all", "exact_match", "eval_loss", "eval_rows", "scored_tokens", "answer_tokens",
            "final_train_loss", "curve", "train_loss", "seconds")}})
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in legacy))
    lines = []
    again = rp.reproduce("haystack", seeds=1, budget=TINY, out=tmp_path, log=lines.append)
    assert not [line for line in lines if line.endswith("queued")]  # nothing re-trained
    assert [r["accuracy"] for r in again["runs"]] == [r["accuracy"] for r in first["runs"]]
    assert {r["spec"]["version"] for r in again["runs"]} == {2}


def test_assembly_takes_attention_and_mlps_from_different_warmups(tmp_path, monkeypatch):
    seen = {}
    real_assemble = transfer_module.assemble

    def spy(donors, into, **kwargs):
        seen.update({key: model.config.vocab_size for key, model in donors.items()})
        return real_assemble(donors, into, **kwargs)

    monkeypatch.setattr(transfer_module, "assemble", spy)
    result = rp.reproduce("assembly", seeds=1, budget=TINY, out=tmp_path, log=None)
    vocab = {task: get_task(task).vocab_size(get_task(task).resolve_params({})) for task in ("set", "eca")}
    assert seen == {"attn": vocab["set"], "mlp": vocab["eca"]}
    table = result["table"]
    row = next(line for line in table.splitlines() if line.startswith("| set attention + eca MLPs |"))
    assert row.count(" ± ") == 9 and "(ref 89.3)" in row  # four targets, their mean, four "all tokens"


def test_target_params_reach_training_and_scoring_and_warmups_are_shared(tmp_path):
    full = rp.reproduce("components", seeds=1, budget=TINY, out=tmp_path, log=None)
    lines = []
    small = rp.reproduce("components_2pairs", seeds=1, budget=TINY, out=tmp_path, log=lines.append)
    assert not any(line.startswith("warm-up") for line in lines)  # the set warm-up of "components" is reused
    assert all(r["spec"]["target_params"] == {"pairs": 2} for r in small["runs"])
    assert all("target_params" not in r["spec"] for r in full["runs"])
    assert {r["key"] for r in small["runs"]}.isdisjoint(r["key"] for r in full["runs"])
    table = small["table"]
    assert "## components_2pairs (2_4_16, pairs=2)" in table and "(ref " not in table.split("##", 1)[1]


def test_reproduction_is_deterministic(tmp_path):
    first = rp.reproduce("haystack", seeds=1, budget=TINY, out=tmp_path / "a", log=None)
    second = rp.reproduce("haystack", seeds=1, budget=TINY, out=tmp_path / "b", log=None)
    assert [r["accuracy"] for r in first["runs"]] == [r["accuracy"] for r in second["runs"]]
    assert [r["train_loss"] for r in first["runs"]] == [r["train_loss"] for r in second["runs"]]


def test_controls_change_the_transferred_model(tmp_path):
    # right after a transfer every token embedding is the same mean row, so every transferred
    # model predicts a uniform distribution; after a few steps the runs differ by what was
    # transferred: the controls must give other losses than the plain dyck transfer
    budget = dataclasses.replace(TINY, warmup_steps=20, warmup_lr=1e-2, finetune_steps=3, finetune_lr=1e-2)
    result = rp.reproduce("haystack", seeds=1, budget=budget, out=tmp_path, log=None)
    loss = {r["condition"]: r["eval_loss"] for r in result["runs"]}
    assert len(set(loss.values())) == 4


def test_jobs_2_gives_the_results_of_jobs_1(tmp_path):
    one = rp.reproduce("haystack", seeds=1, budget=TINY, out=tmp_path / "one", log=None, jobs=1, threads=1)
    two = rp.reproduce("haystack", seeds=1, budget=TINY, out=tmp_path / "two", log=None, jobs=2, threads=1)
    fields = ("condition", "seed", "accuracy", "accuracy_all", "eval_loss", "train_loss", "curve")
    assert [[r[f] for f in fields] for r in one["runs"]] == [[r[f] for f in fields] for r in two["runs"]]
    assert not (tmp_path / "two" / rp.FINETUNE_DIR).exists() or not any((tmp_path / "two" / rp.FINETUNE_DIR).iterdir())


def test_paper_protocol_is_the_official_finetune():
    paper = rp.get_budget("paper")
    assert (paper.finetune_steps, paper.finetune_batch_size, paper.finetune_lr) == (10_000, 1000, 1e-3)
    assert (paper.lr_warmup_steps, paper.weight_decay, paper.min_lr_ratio) == (500, 1e-3, 0.0)
    assert tuple(paper.betas) == (0.9, 0.999) and paper.eval_rows == 4000  # HF Trainer's AdamW defaults
    assert paper.tie_embeddings is False and paper.scoring == "reference" and paper.official_model
    quarter = rp.get_budget("quarter")
    assert quarter.finetune_steps == 2500 and dataclasses.replace(quarter, name="paper", finetune_steps=10_000,
                                                                  eval_every=500) == paper


def test_official_transfer_rules(tmp_path):
    from procgen.train.model import GPT, GPTConfig

    budget = dataclasses.replace(TINY, tie_embeddings=False, scoring="reference", official_model=True)
    runner = rp._Runner(tmp_path, budget, "cpu", False, lambda line: None)
    donor = GPT(GPTConfig(vocab_size=9, block_size=64))  # a warm-up shorter than the haystack's 100 positions
    runner.warm_model = lambda warmup, model_name, seed: donor
    warm = rp.WarmUp("dyck")
    mean = donor.transformer.wte.weight.detach().mean(0)

    torch.manual_seed(0)
    everything = GPT(GPTConfig(vocab_size=256, block_size=100, tie_embeddings=False))
    wpe_before = everything.transformer.wpe.weight.detach().clone()
    runner._initialise(everything, rp.Condition("all", (rp.Donor(("all",), warm),)), "2_4_16", 0)
    for rows in (everything.transformer.wte.weight, everything.lm_head.weight):
        assert torch.equal(rows.detach(), mean.expand(256, 16))  # input and output rows: the donor's mean
    assert torch.equal(everything.transformer.wpe.weight, wpe_before)  # donor context 64 < 100: kept random
    assert torch.equal(everything.transformer.h[1].mlp.c_fc.weight, donor.transformer.h[1].mlp.c_fc.weight)

    attention_only = GPT(GPTConfig(vocab_size=256, block_size=100, tie_embeddings=False))
    wte_before = attention_only.transformer.wte.weight.detach().clone()
    runner._initialise(attention_only, rp.Condition("attn", (rp.Donor(("attn",), warm),)), "2_4_16", 0)
    assert torch.equal(attention_only.transformer.wte.weight, wte_before)  # official: embeddings stay random
    assert torch.equal(attention_only.transformer.h[0].attn.c_attn.weight, donor.transformer.h[0].attn.c_attn.weight)


@pytest.mark.parametrize("bad, message", [
    (dict(experiments="nope"), "unknown experiment 'nope'"),
    (dict(budget="huge"), "unknown budget 'huge'"),
    (dict(seeds=0), "seeds must be an integer >= 1"),
    (dict(jobs=0), "jobs must be an integer >= 1"),
    (dict(threads=0), "threads must be None or an integer >= 1"),
])
def test_bad_arguments_name_the_problem(tmp_path, bad, message):
    with pytest.raises(ValueError, match=message):
        rp.reproduce(**{"out": tmp_path, **bad})


def test_cli_bad_experiment_exits_2(tmp_path):
    result = CliRunner().invoke(cli, ["train", "reproduce", "--experiment", "haystak", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "unknown experiment 'haystak'" in result.output


# --- the n-gram control -----------------------------------------------------------------------------

# the experiments before the n-gram control was added, and the sha256 of their sorted run keys (all
# conditions x targets x seeds 0..2 x BUDGETS, spec versions 3 and 2): adding ngram_order to WarmUp
# must not change the key of any existing run. A deliberate change of WARMUP_RECIPES changes them
# (last: eca, identity and set at 8000 steps, from the recipe search); the haystack runs' keys never do.
EXISTING_EXPERIMENTS = ["haystack", "addition", "reversed_addition", "sort", "multiplication", "components", "assembly",
                        "haystack_decisive", "haystack_2pairs", "components_2pairs"]
# The digest is over the *distinct* keys: an experiment may list a condition another one has (since
# haystack_decisive took components' "set, attention only"; that set was checked equal to the old one).
EXISTING_RUN_KEYS = {3: "69e031469c3ed03a2d55e453782828df0c7db20ed06fee46d882888288fecd14",
                     2: "697369b51a1b27b7bbbafd3529fb13f11d530dc7c1d2e65db3c1a881f75035f7"}


@pytest.mark.parametrize("version", [3, 2])
def test_existing_run_keys_are_unchanged(version):
    import hashlib

    keys = [rp._key(rp._run_spec(e, c, t, seed, budget, version))
            for e in rp.get_experiments(EXISTING_EXPERIMENTS) for c in e.conditions for t in e.targets
            for seed in range(3) for budget in rp.BUDGETS.values()]
    assert len(set(keys)) == 372
    assert hashlib.sha256("\n".join(sorted(set(keys))).encode()).hexdigest() == EXISTING_RUN_KEYS[version]


def test_haystack_controls_trains_the_2gram_control_and_shares_the_haystack_runs(tmp_path, monkeypatch):
    loop = importlib.import_module("procgen.train.loop")
    trained = []
    real_train = loop.train

    def spy(model, data, steps, **kwargs):
        trained.append((data, kwargs.get("params")))
        return real_train(model, data, steps, **kwargs)

    monkeypatch.setattr(loop, "train", spy)
    first = rp.reproduce("haystack", seeds=1, budget=TINY, out=tmp_path, log=None)
    lines = []
    trained.clear()
    result = rp.reproduce("haystack_controls", seeds=1, budget=TINY, out=tmp_path, log=lines.append)
    # only the new condition runs: the others are the haystack experiment's runs (same keys)
    assert [line for line in lines if line.endswith("queued")] == [
        "[haystack_controls] dyck, 2-gram control -> haystack, seed 0: queued"]
    shared = {r["condition"]: r["key"] for r in first["runs"]}
    for record in result["runs"]:
        if record["condition"] != "dyck, 2-gram control":
            assert record["key"] == shared[record["condition"]]
    # the warm-up trained on the ngram task with Dyck as its source, then the fine-tune on the haystack
    assert trained[0] == ("ngram", {"source": "dyck", "source_params": {}, "order": 2})
    assert [data for data, _ in trained[1:]] == ["haystack"]
    control = next(r for r in result["runs"] if r["condition"] == "dyck, 2-gram control")
    assert control["spec"]["donors"][0]["warmup"]["ngram_order"] == 2
    assert control["recipe"] == "all from dyck (order-2 n-gram control)"
    directory = next((tmp_path / "warmups").glob("dyck-2gram-2_4_16-seed0-*"))
    record = json.loads((directory / "warmup.json").read_text())
    assert record["ngram_order"] == 2 and record["task"] == "dyck" and record["heldout_accuracy"] is None
    assert json.loads((directory / "config.json").read_text())["vocab_size"] == 9  # Dyck's vocabulary
    table = result["table"]
    assert "| dyck, 2-gram control |" in table and "| dyck, tokens shuffled |" in table


def test_warmup_controls_are_checked():
    assert rp.WarmUp("dyck", ngram_order=1).label() == "dyck (order-1 n-gram control)"
    assert rp.WarmUp("eca", (("rule", 30),), ngram_order=2).data() == (
        "ngram", {"source": "eca", "source_params": {"rule": 30}, "order": 2})
    assert rp.WarmUp("set").data() == ("set", {})
    with pytest.raises(ValueError, match="ngram_order must be None, 1 or 2"):
        rp.WarmUp("dyck", ngram_order=3)
    with pytest.raises(ValueError, match="two different controls"):
        rp.WarmUp("dyck", shuffle_tokens=True, ngram_order=2)


def test_an_interrupted_warmup_resumes_to_the_same_weights(tmp_path, monkeypatch):
    """Warm-ups checkpoint every steps // 8 steps, so a 8000-step warm-up killed at the end of a session
    continues where it stopped, and ends with the weights of an uninterrupted run."""
    import procgen.train.loop as loop_module

    budget = dataclasses.replace(TINY, warmup_steps=16)
    warmup = rp.WarmUp("dyck")
    whole = rp._Runner(tmp_path / "whole", budget, None, False, print).warm_model(warmup, "1_2_16", 0)

    real_train = loop_module.train

    def killed_at_step_9(*args, **kwargs):
        def callback(step, metrics):
            if step == 9:
                raise KeyboardInterrupt  # the session ends (after the step-8 checkpoint)
            return False
        return real_train(*args, callback=callback, **kwargs)

    monkeypatch.setattr(loop_module, "train", killed_at_step_9)
    with pytest.raises(KeyboardInterrupt):
        rp._Runner(tmp_path / "cut", budget, None, False, print).warm_model(warmup, "1_2_16", 0)
    directory = next((tmp_path / "cut" / rp.WARMUP_DIR).iterdir())
    assert not (directory / "warmup.json").exists() and (directory / "checkpoints").is_dir()
    monkeypatch.setattr(loop_module, "train", real_train)
    resumed = rp._Runner(tmp_path / "cut", budget, None, False, print).warm_model(warmup, "1_2_16", 0)
    for name, tensor in whole.state_dict().items():
        assert torch.equal(tensor, resumed.state_dict()[name]), name
