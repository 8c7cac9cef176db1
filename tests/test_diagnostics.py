"""Diagnostic tasks (haystack, addition, reversed_addition, multiplication): layout, correctness,
validators, determinism, golden rows, the official harness's scored positions, statistics and
parameter errors. Both arithmetic layouts are covered: the official one (default) and
``fixed_width=True``."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import procgen
from procgen.tasks import get_task

try:
    from scipy.stats import chi2
except ImportError:  # the fixed thresholds below are chi2.isf(1e-4, dof)
    chi2 = None

ARITHMETIC = ["addition", "reversed_addition", "multiplication"]
DEFAULT_DIGITS = {"addition": 5, "reversed_addition": 10, "multiplication": 5}


def rows_of(batch):
    return [batch[i].tolist() for i in range(len(batch))]


def validate(batch):
    return get_task(batch.task).validator(batch.tokens, batch.offsets, batch.answer_start, batch.params)


def corrupt(batch, row, position, value):
    tokens = batch.tokens.copy()
    tokens[batch.offsets[row] + position] = value
    return get_task(batch.task).validator(tokens, batch.offsets, batch.answer_start, batch.params)


def with_answer_start(batch, row, value):
    answer_start = batch.answer_start.copy()
    answer_start[row] = value
    return get_task(batch.task).validator(batch.tokens, batch.offsets, answer_start, batch.params)


def check_rows(task, rows, answer_start=None, **params):
    """Validate hand-made rows; ``answer_start`` defaults to the position right after '='."""
    if answer_start is None:
        answer_start = [row.index(11) + 1 for row in rows]
    offsets = np.cumsum([0] + [len(row) for row in rows]).astype(np.int64)
    tokens = np.array([t for row in rows for t in row], np.uint8)
    spec = get_task(task)
    return spec.validator(tokens, offsets, np.array(answer_start, np.int32), spec.resolve_params(params))


def parse_arithmetic(row, task):
    """Decode a row with Python ints (independent of both generator and validator).

    Returns ``(a, b, answer, digits of a, digits of b, digits of the answer, answer digits as
    written, most significant first)``.
    """
    op = row.index(10)
    eq = row.index(11)
    a, b = row[:op], row[op + 1:eq]
    answer = [t - 20 for t in row[eq + 1:-1]]
    if task == "reversed_addition":
        a, b, answer = a[::-1], b[::-1], answer[::-1]
    number = lambda digits: int("".join(map(str, digits)))  # noqa: E731
    return number(a), number(b), number(answer), len(a), len(b), len(answer), answer


def true_result(task, a, b):
    return a * b if task == "multiplication" else a + b


def chi_square(counts):
    expected = counts.sum() / len(counts)
    return float(((counts - expected) ** 2 / expected).sum())


def assert_uniform(counts, threshold):
    """Chi-square test of equal frequencies; ``threshold`` = chi2.isf(1e-4, len(counts) - 1)."""
    counts = np.asarray(counts, dtype=np.float64)
    statistic = chi_square(counts)
    if chi2 is not None:
        assert chi2.sf(statistic, len(counts) - 1) > 1e-4, statistic
    assert statistic < threshold, statistic


# --- property tests --------------------------------------------------------------------------------

pair_counts = st.integers(1, 30)


@settings(max_examples=40, deadline=None)
@given(lo=pair_counts, hi=pair_counts, eos=st.booleans(), seed=st.integers(0, 2 ** 40),
       start=st.integers(0, 10 ** 6), n=st.integers(1, 40))
def test_haystack_rows_are_valid(lo, hi, eos, seed, start, n):
    lo, hi = min(lo, hi), max(lo, hi)
    b = procgen.haystack(n=n, seed=seed, start=start, min_pairs=lo, max_pairs=hi, eos=eos)
    assert validate(b) is None
    assert b.tokens.dtype == np.uint8
    for row, answer_start in zip(rows_of(b), b.answer_start.tolist()):
        pairs = (len(row) - 2 - eos) // 2
        assert lo <= pairs <= hi and len(row) == 2 * pairs + 2 + eos
        assert answer_start == 2 * pairs + 1
        keys, values = row[0:2 * pairs:2], row[1:2 * pairs:2]
        assert len(set(keys)) == pairs and all(128 <= k < 158 for k in keys)
        assert all(1 <= v <= 127 for v in values)
        query = row[2 * pairs] - 158
        assert row[2 * pairs + 1] == dict(zip(keys, values))[128 + query]
        assert not eos or row[-1] == 188


@settings(max_examples=60, deadline=None)
@given(task=st.sampled_from(ARITHMETIC), lo=st.integers(1, 25), hi=st.integers(1, 25), fixed_width=st.booleans(),
       seed=st.integers(0, 2 ** 40), start=st.integers(0, 10 ** 6), n=st.integers(1, 40))
def test_arithmetic_rows_are_valid_and_correct(task, lo, hi, fixed_width, seed, start, n):
    lo, hi = min(lo, hi), max(lo, hi)
    b = procgen.generate(task, n=n, seed=seed, start=start, min_digits=lo, max_digits=hi, fixed_width=fixed_width)
    assert validate(b) is None
    assert b.tokens.dtype == np.uint8
    for row, answer_start in zip(rows_of(b), b.answer_start.tolist()):
        a, c, answer, d_a, d_b, width, written = parse_arithmetic(row, task)
        assert lo <= d_a <= hi and lo <= d_b <= hi and answer == true_result(task, a, c)
        assert answer_start == d_a + d_b + 2 and row[-1] == 30 and 30 not in row[:-1]
        assert row[d_a] == 10 and row[d_a + d_b + 1] == 11
        assert all(0 <= t <= 9 for t in row[:d_a] + row[d_a + 1:d_a + d_b + 1])
        assert all(20 <= t <= 29 for t in row[answer_start:-1])
        if fixed_width:  # both operands share d; leading zeros kept; fixed-width answer
            assert d_a == d_b and width == (2 * d_a if task == "multiplication" else d_a + 1)
            assert len(row) == (4 * d_a + 3 if task == "multiplication" else 3 * d_a + 4)
        else:  # no leading zeros anywhere: the answer is the plain decimal result
            assert len(str(a)) == d_a and len(str(c)) == d_b
            assert written == [int(x) for x in str(answer)]
            assert len(row) == d_a + d_b + 3 + len(str(answer))


@pytest.mark.parametrize("fixed_width", [False, True])
def test_long_operands_use_the_digit_wise_paths(fixed_width):
    # beyond 18 digits (sum) / 18 digits of both operands (product) the generator leaves uint64 arithmetic
    for task, params in [("addition", {"digits": 60}), ("reversed_addition", {"digits": 19}),
                         ("multiplication", {"digits": 10}), ("multiplication", {"digits": 40}),
                         ("addition", {"min_digits": 5, "max_digits": 40}),
                         ("reversed_addition", {"min_digits": 1, "max_digits": 30}),
                         ("multiplication", {"min_digits": 3, "max_digits": 25})]:
        b = procgen.generate(task, n=200, seed=4, fixed_width=fixed_width, **params)
        assert validate(b) is None
        for row in rows_of(b)[:80]:
            a, c, answer, d_a, d_b, _, written = parse_arithmetic(row, task)
            assert answer == true_result(task, a, c)
            if not fixed_width:
                assert written[0] != 0 and len(str(a)) == d_a and len(str(c)) == d_b


def test_a_thousand_digits_still_work():
    for task in ARITHMETIC:
        for fixed_width in (False, True):
            b = procgen.generate(task, n=3, seed=2, digits=1000, fixed_width=fixed_width)
            assert validate(b) is None
            for row in rows_of(b):
                a, c, answer, d_a, d_b, _, _ = parse_arithmetic(row, task)
                assert d_a == d_b == 1000 and answer == true_result(task, a, c)


# --- the official layout, by hand ------------------------------------------------------------------

# 65125 + 43936 = 109061 in the official layout: 19 tokens, exactly the padded width 3*5+4 = 19
HAND_ROW = [6, 5, 1, 2, 5, 10, 4, 3, 9, 3, 6, 11, 21, 20, 29, 20, 26, 21, 30]
# 12345 + 11111 = 23456: no carry out, 18 tokens, one short of the padded width
SHORT_ROW = [1, 2, 3, 4, 5, 10, 1, 1, 1, 1, 1, 11, 22, 23, 24, 25, 26, 30]


def test_hand_made_rows_are_valid_and_scored_like_the_official_harness():
    assert check_rows("addition", [HAND_ROW, SHORT_ROW]) is None
    assert parse_arithmetic(HAND_ROW, "addition")[:3] == (65125, 43936, 109061)
    assert parse_arithmetic(SHORT_ROW, "addition")[:3] == (12345, 11111, 23456)
    spec = get_task("addition")
    params = spec.resolve_params({})
    lengths, answer_start = np.array([19, 18]), np.array([12, 12])
    lo, hi = spec.scored_span(lengths, answer_start, params, "reference")
    # HAND_ROW: digits 0 9 0 6 1 (13..17) and the stop (18); it fills the padded width, no pad is scored.
    # SHORT_ROW: digits 3 4 5 6 (13..16), the stop (17), then the pad position 18 (predicted at the stop).
    assert (lo.tolist(), hi.tolist()) == ([13, 13], [19, 19])
    for row, i in [(HAND_ROW, 0), (SHORT_ROW, 1)]:
        assert list(range(lo[i], hi[i])) == official_scored_positions(row, 19, threshold=20) == list(range(13, 19))
    lo, hi = spec.scored_span(lengths, answer_start, params, "all")
    assert (lo.tolist(), hi.tolist()) == ([12, 12], [19, 18])


def test_reversed_operands_may_start_with_zero_but_not_end_with_it():
    # 12340 + 5 = 12345, written least significant digit first: 0 4 3 2 1 + 5 = 5 4 3 2 1
    row = [0, 4, 3, 2, 1, 10, 5, 11, 25, 24, 23, 22, 21, 30]
    assert check_rows("reversed_addition", [row], min_digits=1, max_digits=5) is None
    bad = check_rows("reversed_addition", [[1, 4, 3, 2, 0, 10, 5, 11, 26, 24, 23, 22, 20, 30]], min_digits=1,
                     max_digits=5)  # 02341 + 5: a has a leading zero (its last written digit)
    assert bad is not None and bad[0] == 0 and "starts with a 0" in bad[1]


# --- validators reject corrupted rows --------------------------------------------------------------

def test_haystack_validator_rejects_corruptions():
    b = procgen.haystack(n=10, seed=3, pairs=30, eos=True)
    row = b[2].tolist()
    answer = 61
    bad = corrupt(b, 2, answer, row[answer] % 127 + 1)  # wrong value
    assert bad is not None and bad[0] == 2 and "value paired" in bad[1]
    bad = corrupt(b, 2, 2, row[0])  # duplicate key
    assert bad is not None and bad[0] == 2 and "twice" in bad[1]
    bad = corrupt(b, 2, 1, 0)  # value out of range
    assert bad is not None and bad[0] == 2 and "1..127" in bad[1]
    bad = corrupt(b, 2, 0, 200)  # key id out of range
    assert bad is not None and bad[0] == 2 and "key token" in bad[1]
    bad = corrupt(b, 2, 60, 128)  # key token where the query should be
    assert bad is not None and bad[0] == 2 and "query" in bad[1]
    bad = corrupt(b, 2, 62, 0)  # end token missing
    assert bad is not None and bad[0] == 2 and "end token" in bad[1]
    bad = with_answer_start(b, 2, 60)  # answer_start on the query
    assert bad is not None and bad[0] == 2 and "answer_start" in bad[1]


def test_haystack_validator_rejects_query_of_an_absent_key():
    b = procgen.haystack(n=10, seed=3, pairs=5)
    row = b[1].tolist()
    absent = next(k for k in range(30) if 128 + k not in row[:10])
    bad = corrupt(b, 1, 10, 158 + absent)
    assert bad is not None and bad[0] == 1 and "not among" in bad[1]
    # a row of 5 pairs is outside 6..30
    params = dict(b.params, min_pairs=6, max_pairs=30)
    bad = get_task("haystack").validator(b.tokens, b.offsets, b.answer_start, params)
    assert bad is not None and bad[0] == 0 and "pair count" in bad[1]


@pytest.mark.parametrize("task", ARITHMETIC)
@pytest.mark.parametrize("fixed_width", [False, True])
def test_arithmetic_validator_rejects_corruptions(task, fixed_width):
    b = procgen.generate(task, n=10, seed=8, fixed_width=fixed_width)
    d = DEFAULT_DIGITS[task]
    row = b[4].tolist()
    first_answer = 2 * d + 2
    assert b.answer_start[4] == first_answer and len(row) > first_answer + 2
    bad = corrupt(b, 4, first_answer + 1, 20 + (row[first_answer + 1] - 19) % 10)  # wrong answer digit
    assert bad is not None and bad[0] == 4 and "result" in bad[1]
    inner = d - 2 if task == "reversed_addition" else 1  # neither the most significant digit nor the last
    bad = corrupt(b, 4, inner, (row[inner] + 1) % 10)  # operand changed: the answer no longer matches
    assert bad is not None and bad[0] == 4 and "result" in bad[1]
    bad = corrupt(b, 4, len(row) - 1, 29)  # stop token missing
    assert bad is not None and bad[0] == 4 and "stop" in bad[1]
    bad = corrupt(b, 4, 1, 12)  # operand id out of range
    assert bad is not None and bad[0] == 4 and "0..9" in bad[1]
    bad = corrupt(b, 4, d, 11)  # operator replaced
    assert bad is not None and bad[0] == 4 and "operator" in bad[1]
    bad = corrupt(b, 4, 2 * d + 1, 9)  # '=' replaced
    assert bad is not None and bad[0] == 4 and "'='" in bad[1]
    bad = corrupt(b, 4, first_answer, row[first_answer] - 20)  # answer digit written as an operand digit
    assert bad is not None and bad[0] == 4 and "20..29" in bad[1]
    bad = with_answer_start(b, 4, first_answer - 1)  # reference-harness convention (on '=')
    assert bad is not None and bad[0] == 4 and "answer_start" in bad[1]
    params = dict(b.params, min_digits=d + 1, max_digits=d + 1)
    bad = get_task(task).validator(b.tokens, b.offsets, b.answer_start, params)
    assert bad is not None and bad[0] == 0 and "digit count" in bad[1]
    most_significant = d - 1 if task == "reversed_addition" else 0
    bad = corrupt(b, 4, most_significant, 0)  # a leading zero: fine only in the fixed-width layout
    if fixed_width:
        assert bad is not None and bad[0] == 4 and "result" in bad[1]
    else:
        assert bad is not None and bad[0] == 4 and "operand starts with a 0" in bad[1]


def test_official_layout_validator_rejects_leading_zeros_and_bad_shapes():
    # 05125 + 43936 = 49061: a 5-digit operand with a leading zero
    zero_a = [0, 5, 1, 2, 5, 10, 4, 3, 9, 3, 6, 11, 24, 29, 20, 26, 21, 30]
    bad = check_rows("addition", [HAND_ROW, zero_a])
    assert bad == (1, "an operand starts with a 0 (leading zeros only with fixed_width=True)")
    zero_b = [4, 3, 9, 3, 6, 10, 0, 5, 1, 2, 5, 11, 24, 29, 20, 26, 21, 30]
    assert check_rows("addition", [zero_b])[1].startswith("an operand starts with a 0")
    # the same row, answer padded to d+1 digits, is a valid fixed-width row
    assert check_rows("addition", [zero_a[:12] + [20] + zero_a[12:]], fixed_width=True) is None
    # 5125 + 43936 = 049061: the right value, written with a leading zero
    zero_answer = [5, 1, 2, 5, 10, 4, 3, 9, 3, 6, 11, 20, 24, 29, 20, 26, 21, 30]
    bad = check_rows("addition", [zero_answer], min_digits=4, max_digits=5)
    assert bad is not None and "answer starts with a 0" in bad[1]
    assert check_rows("addition", [zero_answer[:11] + zero_answer[12:]], min_digits=4, max_digits=5) is None
    # 12 * 5 = 60, product written with o_a + o_b = 3 digits: 060
    bad = check_rows("multiplication", [[1, 2, 10, 5, 11, 20, 26, 20, 30]], min_digits=1, max_digits=2)
    assert bad is not None and "answer starts with a 0" in bad[1]
    assert check_rows("multiplication", [[1, 2, 10, 5, 11, 26, 20, 30]], min_digits=1, max_digits=2) is None
    # more answer digits than the result can have, and no answer at all
    bad = check_rows("addition", [HAND_ROW[:12] + [20] + HAND_ROW[12:]])
    assert bad is not None and "answer digit count" in bad[1]
    bad = check_rows("addition", [HAND_ROW[:12] + [30]])
    assert bad is not None and "answer digit count" in bad[1]
    # a missing stop, a wrong answer, a wrong answer_start, an operand of the wrong size
    bad = check_rows("addition", [HAND_ROW[:-1]])
    assert bad is not None and "stop" in bad[1]
    bad = check_rows("addition", [HAND_ROW[:-2] + [22, 30]])
    assert bad is not None and "result" in bad[1]
    for answer_start in (11, 13, 0):
        bad = check_rows("addition", [HAND_ROW], [answer_start])
        assert bad is not None and "answer_start" in bad[1]
    bad = check_rows("addition", [HAND_ROW[1:]])  # a has 4 digits, outside digits=5
    assert bad is not None and "digit count" in bad[1]
    assert check_rows("addition", [HAND_ROW], min_digits=6, max_digits=9)[1].startswith("an operand's digit count")
    # operator or '=' missing altogether
    bad = check_rows("addition", [[6, 5, 1, 2, 5, 11, 4, 3, 9, 3, 6, 11, 21, 20, 29, 26, 21, 30]], [12])
    assert bad is not None and "operator" in bad[1]
    bad = check_rows("addition", [HAND_ROW[:11] + [9] + HAND_ROW[12:]], [12])
    assert bad is not None and "'='" in bad[1]


def test_fixed_width_validator_rejects_official_rows_of_another_shape():
    # 12 + 345 = 357: operands of different sizes are not a fixed-width row
    bad = check_rows("addition", [[1, 2, 10, 3, 4, 5, 11, 23, 25, 27, 30]], min_digits=2, max_digits=3,
                     fixed_width=True)
    assert bad is not None and "different digit counts" in bad[1]
    # HAND_ROW is also a fixed-width row (its sum has d+1 digits); SHORT_ROW is not (a 5-digit sum, not 6)
    assert check_rows("addition", [HAND_ROW], fixed_width=True) is None
    bad = check_rows("addition", [SHORT_ROW], fixed_width=True)
    assert bad is not None and "answer digit count" in bad[1]


# --- the positions the official harness scores -----------------------------------------------------

def official_scored_positions(row, padded_width, threshold, pad=12):
    """The label positions the official harness scores: pad the row to ``padded_width``; a label at
    t is scored when the token at t - 1 is ``>= threshold``."""
    padded = np.array(list(row) + [pad] * (padded_width - len(row)))
    return (np.nonzero(padded[:-1] >= threshold)[0] + 1).tolist()


@pytest.mark.parametrize("task, params", [
    ("addition", {}), ("reversed_addition", {}), ("multiplication", {}),
    ("addition", {"min_digits": 1, "max_digits": 6}), ("reversed_addition", {"digits": 3}),
    ("multiplication", {"min_digits": 2, "max_digits": 4}),
])
def test_arithmetic_reference_span_is_what_the_official_harness_scores(task, params):
    b = procgen.generate(task, n=400, seed=11, **params)
    width = (5 if task == "multiplication" else 3) * b.params["max_digits"] + 4
    lo, hi = get_task(task).scored_span(b.lengths, b.answer_start, b.params, "reference")
    assert (lo == b.answer_start + 1).all()
    for i, row in enumerate(rows_of(b)):
        assert list(range(lo[i], hi[i])) == official_scored_positions(row, width, threshold=20)
    if task == "multiplication":  # products never reach the padded width: the pad position is always scored
        assert (hi == b.lengths + 1).all()
    elif not params:  # a 5- or 10-digit sum with a carry out fills the padded width exactly
        assert set((hi - b.lengths).tolist()) == {0, 1}


@pytest.mark.parametrize("task", ARITHMETIC)
def test_fixed_width_reference_span_ends_at_the_stop(task):
    b = procgen.generate(task, n=50, seed=11, fixed_width=True, min_digits=2, max_digits=6)
    lo, hi = get_task(task).scored_span(b.lengths, b.answer_start, b.params, "reference")
    assert (lo == b.answer_start + 1).all() and (hi == b.lengths).all()


@pytest.mark.parametrize("params", [{}, {"pairs": 30}, {"min_pairs": 3, "max_pairs": 9}, {"eos": True}])
def test_haystack_reference_span_is_the_value_only(params):
    b = procgen.haystack(n=300, seed=12, **params)
    lo, hi = get_task("haystack").scored_span(b.lengths, b.answer_start, b.params, "reference")
    assert (lo == b.answer_start).all() and (hi == b.answer_start + 1).all()
    if not b.params["eos"]:  # the official mask: current token a query (>= 158), rows padded with 0 to 63
        for i, row in enumerate(rows_of(b)):
            assert list(range(lo[i], hi[i])) == official_scored_positions(row, 63, threshold=158, pad=0)
    lo, hi = get_task("haystack").scored_span(b.lengths, b.answer_start, b.params, "all")
    assert (lo == b.answer_start).all() and (hi == b.lengths).all()


# --- determinism, golden rows ----------------------------------------------------------------------

@pytest.mark.parametrize("task, params", [("haystack", {}),
                                          ("haystack", {"min_pairs": 2, "max_pairs": 30, "eos": True}),
                                          ("addition", {"min_digits": 1, "max_digits": 20}),
                                          ("addition", {"min_digits": 1, "max_digits": 20, "fixed_width": True}),
                                          ("reversed_addition", {}), ("multiplication", {"max_digits": 12}),
                                          ("multiplication", {"max_digits": 12, "fixed_width": True})])
def test_start_and_seed_determinism(task, params):
    whole = procgen.generate(task, n=20, seed=5, **params)
    part = procgen.generate(task, n=10, seed=5, start=5, **params)
    assert rows_of(part) == rows_of(whole)[5:15]
    assert part.answer_start.tolist() == whole.answer_start[5:15].tolist()
    assert rows_of(procgen.generate(task, n=20, seed=5, **params)) == rows_of(whole)
    assert rows_of(procgen.generate(task, n=20, seed=6, **params)) != rows_of(whole)
    assert rows_of(procgen.generate(task, n=20, seed=5, split="validation", **params)) != rows_of(whole)


GOLDEN = {  # default parameters (the official layouts), seed 0, split train
    "haystack": [
        [148, 33, 143, 121, 142, 108, 151, 97, 173, 121],
        [144, 116, 131, 7, 139, 42, 130, 46, 154, 120, 142, 25, 128, 76, 141, 46, 149, 65, 135, 13, 132, 18, 150,
         45, 156, 11, 157, 17, 180, 45],
    ],
    "addition": [
        [8, 1, 2, 6, 2, 10, 4, 4, 1, 2, 1, 11, 21, 22, 25, 23, 28, 23, 30],
        [2, 7, 3, 2, 9, 10, 8, 0, 0, 5, 9, 11, 21, 20, 27, 23, 28, 28, 30],
    ],
    "reversed_addition": [
        [6, 9, 5, 8, 0, 8, 8, 5, 6, 2, 10, 0, 9, 0, 5, 1, 3, 4, 1, 5, 2, 11, 26, 28, 26, 23, 22, 21, 23, 27, 21,
         25, 30],
        [7, 1, 2, 8, 2, 3, 2, 2, 8, 5, 10, 8, 0, 7, 4, 5, 0, 0, 6, 5, 9, 11, 25, 22, 29, 22, 28, 23, 22, 28, 23,
         25, 21, 30],
    ],
    "multiplication": [
        [9, 7, 2, 2, 1, 10, 6, 9, 7, 0, 1, 11, 26, 27, 27, 26, 24, 20, 20, 29, 22, 21, 30],
        [2, 3, 7, 7, 5, 10, 5, 3, 6, 0, 9, 11, 21, 22, 27, 24, 25, 25, 23, 29, 27, 25, 30],
    ],
}
GOLDEN_ANSWER_START = {"haystack": [9, 29], "addition": [12, 12], "reversed_addition": [22, 22],
                       "multiplication": [12, 12]}

# fixed_width=True (and haystack with pairs=30): the default streams of format version 1, unchanged
GOLDEN_FIXED = {
    "haystack": [
        [148, 33, 143, 121, 142, 108, 151, 97, 138, 87, 129, 42, 139, 106, 152, 16, 140, 15, 134, 85, 156, 11,
         128, 115, 141, 49, 137, 112, 145, 89, 132, 123, 153, 119, 131, 42, 135, 123, 133, 91, 157, 93, 146, 50,
         147, 94, 144, 51, 155, 14, 130, 90, 149, 120, 154, 103, 150, 60, 136, 124, 172, 108],
        [144, 116, 131, 7, 139, 42, 130, 46, 154, 120, 142, 25, 128, 76, 141, 46, 149, 65, 135, 13, 132, 18, 150,
         45, 156, 11, 157, 17, 138, 17, 134, 10, 153, 16, 151, 10, 140, 84, 147, 55, 146, 40, 136, 39, 133, 49,
         148, 19, 129, 13, 155, 13, 143, 94, 152, 86, 137, 17, 145, 45, 165, 13],
    ],
    "addition": [
        [7, 9, 1, 8, 0, 10, 3, 7, 9, 1, 2, 11, 21, 21, 27, 20, 29, 22, 30],
        [1, 9, 2, 5, 5, 10, 7, 7, 8, 4, 3, 11, 20, 29, 27, 20, 29, 28, 30],
    ],
    "reversed_addition": [
        [6, 9, 5, 8, 0, 8, 8, 5, 6, 1, 10, 0, 9, 0, 5, 1, 3, 4, 1, 5, 1, 11, 26, 28, 26, 23, 22, 21, 23, 27, 21,
         23, 20, 30],
        [7, 1, 2, 8, 2, 3, 2, 2, 8, 4, 10, 8, 0, 7, 4, 5, 0, 0, 6, 5, 9, 11, 25, 22, 29, 22, 28, 23, 22, 28, 23,
         24, 21, 30],
    ],
    "multiplication": [
        [9, 6, 9, 1, 2, 10, 6, 6, 3, 3, 5, 11, 26, 24, 22, 28, 26, 25, 27, 25, 22, 20, 30],
        [1, 5, 3, 0, 5, 10, 4, 8, 4, 5, 4, 11, 20, 27, 24, 21, 25, 28, 28, 24, 27, 20, 30],
    ],
}
GOLDEN_FIXED_ANSWER_START = {"haystack": 61, "addition": 12, "reversed_addition": 22, "multiplication": 12}


@pytest.mark.parametrize("task", list(GOLDEN))
def test_golden_rows(task):
    b = procgen.generate(task, n=2, seed=0, split="train")
    assert rows_of(b) == GOLDEN[task]
    assert b.answer_start.tolist() == GOLDEN_ANSWER_START[task]


@pytest.mark.parametrize("task", list(GOLDEN_FIXED))
def test_golden_rows_fixed_width(task):
    params = {"pairs": 30} if task == "haystack" else {"fixed_width": True}
    b = procgen.generate(task, n=2, seed=0, split="train", **params)
    assert rows_of(b) == GOLDEN_FIXED[task]
    assert b.answer_start.tolist() == [GOLDEN_FIXED_ANSWER_START[task]] * 2


def test_golden_rows_decode_to_correct_arithmetic():
    assert parse_arithmetic(GOLDEN["addition"][0], "addition")[:3] == (81262, 44121, 125383)
    assert parse_arithmetic(GOLDEN["multiplication"][0], "multiplication")[:3] == (97221, 69701, 6776400921)
    a, c, s = parse_arithmetic(GOLDEN["reversed_addition"][1], "reversed_addition")[:3]
    assert (a, c) == (5822328217, 9560054708) and s == a + c == 15382382925  # 11 answer digits
    assert parse_arithmetic(GOLDEN_FIXED["addition"][0], "addition")[:3] == (79180, 37912, 117092)
    assert parse_arithmetic(GOLDEN_FIXED["multiplication"][0], "multiplication")[:3] == (96912, 66335, 6428657520)
    a, c, s = parse_arithmetic(GOLDEN_FIXED["reversed_addition"][0], "reversed_addition")[:3]
    assert (a, c) == (1658808596, 1514315090) and s == a + c == 3173123686


# --- statistics ------------------------------------------------------------------------------------

def test_haystack_pair_counts_are_uniform_on_1_to_30_by_default():
    b = procgen.haystack(n=30000, seed=13)
    assert b.params["min_pairs"] == 1 and b.params["max_pairs"] == 30
    pairs = (b.lengths - 2) // 2
    counts = np.bincount(pairs, minlength=31)
    assert counts[0] == 0 and counts[1:].min() > 0 and len(counts) == 31
    assert_uniform(counts[1:], 66.15)  # 29 dof


def test_haystack_pairs_fixes_the_count():
    b = procgen.haystack(n=200, seed=1, pairs=7)
    assert (b.lengths == 16).all() and b.params["min_pairs"] == b.params["max_pairs"] == 7
    assert rows_of(b) == rows_of(procgen.haystack(n=200, seed=1, min_pairs=7, max_pairs=7))


def test_haystack_query_position_and_keys_are_uniform():
    b = procgen.haystack(n=30000, seed=9, pairs=30)
    table = b.to_numpy()
    keys = table[:, :60:2]
    queried = np.argmax(keys == (table[:, 60:61] - 30), axis=1)  # index of the queried pair
    assert (keys[np.arange(len(b)), queried] == table[:, 60] - 30).all()
    assert_uniform(np.bincount(queried, minlength=30), 66.15)
    assert_uniform(np.bincount(keys[:, 0] - 128, minlength=30), 66.15)  # first key uniform over the 30
    assert_uniform(np.bincount(table[:, 1:60:2].ravel() - 1, minlength=127), 193.75)  # values, 126 dof


def test_pair_and_digit_counts_cover_their_range():
    b = procgen.haystack(n=3000, seed=1, min_pairs=3, max_pairs=7)
    assert set(((b.lengths - 2) // 2).tolist()) == {3, 4, 5, 6, 7}
    b = procgen.multiplication(n=3000, seed=1, min_digits=2, max_digits=4, fixed_width=True)
    assert set(((b.lengths - 3) // 4).tolist()) == {2, 3, 4}


def operand_digit_counts(batch):
    table = [(row.index(10), row.index(11) - row.index(10) - 1) for row in rows_of(batch)]
    return np.array(table)


@pytest.mark.parametrize("task", ARITHMETIC)
def test_operand_digit_counts_are_uniform_and_independent(task):
    b = procgen.generate(task, n=30000, seed=14, min_digits=1, max_digits=8)
    counts = operand_digit_counts(b)
    assert_uniform(np.bincount(counts[:, 0] - 1, minlength=8), 29.88)  # 7 dof
    assert_uniform(np.bincount(counts[:, 1] - 1, minlength=8), 29.88)
    assert_uniform(np.bincount((counts[:, 0] - 1) * 8 + counts[:, 1] - 1, minlength=64), 113.5)  # pairs: 63 dof
    fixed = operand_digit_counts(procgen.generate(task, n=2000, seed=14, min_digits=1, max_digits=8,
                                                  fixed_width=True))
    assert (fixed[:, 0] == fixed[:, 1]).all() and set(fixed[:, 0].tolist()) == set(range(1, 9))


@pytest.mark.parametrize("task", ARITHMETIC)
def test_operands_never_start_with_zero_and_their_digits_are_uniform(task):
    b = procgen.generate(task, n=20000, seed=15, min_digits=1, max_digits=12)
    leading, rest = [], []
    for row in rows_of(b):
        a, c, answer, _, _, _, written = parse_arithmetic(row, task)
        assert written[0] != 0 and answer == true_result(task, a, c)
        for number in (str(a), str(c)):
            leading.append(int(number[0]))
            rest.extend(int(x) for x in number[1:])
    assert min(leading) == 1
    assert_uniform(np.bincount(leading, minlength=10)[1:], 31.83)  # the leading digit: uniform 1..9, 8 dof
    assert_uniform(np.bincount(rest, minlength=10), 33.72)  # every other digit: uniform 0..9, 9 dof


def test_fixed_width_operand_digits_are_uniform_with_leading_zeros():
    b = procgen.addition(n=20000, seed=2, fixed_width=True)
    table = b.to_numpy()
    digits = np.concatenate([table[:, :5].ravel(), table[:, 6:11].ravel()])
    assert_uniform(np.bincount(digits, minlength=10), 33.72)  # 9 dof
    assert (table[:, 0] == 0).mean() > 0.08  # leading zeros are kept, not redrawn
    assert set(np.unique(table[:, 12]).tolist()) == {20, 21}  # the sum's extra leading digit is 0 or 1


def test_official_answer_lengths():
    # a 5-digit sum has 5 or 6 digits, a 5x5 product 9 or 10 (no leading zeros)
    for task, widths in [("addition", {5, 6}), ("multiplication", {9, 10})]:
        b = procgen.generate(task, n=5000, seed=16)
        assert set((b.lengths - b.answer_start - 1).tolist()) == widths


# --- vocabulary and parameter errors ---------------------------------------------------------------

def test_vocabularies():
    v = procgen.haystack(n=1).vocab
    assert len(v) == 256 and v[0] == "<pad>" and v[1] == "v1" and v[127] == "v127"
    assert v[128] == "k0" and v[157] == "k29" and v[158] == "q0" and v[187] == "q29" and v[188] == "<eos>"
    assert procgen.haystack(n=1).pad_id == 0
    for task, op in [("addition", "+"), ("reversed_addition", "+"), ("multiplication", "*")]:
        b = procgen.generate(task, n=1)
        assert len(b.vocab) == 32 and b.vocab[:12] == [str(i) for i in range(10)] + [op, "="]
        assert b.vocab[20:32] == [f"a{i}" for i in range(10)] + ["<stop>", "<pad>"] and b.pad_id == 31


@pytest.mark.parametrize("task, params, name", [
    ("haystack", {"pairs": 31}, "pairs"), ("haystack", {"pairs": 0}, "pairs"),
    ("haystack", {"min_pairs": 0}, "min_pairs"), ("haystack", {"max_pairs": 40}, "max_pairs"),
    ("haystack", {"min_pairs": 10, "max_pairs": 5}, "min_pairs"),
    ("haystack", {"pairs": 5, "min_pairs": 6}, "min_pairs"),
    ("haystack", {"pairs": 12, "max_pairs": 10}, "max_pairs"),
    ("haystack", {"eos": "yes"}, "eos"), ("addition", {"digits": 0}, "digits"),
    ("addition", {"digits": 1001}, "digits"), ("reversed_addition", {"digits": 2.5}, "digits"),
    ("multiplication", {"min_digits": 4, "max_digits": 3}, "min_digits"),
    ("multiplication", {"max_digits": 0}, "max_digits"), ("addition", {"length": 5}, "length"),
    ("addition", {"fixed_width": 1}, "fixed_width"),
])
def test_bad_params_raise(task, params, name):
    with pytest.raises(ValueError, match=name):
        procgen.generate(task, n=1, **params)
