"""ECA task: layout, rule evolution, validator, determinism, golden rows, parameter errors."""

import math
from itertools import pairwise

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


GOLDEN_RANDOM_RULE = [
    [1, 0, 1, 0, 0, 1, 1, 1, 0, 0, 1, 0, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 1, 0, 1, 0, 0, 1, 0, 2,
     1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 1, 0, 2,
     1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 1, 0, 2,
     1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 1, 0],
    [1, 1, 0, 1, 1, 0, 0, 0, 1, 1, 0, 1, 0, 1, 1, 0, 0, 0, 1, 0, 0, 1, 1, 1, 0, 0, 0, 1, 0, 1, 1, 0, 2,
     1, 1, 0, 1, 1, 1, 0, 0, 1, 1, 0, 1, 0, 1, 1, 1, 0, 0, 1, 1, 0, 1, 0, 1, 1, 0, 0, 1, 0, 1, 1, 0, 2,
     1, 1, 0, 1, 0, 1, 1, 0, 1, 1, 0, 1, 0, 1, 0, 1, 1, 0, 1, 1, 0, 1, 0, 1, 1, 1, 0, 1, 0, 1, 1, 0, 2,
     1, 1, 0, 1, 0, 1, 1, 0, 1, 1, 0, 1, 0, 1, 0, 1, 1, 0, 1, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 1, 0],
]


@pytest.mark.parametrize("random_rule, golden", [(False, GOLDEN), (True, GOLDEN_RANDOM_RULE)],
                         ids=["fixed_rule", "random_rule"])
def test_golden_rows(random_rule, golden):
    b = procgen.eca(n=2, seed=0, split="train", random_rule=random_rule)
    assert rows_of(b) == golden
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


# --- in-context rules (random_rule=True): a fresh rule per row, no rule token ----------------------

def neighbourhoods(before, periodic=True):
    """The neighbourhood number 4*left + 2*centre + right of every cell of a state (a list)."""
    width = len(before)
    if periodic:
        return [4 * before[i - 1] + 2 * before[i] + before[(i + 1) % width] for i in range(width)]
    padded = [0] + before + [0]
    return [4 * padded[i] + 2 * padded[i + 1] + padded[i + 2] for i in range(width)]


def inferred_rule(row, width, periodic=True):
    """Plain-Python reading of an in-context row: {neighbourhood: next cell} over every transition,
    or None when a neighbourhood leads to both 0 and 1 (no rule explains the row)."""
    table = {}
    history = states(row, width)
    for before, after in pairwise(history):
        for pattern, cell in zip(neighbourhoods(before, periodic), after):
            if table.setdefault(pattern, cell) != cell:
                return None
    return table


def rule_number(table):
    """The rule a full table (all 8 neighbourhoods seen) spells."""
    assert len(table) == 8
    return sum(cell << pattern for pattern, cell in table.items())


def chi2_sf(statistic, dof):
    """P(chi-square with ``dof`` degrees of freedom >= statistic), Wilson-Hilferty approximation
    (scipy is not a dependency; accurate to a few percent of the tail probability for dof >= 5)."""
    scale = 2 / (9 * dof)
    z = ((statistic / dof) ** (1 / 3) - (1 - scale)) / math.sqrt(scale)
    return 0.5 * math.erfc(z / math.sqrt(2))


@settings(max_examples=40, deadline=None)
@given(width=st.integers(1, 140), steps=st.integers(1, 6), density=st.floats(0.0, 1.0), burn_in=st.integers(0, 4),
       boundary=st.sampled_from(["periodic", "zero"]), seed=st.integers(0, 2 ** 40), start=st.integers(0, 10 ** 6),
       n=st.integers(1, 30))
def test_random_rule_rows_are_valid(width, steps, density, burn_in, boundary, seed, start, n):
    b = procgen.eca(n=n, seed=seed, start=start, random_rule=True, width=width, steps=steps, density=density,
                    burn_in=burn_in, boundary=boundary)
    assert validate(b) is None
    assert (b.lengths == (steps + 1) * width + steps).all()  # no rule token
    assert (b.answer_start == width + 1).all()
    assert b.tokens.dtype == np.uint8 and b.vocab == ["0", "1", "<sep>", "<pad>"]
    for row in rows_of(b):
        assert set(row) <= {0, 1, 2}
        assert all(row[t * (width + 1) - 1] == 2 for t in range(1, steps + 1))
        table = inferred_rule(row, width, boundary == "periodic")
        assert table is not None
        # every rule that agrees with the observed table reproduces the row, state by state
        free = [p for p in range(8) if p not in table]
        rule = sum(table.get(p, 0) << p for p in range(8)) | (sum(1 << p for p in free) if row[0] else 0)
        history = states(row, width)
        for before, after in pairwise(history):
            assert [(rule >> p) & 1 for p in neighbourhoods(before, boundary == "periodic")] == after


def test_random_rules_are_uniform_over_rows():
    """With 64 random cells every neighbourhood appears in state_0 in about 99% of rows, which pins the
    rule (state_0 is drawn independently of the rule, so dropping the other rows biases nothing); the
    recovered rules pass a chi-square test of uniformity over 0..255."""
    n = 25_600
    b = procgen.eca(n=n, seed=21, random_rule=True, width=64, steps=1)
    recovered = []
    for row in rows_of(b):
        table = inferred_rule(row, 64)
        if len(table) == 8:
            recovered.append(rule_number(table))
    assert len(recovered) > 0.98 * n
    counts = np.bincount(recovered, minlength=256)
    expected = len(recovered) / 256
    statistic = ((counts - expected) ** 2 / expected).sum()
    assert chi2_sf(statistic, 255) > 1e-4, statistic
    # consecutive rows draw independent rules: the pairs of their top 4 bits are uniform over 16 x 16
    high = np.array(recovered) >> 4
    pairs = np.bincount(high[:-1] * 16 + high[1:], minlength=256)
    expected = (len(high) - 1) / 256
    assert chi2_sf(((pairs - expected) ** 2 / expected).sum(), 255) > 1e-4


