"""procgen.train.loop and evaluate: learning, schedules, exact resume, DDP under torchrun."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import procgen  # noqa: E402
from procgen.train.evaluate import evaluate, evaluate_batch, score_logits  # noqa: E402
from procgen.train.loop import ROWS_NAME, build_model, lr_at, train, warmup  # noqa: E402
from procgen.train.model import GPT, GPTConfig  # noqa: E402

torch.set_num_threads(1)
IDENTITY = {"length": 8, "vocab_size": 10}
RAGGED = {"min_length": 2, "max_length": 8, "vocab_size": 10}


def metrics(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def train_losses(out):
    return {r["step"]: r["loss"] for r in metrics(out) if "loss" in r}


def test_lr_schedule_warms_up_then_decays():
    values = [lr_at(s, 100, 1e-3, warmup_steps=10) for s in range(1, 101)]
    assert values[:10] == pytest.approx([1e-4 * s for s in range(1, 11)])
    assert all(a >= b for a, b in zip(values[9:], values[10:]))  # cosine never increases
    assert values[-1] == pytest.approx(1e-4)                       # ends at lr * min_lr_ratio
    assert lr_at(55, 100, 1e-3, 10) == pytest.approx(1e-4 + 0.9e-3 * 0.5)  # halfway
    assert lr_at(80, 100, 1e-3, 10, schedule="constant") == 1e-3


def test_gpt_learns_identity_to_95_percent():
    torch.manual_seed(0)
    model = build_model("2_4_16", "identity", IDENTITY)
    summary = train(model, "identity", 300, params=IDENTITY, lr=1e-2, batch_size=32, weight_decay=0.0,
                    progress=False, eval_rows=256, log_every=50)
    assert summary["eval"]["accuracy"] > 0.95
    assert summary["history"][0]["loss"] > 2 * summary["loss"]
    held_out = evaluate(model, "identity", n=500, seed=1, **IDENTITY)
    assert held_out["accuracy"] > 0.95 and held_out["tokens"] == 500 * 8 and held_out["rows"] == 500


def _tiny(seed=0, dropout=0.1):
    torch.manual_seed(seed)
    return GPT(GPTConfig.from_name("1_2_16", vocab_size=12, block_size=17, dropout=dropout))


def test_resume_gives_the_same_losses_as_an_uninterrupted_run(tmp_path):
    options = dict(params=RAGGED, lr=3e-3, batch_size=8, grad_accum=2, log_every=1, eval_data=False,
                   progress=False, seed=3)
    straight = train(_tiny(), "identity", 20, out=tmp_path / "a", **options)
    stopped = train(_tiny(), "identity", 20, out=tmp_path / "b", callback=lambda step, _: step == 10, **options)
    assert stopped["stopped"] and stopped["step"] == 10
    state = torch.load(tmp_path / "b" / "trainer_state.pt", weights_only=True)
    assert state["step"] == 10 and state["next_row"] == 10 * 8 * 2
    resumed = train(_tiny(seed=99), "identity", 20, out=tmp_path / "b", resume=True, **options)
    assert resumed["step"] == 20 and resumed["rows"] == 10 * 16
    a, b = train_losses(tmp_path / "a"), train_losses(tmp_path / "b")
    assert sorted(a) == sorted(b) == list(range(1, 21))
    assert [a[s] for s in range(11, 21)] == [b[s] for s in range(11, 21)]  # bit-identical, not approx
    weights_a = straight["model"].state_dict()
    for name, value in resumed["model"].state_dict().items():
        assert torch.equal(value, weights_a[name]), name
    for name in ("model.safetensors", "config.json", "trainer_state.pt", "loss.png"):
        assert (tmp_path / "b" / name).is_file()


def test_out_with_a_checkpoint_needs_resume(tmp_path):
    train(_tiny(), "identity", 2, params=RAGGED, out=tmp_path, progress=False, eval_data=False)
    with pytest.raises(ValueError, match="already holds a checkpoint"):
        train(_tiny(), "identity", 4, params=RAGGED, out=tmp_path, progress=False, eval_data=False)
    summary = train(_tiny(), "identity", 2, params=RAGGED, out=tmp_path, resume=True, progress=False)
    assert summary["step"] == 2 and summary["rows"] == 0  # nothing left to do
    with pytest.raises(ValueError, match="resume: .*'max_length': 8.*'max_length': 7"):
        train(_tiny(), "identity", 4, params={**RAGGED, "max_length": 7}, out=tmp_path, resume=True,
              progress=False)


def test_gradient_accumulation_weights_micro_batches_by_answer_tokens():
    # ragged rows: a plain mean of micro-batch means would differ from the big batch's per-token mean
    results = []
    for batch_size, accum in ((16, 1), (8, 2)):
        summary = train(_tiny(dropout=0.0), "identity", 1, params=RAGGED, batch_size=batch_size, grad_accum=accum,
                        warmup_steps=0, grad_clip=None, progress=False, eval_data=False, log_every=1)
        results.append(summary)
    assert results[0]["loss"] == pytest.approx(results[1]["loss"], rel=1e-5)
    params_a, params_b = results[0]["model"].state_dict(), results[1]["model"].state_dict()
    for name in params_a:
        assert torch.allclose(params_a[name], params_b[name], atol=1e-6), name


def test_periodic_eval_metrics_and_in_memory_data(tmp_path):
    rows = procgen.generate("identity", n=64, seed=5, **IDENTITY)
    held_out = procgen.generate("identity", n=32, seed=5, split="test", **IDENTITY)
    summary = train(build_model("1_2_16", "identity", IDENTITY), rows, 6, batch_size=16, eval_every=3,
                    eval_data=held_out, log_every=2, out=tmp_path, progress=False)
    records = metrics(tmp_path)
    assert [r["step"] for r in records if "loss" in r] == [2, 4, 6]
    assert [r["step"] for r in records if "eval_accuracy" in r] == [3, 6]
    assert summary["eval"]["rows"] == 32 and summary["rows"] == 6 * 16  # 64 rows cycled


def test_warmup_builds_a_model_for_the_task():
    summary = warmup("2_4_16", "dyck", steps=3, params={"k": 2, "length": 8}, progress=False)
    assert summary["model"].config.vocab_size == 5 and summary["model"].config.block_size == 8
    assert summary["eval"] is None and summary["step"] == 3


@pytest.mark.parametrize("kwargs, words", [
    (dict(steps=0), ["steps", ">= 1"]),
    (dict(lr=0.0), ["lr", "> 0"]),
    (dict(schedule="linear"), ["schedule", "cosine, constant"]),
    (dict(min_lr_ratio=2.0), ["min_lr_ratio", "[0, 1]"]),
    (dict(grad_accum=0), ["grad_accum", ">= 1"]),
    (dict(eval_every=0), ["eval_every", ">= 1"]),
    (dict(data="haystack"), ["vocab_size mismatch", "haystack", "256", "vocab_size=12"]),
    (dict(scoring="official"), ["scoring must be one of", "'reference', 'all'", "'official'"]),
    (dict(length_groups=0), ["length_groups", ">= 1"]),
])
def test_train_bad_arguments(kwargs, words):
    arguments = dict(data="identity", steps=2, params=None if "data" in kwargs else RAGGED, progress=False)
    arguments.update(kwargs)
    with pytest.raises(ValueError) as err:
        train(_tiny(), **arguments)
    for word in words:
        assert word in str(err.value)


# --- evaluate -----------------------------------------------------------------------------------

def test_score_logits_counts_answer_tokens_and_exact_rows():
    labels = torch.tensor([[-100, -100, 3, 4], [-100, 1, 2, -100]])
    logits = torch.zeros(2, 4, 6)
    # logits at t predict labels[t + 1]; row 0: 3 right, 4 wrong; row 1: all right
    for row, predictions in enumerate([[0, 3, 0], [1, 2, 0]]):
        for position, token in enumerate(predictions):
            logits[row, position, token] = 5.0
    scores = score_logits(logits, labels)
    assert (scores["correct"], scores["tokens"], scores["exact"], scores["rows"]) == (3, 4, 1, 2)


def test_evaluate_refuses_a_task_the_model_cannot_represent():
    with pytest.raises(ValueError, match="vocab_size mismatch: task haystack needs 256"):
        evaluate(_tiny(), "haystack", n=4)
    with pytest.raises(ValueError, match="block_size must be >= the longest row"):
        evaluate_batch(_tiny(), procgen.generate("identity", n=4, length=20, vocab_size=10))


# --- DDP ----------------------------------------------------------------------------------------

def test_torchrun_two_processes_read_disjoint_rows(tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "PROCGEN_DEBUG_ROWS": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "procgen.cli", "train", "warmup", "--task", "identity", "--model", "1_2_16", "--steps", "3",
               "--batch-size", "4", "--log-every", "1", "--eval-rows", "8", "--out", str(out), "--quiet",
               "--length", "4", "--vocab-size", "10"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads((out / ROWS_NAME).read_text())
    assert seen["0"] == [0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19]
    assert seen["1"] == [4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23]
    assert [r["step"] for r in metrics(out) if "loss" in r] == [1, 2, 3]
    assert [r["tokens"] for r in metrics(out) if "loss" in r] == [72, 144, 216]  # both ranks: 8 rows x 9
    assert GPT.from_pretrained(out).config.vocab_size == 12
    assert np.isfinite(metrics(out)[-1]["eval_loss"])


# --- the fast path and the official scoring -----------------------------------------------------

def test_scored_fast_path_trains_like_the_full_forward_pass():
    # the same model trained through GPT.scored_forward (pruned last block, grouped lengths) and
    # through the Hugging Face conversion (full logits at every position) follows the same losses
    params = {"min_pairs": 1, "max_pairs": 6}
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_name("2_4_16", vocab_size=256, block_size=16, tie_embeddings=False))
    hf_model = model.to_hf()
    fast = train(model, "haystack", 6, params=params, batch_size=64, length_groups=4, eval_data=False,
                 progress=False, log_every=1, scoring="reference")
    full = train(hf_model, "haystack", 6, params=params, batch_size=64, eval_data=False, progress=False,
                 log_every=1, scoring="reference")
    assert np.allclose([r["loss"] for r in fast["history"]], [r["loss"] for r in full["history"]], atol=1e-5)


def test_evaluate_reference_scoring_counts_the_official_positions():
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_name("2_4_16", vocab_size=32, block_size=40))
    rows = procgen.generate("addition", n=50, seed=1, split="test")
    lengths = np.diff(rows.offsets)
    reference = evaluate_batch(model, rows, scoring="reference")
    every = evaluate_batch(model, rows, scoring="all")
    # reference: answer digits 2..n and the stop, plus the pad after rows shorter than 19 tokens
    assert reference["tokens"] == int((lengths - 12 - 1).sum() + (lengths < 19).sum())
    assert every["tokens"] == int((lengths - 12).sum())
    # the fast path (procgen GPT) and the full logits (its Hugging Face twin) agree
    hf_scores = evaluate_batch(model.to_hf(), rows, scoring="reference")
    assert (hf_scores["accuracy"], hf_scores["tokens"]) == (reference["accuracy"], reference["tokens"])
    assert abs(hf_scores["loss"] - reference["loss"]) < 1e-5
    with pytest.raises(ValueError, match="scoring must be one of 'reference', 'all'; got 'paper'"):
        evaluate(model, "addition", n=2, scoring="paper")


# --- atomic checkpoints, damaged files --------------------------------------------------------

class _Killed(BaseException):
    """Stands for SIGKILL in the middle of a save (a BaseException: nothing in the loop handles it)."""


class _FaultySave:
    """Counts the file-system operations of the save at ``step`` (not those nested in another) and
    raises _Killed at the ``kill_at``-th: every point where a kill leaves a different state on disk."""

    OPERATIONS = [("os", "replace"), ("os", "rename"), ("os", "link"), ("os", "unlink"), ("os", "rmdir"),
                  ("shutil", "rmtree"), ("shutil", "copytree"), ("shutil", "copy2")]

    def __init__(self, monkeypatch, step):
        import shutil

        from procgen.train import loop

        self.calls, self.kill_at, self.active, self.depth = 0, None, False, 0
        modules = {"os": os, "shutil": shutil}
        for module, name in self.OPERATIONS:
            monkeypatch.setattr(modules[module], name, self._counted(getattr(modules[module], name)))
        save = loop._Run._save

        def faulty_save(run, at, next_row):
            self.active = at == step
            try:
                save(run, at, next_row)
            finally:
                self.active = False

        monkeypatch.setattr(loop._Run, "_save", faulty_save)
        monkeypatch.setattr(loop, "_plot_losses", lambda *paths: None)  # speed; not a checkpoint file

    def _counted(self, operation):
        def counted(*args, **kwargs):
            if not self.active or self.depth:
                return operation(*args, **kwargs)
            self.calls += 1
            if self.calls == self.kill_at:
                raise _Killed(f"killed before file operation {self.calls}")
            self.depth += 1
            try:
                return operation(*args, **kwargs)
            finally:
                self.depth -= 1
        return counted


def test_a_save_killed_at_any_point_resumes_to_the_same_weights(tmp_path, monkeypatch):
    options = dict(params=RAGGED, lr=3e-3, batch_size=4, log_every=1, eval_data=False, progress=False, seed=3,
                   save_every=2)
    faults = _FaultySave(monkeypatch, step=4)
    straight = train(_tiny(), "identity", 4, out=tmp_path / "straight", **options)
    weights, losses = straight["model"].state_dict(), train_losses(tmp_path / "straight")
    hf_weights = (tmp_path / "straight" / "hf" / "model.safetensors").read_bytes()
    points = faults.calls  # of one uninterrupted save (at step 4)
    assert points >= 5
    different, untidy = [], []
    for kill_at in range(1, points + 1):
        out = tmp_path / f"killed-{kill_at}"
        faults.calls, faults.kill_at = 0, kill_at
        with pytest.raises(_Killed):
            train(_tiny(), "identity", 4, out=out, **options)
        faults.kill_at = None
        resumed = train(_tiny(seed=99), "identity", 4, out=out, resume=True, **options)
        models = (resumed["model"], GPT.from_pretrained(out))  # in memory, and the top-level files
        same = train_losses(out) == losses and \
            (out / "hf" / "model.safetensors").read_bytes() == hf_weights and \
            all(torch.equal(value, weights[name]) for model in models for name, value in model.state_dict().items())
        if not same:
            different.append(kill_at)
        left = [p.name for p in out.iterdir() if p.name.startswith(".")]  # temp files
        left += [p.name for p in (out / "checkpoints").glob("*") if p.name != "step-000004"]
        if left:
            untidy.append((kill_at, left))
    assert not different, f"killed before file operation {different} of {points}, the resumed run differs"
    assert not untidy, untidy


def test_resume_refuses_weights_that_do_not_match_the_trainer_state(tmp_path):
    from procgen.train.model import CheckpointError

    options = dict(params=RAGGED, batch_size=4, eval_data=False, progress=False)
    train(_tiny(), "identity", 2, out=tmp_path / "a", **options)
    train(_tiny(seed=1), "identity", 2, out=tmp_path / "b", **options)
    weights = tmp_path / "a" / "checkpoints" / "step-000002" / "model.safetensors"
    os.replace(tmp_path / "b" / "checkpoints" / "step-000002" / "model.safetensors", weights)  # the other run's
    with pytest.raises(CheckpointError) as err:
        train(_tiny(), "identity", 4, out=tmp_path / "a", resume=True, **options)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{weights} does not match {tmp_path / 'a' / 'trainer_state.pt'}")


def test_a_run_directory_of_the_format_1_layout_still_resumes(tmp_path):
    """Run directories written before checkpoints/ (weights at the top level, trainer_state.pt
    format 1 without a hash) resume exactly, and continue in the new layout."""
    import shutil

    options = dict(params=RAGGED, lr=3e-3, batch_size=8, log_every=1, eval_data=False, progress=False, seed=3)
    straight = train(_tiny(), "identity", 6, out=tmp_path / "a", **options)
    old = tmp_path / "old"
    train(_tiny(), "identity", 6, out=old, callback=lambda step, _: step == 3, **options)
    state = torch.load(old / "trainer_state.pt", weights_only=True)
    del state["checkpoint"], state["weights_sha256"]
    torch.save({**state, "format": 1}, old / "trainer_state.pt")
    shutil.rmtree(old / "checkpoints")
    resumed = train(_tiny(seed=99), "identity", 6, out=old, resume=True, **options)
    assert train_losses(old) == train_losses(tmp_path / "a")
    for name, value in resumed["model"].state_dict().items():
        assert torch.equal(value, straight["model"].state_dict()[name]), name
    assert torch.load(old / "trainer_state.pt", weights_only=True)["format"] == 2


@pytest.mark.parametrize("case", ["garbage", "truncated", "not a dict", "no optimizer", "another format",
                                  "folder missing", "weights changed", "config damaged", "legacy weights damaged"])
def test_resume_with_a_damaged_checkpoint_names_the_file(case, tmp_path):
    import shutil

    from procgen.train.model import CheckpointError

    options = dict(params=RAGGED, batch_size=4, eval_data=False, progress=False)
    train(_tiny(), "identity", 2, out=tmp_path, **options)
    state_path, folder = tmp_path / "trainer_state.pt", tmp_path / "checkpoints" / "step-000002"
    state = torch.load(state_path, weights_only=True)
    named = state_path
    if case == "garbage":
        state_path.write_bytes(b"\0" * 64)
    elif case == "truncated":
        state_path.write_bytes(state_path.read_bytes()[:1000])
    elif case == "not a dict":
        torch.save([1, 2, 3], state_path)
    elif case == "no optimizer":
        del state["optimizer"]
        torch.save(state, state_path)
    elif case == "another format":
        torch.save({**state, "format": 7}, state_path)
    elif case == "folder missing":
        shutil.rmtree(folder)
    elif case == "weights changed":
        named = folder / "model.safetensors"
        named.write_bytes(named.read_bytes()[:-4] + b"    ")
    elif case == "config damaged":
        named = folder / "config.json"
        named.write_text("[")
    elif case == "legacy weights damaged":
        del state["checkpoint"], state["weights_sha256"]
        torch.save({**state, "format": 1}, state_path)
        named = tmp_path / "model.safetensors"
        named.unlink()  # a hard link into the folder: replace, do not write through it
        named.write_bytes(b"garbage")
    with pytest.raises(CheckpointError) as err:
        train(_tiny(), "identity", 4, out=tmp_path, resume=True, **options)
    message = str(err.value)
    assert "\n" not in message and str(named) in message, message


@pytest.mark.parametrize("device, words", [
    ("bogus", ["device must be a torch device", "'bogus'"]),
    ("", ["device must be a torch device"]),
    ("meta", ["'meta' holds no data"]),
    pytest.param("cuda", ["device 'cuda' is not available", "torch.cuda.is_available() is False"],
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")),
    ("cuda:99", ["device 'cuda:99' is not available"]),
])
def test_train_refuses_a_device_that_is_not_here(device, words):
    with pytest.raises(ValueError) as err:
        train(_tiny(), "identity", 2, params=RAGGED, device=device, progress=False)
    assert "\n" not in str(err.value)
    for word in words:
        assert word in str(err.value)
