"""Elementary cellular automata (ECA): predict the next states of a 1-D binary automaton.

No reference code exists for this task (the paper describes it only in prose); this module is our
documented reconstruction (see docs/differences.md, "ECA and diagnostics").

Process, per row:

1. If ``rule`` is a list, draw one of its entries uniformly (repeat a rule to weight it); with
   ``random_rule=True``, draw the rule uniformly from all 256 rules (``rule`` is then unused).
2. Draw ``width`` cells independently, each 1 with probability ``density`` (rounded to a
   multiple of 2^-32).
3. Apply the rule ``burn_in`` times without emitting anything (lets the row start in the
   automaton's typical regime rather than in noise). ``burn_in <= 10**6``, and
   ``burn_in * ceil(width / 64) <= 10**8`` so that no row takes more than a fraction of a second.
4. Emit that state (``state_0``) and the ``steps`` states that follow it.

The next value of a cell is bit ``4*left + 2*centre + right`` of the Wolfram rule number.
``boundary="periodic"`` wraps the row into a ring; ``boundary="zero"`` reads cells beyond both
ends as 0.

Ids and layout (``W = width``, ``T = steps``):

* cells are ``0`` / ``1``; the separator SEP is ``2``;
* one rule: ``state_0 SEP state_1 SEP ... SEP state_T``, ``(T+1)*W + T`` tokens,
  ``answer_start = W + 1`` (the loss covers every state after the first). Defaults W=32, T=3:
  131 tokens, uint8. Vocabulary ``0 1 <sep> <pad>``, pad id 3 (never stored);
* several rules: the row starts with a rule token ``3 + rule`` (a stable id: rule 110 is always
  113, whatever the list), so the row is ``rule_token state_0 SEP ... state_T`` and
  ``answer_start = W + 2``. Vocabulary ``0 1 <sep> r0 .. r255 <pad>`` (260 ids, pad 259, uint16).
  A list with a single rule counts as one rule (no rule token);
* in-context rules (``random_rule=True``): each row draws its own rule uniformly from 0..255 and
  the row carries no rule token, so it has the one-rule layout and vocabulary above
  (``state_0 SEP ... state_T``, ``answer_start = W + 1``, uint8). The model must infer the rule
  from the rollout itself, as in Burtsev (2024, "Learning Elementary Cellular Automata with
  Transformers"). Each transition shows ``W`` neighbourhoods, so the rule is usually pinned down
  within the row; a neighbourhood the row never shows leaves that rule bit free. At the defaults
  (W=32, density 0.5, T=3), measured over 20,000 rows: 17% of rows lack some neighbourhood in
  ``state_0`` (mostly ``000`` or ``111``, each missing from 7% of rows), and 5% never show one in
  any transition. Wider rows pin the rule down more often (W=64: 1% lack one in ``state_0``).

In-context rules are a parameter of their own rather than ``rule="random"``: a task parameter has
one type (``rule`` is an integer or a list of integers), so the string would be refused before the
task could read it. ``random_rule=True`` leaves ``rule`` unused and refuses a rule list.

Implementation: the generator is bit-parallel (a state is a few uint64 words, a rule step is a
Shannon expansion over whole words, 64 cells per draw at density 0.5); the validator replays the
rule cell by cell straight from the rule number. For in-context rows it derives the rule instead:
it records, cell by cell, which value each of the 8 neighbourhoods leads to and rejects the row
when one neighbourhood leads to both 0 and 1 (some rule explains the row exactly when none does).

Example
-------
>>> import procgen
>>> b = procgen.eca(n=2, rule=110, width=8, steps=2, seed=0)
>>> len(b[0]), int(b.answer_start[0])
(26, 9)
>>> b = procgen.eca(n=2, random_rule=True, width=8, steps=2, seed=0)   # a fresh rule per row, no rule token
>>> len(b[0]), int(b.answer_start[0]), b.vocab
(26, 9, ['0', '1', '<sep>', '<pad>'])
"""

from __future__ import annotations

import numpy as np
from numba import njit