def test_random_rule_follows_the_fixed_rule_stream_given_its_rule():
    """A row with random_rule=True is the state sequence its recovered rule gives from state_0."""
    b = procgen.eca(n=200, seed=4, random_rule=True, width=48, steps=4, burn_in=1)
    for row in rows_of(b):
        table = inferred_rule(row, 48)
        if len(table) < 8:
            continue
        rule = rule_number(table)
        history = states(row, 48)
        for before, after in pairwise(history):
            assert evolve_cells(before, rule) == after


def test_random_rule_has_no_rule_token_and_ignores_rule():
    b = procgen.eca(n=50, seed=1, random_rule=True)
    assert len(b.vocab) == 4 and b.pad_id == 3
    assert (b.lengths == 131).all() and (b.answer_start == 33).all()
    assert int(b.tokens.max()) <= 2
    other = procgen.eca(n=50, seed=1, random_rule=True, rule=30)  # rule is unused
    assert rows_of(other) == rows_of(b)
    assert rows_of(b) != rows_of(procgen.eca(n=50, seed=1))


def test_random_rule_determinism_and_burn_in():
    whole = procgen.eca(n=30, seed=9, random_rule=True, width=20)
    part = procgen.eca(n=10, seed=9, start=12, random_rule=True, width=20)
    assert rows_of(part) == rows_of(whole)[12:22]
    plain = procgen.eca(n=30, seed=9, random_rule=True, width=20, steps=5)
    burnt = procgen.eca(n=30, seed=9, random_rule=True, width=20, steps=3, burn_in=2)
    for a, c in zip(rows_of(plain), rows_of(burnt)):  # same rule and state_0 drawn: burn-in shifts the rollout
        assert states(a, 20)[2:] == states(c, 20)


def test_random_rule_validator_and_fixed_rule_validator():
    fixed = procgen.eca(n=20, seed=3, rule=30)
    random_params = dict(fixed.params, random_rule=True)
    # rule-30 rows are explained by a rule: valid as in-context rows
    assert TASK.validator(fixed.tokens, fixed.offsets, fixed.answer_start, random_params) is None
    # in-context rows checked as rule-30 rows fail
    b = procgen.eca(n=20, seed=3, random_rule=True)
    bad = TASK.validator(b.tokens, b.offsets, b.answer_start, dict(b.params, random_rule=False, rule=30))
    assert bad is not None and "rule applied" in bad[1]
    # parameters resolved before random_rule existed validate as fixed-rule rows
    old = {k: v for k, v in fixed.params.items() if k != "random_rule"}
    assert TASK.validator(fixed.tokens, fixed.offsets, fixed.answer_start, old) is None


def contradiction(row, width):
    """(state_1 position) of a cell whose neighbourhood occurs at another cell of state_0."""
    patterns = neighbourhoods(states(row, width)[0])
    return next(i for i, p in enumerate(patterns) if patterns.count(p) > 1)


def test_random_rule_validator_rejects_corruptions():
    b = procgen.eca(n=20, seed=5, random_rule=True)
    width = 32
    assert validate(b) is None
    row = b[6].tolist()
    i = contradiction(row, width)
    bad = corrupt(b, 6, width + 1 + i, 1 - row[width + 1 + i])  # a neighbourhood now leads to 0 and 1
    assert bad is not None and bad[0] == 6 and "no rule explains" in bad[1]
    bad = corrupt(b, 3, width, 1)  # separator replaced by a cell
    assert bad is not None and bad[0] == 3 and "separator" in bad[1]
    bad = corrupt(b, 4, 10, 2)  # a separator where a cell belongs
    assert bad is not None and bad[0] == 4 and "0 or 1" in bad[1]
    answer_start = b.answer_start.copy()
    answer_start[2] = width + 2  # shifted as if there were a rule token
    bad = TASK.validator(b.tokens, b.offsets, answer_start, b.params)
    assert bad is not None and bad[0] == 2 and "answer_start" in bad[1]
    with_token = procgen.eca(n=3, seed=5, rule=[30, 110])  # rows with a rule token are one token too long
    bad = TASK.validator(with_token.tokens, with_token.offsets, with_token.answer_start, b.params)
    assert bad is not None and bad[0] == 0 and "length" in bad[1]


def test_random_rule_from_the_command_line(tmp_path):
    from conftest import run_cli

    out = tmp_path / "eca"
    result = run_cli("generate", "eca", "--random-rule", "-n", "40", "--out", out, "--quiet")
    assert result.exit_code == 0, result.stderr
    loaded = procgen.load(out)
    assert loaded.num_rows == 40 and all(len(row) == 131 for row in loaded["input_ids"])
    assert run_cli("validate", out).exit_code == 0


@pytest.mark.parametrize("params, name", [
    ({"random_rule": True, "rule": [30, 110]}, "random_rule"), ({"random_rule": 1}, "random_rule"),
    ({"random_rule": "yes"}, "random_rule"), ({"rule": "random"}, "rule"),
])
def test_bad_random_rule_params_raise(params, name):
    with pytest.raises(ValueError, match=name):
        procgen.eca(n=1, **params)
