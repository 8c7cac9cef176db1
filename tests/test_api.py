"""Public API: argument checking, lazy import, seeding contract, Batch conversions."""

import re
import subprocess
import sys

import numpy as np
import pytest

import procgen
from procgen._rng import SPLITS, base_key
from procgen.api import rows_for_tokens
from procgen.export import export


@pytest.mark.parametrize("kwargs, names", [
    (dict(n=1.5), ["n", "integer"]),
    (dict(n=0), ["n", ">= 1"]),
    (dict(n=-3), ["n", ">= 1"]),
    (dict(n="10"), ["n"]),
    (dict(n=10, k=0), ["k", "[1, 1048576]"]),
    (dict(n=10, k=2.5), ["k", "integer"]),
    (dict(n=10, p_open=1.2), ["p_open", "> 0", "< 1"]),
    (dict(n=10, p_open=0.0), ["p_open"]),
    (dict(n=10, length=0), ["length", "[1, 1000000000]"]),
    (dict(n=10, max_depth=0), ["max_depth", "None"]),
    (dict(n=10, min_length=9, max_length=3), ["min_length", "max_length"]),
    (dict(n=10, max_length=3), ["min_length (defaulting to length)"]),
    (dict(n=10, foo=1), ["unknown parameter 'foo'", "k, length"]),
    (dict(n=10, seed=-1), ["seed", ">= 0"]),
    (dict(n=10, seed=1.0), ["seed"]),
    (dict(n=10, split="dev"), ["split", "train, validation, test"]),
])
def test_bad_arguments_name_the_parameter(kwargs, names):
    with pytest.raises(ValueError) as info:
        procgen.dyck(**kwargs)
    for fragment in names:
        assert fragment in str(info.value)


def test_unknown_task_lists_the_registry():
    with pytest.raises(ValueError, match="task must be one of: dyck, dyck_shuffle, identity"):
        procgen.generate("dyk", 10)
    with pytest.raises(AttributeError):
        procgen.not_a_task  # noqa: B018


def test_shuffle_specific_errors():
    with pytest.raises(ValueError, match="closed must be true or false"):
        procgen.dyck_shuffle(n=1, closed="yes")
    with pytest.raises(ValueError, match="dyck_shuffle: k must be an integer in"):
        procgen.dyck_shuffle(n=1, k=0)


def test_integral_float_counts_are_accepted():
    assert len(procgen.dyck(n=1e3, length=4)) == 1000
    assert len(procgen.generate("dyck", np.int64(7), length=4)) == 7


def test_import_is_lazy_and_compiles_nothing():
    code = ("import sys, procgen; heavy = [m for m in ('numba', 'pyarrow', 'datasets', 'torch') if m in sys.modules];"
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_base_keys_are_distinct_and_stable():
    keys = {(seed, task, split): base_key(seed, task, split)
            for seed in (0, 1, 2 ** 40) for task in ("dyck", "dyck_shuffle", "sort") for split in SPLITS}
    assert len(set(keys.values())) == len(keys)
    assert base_key(0, "dyck", "train") == base_key(0, "dyck", "train")
    assert all(0 <= key < 2 ** 64 for key in keys.values())


def test_golden_base_key():
    # pins numpy's SeedSequence derivation: a change here silently changes every dataset
    assert base_key(0, "dyck", "train") == GOLDEN_KEY


GOLDEN_KEY = 0xE9DD8CB105F4097B


def test_batch_conversions_share_memory_and_agree():
    b = procgen.dyck(n=20, min_length=4, max_length=12, seed=3)
    table = b.to_arrow()
    assert table.schema.field("input_ids").type.value_type.bit_width == 8
    assert table.column("input_ids").chunk(0).values.buffers()[1].address == b.tokens.ctypes.data
    assert table.column("input_ids").to_pylist()[5] == b[5].tolist()
    ds = b.to_hf()
    assert ds[7]["input_ids"] == b[7].tolist() and ds[7]["answer_start"] == 0
    padded = b.to_numpy()
    assert padded.shape == (20, b.lengths.max())
    assert padded[0, b.lengths[0]:].tolist() == [b.pad_id] * (padded.shape[1] - b.lengths[0])
    fixed = procgen.dyck(n=3, length=8)
    assert np.shares_memory(fixed.to_numpy(), fixed.tokens)


def test_batch_indexing_and_labels():
    b = procgen.dyck(n=10, length=6, seed=1)
    assert np.array_equal(b[-1], b[9]) and np.array_equal(b.input_ids(2), b[2])
    sub = b[3:6]
    assert len(sub) == 3 and sub.start == 3 and np.array_equal(sub[0], b[3])
    assert sub.row_indices.tolist() == [3, 4, 5]
    assert b.labels(0).tolist() == b[0].astype(np.int64).tolist()
    with pytest.raises(IndexError, match=r"\[-10, 9\]"):
        b[10]
    with pytest.raises(ValueError, match="step"):
        b[::2]
    assert "Batch(task='dyck', rows=10" in repr(b)


def test_show_prints_readable_rows(capsys):
    procgen.dyck(n=2, k=2, length=4, seed=0).show(2)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].startswith("[0] ") and set(lines[0][4:].split()) <= set("()[]")


