"""Streaming (procgen.stream / to_iterable_dataset) and export (nanoGPT .bin + meta.pkl, Parquet, JSON lines)."""

import json
import os
import pickle

import numpy as np
import pytest
from conftest import run_cli

import procgen
from procgen.export import export


def test_stream_yields_the_rows_of_one_big_generate():
    expected = procgen.generate("dyck_shuffle", 1000, seed=2, k=3, length=20)
    batches = list(procgen.stream("dyck_shuffle", seed=2, n=1000, batch_rows=300, k=3, length=20))
    assert [len(b) for b in batches] == [300, 300, 300, 100]
    assert [b.start for b in batches] == [0, 300, 600, 900]
    assert np.array_equal(np.concatenate([b.tokens for b in batches]), expected.tokens)
    resumed = next(procgen.stream("dyck_shuffle", seed=2, start=600, batch_rows=50, k=3, length=20))
    assert np.array_equal(resumed.tokens, expected[600:650].tokens)


def test_stream_is_endless_without_n_and_checks_arguments_up_front():
    stream = procgen.stream("dyck", batch_rows=10)
    for _ in range(5):
        batch = next(stream)
    assert batch.start == 40
    with pytest.raises(ValueError, match="k must be"):
        procgen.stream("dyck", k=0)  # raised at the call, not at the first next()
    with pytest.raises(ValueError, match="batch_rows"):
        procgen.stream("dyck", batch_rows=0)


def test_to_iterable_dataset_rows_and_features():
    ds = procgen.to_iterable_dataset("sort", seed=1, n=50, length=6, vocab_size=10)
    rows = list(ds)
    expected = procgen.generate("sort", 50, seed=1, length=6, vocab_size=10)
    assert len(rows) == 50 and rows[7]["input_ids"] == expected[7].tolist()
    assert rows[7]["answer_start"] == 7
    assert ds.features["input_ids"].feature.dtype == "uint8"
    assert len(list(ds)) == 50  # a second epoch starts over


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("export") / "sort"
    procgen.write("sort", path, n=300, shards=3, progress=False, length=5, vocab_size=20, min_length=2,
                  max_length=5)
    return path


def nanogpt_get_batch(data_dir, split, block_size, batch_size, rng):
    """nanoGPT's train.py get_batch, minus torch: random windows x and their next-token targets y."""
    data = np.memmap(os.path.join(data_dir, f"{split}.bin"), dtype=np.uint16, mode="r")
    ix = rng.integers(0, len(data) - block_size, size=batch_size)
    x = np.stack([data[i:i + block_size].astype(np.int64) for i in ix])
    y = np.stack([data[i + 1:i + 1 + block_size].astype(np.int64) for i in ix])
    return ix, x, y


def test_bin_export_default_is_what_nanogpt_reads(dataset, tmp_path):
    data_dir = tmp_path / "nanogpt" / "sort"  # missing folders are created
    header = export(dataset, data_dir / "train.bin")
    assert header["dtype"] == "uint16"
    expected = procgen.generate("sort", 300, length=5, vocab_size=20, min_length=2, max_length=5)
    rows = np.concatenate([expected[i] for i in range(len(expected))]).astype(np.int64)  # rows back to back
    ix, x, y = nanogpt_get_batch(data_dir, "train", block_size=16, batch_size=64, rng=np.random.default_rng(0))
    for i, xi, yi in zip(ix, x, y):
        assert np.array_equal(xi, rows[i:i + 16]) and np.array_equal(yi, rows[i + 1:i + 17])
    assert np.array_equal(np.memmap(data_dir / "train.bin", dtype=np.uint16, mode="r"), rows)

    with open(data_dir / "meta.pkl", "rb") as file:  # what nanoGPT's train.py and sample.py read
        meta = pickle.load(file)
    assert meta["vocab_size"] == len(expected.vocab) == header["vocab_size"] and rows.max() < meta["vocab_size"]
    assert meta["itos"] == dict(enumerate(expected.vocab))
    assert {name: i for i, name in meta["itos"].items()} == meta["stoi"] and len(meta["stoi"]) == meta["vocab_size"]
    assert "".join(meta["itos"][i] for i in x[0][:3]) == "".join(expected.vocab[t] for t in rows[ix[0]:ix[0] + 3])


def test_bin_export_keeps_rows_and_answer_starts(dataset, tmp_path):
    out = str(tmp_path / "sort.bin")
    header = export(dataset, out, dtype="uint8")
    expected = procgen.generate("sort", 300, length=5, vocab_size=20, min_length=2, max_length=5)
    tokens = np.memmap(out, dtype=np.uint8, mode="r")
    assert np.array_equal(tokens, expected.tokens)
    offsets = np.load(out + ".offsets.npy")
    assert np.array_equal(offsets, expected.offsets)
    assert np.array_equal(tokens[offsets[7]:offsets[8]], expected[7])
    assert np.array_equal(np.load(out + ".answer_start.npy"), expected.answer_start)
    saved = json.loads(open(out + ".json").read())
    assert saved == header and saved["dtype"] == "uint8" and saved["num_tokens"] == expected.num_tokens
    assert saved["source"]["task"] == "sort" and saved["meta_file"] == "meta.pkl"