from procgen._rng import below, hi32, next_u64, probability_threshold, row_state
from procgen.tasks import Param, Task
from procgen.tasks._common import MAX_LENGTH, MAX_ROW_TOKENS, row_validator

SEP = 2
RULE_TOKEN_BASE = 3  # rule r is token 3 + r when several rules are sampled
MAX_BURN_IN = 10 ** 6
# Burn-in costs burn_in * ceil(width / 64) word updates per row (about 5 ns each): at most this many,
# so that no single row takes more than a fraction of a second.
_MAX_BURN_IN_WORDS = 10 ** 8


# --- generator (bit-parallel: a state is a few uint64 words, bit i = cell i) --------------------
# numba turns uint64 <op> Python int into float64: every constant of the word math is a uint64.

_ONE = np.uint64(1)
_ZERO = np.uint64(0)
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)
_S63 = np.uint64(63)


@njit(cache=True, inline="always")
def _select(x, if_one, if_zero):
    """Bitwise multiplexer: bit i is ``if_one``'s where ``x`` has a 1, else ``if_zero``'s."""
    return if_zero ^ (x & (if_one ^ if_zero))


@njit(cache=True, inline="always")
def _rule_word(left, centre, right, masks):
    """Apply a rule to 64 cells at once by Shannon expansion over (left, centre, right).

    ``masks[k]`` is all ones where bit k of the rule number is set (pattern k = 4l + 2c + r).
    """
    cr0 = _select(right, masks[1], masks[0])  # left = 0, centre = 0
    cr1 = _select(right, masks[3], masks[2])  # left = 0, centre = 1
    cr2 = _select(right, masks[5], masks[4])  # left = 1, centre = 0
    cr3 = _select(right, masks[7], masks[6])  # left = 1, centre = 1
    return _select(left, _select(centre, cr3, cr2), _select(centre, cr1, cr0))


@njit(cache=True, inline="always")
def _evolve(cur, nxt, n_words, top, top_mask, masks, periodic):
    """One rule application: words ``cur`` -> ``nxt``; cell W-1 is bit ``top`` of the last word."""
    last = n_words - 1
    for k in range(n_words):
        word = cur[k]
        if k > 0:
            carry_left = cur[k - 1] >> _S63
        elif periodic:
            carry_left = (cur[last] >> top) & _ONE
        else:
            carry_left = _ZERO
        if k < last:
            carry_right = (cur[k + 1] & _ONE) << _S63
        elif periodic:
            carry_right = (cur[0] & _ONE) << top
        else:
            carry_right = _ZERO
        nxt[k] = _rule_word((word << _ONE) | carry_left, word, (word >> _ONE) | carry_right, masks)
    nxt[last] &= top_mask  # cells beyond W-1 stay 0 so that they never leak into neighbours


# _SPREAD[b] = the 8 cells of byte b as tokens 0/1 (bit t -> entry t), to emit 8 cells per lookup
_SPREAD = np.array([[(b >> t) & 1 for t in range(8)] for b in range(256)], np.uint8)
_BYTE = np.uint64(0xFF)
_S3 = np.uint64(3)
_SEVEN = np.uint64(7)