def test_tasks_listing_has_params():
    listing = procgen.tasks()
    assert listing["dyck"]["params"]["p_open"]["default"] == 0.5
    assert "> 0" in listing["dyck"]["params"]["p_open"]["allowed"]


# --- huge and negative values: refused in Python, one line naming the parameter -------------------
# numba wraps int64 silently and Python ints past 2**63 raise OverflowError on the way into a kernel,
# so every bound is checked before any kernel runs.

@pytest.mark.parametrize("task, kwargs, names", [
    ("dyck", dict(start=2 ** 63), ["start", "2**63"]),
    ("dyck", dict(start=2 ** 64), ["start"]),
    ("dyck", dict(start=2 ** 63 - 1, n=2), ["start", "n=2"]),  # the last row index would pass int64
    ("dyck", dict(start=1e300), ["start"]),
    ("dyck", dict(start=-1), ["start", ">= 0"]),
    ("dyck", dict(n=2 ** 63), ["n", "2**63 - 1"]),
    ("dyck", dict(seed=2 ** 63), ["seed", "2**63 - 1"]),
    ("dyck", dict(seed=2 ** 64), ["seed", "2**63 - 1"]),
    ("dyck", dict(seed=np.uint64(2 ** 64 - 1)), ["seed"]),
    ("dyck", dict(seed=-2 ** 63), ["seed", ">= 0"]),
    ("dyck", dict(length=2 ** 63), ["length"]),
    ("dyck", dict(length=-1), ["length", "[1, 1000000000]"]),
    ("dyck", dict(max_depth=2 ** 63), ["max_depth"]),
    ("sort", dict(length=2 ** 63), ["length"]),
    ("stack", dict(max_length=2 ** 64), ["max_length"]),
    ("eca", dict(burn_in=2 ** 63), ["burn_in"]),  # used to wrap to a negative count: burn_in=0 rows
    ("eca", dict(burn_in=10 ** 15), ["burn_in"]),  # used to hang
    ("eca", dict(burn_in=-1), ["burn_in", "[0, 1000000]"]),
    ("eca", dict(width=2 ** 63), ["width"]),
])
def test_huge_and_negative_values_are_refused_in_python(task, kwargs, names):
    with pytest.raises(ValueError) as info:
        procgen.generate(task, **{"n": 1, **kwargs})
    message = str(info.value)
    assert "\n" not in message
    for fragment in names:
        assert fragment in message, message