def test_bin_export_large_vocabulary_defaults_to_uint32(tmp_path):
    big = tmp_path / "big"
    procgen.write("sort", big, n=10, progress=False, vocab_size=70000, length=4)
    with pytest.raises(ValueError, match="uint16 holds ids below 65536"):
        export(big, str(tmp_path / "big.bin"), dtype="uint16")
    assert not (tmp_path / "big.bin").exists()
    header = export(big, str(tmp_path / "big.bin"))
    assert header["dtype"] == "uint32"
    expected = procgen.generate("sort", 10, vocab_size=70000, length=4)
    assert np.array_equal(np.memmap(tmp_path / "big.bin", dtype=np.uint32, mode="r"), expected.tokens)
    with open(tmp_path / "meta.pkl", "rb") as file:
        assert pickle.load(file)["vocab_size"] == 70002


def load_parquet_folder(folder, cache):
    datasets = pytest.importorskip("datasets")
    return datasets.load_dataset("parquet", data_dir=str(folder), cache_dir=str(cache))


def test_parquet_export_loads_with_datasets(dataset, tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    import procgen.hub

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(procgen.hub, "ROW_GROUP_TOKENS", 64)  # the Hub export's row-group size is reused
    out = tmp_path / "pq" / "sort"
    summary = export(dataset, out, format="parquet")
    assert summary["files"] == [f"data/train-0000{k}-of-00003.parquet" for k in range(3)]
    assert sorted(os.listdir(out)) == ["data"]  # no temporary folder left

    loaded = load_parquet_folder(out, tmp_path / "cache")
    expected = procgen.generate("sort", 300, length=5, vocab_size=20, min_length=2, max_length=5)
    assert list(loaded) == ["train"]
    train = loaded["train"]
    assert train["input_ids"] == [expected[i].tolist() for i in range(300)]
    assert train["answer_start"] == expected.answer_start.tolist()
    assert train.features["input_ids"].feature.dtype == "uint8" and train.features["answer_start"].dtype == "int32"

    metadata = pq.ParquetFile(out / summary["files"][0]).metadata
    assert metadata.num_row_groups > 1 and metadata.row_group(0).column(0).compression == "ZSTD"
    for k in range(metadata.num_row_groups):
        column = metadata.row_group(k).column(0)  # input_ids.list.element: one value per token
        assert column.num_values <= 64


def test_parquet_export_replaces_its_split_and_adds_others(dataset, tmp_path):
    out = tmp_path / "pq"
    export(dataset, out, format="parquet")
    one_shard = tmp_path / "one"
    procgen.write("sort", one_shard, n=40, progress=False, length=5, vocab_size=20)
    export(one_shard, out, format="parquet")  # replaces the 3 train files of the first export
    val = tmp_path / "val"
    procgen.write("sort", val, n=20, split="validation", progress=False, length=5, vocab_size=20)
    export(val, out, format="parquet")
    assert sorted(os.listdir(out / "data")) == ["train-00000-of-00001.parquet", "validation-00000-of-00001.parquet"]
    loaded = load_parquet_folder(out, tmp_path / "cache")
    assert {name: split.num_rows for name, split in loaded.items()} == {"train": 40, "validation": 20}
    expected = procgen.generate("sort", 20, split="validation", length=5, vocab_size=20)
    assert loaded["validation"]["input_ids"] == [expected[i].tolist() for i in range(20)]


def test_jsonl_export_ids_and_names(dataset, tmp_path):
    expected = procgen.generate("sort", 300, length=5, vocab_size=20, min_length=2, max_length=5)
    export(dataset, tmp_path / "ids.jsonl", format="jsonl")
    lines = (tmp_path / "ids.jsonl").read_text().splitlines()
    assert len(lines) == 300
    assert json.loads(lines[9]) == {"input_ids": expected[9].tolist(), "answer_start": int(expected.answer_start[9])}
    export(dataset, tmp_path / "names.jsonl", format="jsonl", tokens="names")
    record = json.loads((tmp_path / "names.jsonl").read_text().splitlines()[9])
    assert record["tokens"] == [expected.vocab[t] for t in expected[9]] and "<sep>" in record["tokens"]


def one_line_error(result, code):
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("procgen: error: "), result.stderr
    assert "Traceback" not in result.stdout + result.stderr and ".tmp-" not in lines[0]
    return lines[0]


def test_export_cli_formats(dataset, tmp_path):
    result = run_cli("export", dataset, "--out", tmp_path / "nano" / "train.bin")
    assert result.exit_code == 0, result.stderr
    assert "300 rows" in result.stdout and "uint16" in result.stdout and "meta.pkl" in result.stdout
    assert (tmp_path / "nano" / "meta.pkl").exists() and (tmp_path / "nano" / "train.bin.json").exists()
    result = run_cli("export", dataset, "--format", "parquet", "--out", tmp_path / "pq")
    assert result.exit_code == 0, result.stderr
    assert "3 Parquet files (300 rows)" in result.stdout
    result = run_cli("export", dataset, "--format", "jsonl", "--out", tmp_path / "rows.jsonl")
    assert result.exit_code == 0 and len((tmp_path / "rows.jsonl").read_text().splitlines()) == 300


@pytest.mark.parametrize("kwargs, needles", [
    ({"format": "csv"}, ["format must be one of 'bin', 'parquet', 'jsonl'; got 'csv'"]),
    ({"dtype": "float32"}, ["dtype must be one of 'uint8', 'uint16', 'uint32', 'int32'; got 'float32'"]),
    ({"format": "jsonl", "dtype": "uint16"}, ["dtype applies to format 'bin' only"]),
    ({"format": "parquet", "dtype": "uint16"}, ["dtype applies to format 'bin' only"]),
    ({"tokens": "names"}, ["tokens applies to format 'jsonl' only"]),
    ({"format": "jsonl", "tokens": "words"}, ["tokens must be one of 'ids', 'names'"]),
])
def test_export_bad_options_are_one_line_value_errors(dataset, tmp_path, kwargs, needles):
    with pytest.raises(ValueError) as raised:
        export(dataset, tmp_path / "x.bin", **kwargs)
    message = str(raised.value)
    assert "\n" not in message and all(needle in message for needle in needles), message
    assert os.listdir(tmp_path) == []
    args = ["export", dataset, "--out", tmp_path / "x.bin"]
    for key, value in kwargs.items():
        args += ["--format" if key == "format" else f"--{key}", value]
    one_line_error(run_cli(*args), 2)


def test_export_bad_out_paths_name_the_users_path(dataset, tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    for fmt in ("bin", "jsonl"):
        with pytest.raises(ValueError, match=f"out='{folder}' is a folder; format '{fmt}' writes a file"):
            export(dataset, folder, format=fmt)
        line = one_line_error(run_cli("export", dataset, "--format", fmt, "--out", folder), 2)
        assert f"out='{folder}' is a folder" in line
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(ValueError, match="is a file; format 'parquet' writes a folder"):
        export(dataset, afile, format="parquet")
    with pytest.raises(ValueError, match="is the dataset folder itself"):
        export(dataset, dataset, format="parquet")
    under_a_file = afile / "sub" / "train.bin"
    with pytest.raises(NotADirectoryError) as raised:
        export(dataset, under_a_file)
    assert raised.value.filename == str(under_a_file)
    line = one_line_error(run_cli("export", dataset, "--out", under_a_file), 1)
    assert line.endswith(str(under_a_file))
    line = one_line_error(run_cli("export", tmp_path / "missing", "--out", tmp_path / "d.bin"), 1)
    assert "no procgen dataset" in line
    assert sorted(os.listdir(tmp_path)) == ["afile", "folder"]


@pytest.mark.parametrize("fmt, out", [("bin", "nano/train.bin"), ("jsonl", "rows.jsonl"), ("parquet", "pq")])
def test_export_permission_denied_names_the_users_path(dataset, tmp_path, monkeypatch, fmt, out):
    out = tmp_path / out
    real_replace = os.replace

    def denied(source, target, *args, **kwargs):  # as os.replace reports it: the temp name first
        if ".tmp-" in os.fspath(source):
            raise PermissionError(13, "Permission denied", os.fspath(source), os.fspath(target))
        return real_replace(source, target, *args, **kwargs)

    monkeypatch.setattr(os, "replace", denied)
    with pytest.raises(PermissionError) as raised:
        export(dataset, out, format=fmt)
    assert raised.value.filename == str(out) and ".tmp-" not in str(raised.value)
    line = one_line_error(run_cli("export", dataset, "--format", fmt, "--out", out), 1)
    assert line == f"procgen: error: Permission denied: {out}"
    leftovers = [name for _, folders, files in os.walk(tmp_path) for name in folders + files if ".tmp-" in name]
    assert leftovers == []


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores file permissions")
def test_export_into_a_read_only_folder_names_the_users_path(dataset, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        line = one_line_error(run_cli("export", dataset, "--out", locked / "train.bin"), 1)
        assert line == f"procgen: error: Permission denied: {locked / 'train.bin'}"
    finally:
        locked.chmod(0o700)
