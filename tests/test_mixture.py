"""Mixtures: token shares, determinism, vocabularies, per-row validation, disk, CLI and Hub."""

import json

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

import procgen
from procgen.cli import cli as cli_main
from procgen.tasks import get_task


def token_shares(batch) -> dict:
    return {name: batch.lengths[batch.row_task == t].sum() / batch.num_tokens
            for t, name in enumerate(batch.task_names)}


@pytest.mark.parametrize("weights, params", [
    ({"set": 0.5, "union": 0.5}, {}),
    ({"dyck": 0.3, "sort": 0.7}, {"sort": {"vocab_size": 50}}),
    ({"dyck": 0.1, "eca": 0.2, "stack": 0.3, "identity": 0.4}, {"identity": {"min_length": 4, "max_length": 60}}),
])
def test_token_shares_match_weights_within_one_percent(weights, params):
    b = procgen.mix(weights, tokens=1e6, seed=0, params=params)
    assert abs(b.num_tokens - 1e6) < 1e6 * 0.01
    total = sum(weights.values())
    for name, share in token_shares(b).items():
        assert abs(share - weights[name] / total) < 0.01, (name, share)
    b.validate()


def test_rows_are_deterministic_and_independent_of_n_and_start():
    spec = {"tasks": {"set": {"weight": 1}, "dyck": {"weight": 2, "k": 3}}}
    whole = procgen.generate("mix", 3000, seed=5, spec=spec)
    again = procgen.generate("mix", 3000, seed=5, spec=spec)
    part = procgen.generate("mix", 500, seed=5, start=1234, spec=spec)
    assert np.array_equal(whole.tokens, again.tokens) and np.array_equal(whole.row_task, again.row_task)
    assert np.array_equal(part.tokens, whole[1234:1734].tokens)
    assert np.array_equal(part.offsets, whole[1234:1734].offsets)
    assert np.array_equal(part.row_task, whole.row_task[1234:1734])
    other_seed = procgen.generate("mix", 3000, seed=6, spec=spec)
    assert not np.array_equal(whole.tokens, other_seed.tokens)
    other_split = procgen.generate("mix", 3000, seed=5, split="test", spec=spec)
    assert not np.array_equal(whole.tokens, other_split.tokens)


def test_rows_are_spread_evenly_not_in_blocks():
    b = procgen.mix({"set": 0.5, "union": 0.5}, rows=1000)
    # smooth round-robin: in any window of 20 rows both tasks appear
    windows = np.lib.stride_tricks.sliding_window_view(b.row_task, 20)
    assert (windows.min(axis=1) == 0).all() and (windows.max(axis=1) == 1).all()


def test_shared_vocabulary_when_ids_agree():
    b = procgen.mix({"set": 1, "union": 1}, rows=200)
    assert b.params["spec"]["vocab"] == "shared"
    assert b.vocab == get_task("set").vocab(get_task("set").resolve_params({}))
    assert b.tokens.max() < 102
    # identity with eos extends the set vocabulary by one id: still shared
    c = procgen.mix({"set": 1, "identity": 1}, rows=200, params={"identity": {"eos": True}})
    assert c.params["spec"]["vocab"] == "shared" and c.vocab[-1] == "<eos>"
    with pytest.raises(ValueError, match="vocab='shared' needs tasks whose id -> name tables agree"):
        procgen.mix({"set": 1, "dyck": 1}, rows=10, vocab="shared")


def test_disjoint_vocabulary_ranges_never_overlap():
    b = procgen.mix({"dyck": 1, "sort": 1, "eca": 1}, rows=3000, params={"sort": {"vocab_size": 30}})
    info = b.params["spec"]["resolved"]
    assert b.params["spec"]["vocab"] == "disjoint"
    ranges = []
    for t, name in enumerate(b.task_names):
        spec = get_task(name)
        size = spec.vocab_size(spec.resolve_params({k: v for k, v in b.params["spec"]["tasks"][name].items()
                                                    if k != "weight"}))
        lo = info["id_offsets"][t]
        rows = np.flatnonzero(b.row_task == t)
        ids = np.concatenate([b[i] for i in rows]).astype(np.int64)
        assert ids.min() >= lo and ids.max() < lo + size
        ranges.append((lo, lo + size))
        assert b.vocab[lo].startswith(f"{name}:")
    ranges.sort()
    assert all(a[1] <= b_[0] for a, b_ in zip(ranges, ranges[1:]))
    assert b.pad_id == len(b.vocab) - 1 and b.vocab[-1] == "<pad>"
    assert b.render(0).startswith(f"[{b.task_names[b.row_task[0]]}] ")


