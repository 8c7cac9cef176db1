"""ECA task: layout, rule evolution, validator, determinism, golden rows, parameter errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import procgen
from procgen.tasks import get_task
from procgen.tasks.eca import _evolve

TASK = get_task("eca")


def rows_of(batch):
    return [batch[i].tolist() for i in range(len(batch))]


def validate(batch):
    return TASK.validator(batch.tokens, batch.offsets, batch.answer_start, batch.params)


def states(row, width, rule_token=0):
    """Split a row into its states (lists of cells), dropping the rule token and separators."""
    body = row[rule_token:]
    return [body[t * (width + 1): t * (width + 1) + width] for t in range((len(body) + 1) // (width + 1))]


# --- property test over random valid parameters -----------------------------------------------

rules = st.one_of(st.integers(0, 255), st.lists(st.integers(0, 255), min_size=1, max_size=4))


@settings(max_examples=40, deadline=None)
@given(rule=rules, width=st.integers(1, 140), steps=st.integers(1, 6), density=st.floats(0.0, 1.0),
       burn_in=st.integers(0, 4), boundary=st.sampled_from(["periodic", "zero"]), seed=st.integers(0, 2 ** 40),
       start=st.integers(0, 10 ** 6), n=st.integers(1, 30))
def test_every_row_is_valid(rule, width, steps, density, burn_in, boundary, seed, start, n):
    b = procgen.eca(n=n, seed=seed, start=start, rule=rule, width=width, steps=steps, density=density,
                    burn_in=burn_in, boundary=boundary)
    assert validate(b) is None
    listed = rule if isinstance(rule, list) else [rule]
    rule_token = int(len(listed) > 1)
    assert (b.lengths == (steps + 1) * width + steps + rule_token).all()
    assert (b.answer_start == width + 1 + rule_token).all()
    assert b.tokens.dtype == (np.uint16 if rule_token else np.uint8)
    assert int(b.tokens.max()) < len(b.vocab) - 1  # the pad id (last) is never stored
    for row in rows_of(b):
        if rule_token:
            assert row[0] - 3 in listed
        for t, state in enumerate(states(row, width, rule_token)):
            assert set(state) <= {0, 1}
            if t < steps:
                assert row[rule_token + (t + 1) * (width + 1) - 1] == 2


# --- the rule itself, checked against hand-computed evolutions ------------------------------------

def evolve_cells(cells, rule, periodic=True):
    """Run the generator's bit-parallel step on a list of cells (bit i of the word = cell i)."""
    width = len(cells)
    masks = np.where(np.unpackbits(np.array([rule], np.uint8), bitorder="little") == 1,
                     np.uint64(2 ** 64 - 1), np.uint64(0))
    cur = np.zeros((width + 63) // 64, np.uint64)
    for i, cell in enumerate(cells):
        cur[i // 64] |= np.uint64(cell) << np.uint64(i % 64)
    nxt = np.empty_like(cur)
    top = (width - 1) % 64
    _evolve(cur, nxt, len(cur), np.uint64(top), np.uint64(2 ** (top + 1) - 1), masks, periodic)
    return [int(nxt[i // 64] >> np.uint64(i % 64)) & 1 for i in range(width)]


def cells(text):
    return [int(c) for c in text]


@pytest.mark.parametrize("rule, history", [
    # a single live cell: rule 110 grows to the left, rule 30 is the chaotic triangle, rule 90 Sierpinski
    (110, ["00010000", "00110000", "01110000", "11010000"]),
    (30, ["00010000", "00111000", "01100100", "11011110"]),
    (90, ["00010000", "00101000", "01000100", "10101010"]),
])
def test_hand_computed_evolution(rule, history):
    for before, after in zip(history, history[1:]):
        assert evolve_cells(cells(before), rule) == cells(after)
        assert evolve_cells(cells(before), rule, periodic=False) == cells(after)


def test_periodic_wraps_and_zero_boundary_does_not():
    # rule 90 (left XOR right): the live cell 0 lights cells 1 and W-1 on a ring, only cell 1 otherwise
    assert evolve_cells(cells("10000000"), 90) == cells("01000001")
    assert evolve_cells(cells("10000000"), 90, periodic=False) == cells("01000000")
    # across word boundaries (W = 130: three 64-bit words)
    start = [0] * 130
    start[64] = 1
    expected = [0] * 130
    expected[63] = expected[65] = 1
    assert evolve_cells(start, 90) == expected
    start = [0] * 130
    start[129] = 1
    expected = [0] * 130
    expected[128] = expected[0] = 1
    assert evolve_cells(start, 90) == expected


def test_generated_rows_follow_the_rule_from_a_known_start():
    # density 1 makes state_0 all ones; with zero boundary rule 110 then grows from the right edge
    b = procgen.eca(n=2, rule=110, width=8, steps=3, density=1.0, boundary="zero")
    expected = cells("11111111") + [2] + cells("10000001") + [2] + cells("10000011") + [2] + cells("10000111")
    assert rows_of(b) == [expected, expected]
    # periodic all-ones is a fixed point of rule 110 after one step (111 -> 0 everywhere)
    b = procgen.eca(n=1, rule=110, width=8, steps=2, density=1.0)
    assert b[0].tolist() == [1] * 8 + [2] + [0] * 8 + [2] + [0] * 8


def test_burn_in_shifts_the_trajectory():
    """burn_in=k starts where the burn_in=0 row (same seed, same row) is after k steps."""
    plain = procgen.eca(n=50, seed=3, width=40, steps=5, rule=[30, 110])
    burnt = procgen.eca(n=50, seed=3, width=40, steps=3, rule=[30, 110], burn_in=2)
    for a, b in zip(rows_of(plain), rows_of(burnt)):
        assert a[0] == b[0]  # same rule drawn
        assert states(a, 40, 1)[2:] == states(b, 40, 1)


def test_density_statistic():
    for density in (0.1, 0.5, 0.77, 0.9):
        b = procgen.eca(n=4000, seed=1, width=32, steps=1, density=density)
        initial = b.to_numpy()[:, :32]
        se = np.sqrt(density * (1 - density) / initial.size)
        assert abs(initial.mean() - density) < 5 * se, density


def test_rule_list_samples_every_rule_uniformly():
    b = procgen.eca(n=6000, seed=2, rule=[30, 90, 110], width=8, steps=1)
    counts = np.bincount(b.to_numpy()[:, 0], minlength=114)[[33, 93, 113]]
    assert counts.sum() == 6000
    assert (np.abs(counts - 2000) < 5 * np.sqrt(6000 * (1 / 3) * (2 / 3))).all()
    assert validate(b) is None


# --- validator rejects corrupted rows ------------------------------------------------------------

def corrupt(batch, row, position, value):
    tokens = batch.tokens.copy()
    tokens[batch.offsets[row] + position] = value
    return TASK.validator(tokens, batch.offsets, batch.answer_start, batch.params)


def test_validator_rejects_corruptions():
    b = procgen.eca(n=20, seed=5)
    width, last = 32, 3 * 33
    row = b[7].tolist()
    bad = corrupt(b, 7, last + 5, 1 - row[last + 5])  # flip a cell of the last state
    assert bad is not None and bad[0] == 7 and "rule applied" in bad[1]
    bad = corrupt(b, 7, 33 + 2, 1 - row[33 + 2])  # flip a cell of state_1
    assert bad is not None and bad[0] == 7
    bad = corrupt(b, 3, width, 0)  # separator replaced by a cell
    assert bad is not None and bad[0] == 3 and "separator" in bad[1]
    bad = corrupt(b, 4, 10, 5)  # id out of range
    assert bad is not None and bad[0] == 4 and "0 or 1" in bad[1]
    answer_start = b.answer_start.copy()
    answer_start[2] = width  # answer_start on the separator
    bad = TASK.validator(b.tokens, b.offsets, answer_start, b.params)
    assert bad is not None and bad[0] == 2 and "answer_start" in bad[1]
    short = np.array([0, 130], np.int64)  # row 0 one token short
    bad = TASK.validator(b.tokens[:130], short, b.answer_start[:1], b.params)
    assert bad == (0, bad[1]) and "length" in bad[1]


def test_validator_checks_rule_token_and_rule():
    b = procgen.eca(n=20, seed=6, rule=[30, 90])
    assert validate(b) is None
    bad = corrupt(b, 1, 0, 3 + 110)  # a rule that is not listed
    assert bad is not None and bad[0] == 1 and "rule token" in bad[1]
    rule = b[1][0] - 3
    other = 3 + (90 if rule == 30 else 30)
    bad = corrupt(b, 1, 0, other)  # a listed rule, but not the one the states follow
    assert bad is not None and bad[0] == 1
    # the same rows checked as single-rule rows of another rule fail
    single = procgen.eca(n=5, seed=6, rule=30)
    params = dict(single.params, rule=90)
    assert TASK.validator(single.tokens, single.offsets, single.answer_start, params) is not None


# --- determinism and golden rows -------------------------------------------------------------------

def test_start_and_seed_determinism():
    whole = procgen.eca(n=20, seed=11, rule=[30, 110], width=20, burn_in=2)
    part = procgen.eca(n=10, seed=11, start=5, rule=[30, 110], width=20, burn_in=2)
    assert rows_of(part) == rows_of(whole)[5:15]
    assert rows_of(procgen.eca(n=20, seed=11, rule=[30, 110], width=20, burn_in=2)) == rows_of(whole)
    assert rows_of(procgen.eca(n=20, seed=12, rule=[30, 110], width=20, burn_in=2)) != rows_of(whole)
    assert rows_of(procgen.eca(n=20, seed=11, split="test", rule=[30, 110], width=20, burn_in=2)) != rows_of(whole)


GOLDEN = [
    [1, 0, 0, 1, 0, 0, 0, 1, 0, 1, 1, 1, 0, 1, 0, 1, 0, 1, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 1, 1, 0, 2,
     1, 0, 1, 1, 0, 0, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 2,
     1, 1, 1, 1, 0, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 2,
     1, 0, 0, 1, 1, 1, 1, 0, 1, 1, 0, 1, 0, 0, 0, 0, 1, 1, 0, 0, 0, 1, 1, 1, 0, 1, 0, 0, 0, 0, 0, 1],
    [0, 1, 0, 1, 0, 1, 0, 0, 1, 0, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 0, 0, 1, 1, 1, 0, 0, 0, 1, 2,
     1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 1, 1, 0, 1, 0, 0, 1, 1, 2,
     0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 0, 1, 0, 1, 1, 1, 1, 1, 0, 1, 1, 0, 2,
     0, 0, 0, 0, 1, 1, 0, 1, 0, 0, 0, 0, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 0],
]


def test_golden_rows():
    b = procgen.eca(n=2, seed=0, split="train")
    assert rows_of(b) == GOLDEN
    assert b.answer_start.tolist() == [33, 33]
    assert b.num_tokens == 2 * 131


# --- vocabulary and parameter errors ---------------------------------------------------------------

def test_vocab_and_pad():
    b = procgen.eca(n=1)
    assert b.vocab == ["0", "1", "<sep>", "<pad>"] and b.pad_id == 3
    b = procgen.eca(n=1, rule=[30, 110])
    assert len(b.vocab) == 260 and b.vocab[3 + 110] == "r110" and b.vocab[3] == "r0" and b.pad_id == 259
    assert procgen.eca(n=1, rule=[30]).vocab == ["0", "1", "<sep>", "<pad>"]  # one listed rule: no token


@pytest.mark.parametrize("params, name", [
    ({"rule": 256}, "rule"), ({"rule": -1}, "rule"), ({"rule": [30, 256]}, "rule"), ({"rule": []}, "rule"),
    ({"rule": 1.5}, "rule"), ({"width": 0}, "width"), ({"steps": 0}, "steps"), ({"density": 1.5}, "density"),
    ({"density": -0.1}, "density"), ({"burn_in": -1}, "burn_in"), ({"boundary": "wrap"}, "boundary"),
    ({"width": 2 ** 20, "steps": 2 ** 12}, "width"), ({"colour": 3}, "colour"),
    ({"burn_in": 10 ** 6 + 1}, "burn_in"), ({"width": 10 ** 9 + 1}, "width"), ({"steps": 10 ** 9 + 1}, "steps"),
    ({"burn_in": 10 ** 6, "width": 6401}, r"burn_in=1000000 with width=6401 .* burn_in <= 990099"),
])
def test_bad_params_raise(params, name):
    with pytest.raises(ValueError, match=name):
        procgen.eca(n=1, **params)