@njit(cache=True, inline="always")
def _emit(cur, width, out, pos, spread):
    """Write the cells of a state as tokens 0/1 to ``out[pos:pos+width]``.

    Unsigned indices spare numba's negative-index wraparound checks, which lets LLVM turn each
    8-token copy from ``spread`` into a single move (the whole kernel ran ~3x faster than with
    one shift-and-store per cell).
    """
    start = np.uint64(pos)
    for j in range(np.uint64(width // 8)):
        byte = (cur[j >> _S3] >> ((j & _SEVEN) << _S3)) & _BYTE
        at = start + (j << _S3)
        for t in range(np.uint64(8)):
            out[at + t] = spread[byte, t]
    for i in range(width // 8 * 8, width):
        out[pos + i] = (cur[i // 64] >> np.uint64(i % 64)) & _ONE


@njit(cache=True, inline="always")
def _bernoulli_word(state, threshold, lowest_bit):
    """64 independent cells, each 1 with probability ``threshold / 2^32`` (0 < threshold < 2^32).

    Reads the binary expansion of the probability from its lowest set bit up: ``r | x`` prepends a
    1 bit to the probability of r, ``r & x`` a 0 bit (x a fresh random word). Density 0.5 costs
    one draw per 64 cells, 0.25 two, an arbitrary density at most 32.
    """
    word = _ZERO
    for bit in range(lowest_bit, 32):
        state, x = next_u64(state)
        if (threshold >> np.uint64(bit)) & _ONE:
            word |= x
        else:
            word &= x
    return state, word


@njit(cache=True, nogil=True)
def _eca_fill(base, start, count, rules, rule_masks, width, steps, density_threshold, burn_in, periodic,
              rule_token, spread, out):
    """Write ``count`` rows of ``(steps+1)*width + steps + rule_token`` tokens each into ``out``.

    ``rules`` (int64) are the rule numbers, ``rule_masks`` (uint64, ``len(rules) x 8``) their bits
    as all-ones/all-zero words, ``spread`` (``256 x 8``, token dtype) the cells of each byte;
    ``rule_token`` (0/1) says whether the row starts with the rule token (in-context rows pass all
    256 rules and no token). Draws, per row: with several rules one ``next_u64`` (high 32 bits
    pick the rule: for 256 rules, exactly their top 8 bits), then per
    64-cell word of state_0 the draws of :func:`_bernoulli_word` (one at density 0.5, none at
    density 0 or 1); burn-in and the steps draw nothing.
    """
    row_len = (steps + 1) * width + steps + rule_token
    n_rules = rules.shape[0]  # 256 (every rule, no rule token) for in-context rows
    n_words = (width + 63) // 64
    top = np.uint64((width - 1) % 64)
    top_mask = _ALL >> (_S63 - top)
    threshold = np.uint64(density_threshold)
    lowest_bit = 0
    while lowest_bit < 32 and not (threshold >> np.uint64(lowest_bit)) & _ONE:
        lowest_bit += 1
    cur = np.empty(n_words, np.uint64)  # scratch reused by every row
    nxt = np.empty(n_words, np.uint64)
    for r in range(count):
        state = row_state(base, start + r)
        pos = r * row_len
        which = 0
        if n_rules > 1:
            state, bits = next_u64(state)
            which = below(hi32(bits), n_rules)
            if rule_token:
                out[pos] = RULE_TOKEN_BASE + rules[which]
                pos += 1
        masks = rule_masks[which]
        for k in range(n_words):
            if density_threshold == 0:
                cur[k] = _ZERO
            elif density_threshold >= 1 << 32:
                cur[k] = _ALL
            else:
                state, cur[k] = _bernoulli_word(state, threshold, lowest_bit)
        cur[n_words - 1] &= top_mask
        for _ in range(burn_in):
            _evolve(cur, nxt, n_words, top, top_mask, masks, periodic)
            cur, nxt = nxt, cur
        _emit(cur, width, out, pos, spread)
        for _ in range(steps):
            pos += width
            out[pos] = SEP
            pos += 1
            _evolve(cur, nxt, n_words, top, top_mask, masks, periodic)
            cur, nxt = nxt, cur
            _emit(cur, width, out, pos, spread)


_ALL_RULES = tuple(range(256))


def _random_rule(params) -> bool:
    return bool(params.get("random_rule", False))  # absent from parameters resolved before it existed


def _rules(params) -> tuple[int, ...]:
    """The rules a row draws from: the listed ones, or all 256 for in-context rows."""
    if _random_rule(params):
        return _ALL_RULES
    rule = params["rule"]
    return tuple(rule) if isinstance(rule, (list, tuple)) else (rule,)


def _has_rule_token(params) -> bool:
    return len(_rules(params)) > 1 and not _random_rule(params)


def _row_length(params) -> int:
    width, steps = params["width"], params["steps"]
    return (steps + 1) * width + steps + int(_has_rule_token(params))


def _eca_kernel(base, start, count, params, dtype):
    rules = np.array(_rules(params), np.int64)
    # rule_masks[k, p]: all ones if bit p of rules[k] is set (the next cell for neighbourhood p)
    bits = np.unpackbits(rules.astype(np.uint8)[:, None], axis=1, bitorder="little")
    rule_masks = np.where(bits == 1, np.uint64(0xFFFFFFFFFFFFFFFF), np.uint64(0))
    row_len = _row_length(params)
    tokens = np.empty(count * row_len, dtype)
    rule_token = int(_has_rule_token(params))
    _eca_fill(np.uint64(base), start, count, rules, rule_masks, params["width"], params["steps"],
              probability_threshold(params["density"]), params["burn_in"], params["boundary"] == "periodic",
              rule_token, _SPREAD.astype(dtype), tokens)
    offsets = np.arange(count + 1, dtype=np.int64) * row_len
    answer_start = np.full(count, params["width"] + 1 + rule_token, np.int32)
    return tokens, offsets, answer_start


# --- validator (replays the rule bit by bit from the rule number, no lookup table) --------------

_OK, _BAD_LENGTH, _BAD_ANSWER_START, _BAD_RULE_TOKEN, _BAD_CELL, _BAD_SEP, _BAD_EVOLUTION, _NO_RULE = range(8)
_REASONS = {
    _BAD_LENGTH: "row length is not (steps+1)*width + steps (+1 rule token)",
    _BAD_ANSWER_START: "answer_start is not the first cell of state_1",
    _BAD_RULE_TOKEN: "rule token is not 3 + one of the listed rules",
    _BAD_CELL: "cell token is not 0 or 1",
    _BAD_SEP: "separator (2) missing between states",
    _BAD_EVOLUTION: "a state is not the rule applied to the previous state",
    _NO_RULE: "no rule explains the row: a neighbourhood leads to 0 at one cell and to 1 at another",
}


@njit(cache=True, nogil=True)
def _eca_check(tokens, offsets, answer_start, allowed, single_rule, rule_token, width, steps, periodic, infer):
    """Replay the rule cell by cell from its number (``allowed``: bool[256], the listed rules):
    layout, cells 0/1, separators, and every state the rule applied to the one before. With
    ``infer`` (in-context rows) there is no rule number: ``seen[p]`` records the value the row's
    first cell with neighbourhood ``p`` took (-1 before one is seen), and every later cell with
    that neighbourhood must agree. Returns ``(first bad row or -1, reason code)``."""
    count = offsets.shape[0] - 1
    row_len = (steps + 1) * width + steps + rule_token
    seen = np.empty(8, np.int64)
    for r in range(count):
        first = offsets[r]
        if offsets[r + 1] - first != row_len:
            return r, _BAD_LENGTH
        if answer_start[r] != width + 1 + rule_token:
            return r, _BAD_ANSWER_START
        rule = single_rule
        if rule_token:
            rule = np.int64(tokens[first]) - RULE_TOKEN_BASE
            if rule < 0 or rule > 255 or not allowed[rule]:
                return r, _BAD_RULE_TOKEN
        body = first + rule_token
        for j in range(row_len - rule_token):
            token = np.int64(tokens[body + j])
            if j % (width + 1) == width:
                if token != SEP:
                    return r, _BAD_SEP
            elif token != 0 and token != 1:
                return r, _BAD_CELL
        seen[:] = -1
        for t in range(1, steps + 1):
            prev = body + (t - 1) * (width + 1)
            cur = prev + width + 1
            for i in range(width):
                if periodic:
                    left = np.int64(tokens[prev + (i - 1) % width])
                    right = np.int64(tokens[prev + (i + 1) % width])
                else:
                    left = np.int64(tokens[prev + i - 1]) if i > 0 else 0
                    right = np.int64(tokens[prev + i + 1]) if i + 1 < width else 0
                centre = np.int64(tokens[prev + i])
                pattern = 4 * left + 2 * centre + right
                cell = np.int64(tokens[cur + i])
                if infer:
                    if seen[pattern] < 0:
                        seen[pattern] = cell
                    elif seen[pattern] != cell:
                        return r, _NO_RULE
                elif cell != (rule >> pattern) & 1:
                    return r, _BAD_EVOLUTION
    return -1, _OK


def _allowed_rules(params) -> np.ndarray:
    allowed = np.zeros(256, np.bool_)
    allowed[list(_rules(params))] = True
    return allowed


_eca_validate = row_validator(_eca_check, _REASONS, lambda params: (
    _allowed_rules(params), _rules(params)[0], int(_has_rule_token(params)), params["width"], params["steps"],
    params["boundary"] == "periodic", _random_rule(params)))


# --- vocabulary and parameters ------------------------------------------------------------------

def _vocab(params) -> list[str]:
    names = ["0", "1", "<sep>"]
    if _has_rule_token(params):
        names += [f"r{rule}" for rule in range(256)]
    return names + ["<pad>"]


def _resolve(params):
    if _random_rule(params) and isinstance(params["rule"], (list, tuple)):
        raise ValueError(f"eca: random_rule=True draws every row's rule from all 256 rules and leaves rule unused; "
                         f"rule must be a single number, not the list {list(params['rule'])!r}")
    if _row_length(params) > MAX_ROW_TOKENS:
        raise ValueError(f"eca: width={params['width']} and steps={params['steps']} give rows of "
                         f"{_row_length(params)} tokens; (steps+1)*width + steps must be <= {MAX_ROW_TOKENS}")
    words = (params["width"] + 63) // 64
    if params["burn_in"] * words > _MAX_BURN_IN_WORDS:
        raise ValueError(f"eca: burn_in={params['burn_in']} with width={params['width']} is too slow: "
                         f"burn_in * ceil(width/64) must be <= {_MAX_BURN_IN_WORDS}, so burn_in <= "
                         f"{_MAX_BURN_IN_WORDS // words} at this width")
    return params


TASKS = [
    Task(
        name="eca",
        summary="Elementary cellular automaton: state_0 then the next `steps` states under a Wolfram rule",
        params=(
            Param("rule", int, 110, "Wolfram rule number; a list samples one rule per row and prefixes "
                  "the row with the rule token 3+rule", low=0, high=255, multiple=True),
            Param("width", int, 32, "number of cells per state", low=1, high=MAX_LENGTH),
            Param("steps", int, 3, "number of states to predict after state_0", low=1, high=MAX_LENGTH),
            Param("density", float, 0.5, "probability that an initial cell is 1", low=0.0, high=1.0),
            Param("burn_in", int, 0, "rule applications before state_0 is emitted (burn_in * ceil(width/64) "
                  f"<= {_MAX_BURN_IN_WORDS})", low=0, high=MAX_BURN_IN),
            Param("boundary", str, "periodic", "cells beyond the ends: 'periodic' wraps, 'zero' reads 0",
                  choices=("periodic", "zero")),
            Param("random_rule", bool, False, "in-context rules: each row draws its rule uniformly from 0..255 "
                  "and shows no rule token (rule is unused)"),
        ),
        kernel=_eca_kernel,
        validator=_eca_validate,
        vocab=_vocab,
        max_row_length=_row_length,
        expected_row_length=_row_length,  # every row has the same length
        pad_id=lambda params: len(_vocab(params)) - 1,
        resolve=_resolve,
        notes="Our reconstruction (no reference code). Cells 0/1, SEP=2; with several rules the row "
              "starts with token 3+rule and answer_start shifts by one. `random_rule=True` is the in-context "
              "variant: every row draws a fresh rule uniformly from 0..255 and carries no rule token, so the "
              "model must infer the rule from the rollout (Burtsev 2024); its rows have the one-rule layout, and "
              "the validator accepts a row when some rule explains every transition in it.",
        finding="An ECA (rule 110) warm-up lifts 10-digit reversed addition from 76.4% to 91.0% "
                "(tokens-shuffled control: 65.0%); its MLP layers are the second donor of the best "
                "assembled model (SET attention + ECA MLPs).",
        differences=("ECA and diagnostics",),
    ),
]
