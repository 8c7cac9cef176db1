"""ww: the copy language -- a random string ``w`` followed by an exact copy of itself.

Ids follow the sequence tasks: content tokens ``1 .. V-1`` (``V = vocab_size``), ``SEP = V``
(only with ``separator=True``), ``PAD = V+1`` (never stored); model vocabulary ``V+2``. Id 0 is
unused. ``w`` is ``L`` tokens drawn uniformly from ``1 .. V-1``; ``L`` is ``length``, or uniform
over ``min_length .. max_length`` per row (from the row's length stream).

=================  ============  ===========================
parameters         row           answer_start
=================  ============  ===========================
defaults           w, w          0 (loss on every token)
separator=True     w, SEP, w     0
loss=second_half   w, w          L (the second copy)
both               w, SEP, w     L+1 (the second copy)
=================  ============  ===========================

The default is LM-style, as a formal language is used for pre-pretraining: the model sees strings
of the language and predicts every token (the first half is unpredictable, the second half is
determined by it). ``loss="second_half"`` turns it into a copy task whose answer is the second
copy. Without a separator nothing marks where the copy starts: with variable lengths, an LM-style
model must infer it from the tokens (the first repeat of the opening tokens).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from numba import njit, uint64

from procgen._rng import _GOLDEN, below, hi32, lo32, mix64, row_offsets, row_state
from procgen.tasks import Param, Task
from procgen.tasks._common import MAX_VOCAB, fill_rows, length_params, longest_row, resolve_range, row_validator

LOSSES = ("all", "second_half")


# --- generator ----------------------------------------------------------------------------------

@njit(cache=True, nogil=True)
def _ww_fill(base, start, lengths, vocab, separator, second_half, out, offsets, answer_start):
    """Rows ``w, [SEP,] w`` back to back into ``out``; returns the tokens written.

    ``lengths``: int64 cumulative lengths of ``w`` (row r has ``L = lengths[r+1] - lengths[r]``);
    ``vocab``: V (SEP = V); ``separator`` / ``second_half``: bools of the layout and the loss.

    Draws, per row: ``ceil(L/2)`` draws of the row's stream; with ``h = L // 2``, draw ``k``
    (``k < h``) gives token ``k`` of ``w`` from its high and token ``h + k`` from its low 32 bits
    (each mapped to ``1 .. V-1`` by multiply-shift); an odd last token takes the high bits of draw
    ``h``. Draw ``k`` is ``mix64(state + (k+1) * golden)``, what ``next_u64`` yields step by step,
    so the loop has no dependency between iterations and vectorises.
    """
    count = offsets.shape[0] - 1
    m = vocab - 1
    w = np.empty(longest_row(lengths) + 1, out.dtype)  # the row's w; no alias with out: copies vectorise
    sep = 1 if separator else 0
    offsets[0] = 0
    p = 0
    for r in range(count):
        length = lengths[r + 1] - lengths[r]
        state = row_state(base, start + r)
        half = length // 2
        for k in range(half):
            bits = mix64(state + uint64(k + 1) * _GOLDEN)
            w[k] = below(hi32(bits), m) + 1
            w[half + k] = below(lo32(bits), m) + 1
        if length & 1:
            w[length - 1] = below(hi32(mix64(state + uint64(half + 1) * _GOLDEN)), m) + 1
        second = p + length + sep
        for j in range(length):
            out[p + j] = w[j]
        for j in range(length):
            out[second + j] = w[j]
        if separator:
            out[p + length] = vocab
        answer_start[r] = length + sep if second_half else 0
        p = second + length
        offsets[r + 1] = p
    return p


def _ww_kernel(base, start, count, params, dtype):
    base = np.uint64(base)
    lengths = row_offsets(base, start, count, params["min_length"], params["max_length"], 1)
    separator = params["separator"]
    return fill_rows(_ww_fill, 2 * int(lengths[-1]) + count * int(separator), count, dtype, base, start, lengths,
                     params["vocab_size"], separator, params["loss"] == "second_half")


# --- validator: the row's midpoint from its length, then the halves compared ---------------------

_OK, _BAD_LENGTH, _BAD_ANSWER_START, _BAD_ID, _BAD_SEP, _NOT_A_COPY = range(6)
_REASONS = {
    _BAD_LENGTH: "row length is not 2L (+1 with separator) for an L in [min_length, max_length]",
    _BAD_ANSWER_START: "answer_start is not 0 (loss='all') or the start of the second copy (loss='second_half')",
    _BAD_ID: "token id outside the content range 1 .. vocab_size-1",
    _BAD_SEP: "separator (id vocab_size) missing between the copies, or present where the layout has none",
    _NOT_A_COPY: "the second half is not a copy of the first",
}


@njit(cache=True, nogil=True)
def _ww_check(tokens, offsets, answer_start, vocab, separator, second_half, min_length, max_length):
    """Each row: ``L`` from the row's length alone (``(n - sep) / 2``, never from answer_start),
    the answer_start of the loss mode, ids and separator, then ``w[j] == w[L + sep + j]``.
    Returns ``(first bad row or -1, reason code)``."""
    sep = 1 if separator else 0
    for r in range(offsets.shape[0] - 1):
        first = offsets[r]
        n = offsets[r + 1] - first
        if (n - sep) % 2 != 0:
            return r, _BAD_LENGTH
        length = (n - sep) // 2
        if length < min_length or length > max_length:
            return r, _BAD_LENGTH
        if answer_start[r] != (length + sep if second_half else 0):
            return r, _BAD_ANSWER_START
        for j in range(n):
            t = np.int64(tokens[first + j])
            if separator and j == length:
                if t != vocab:
                    return r, _BAD_SEP
            elif t == vocab:
                return r, _BAD_SEP
            elif t < 1 or t >= vocab:
                return r, _BAD_ID
        for j in range(length):
            if tokens[first + j] != tokens[first + length + sep + j]:
                return r, _NOT_A_COPY
    return -1, _OK


def _vocab(params) -> list[str]:
    """Printable names: ``<unused>`` (id 0), ``1 .. V-1``, ``<sep>``, ``<pad>`` (as the sequence tasks)."""
    return ["<unused>", *map(str, range(1, params["vocab_size"])), "<sep>", "<pad>"]


TASKS = [
    Task(
        name="ww",
        summary="the copy language: w, [SEP,] w with w uniform random tokens (LM-style by default)",
        params=(
            *length_params(64, what="tokens of w"),
            Param("vocab_size", int, 100, "V: content tokens are 1..V-1, SEP = V, PAD = V+1", low=2, high=MAX_VOCAB),
            Param("separator", bool, False, "put SEP (id V) between the two copies"),
            Param("loss", str, "all", "'all': loss on every token (answer_start 0); 'second_half': loss on the "
                                      "second copy only", choices=LOSSES),
        ),
        kernel=_ww_kernel,
        validator=row_validator(_ww_check, _REASONS, lambda params: (
            params["vocab_size"], params["separator"], params["loss"] == "second_half", params["min_length"],
            params["max_length"])),
        vocab=_vocab,
        size=lambda params: params["vocab_size"] + 2,
        max_row_length=lambda params: 2 * params["max_length"] + int(params["separator"]),
        expected_row_length=lambda params: (Fraction(params["min_length"] + params["max_length"])
                                            + int(params["separator"])),
        pad_id=lambda params: params["vocab_size"] + 1,
        resolve=lambda params: resolve_range("ww", params),
        lm_style=lambda params: params["loss"] == "all",  # second_half: answer_start = the second copy
        finding="The copy language ww (a uniformly random string followed by an exact copy) is one of the formal "
                "languages Hu et al. (2025, *Between Circuits and Chomsky*) compare as pre-pretraining data for "
                "language models: it is context-sensitive, and they use it to ask whether a language must capture "
                "hierarchical structure, and stay within what a transformer can express, for its pre-pretraining "
                "to transfer to natural language (their best transfer came from hierarchical languages such as "
                "k-Shuffle Dyck). The procedural warm-up of vision transformers (Shinnick et al., 2025, *Can You "
                "Learn to See Without Images?*) uses ww next to k-Dyck and k-Dyck shuffle as warm-up data.",
    ),
]
