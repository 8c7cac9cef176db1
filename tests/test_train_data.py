"""procgen.train.data: collation, packing, token shuffling, and rows disjoint across workers/ranks."""

from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import procgen  # noqa: E402
from procgen.train import data  # noqa: E402
from procgen.train.data import (ProcgenIterableDataset, collate, collate_batch, pack, row_ranges,  # noqa: E402
                                shuffle_within_rows)

torch.set_num_threads(1)
IDENTITY = dict(min_length=2, max_length=7, vocab_size=10)  # ragged rows, answer_start varies


# --- collate ------------------------------------------------------------------------------------

def test_collate_labels_are_ignored_before_answer_start_and_on_padding():
    rows = [np.array([4, 5, 6, 7], np.uint8), np.array([1, 2], np.uint8), np.array([9, 8, 7], np.uint8)]
    out = collate(rows, [2, 0, 3], pad_id=11)
    assert out["input_ids"].tolist() == [[4, 5, 6, 7], [1, 2, 11, 11], [9, 8, 7, 11]]
    assert out["labels"].tolist() == [[-100, -100, 6, 7], [1, 2, -100, -100], [-100, -100, -100, -100]]
    assert out["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0]]
    assert all(t.dtype == torch.int64 for t in out.values())


def test_collate_batch_matches_row_labels_of_a_ragged_batch():
    batch = procgen.generate("identity", n=50, seed=3, **IDENTITY)
    assert len(set(batch.lengths.tolist())) > 1
    out = collate_batch(batch)
    width = int(batch.lengths.max())
    assert out["input_ids"].shape == (50, width)
    for i in range(len(batch)):
        length = int(batch.lengths[i])
        assert out["input_ids"][i, :length].tolist() == batch[i].tolist()
        assert (out["input_ids"][i, length:] == batch.pad_id).all()
        assert out["labels"][i, :length].tolist() == batch.labels(i).tolist()
        assert (out["labels"][i, length:] == -100).all()
        assert out["attention_mask"][i].sum() == length


def test_collate_refuses_rows_longer_than_block_size_and_empty_input():
    with pytest.raises(ValueError, match="block_size.*row 1 has 5 tokens"):
        collate([np.arange(3), np.arange(5)], [0, 0], block_size=4)
    with pytest.raises(ValueError, match="at least one row"):
        collate([], [])


# --- pack ---------------------------------------------------------------------------------------

def test_pack_cuts_concatenated_rows_into_fixed_blocks():
    batch = procgen.dyck(n=10, k=2, length=64, seed=1)
    out = pack(batch.tokens, batch.offsets, batch.answer_start, 256)
    assert out["input_ids"].shape == out["labels"].shape == (3, 256)  # 640 tokens -> 2 full + 1 padded
    flat = out["input_ids"].reshape(-1)
    assert flat[:640].tolist() == batch.tokens.astype(np.int64).tolist()
    assert (out["labels"].reshape(-1)[:640] == flat[:640]).all()       # LM-style: labels = inputs
    assert (out["labels"].reshape(-1)[640:] == -100).all()
    assert out["attention_mask"].reshape(-1).tolist() == [1] * 640 + [0] * 128
    dropped = pack(batch.tokens, batch.offsets, batch.answer_start, 256, drop_last=True)
    assert dropped["input_ids"].shape == (2, 256) and (dropped["attention_mask"] == 1).all()


def test_pack_with_end_token_and_prompts():
    tokens = np.array([1, 2, 3, 4, 5], np.uint8)
    offsets = np.array([0, 3, 5])
    out = pack(tokens, offsets, np.array([1, 0], np.int32), block_size=4, eos_id=9, pad_id=0)
    assert out["input_ids"].tolist() == [[1, 2, 3, 9], [4, 5, 9, 0]]
    assert out["labels"].tolist() == [[-100, 2, 3, 9], [4, 5, 9, -100]]
    with pytest.raises(ValueError, match="block_size"):
        pack(tokens, offsets, np.array([0, 0]), block_size=0)


# --- shuffle_tokens -----------------------------------------------------------------------------

def test_shuffle_within_rows_is_a_per_row_permutation_seeded_by_row_index():
    batch = procgen.generate("identity", n=40, seed=0, **IDENTITY)
    index = np.arange(100, 140)
    shuffled = shuffle_within_rows(batch.tokens, batch.offsets, index, seed=5)
    changed = 0
    for i in range(len(batch)):
        row = shuffled[batch.offsets[i]:batch.offsets[i + 1]]
        assert sorted(row.tolist()) == sorted(batch[i].tolist())
        changed += row.tolist() != batch[i].tolist()
    assert changed > 30
    # the same row index gives the same permutation wherever the row sits; another seed does not
    tail = batch[20:]
    again = shuffle_within_rows(tail.tokens, tail.offsets, index[20:], seed=5)
    assert again.tolist() == shuffled[batch.offsets[20]:].tolist()
    assert shuffle_within_rows(batch.tokens, batch.offsets, index, seed=6).tolist() != shuffled.tolist()


def test_dataset_shuffle_tokens_keeps_answer_start_and_multisets():
    plain = ProcgenIterableDataset("identity", batch_size=16, length=8, vocab_size=10)
    shuffled = ProcgenIterableDataset("identity", batch_size=16, shuffle_tokens=True, length=8, vocab_size=10)
    a, b = plain.block(32, 48), shuffled.block(32, 48)
    assert ((a["labels"] == -100) == (b["labels"] == -100)).all()  # answer_start kept
    assert (a["input_ids"].sort(dim=1).values == b["input_ids"].sort(dim=1).values).all()
    assert not torch.equal(a["input_ids"], b["input_ids"])


# --- disjoint row ranges ------------------------------------------------------------------------

@pytest.mark.parametrize("start, stop, block", [(0, 1000, 32), (7, 777, 10), (5, 6, 4), (0, 64, 8)])
def test_row_ranges_cover_every_row_exactly_once(start, stop, block):
    seen = []
    for rank in range(2):
        for worker in range(4):
            for lo, hi in row_ranges(start, stop, block, rank, 2, worker, 4):
                assert start <= lo < hi <= stop and hi - lo <= block
                seen.extend(range(lo, hi))
    assert sorted(seen) == list(range(start, stop))


def test_row_ranges_give_each_rank_consecutive_blocks_whatever_the_worker_count():
    def rank_order(rank, workers):  # what a DataLoader yields: its workers' blocks round-robin
        streams = [row_ranges(0, None, 4, rank, 2, w, workers) for w in range(workers)]
        return [next(streams[i % workers]) for i in range(6)]

    assert rank_order(1, 1) == rank_order(1, 3) == [(4, 8), (12, 16), (20, 24), (28, 32), (36, 40), (44, 48)]


def test_row_ranges_reject_bad_consumers():
    with pytest.raises(ValueError, match="rank must be in \\[0, 1\\]"):
        next(row_ranges(0, 10, 2, rank=2, world_size=2))
    with pytest.raises(ValueError, match="block_rows"):
        next(row_ranges(0, 10, 0))


def test_dataset_is_disjoint_over_4_workers_x_2_ranks(monkeypatch):
    start, stop, batch_size = 3, 3 + 37 * 8 + 5, 8
    seen = []
    for rank in range(2):
        for worker in range(4):
            monkeypatch.setattr(data, "get_worker_info", lambda w=worker: SimpleNamespace(id=w, num_workers=4))
            ds = ProcgenIterableDataset("identity", seed=1, batch_size=batch_size, start=start, stop=stop,
                                        rank=rank, world_size=2, **IDENTITY)
            for item in ds:
                rows = item["row_index"].tolist()
                seen.extend(rows)
                expected = procgen.generate("identity", n=len(rows), seed=1, start=rows[0], **IDENTITY)
                assert rows == list(range(rows[0], rows[0] + len(rows)))
                assert torch.equal(item["input_ids"], collate_batch(expected)["input_ids"])
    assert len(seen) == len(set(seen)) == stop - start
    assert sorted(seen) == list(range(start, stop))


def test_dataset_reads_rank_and_world_size_from_the_environment(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    ds = ProcgenIterableDataset("dyck", batch_size=5, stop=40, k=2, length=8)
    assert [item["row_index"][0].item() for item in ds] == [5, 20, 35]


def test_real_dataloader_workers_stay_disjoint():
    ds = ProcgenIterableDataset("dyck", batch_size=4, stop=100, k=2, length=8)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2)
    order = [item["row_index"][0].item() for item in loader]
    assert order == list(range(0, 100, 4))  # round-robin over the workers keeps the global order


def test_with_start_resumes_the_same_sequence():
    ds = ProcgenIterableDataset("dyck", batch_size=4, rank=0, world_size=2, k=2, length=8)
    straight = [item["row_index"].tolist() for _, item in zip(range(6), ds)]
    resumed = [item["row_index"].tolist() for _, item in zip(range(3), ds.with_start(24))]
    assert resumed == straight[3:]


# --- other sources ------------------------------------------------------------------------------

def test_in_memory_batch_source_repeats_and_packs():
    batch = procgen.dyck(n=10, k=2, length=16, seed=2)
    once = list(ProcgenIterableDataset(batch, batch_size=4))
    assert [item["row_index"].tolist() for item in once] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    ds = ProcgenIterableDataset(batch, batch_size=4, repeat=True, pack=True, block_size=32)
    items = [item for _, item in zip(range(4), ds)]
    assert items[2]["row_index"].tolist() == [8, 9, 10, 11]  # virtual rows past the end wrap around
    wrapped = torch.cat([items[2]["input_ids"].reshape(-1)[:32], items[2]["input_ids"].reshape(-1)[32:]])
    expected = np.concatenate([batch[8], batch[9], batch[0], batch[1]]).astype(np.int64)
    assert wrapped.tolist() == expected.tolist()
    assert items[0]["input_ids"].shape == (2, 32)


def test_dataset_on_disk_matches_generated_rows(tmp_path):
    procgen.write("identity", tmp_path / "ds", n=100, shards=3, seed=4, progress=False, **IDENTITY)
    disk = ProcgenIterableDataset(tmp_path / "ds", batch_size=16, rank=1, world_size=2)
    generated = ProcgenIterableDataset("identity", seed=4, batch_size=16, stop=100, rank=1, world_size=2, **IDENTITY)
    pairs = list(zip(disk, generated, strict=True))
    assert [a["row_index"][0].item() for a, _ in pairs] == [16, 48, 80]
    for a, b in pairs:
        for key in ("input_ids", "labels", "attention_mask", "row_index"):
            assert torch.equal(a[key], b[key])


@pytest.mark.parametrize("kwargs, words", [
    (dict(task="nope"), ["data must be", "nope"]),
    (dict(task="dyck", batch_size=0), ["batch_size", ">= 1"]),
    (dict(task="dyck", start=-1), ["start", ">= 0"]),
    (dict(task="dyck", start=5, stop=2), ["stop", ">= start"]),
    (dict(task="dyck", pack=True), ["block_size", "pack=True"]),
    (dict(task="dyck", k=0), ["k", "[1, 1048576]"]),
])
def test_dataset_bad_arguments(kwargs, words):
    task = kwargs.pop("task")
    with pytest.raises(ValueError) as err:
        ProcgenIterableDataset(task, **kwargs)
    for word in words:
        assert word in str(err.value)


# --- scoring="reference": the official harness's labels ----------------------------------------

def _official_label_positions(row, task, max_digits):
    """What the official harness trains and scores (its compute_loss / compute_metrics): the row
    padded to its fixed width (id 12 for arithmetic, 0 for the haystack), then every position t+1
    whose *current* token at t is >= 20 (arithmetic) or >= 158 (the haystack's query)."""
    if task == "haystack":
        width, pad, threshold = 63, 0, 158
    else:
        width = (5 if task == "multiplication" else 3) * max_digits + 4
        pad, threshold = 12, 20
    padded = list(row) + [pad] * (width - len(row))
    return [t + 1 for t in range(width - 1) if padded[t] >= threshold]


@pytest.mark.parametrize("task, params", [("haystack", {}), ("addition", {}), ("reversed_addition", {}),
                                          ("multiplication", {}), ("addition", {"min_digits": 2, "max_digits": 6})])
def test_reference_labels_are_the_official_positions(task, params):
    b = procgen.generate(task, n=300, seed=3, split="test", **params)
    out = collate_batch(b, scoring="reference")
    max_digits = b.params.get("max_digits")
    pad = b.pad_id
    for i in range(len(b)):
        row = b[i].tolist()
        wanted = _official_label_positions(row, task, max_digits)
        got = torch.nonzero(out["labels"][i] != -100).flatten().tolist()
        assert got == wanted, (i, row)
        # the label is the token itself, or our pad id where the official harness predicts its pad
        for t in got:
            assert int(out["labels"][i, t]) == (row[t] if t < len(row) else pad)
    every = collate_batch(b, scoring="all")
    if task == "haystack":  # one answer token, the one the harness scores
        assert torch.equal(every["labels"], out["labels"][:, :every["labels"].shape[1]])
    else:  # the first answer digit is never scored, the stop (and the pad after it) are
        width = every["labels"].shape[1]
        assert ((every["labels"] != -100) != (out["labels"][:, :width] != -100)).any(dim=1).all()


def test_reference_scoring_equals_all_for_tasks_without_an_official_probe():
    b = procgen.generate("sort", n=20, seed=0, length=8, vocab_size=10)
    assert torch.equal(collate_batch(b, scoring="reference")["labels"], collate_batch(b)["labels"])


def test_scoring_errors_name_the_parameter():
    b = procgen.generate("addition", n=2, seed=0)
    with pytest.raises(ValueError, match="scoring must be one of 'reference', 'all'; got 'paper'"):
        collate_batch(b, scoring="paper")
    with pytest.raises(ValueError, match="scoring must be one of"):
        ProcgenIterableDataset("addition", scoring="official")
    with pytest.raises(ValueError, match="packing"):
        ProcgenIterableDataset("dyck", pack=True, block_size=64, scoring="reference")
    with pytest.raises(ValueError, match="row 0 has 18 tokens and a scored pad token after them but block_size=18"):
        collate_batch(_row("addition", [1, 2, 3, 4, 5, 10, 1, 1, 1, 1, 1, 11, 22, 23, 24, 25, 26, 30], 12),
                      block_size=18, scoring="reference")


def _row(task, tokens, answer_start):
    from procgen.batch import Batch
    from procgen.tasks import get_task

    return Batch(np.array(tokens, np.uint8), np.array([0, len(tokens)]), np.array([answer_start], np.int32), task,
                 get_task(task).resolve_params({}), 0, "train", 0)


def test_reference_labels_of_hand_made_rows():
    # 12345 + 11111 = 23456: 18 tokens, one short of the official width 19, so the harness also
    # scores the prediction of its pad after the stop; the first answer digit (2) is never scored
    out = collate_batch(_row("addition", [1, 2, 3, 4, 5, 10, 1, 1, 1, 1, 1, 11, 22, 23, 24, 25, 26, 30], 12),
                        scoring="reference")
    assert out["labels"].tolist() == [[-100] * 13 + [23, 24, 25, 26, 30, 31]]
    # 65125 + 43936 = 109061: 19 tokens, the full width: no pad position
    out = collate_batch(_row("addition", [6, 5, 1, 2, 5, 10, 4, 3, 9, 3, 6, 11, 21, 20, 29, 20, 26, 21, 30], 12),
                        scoring="reference")
    assert out["labels"].tolist() == [[-100] * 13 + [20, 29, 20, 26, 21, 30]]