def test_every_row_equals_a_row_of_its_task():
    b = procgen.mix({"sort": 1, "reverse": 1}, rows=400, seed=3)
    for t, name in enumerate(b.task_names):
        rows = np.flatnonzero(b.row_task == t)
        single = get_task(name)
        params = single.resolve_params({})
        found = single.validator(np.concatenate([b[i] for i in rows]),
                                 np.concatenate([[0], np.cumsum(b.lengths[rows])]),
                                 b.answer_start[rows].copy(), params)
        assert found is None


def test_validator_rejects_corrupted_mixtures():
    b = procgen.mix({"set": 1, "dyck": 1}, rows=300, seed=1)
    b.validate()
    bad_column = procgen.mix({"set": 1, "dyck": 1}, rows=300, seed=1)
    bad_column.row_task[7] = 1 - bad_column.row_task[7]
    with pytest.raises(ValueError, match="row 7 is invalid: task column"):
        bad_column.validate()
    bad_row = procgen.mix({"set": 1, "dyck": 1}, rows=300, seed=1)
    dyck_row = int(np.flatnonzero(bad_row.row_task == bad_row.task_names.index("dyck"))[3])
    first = bad_row.offsets[dyck_row]
    bad_row.tokens[first] = bad_row.tokens[first + 1]  # break the bracket structure
    bad_row.tokens[first + 1] = bad_row.tokens[first]
    row_tokens = bad_row[dyck_row].copy()
    offset = bad_row.params["spec"]["resolved"]["id_offsets"][bad_row.task_names.index("dyck")]
    bad_row.tokens[first] = offset + 4 + (row_tokens[0] - offset) % 4  # a closing bracket first
    with pytest.raises(ValueError, match=f"row {dyck_row} is invalid: dyck:"):
        bad_row.validate()
    out_of_range = procgen.mix({"set": 1, "dyck": 1}, rows=300, seed=1)
    set_row = int(np.flatnonzero(out_of_range.row_task == out_of_range.task_names.index("set"))[0])
    set_offset = out_of_range.params["spec"]["resolved"]["id_offsets"][out_of_range.task_names.index("set")]
    out_of_range.tokens[out_of_range.offsets[set_row]] = set_offset + 102  # an id of dyck's range in a set row
    with pytest.raises(ValueError, match="outside the id range of task 'set'"):
        out_of_range.validate()


@pytest.mark.parametrize("kwargs, message", [
    (dict(weights={}), "weights must be a non-empty mapping"),
    (dict(weights={"set": -1}, rows=10), "weight of 'set' must be a number > 0"),
    (dict(weights={"sett": 1}, rows=10), "task must be one of"),
    (dict(weights={"set": 1}, rows=10, tokens=100), "exactly one of tokens= and rows="),
    (dict(weights={"set": 1}), "exactly one of tokens= and rows="),
    (dict(weights={"set": 1}, rows=10, params={"set": {"lenght": 3}}), "unknown parameter 'lenght'"),
    (dict(weights={"set": 1}, rows=10, params={"union": {}}), "params must map task names"),
    (dict(weights={"set": 1}, rows=10, vocab="merged"), "vocab must be one of auto, shared, disjoint"),
    (dict(weights={"set": 1, "union": 1e-6}, rows=10), "too small to get one row per period"),
    (dict(weights={"set": 1}, tokens=0.5), "tokens must be an integer"),
])
def test_bad_mixture_arguments(kwargs, message):
    weights = kwargs.pop("weights")
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("'", "'")):
        procgen.mix(weights, **kwargs)


def test_mixture_on_disk_and_through_the_cli(tmp_path):
    spec = {"tasks": {"set": {"weight": 0.5, "vocab_size": 20}, "union": {"weight": 0.5, "vocab_size": 20}}}
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(spec))
    runner = CliRunner()
    result = runner.invoke(cli_main, ["generate", "mix", "--spec", str(spec_file), "-n", "900", "--shards", "3",
                                      "--out", str(tmp_path / "m"), "--quiet"])
    assert result.exit_code == 0, result.output
    manifest = procgen.info(tmp_path / "m")
    assert manifest["row_tasks"] == ["set", "union"] and manifest["params"]["spec"]["vocab"] == "shared"
    assert procgen.validate(tmp_path / "m")["rows"] == 900
    ds = procgen.load(tmp_path / "m")
    expected = procgen.generate("mix", 900, spec=spec)
    assert ds["task"][:50] == [expected.task_names[t] for t in expected.row_task[:50]]
    assert ds[123]["input_ids"] == expected[123].tolist()
    # the manifest's command regenerates the same shards
    regenerated = tmp_path / "again"
    command = manifest["command"].replace(str(tmp_path / "m"), str(regenerated))
    import shlex
    result = runner.invoke(cli_main, shlex.split(command)[1:] + ["--quiet"])
    assert result.exit_code == 0, result.output
    assert [s["sha256"] for s in procgen.info(regenerated)["shards"]] == [s["sha256"] for s in manifest["shards"]]
    # a bad inline spec is one line, exit 2
    result = runner.invoke(cli_main, ["generate", "mix", "--spec", "[1, 2]", "-n", "5", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "spec" in result.output
    result = runner.invoke(cli_main, ["generate", "mix", "--spec", json.dumps({"tasks": {"set": {"weight": 0}}}),
                                      "-n", "5", "--out", str(tmp_path / "y")])
    assert result.exit_code == 2 and "weight of 'set'" in result.output


def test_task_column_corruption_on_disk_is_caught(tmp_path):
    import pyarrow as pa

    procgen.write("mix", tmp_path / "m", n=200, shards=1, progress=False,
                  spec={"tasks": {"set": {"weight": 1}, "union": {"weight": 1}}})
    shard = next((tmp_path / "m").glob("data-*.arrow"))
    table = pa.ipc.open_stream(shard.read_bytes()).read_all()  # in memory: the file is rewritten below
    indices = table.column("task").combine_chunks().indices.to_numpy().copy()
    indices[17] = 1 - indices[17]
    column = pa.DictionaryArray.from_arrays(pa.array(indices, pa.int8()), pa.array(["set", "union"]))
    table = table.set_column(2, table.schema.field(2), column)
    with pa.OSFile(str(shard), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    manifest_path = tmp_path / "m" / "procgen.json"
    manifest = json.loads(manifest_path.read_text())
    import hashlib
    manifest["shards"][0]["sha256"] = hashlib.sha256(shard.read_bytes()).hexdigest()
    manifest["shards"][0]["num_bytes"] = shard.stat().st_size
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(procgen.DatasetError, match="row 17 is invalid: task column"):
        procgen.validate(tmp_path / "m")


# --- task entries that are not mappings: one line naming the entry and the expected shape ---------

@pytest.mark.parametrize("entry", [0.5, 2, "heavy", [["weight", 1]], True])
def test_a_spec_entry_that_is_not_a_mapping_is_one_line(entry):
    with pytest.raises(ValueError) as info:
        procgen.generate("mix", 5, spec={"tasks": {"union": {"weight": 1}, "set": entry}})
    message = str(info.value)
    assert "\n" not in message and "'set'" in message and "{weight: w" in message and repr(entry) in message


@pytest.mark.parametrize("params", [{"set": 0.5}, {"set": [["length", 3]]}, {"set": "length=3"}])
def test_mix_params_that_are_not_mappings_are_one_line(params):
    with pytest.raises(ValueError) as info:
        procgen.mix({"set": 1, "union": 1}, rows=5, params=params)
    message = str(info.value)
    assert "\n" not in message and "'set'" in message and "mapping" in message


@pytest.mark.parametrize("text", ["tasks:\n  set: 0.5\n  union: 0.5\n", '{"tasks": {"set": 0.5, "union": 0.5}}'],
                         ids=["yaml", "json"])
def test_cli_spec_entry_that_is_not_a_mapping_exits_2(tmp_path, text):
    spec_file = tmp_path / "spec.txt"
    spec_file.write_text(text)
    for spec in (str(spec_file), text):  # a file, and the same text inline
        result = CliRunner().invoke(cli_main, ["generate", "mix", "--spec", spec, "-n", "5",
                                               "--out", str(tmp_path / "m"), "--quiet"])
        assert result.exit_code == 2, result.output
        assert len(result.output.strip().splitlines()) == 1 and "'set'" in result.output, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)


def test_cli_spec_that_is_a_folder_exits_2(tmp_path):
    result = CliRunner().invoke(cli_main, ["generate", "mix", "--spec", str(tmp_path), "-n", "5",
                                           "--out", str(tmp_path / "m"), "--quiet"])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert "--spec" in result.output and str(tmp_path) in result.output


# --- keys and goldens -----------------------------------------------------------------------------

def test_a_component_never_draws_the_rows_of_a_standalone_stream():
    """The old component key, SeedSequence([key, word(name)]), equalled base_key(key, name, "train"):
    the entropy lists [b, w] and [b, w, 0] hash alike, so with seed 3 (whose mixture key fits a seed)
    component `set` drew exactly the rows of the standalone task `set` under seed = that key.
    derive_key's spawn keys cannot alias."""
    from procgen._rng import base_key
    from procgen.tasks.mixture import _component_key

    mix_key = base_key(3, "mix", "train")
    assert mix_key < 2 ** 63  # usable as a seed: the case where the alias bit
    old_key = int(np.random.SeedSequence([mix_key, int.from_bytes(b"set", "little")]).generate_state(1, np.uint64)[0])
    assert old_key == base_key(mix_key, "set", "train")  # the alias this test guards against
    for name in ("set", "dyck", "sort", "eca"):
        assert all(_component_key(mix_key, name) != base_key(mix_key, name, split)
                   for split in ("train", "validation", "test"))
    b = procgen.mix({"set": 0.5, "union": 0.5}, rows=40, seed=3)
    standalone = procgen.generate("set", 20, seed=mix_key)
    set_rows = [b[int(i)].tolist() for i in np.flatnonzero(b.row_task == b.task_names.index("set"))]
    assert set_rows[0] != standalone[0].tolist() and set_rows[1] != standalone[1].tolist()


def test_derive_key_paths_do_not_alias():
    from procgen._rng import derive_key

    keys = {derive_key(7, *path) for path in [(), ("a",), ("a", 0), ("a", 0, 0), ("ab",), ("a", "b"), (0,), (0, 0),
                                              ("set",), ("mix-component", "set")]}
    assert len(keys) == 10
    assert derive_key(7, "a") == derive_key(7, "a")
    with pytest.raises(ValueError, match="path elements"):
        derive_key(7, -1)


GOLDEN_MIX = ([30, 28, 86, 53, 88, 69, 36, 76, 20, 76, 53, 38, 15, 39, 92, 35],
              "aa5f644a0ada193c97dbc8db2568abe2d4d469ded1d10dca5ce672608849e2d9")  # format version 3


def test_golden_mixture_rows():
    import hashlib

    b = procgen.mix({"set": 0.5, "union": 0.5}, rows=100, seed=0)
    assert b[0][:16].tolist() == GOLDEN_MIX[0]
    assert b.row_task[:4].tolist() == [0, 1, 0, 1]
    digest = hashlib.sha256(b.tokens.tobytes() + b.offsets.tobytes() + b.answer_start.tobytes()
                            + b.row_task.tobytes()).hexdigest()
    assert digest == GOLDEN_MIX[1]
