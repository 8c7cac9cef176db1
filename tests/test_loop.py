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
