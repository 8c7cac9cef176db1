"""Hugging Face interop: the procgen collator under the real transformers.Trainer (default settings),
dataset info that sizes a model, and run folders that AutoModelForCausalLM loads."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import procgen  # noqa: E402
from procgen.train import DataCollatorForProcgen, collate_batch, trainer_dataset  # noqa: E402
from procgen.train.loop import HF_DIR, build_model, train  # noqa: E402
from procgen.train.model import GPT, GPTConfig  # noqa: E402

torch.set_num_threads(1)
SORT = {"min_length": 3, "max_length": 6, "vocab_size": 10}  # ragged rows, so padding matters


@pytest.fixture(scope="module")
def sort_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("data") / "sort"
    procgen.write("sort", out, n=256, shards=2, seed=0, progress=False, **SORT)
    return out


# --- the collator --------------------------------------------------------------------------------

def test_collator_equals_collate_batch_of_the_same_rows(sort_dir):
    rows = procgen.load(sort_dir).select(range(40, 57))
    expected = collate_batch(procgen.generate("sort", 17, seed=0, start=40, **SORT))
    for scoring in ("all", "reference"):
        got = DataCollatorForProcgen.from_dataset(sort_dir, scoring=scoring)(list(rows))
        for key in ("input_ids", "labels", "attention_mask"):
            assert torch.equal(got[key], expected[key]), key


def test_collator_reference_scoring_matches_collate_batch():
    batch = procgen.generate("addition", 12, seed=3, digits=3)  # official layout: scores a pad token too
    rows = [{"input_ids": batch.input_ids(i).tolist(), "answer_start": int(batch.answer_start[i])}
            for i in range(len(batch))]
    collator = DataCollatorForProcgen(pad_id=batch.pad_id, scoring="reference", task="addition",
                                      params={"digits": 3})
    got, expected = collator(rows), collate_batch(batch, scoring="reference")
    assert torch.equal(got["labels"], expected["labels"]) and torch.equal(got["input_ids"], expected["input_ids"])
    assert not torch.equal(got["labels"], DataCollatorForProcgen(pad_id=batch.pad_id)(rows)["labels"])


def test_collator_reads_the_trainer_column_and_refuses_rows_without_a_span(sort_dir):
    collator = DataCollatorForProcgen.from_dataset(sort_dir)
    renamed = trainer_dataset(sort_dir)
    assert renamed.column_names == ["input_ids", "label"]
    assert torch.equal(collator(list(renamed.select(range(8))))["labels"],
                       collator(list(procgen.load(sort_dir).select(range(8))))["labels"])
    with pytest.raises(ValueError, match="rows need answer_start.*remove_unused_columns=False"):
        collator([{"input_ids": [1, 2, 3]}])


@pytest.mark.parametrize("kwargs, words", [
    ({"pad_id": -1}, "pad_id must be None or an integer >= 0"),
    ({"scoring": "some"}, "scoring must be one of"),
    ({"scoring": "reference"}, "task must be given with scoring='reference'"),
    ({"block_size": 0}, "block_size must be None or an integer >= 1"),
    ({"task": "nope"}, "task must be one of"),
    ({"task": "sort", "params": {"length": 0}}, "length"),
    ({"params": {"length": 4}}, "params need a task"),
])
def test_collator_bad_arguments(kwargs, words):
    with pytest.raises(ValueError, match=words):
        DataCollatorForProcgen(**kwargs)


def test_collator_bad_rows():
    collator = DataCollatorForProcgen(block_size=4)
    with pytest.raises(ValueError, match="features must be a non-empty list"):
        collator([])
    with pytest.raises(ValueError, match="features must be dicts"):
        collator([[1, 2, 3]])
    with pytest.raises(ValueError, match="block_size must be >= the longest row"):
        collator([{"input_ids": [1, 2, 3, 4, 5], "answer_start": 1}])
    import datasets

    with pytest.raises(ValueError, match="data must be a procgen dataset directory"):
        trainer_dataset(datasets.Dataset.from_dict({"input_ids": [[1, 2]]}))


# --- info sizes a model --------------------------------------------------------------------------

def test_info_has_vocab_size_and_max_row_length_also_for_older_manifests(sort_dir, tmp_path):
    info = procgen.info(sort_dir)
    assert info["vocab_size"] == 12 and info["max_row_length"] == 13
    assert max(len(row) for row in procgen.load(sort_dir)["input_ids"]) <= info["max_row_length"]
    old = tmp_path / "old"
    procgen.write("dyck", old, n=8, k=2, length=10, progress=False)
    manifest = json.loads((old / "procgen.json").read_text())
    del manifest["max_row_length"], manifest["vocab_size"]  # as written before these fields existed
    (old / "procgen.json").write_text(json.dumps(manifest))
    assert (procgen.info(old)["max_row_length"], procgen.info(old)["vocab_size"]) == (10, 5)
    assert len(procgen.load(old)) == 8


# --- the real Trainer ----------------------------------------------------------------------------

def test_transformers_trainer_with_default_settings_trains_on_a_procgen_dataset(sort_dir, tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

    info = procgen.info(sort_dir)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_positions=info["max_row_length"], vocab_size=info["vocab_size"],
                                       n_layer=1, n_head=2, n_embd=16, bos_token_id=None, eos_token_id=None))
    args = TrainingArguments(str(tmp_path / "run"), max_steps=30, per_device_train_batch_size=16,
                             learning_rate=3e-3, logging_steps=5, save_strategy="no", report_to=[], use_cpu=True,
                             disable_tqdm=True, seed=0)
    assert args.remove_unused_columns  # the default: the Trainer drops columns the model does not take
    collator = DataCollatorForProcgen.from_dataset(sort_dir)
    seen = []

    def spy(features):
        batch = collator(features)
        seen.append(batch)
        return batch

    trainer = Trainer(model, args, train_dataset=trainer_dataset(sort_dir), data_collator=spy,
                      eval_dataset=trainer_dataset(sort_dir).select(range(32)))
    trainer.train()
    losses = [record["loss"] for record in trainer.state.log_history if "loss" in record]
    assert len(losses) == 6 and all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert np.isfinite(trainer.evaluate()["eval_loss"])
    # the labels the model trained on are collate_batch's for those rows: answers only
    batch = seen[0]
    assert (batch["labels"][:, :4] == -100).all()  # every row has >= 3 prompt tokens + SEP
    assert ((batch["labels"] == -100) | (batch["labels"] == batch["input_ids"])).all()


# --- run folders load in transformers ------------------------------------------------------------

@pytest.mark.parametrize("bias, tied", [(True, True), (False, False)])
def test_save_hf_loads_with_auto_model_and_the_same_logits(tmp_path, bias, tied):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=11, block_size=12, n_layer=2, n_head=2, n_embd=8, bias=bias,
                          tie_embeddings=tied)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))  # non-trivial biases and LayerNorms
    model.save_hf(tmp_path / "hf")
    hf = AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    ids = torch.randint(0, 11, (3, 12))
    with torch.no_grad():
        assert torch.allclose(hf(ids).logits, model(ids)[0], atol=1e-5)
    assert hf.config.tie_word_embeddings is tied


def test_train_run_folder_has_an_hf_model_and_still_resumes(tmp_path):
    from transformers import AutoModelForCausalLM

    params = {"length": 6, "vocab_size": 10}
    out = tmp_path / "run"
    torch.manual_seed(0)
    train(build_model("2_4_16", "identity", params), "identity", 6, params=params, batch_size=8, out=out,
          save_every=3, progress=False, eval_data=False)
    model = GPT.from_pretrained(out).eval()
    hf = AutoModelForCausalLM.from_pretrained(out / HF_DIR).eval()
    ids = torch.randint(0, 12, (4, 13))
    with torch.no_grad():
        assert torch.allclose(hf(ids).logits, model(ids)[0], atol=1e-5)
    torch.manual_seed(0)
    resumed = train(build_model("2_4_16", "identity", params), "identity", 9, params=params, batch_size=8,
                    out=out, resume=True, save_every=3, progress=False, eval_data=False)
    assert resumed["step"] == 9
    hf = AutoModelForCausalLM.from_pretrained(out / HF_DIR).eval()  # replaced as a whole by the last save
    with torch.no_grad():
        assert torch.allclose(hf(ids).logits, GPT.from_pretrained(out).eval()(ids)[0], atol=1e-5)
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []
