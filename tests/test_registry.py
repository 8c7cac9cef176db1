"""Invariants every registered task must keep (a new task is checked here without new tests)."""

import numpy as np
import pytest

import procgen
from procgen.tasks import dtype_for_vocab, get_task, task_names

MIX_SPEC = {"tasks": {"set": {"weight": 1}, "dyck": {"weight": 1}}}


def sample(name, n=200, **kwargs):
    extra = {"spec": MIX_SPEC} if name == "mix" else {}
    return procgen.generate(name, n, **extra, **kwargs)


@pytest.mark.parametrize("name", task_names())
def test_rows_are_valid_and_consistent_with_the_spec(name):
    spec = get_task(name)
    b = sample(name, seed=3)
    b.validate()
    params = b.params
    assert spec.vocab_size(params) == len(spec.vocab(params)) == len(b.vocab)
    assert b.tokens.dtype == dtype_for_vocab(spec.vocab_size(params))
    assert int(b.tokens.max()) < spec.vocab_size(params)
    assert b.lengths.max() <= spec.max_row_length(params)
    assert b.offsets.dtype == np.int64 and b.answer_start.dtype == np.int32
    assert (b.answer_start >= 0).all() and (b.answer_start <= b.lengths).all()
    if spec.is_lm_style(params):
        assert (b.answer_start == 0).all()
    else:
        assert (b.answer_start > 0).any(), "a task that is not LM-style says where its answer starts"
    pad = spec.pad_id(params)
    if pad is not None:
        assert not (b.tokens == pad).any(), "the padding id must never be stored"


@pytest.mark.parametrize("name", task_names())
def test_row_i_does_not_depend_on_n_or_start(name):
    whole = sample(name, n=300, seed=8)
    part = sample(name, n=40, seed=8, start=211)
    assert np.array_equal(part.tokens, whole[211:251].tokens)
    assert np.array_equal(part.offsets, whole[211:251].offsets)
    assert np.array_equal(part.answer_start, whole.answer_start[211:251])


@pytest.mark.parametrize("name", task_names())
def test_splits_and_seeds_are_independent(name):
    rows = {(seed, split): sample(name, n=50, seed=seed, split=split).tokens.tobytes()
            for seed in (0, 1) for split in ("train", "test")}
    assert len(set(rows.values())) == len(rows)


@pytest.mark.parametrize("name", task_names())
def test_validator_rejects_an_out_of_range_id(name):
    b = sample(name, seed=1)
    spec = get_task(name)
    too_big = spec.vocab_size(b.params)
    if too_big > np.iinfo(b.tokens.dtype).max:
        pytest.skip("the dtype cannot hold an id past the vocabulary")
    b.tokens[b.offsets[5] + 1] = too_big
    assert spec.check(b) is not None and spec.check(b)[0] == 5


@pytest.mark.parametrize("name", task_names())
def test_public_shortcut_and_unknown_parameter(name):
    shortcut = getattr(procgen, name) if name != "mix" else procgen.mix
    assert callable(shortcut) and shortcut.__doc__
    with pytest.raises(ValueError, match="unknown parameter 'no_such_param'"):
        get_task(name).resolve_params({"no_such_param": 1, **({"spec": MIX_SPEC} if name == "mix" else {})})


def test_every_task_is_listed_with_its_parameters():
    listing = procgen.tasks()
    assert set(listing) == set(task_names())
    for name, entry in listing.items():
        assert entry["summary"]
        assert set(entry["params"]) == {p.name for p in get_task(name).params}


@pytest.mark.parametrize("name", task_names())
def test_mean_row_length_matches_the_rows(name):
    """A stated mean (expected_row_length) is the rows' mean; without one, a sample's mean is used."""
    spec = get_task(name)
    variants = [{}]
    if "min_length" in spec.param_index:
        variants.append({"min_length": 3, "max_length": 30})
        if "vocab_size" in spec.param_index:  # few distinct tokens: repeats are common
            variants.append({"min_length": 2, "max_length": 9, "vocab_size": 5})
    for given in variants:
        extra = {"spec": MIX_SPEC} if name == "mix" else {}
        params = spec.resolve_params({**extra, **given})
        mean = spec.mean_row_length(params, seed=6)
        if spec.expected_row_length is None:  # measured on the stream's first rows (about 2**20 tokens)
            rows = sample(name, n=max(1, min(1 << 16, (1 << 20) // spec.max_row_length(params))), seed=6, **given)
            assert mean == pytest.approx(rows.num_tokens / len(rows))
            continue
        rows = sample(name, n=20000, seed=6, **given)
        if rows.lengths.min() == rows.lengths.max():
            assert mean == rows.lengths[0]  # fixed-length rows: exact
        else:
            error = rows.lengths.std() / np.sqrt(len(rows))
            assert abs(mean - rows.lengths.mean()) < 5 * error, (given, float(mean), rows.lengths.mean())


# --- upper bounds: every integer parameter is bounded in Python, before any numba kernel ----------

def _int_params():
    return [(name, p) for name in task_names() for p in get_task(name).params if p.kind is int]


@pytest.mark.parametrize("name, param", _int_params(), ids=lambda x: x if isinstance(x, str) else x.name)
def test_every_integer_parameter_has_a_documented_upper_bound(name, param):
    """numba wraps int64 silently: past ``high`` (or 2**63) a value must never reach a kernel."""
    assert param.high is not None, f"{name}: {param.name} has no upper bound"
    assert param.check(param.high, name) == param.high
    for value in (param.high + 1, 2 ** 63 - 1, 2 ** 63, 2 ** 64, 10 ** 30, float(2 ** 70)):
        if value <= param.high:
            continue
        with pytest.raises(ValueError) as info:
            procgen.generate(name, 1, **{param.name: value})
        message = str(info.value)
        assert "\n" not in message
        assert f"{name}: {param.name} must be {param.allowed()}" in message, message


@pytest.mark.parametrize("name", [n for n in task_names() if n != "mix"])
def test_the_largest_parameters_keep_rows_within_int32_offsets(name):
    """Every length-like bound is small enough that the longest row fits in 2**31 - 1 tokens."""
    spec = get_task(name)
    given = {p.name: p.high for p in spec.params if p.kind is int}
    try:
        params = spec.resolve_params(given)
    except ValueError:  # a cross-parameter check (e.g. eca's row length) refused the combination
        return
    assert spec.max_row_length(params) <= 2 ** 31 - 1
