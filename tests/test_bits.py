"""procgen._bits: the select is the idx-th set bit, and PDEP and the portable version agree everywhere."""

import numpy as np
import pytest
from numba import njit

from procgen import _bits


@njit(cache=True)
def _apply(kind, masks, idxs):
    out = np.empty(masks.shape[0], np.uint64)
    for i in range(masks.shape[0]):
        if kind == 0:
            out[i] = _bits.select_bit_broadword(masks[i], idxs[i])
        elif kind == 1:
            out[i] = _bits.select_bit(masks[i], idxs[i])
        elif kind == 2:
            out[i] = _bits.popcount64(masks[i])
        else:
            out[i] = _bits.trailing_zeros64(masks[i])
    return out


def cases(seed=0, n=20000):
    rng = np.random.default_rng(seed)
    # masks of every density, plus single bits and the full word
    density = rng.random(n)[:, None]
    masks = np.packbits(rng.random((n, 64)) < density, axis=1, bitorder="little").view(np.uint64).ravel()
    masks = np.concatenate([masks, np.uint64(1) << np.arange(64, dtype=np.uint64), [np.uint64(2**64 - 1)]])
    masks[masks == 0] = 1
    counts = np.array([bin(int(m)).count("1") for m in masks])
    idxs = (rng.random(len(masks)) * counts).astype(np.uint64)
    return masks, idxs


def plain_select(mask, idx):
    return [i for i in range(64) if int(mask) >> i & 1][int(idx)]


def test_broadword_select_is_the_idx_th_set_bit():
    masks, idxs = cases()
    got = _apply(0, masks, idxs)
    assert [int(g) for g in got] == [plain_select(m, i) for m, i in zip(masks, idxs)]


def test_the_machine_s_select_agrees_with_the_portable_one():
    # on a CPU with fast PDEP this compares the two implementations; elsewhere select_bit is the portable one
    masks, idxs = cases(seed=1)
    assert np.array_equal(_apply(1, masks, idxs), _apply(0, masks, idxs))


@pytest.mark.skipif(not _bits.fast_pdep(), reason="no fast PDEP on this CPU")
def test_pdep_is_the_chosen_select_where_it_is_fast():
    assert _bits.select_bit is _bits.select_bit_pdep


def test_popcount_and_trailing_zeros():
    masks, _ = cases(seed=2, n=2000)
    masks = np.concatenate([masks, [np.uint64(0)]])
    assert [int(c) for c in _apply(2, masks, masks)] == [bin(int(m)).count("1") for m in masks]
    expected = [64 if m == 0 else (int(m) & -int(m)).bit_length() - 1 for m in masks]
    assert [int(t) for t in _apply(3, masks, masks)] == expected