def test_huge_seeds_and_token_counts_are_refused_everywhere_seeds_are_checked():
    with pytest.raises(ValueError, match=r"seed must be .*2\*\*63 - 1"):
        base_key(2 ** 63, "dyck")
    with pytest.raises(ValueError, match=r"seed must be .*2\*\*63 - 1"):
        rows_for_tokens("dyck", 100, seed=2 ** 63)
    with pytest.raises(ValueError, match=r"tokens must be .*2\*\*63 - 1"):
        rows_for_tokens("dyck", 2 ** 63)
    with pytest.raises(ValueError, match=r"seed must be .*2\*\*63 - 1"):
        procgen.mix({"set": 1}, rows=2, seed=2 ** 63)


@pytest.mark.parametrize("args, name", [
    (["dyck", "--seed", str(2 ** 63)], "seed"),
    (["eca", "--burn-in", str(2 ** 63)], "burn-in"),
    (["eca", "--burn-in", str(10 ** 15)], "burn-in"),
    (["dyck", "--length", str(2 ** 63)], "length"),
])
def test_huge_values_on_the_command_line_exit_2(tmp_path, args, name):
    from click.testing import CliRunner

    from procgen.cli import cli

    result = CliRunner().invoke(cli, ["generate", *args, "-n", "2", "--out", str(tmp_path / "d"), "--quiet"])
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1 and name in result.output, result.output
    assert not (tmp_path / "d" / "procgen.json").exists()


@pytest.mark.parametrize("call", [
    lambda: procgen.generate("dyck", 10 ** 15),
    lambda: procgen.dyck(n=10 ** 7, length=10 ** 9),
    lambda: procgen.mix({"set": 1, "union": 1}, rows=10 ** 15),
    lambda: procgen.mix({"set": 1}, tokens=1e18),
], ids=["n", "length", "mix-rows", "mix-tokens"])
def test_in_memory_requests_larger_than_memory_are_refused_before_allocating(call):
    with pytest.raises(ValueError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message and re.match(r"(n|rows|tokens)=\d", message), message  # the argument at fault
    assert re.search(r"\d [KMGTPE]iB", message), message  # the size it would need
    assert "procgen.write" in message and "procgen.stream" in message  # and the alternatives


# --- path arguments: one line naming the parameter and the user's path -----------------------------

@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny") / "dyck"
    procgen.write("dyck", path, n=20, length=8, progress=False)
    return path


@pytest.mark.parametrize("bad", [None, 5, 2.5, ["data"]])
def test_export_refuses_a_dataset_path_of_the_wrong_type(tmp_path, bad):
    with pytest.raises(ValueError, match=r"^path must be a path \(str or os.PathLike\)"):
        export(bad, tmp_path / "t.bin")


@pytest.mark.parametrize("fmt, occupied, kind", [
    ("bin", "t.bin.offsets.npy", "folder"),
    ("bin", "t.bin.answer_start.npy", "folder"),
    ("bin", "t.bin.json", "folder"),
    ("bin", "meta.pkl", "folder"),
    ("parquet", "data", "file"),
    ("parquet", "data/train-00000-of-00001.parquet", "folder"),  # the shard this export writes
    ("parquet", "data/train-00000-of-00003.parquet", "folder"),  # a stale shard it would delete
])
def test_export_refuses_a_folder_where_it_writes_a_file(tiny_dataset, tmp_path, fmt, occupied, kind):
    from click.testing import CliRunner

    from procgen.cli import cli

    out = tmp_path / ("t.bin" if fmt == "bin" else "pq")
    where = tmp_path / occupied if fmt == "bin" else out / occupied
    if kind == "folder":
        where.mkdir(parents=True)
    else:
        where.parent.mkdir(parents=True, exist_ok=True)
        where.write_text("")
    with pytest.raises(ValueError) as info:
        export(tiny_dataset, out, format=fmt)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"out={str(out)!r}") and str(where) in message, message
    assert ".tmp-" not in message
    assert not (tmp_path / "t.bin").exists()  # refused before writing anything
    result = CliRunner().invoke(cli, ["export", str(tiny_dataset), "--format", fmt, "--out", str(out)])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert str(where) in result.output
