"""NCA task: keyed replay, layout, functional-consistency validator, gzip band, goldens, errors."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import itertools
import math
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import procgen
from procgen._rng import base_key
from procgen.tasks import get_task
from procgen.tasks._band import gzip_ratio
from procgen.tasks.nca import _exp_nonpositive

TASK = get_task("nca")
PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def validate(batch, **override):
    params = dict(batch.params, **override)
    return TASK.validator(batch.tokens, batch.offsets, batch.answer_start, params)


# --- a keyed replay, written from the module docstring (plain Python ints + numpy, no njit) -------

M64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def mix(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def candidate_state(base, row, attempt=0):
    state = mix(base ^ mix(((row + 1) * GOLDEN) & M64))
    return state if attempt == 0 else mix(state ^ mix((attempt * 0xD6E8FEB86659FD93) & M64))


def draw_values(state, count, m, shift):
    """``count`` values ``below(32 bits, m) - shift``, two per draw (high bits first)."""
    values = []
    while len(values) < count:
        state = (state + GOLDEN) & M64
        bits = mix(state)
        values += [((bits >> 32) * m >> 32) - shift, ((bits & 0xFFFFFFFF) * m >> 32) - shift]
    return state, values[:count]


def replay_frames(base, row, params, attempt=0):
    """Regenerate candidate ``attempt`` of row ``row`` from the key: its network, its grid, its frames.

    The convolution is a one-hot plane per state rolled over the grid (``np.roll``) times the
    weights -- the textbook forward pass, not the generator's packed lookup tables; the softmax
    uses ``math.exp``.
    """
    n, height, width, hidden = params["states"], params["height"], params["width"], params["hidden"]
    state = candidate_state(base, row, attempt)
    sample = mix(state ^ 0x5851F42D4C957F2D)
    state, weights = draw_values(state, 10 * n * hidden, 2049, 1024)
    w1 = np.array(weights[:9 * n * hidden]).reshape(3, 3, n, hidden)
    w2 = np.array(weights[9 * n * hidden:]).reshape(n, hidden)
    _, cells = draw_values(state, height * width, n, 0)
    grid = np.array(cells).reshape(height, width)
    frames = []
    for t in range(params["burn_in"] + params["steps"] + 1):
        if t >= params["burn_in"]:
            frames.append(grid)
        if t == params["burn_in"] + params["steps"]:
            break
        onehot = np.eye(n, dtype=np.int64)[grid]
        hid = np.zeros((height, width, hidden), np.int64)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                hid += np.roll(onehot, (-dy, -dx), (0, 1)) @ w1[dy + 1, dx + 1]  # neighbour (y+dy, x+dx)
        logits = np.maximum(hid, 0) @ w2.T
        if params["temperature"] == 0:
            grid = logits.argmax(-1)
            continue
        grid = np.empty_like(grid)
        for y in range(height):
            for x in range(width):
                top = int(logits[y, x].max())
                scale = 1024 ** 2 * params["temperature"]
                cumulative = np.cumsum([math.exp((int(v) - top) / scale) for v in logits[y, x]])
                sample = (sample + GOLDEN) & M64
                u = (mix(sample) >> 11) * 2.0 ** -53 * cumulative[-1]
                grid[y, x] = int(np.searchsorted(cumulative, u, side="right"))
    return frames


def decode(row, params):
    """Plain-Python parse of a row into its frames (``(height, width)`` arrays of states)."""
    n, height, width = params["states"], params["height"], params["width"]
    row = [int(t) for t in row]
    frames, frame, grid_id = [], [], n ** 4
    wrap = params["framing"] == "wrap"
    for token in row:
        if token < grid_id:
            frame.append(token)
            continue
        assert token in ((grid_id, grid_id + 1) if wrap else (grid_id,))
        if frame:
            frames.append(frame)
            frame = []
    if frame:
        frames.append(frame)
    grids = []
    for frame in frames:
        assert len(frame) == height * width // 4
        grid = np.zeros((height, width), np.int64)
        for p, token in enumerate(frame):
            y, x = 2 * (p // (width // 2)), 2 * (p % (width // 2))
            digits = [token // n ** k % n for k in range(4)]
            grid[y, x], grid[y, x + 1], grid[y + 1, x], grid[y + 1, x + 1] = digits
        grids.append(grid)
    return grids


def keyed_replay_check(batch, attempts=None):
    """Test helper: regenerate every row of ``batch`` from its key and compare the frames.

    The validator cannot do this (it receives no key); ``attempts[k]`` is the band candidate that
    row ``k`` kept (0 without a band).
    """
    base = base_key(batch.seed, "nca", batch.split)
    for k in range(len(batch)):
        frames = decode(batch[k], batch.params)
        expected = replay_frames(base, batch.start + k, batch.params, 0 if attempts is None else attempts[k])
        assert len(frames) == len(expected) == batch.params["steps"] + 1
        for got, want in zip(frames, expected):
            assert np.array_equal(got, want), k


def kept_attempts(batch):
    """Which candidate each row of a banded batch kept (its first candidate in the band)."""
    base = base_key(batch.seed, "nca", batch.split)
    unbanded = {**batch.params, "min_gzip_ratio": None, "max_gzip_ratio": None}
    attempts = []
    for k in range(len(batch)):
        for attempt in range(batch.params["max_attempts"]):
            frames = replay_frames(base, batch.start + k, unbanded, attempt)
            if all(np.array_equal(a, b) for a, b in zip(frames, decode(batch[k], batch.params))):
                attempts.append(attempt)
                break
    return attempts


def patch_ids(row, params):
    return [int(t) for t in row if int(t) < params["states"] ** 4]


# --- the generator agrees with the keyed replay ---------------------------------------------------

@st.composite
def nca_params(draw):
    return {
        "height": draw(st.sampled_from([2, 4, 6, 8])),
        "width": draw(st.sampled_from([2, 4, 6, 10])),
        "states": draw(st.integers(2, 16)),
        "hidden": draw(st.integers(1, 20)),
        "steps": draw(st.integers(0, 6)),
        "burn_in": draw(st.integers(0, 3)),
        "temperature": draw(st.sampled_from([0.0, 0.0, 0.3, 2.0])),
        "framing": draw(st.sampled_from(["separate", "wrap"])),
    }


@PROPERTY
@given(params=nca_params(), seed=st.integers(0, 2 ** 40), start=st.integers(0, 10 ** 6), n=st.integers(1, 5))
def test_rows_are_valid_and_replay_from_the_key(params, seed, start, n):
    b = procgen.nca(n=n, seed=seed, start=start, **params)
    assert validate(b) is None
    resolved = b.params
    patches = params["height"] * params["width"] // 4
    frames = params["steps"] + 1
    length = frames * (patches + 2) if params["framing"] == "wrap" else frames * (patches + 1) - 1
    assert (b.lengths == length).all() and (b.answer_start == 0).all()
    assert int(b.tokens.max()) < TASK.pad_id(resolved)
    assert b.tokens.dtype == (np.int32 if params["states"] == 16 else np.uint16 if params["states"] > 3 else np.uint8)
    keyed_replay_check(b)
    if params["temperature"] == 0:  # a plain-Python check of the validator's rule: same neighbourhood, same next state
        for k in range(len(b)):
            seen = {}
            grids = decode(b[k], resolved)
            for before, after in itertools.pairwise(grids):
                h, w = before.shape
                for y in range(h):
                    for x in range(w):
                        key = tuple(before[(y + dy) % h, (x + dx) % w] for dy in (-1, 0, 1) for dx in (-1, 0, 1))
                        assert seen.setdefault(key, after[y, x]) == after[y, x]


GOLDEN_DEFAULT_ROW_0 = [  # 26 frames of 36 patch ids, <grid> = 10000 between them
    5201, 9047, 6021, 822, 3616, 5623, 914, 8663, 2724, 5419, 6384, 11, 685, 9063, 6032, 9526, 5553, 7131,
    5725, 6605, 9362, 6014, 1828, 3536, 9233, 6926, 4841, 6571, 6513, 3895, 6004, 8270, 6757, 747, 5637, 5395,
    10000, 8638, 3665, 9844, 6644, 4743, 6097, 3420, 3444, 1251, 8648, 6246, 6488, 8639, 4668, 6988, 9886, 8604,
    8365, 6663, 8646, 4634, 6986, 4888, 6533, 7648, 8844, 8888, 3634, 6864, 6568, 3998, 3644, 8946, 9886, 8882,
    6666, 10000, 8668, 8864, 6846, 8484, 8848, 4644, 6848, 6463, 6668, 4444, 8468, 4636, 4646, 8884, 4468, 2689,
    8946, 4664, 6644, 8644, 6684, 9464, 6838, 6440, 6668, 8566, 4844, 6648, 8484, 6446, 4548, 6444, 9366, 9864,
    6842, 6486, 10000, 3689, 6966, 8481, 8695, 4444, 6882, 8423, 2646, 4634, 4666, 3648, 4873, 6388, 8852, 4882,
    4689, 4348, 6364, 6648, 8648, 8884, 6628, 4944, 2648, 3624, 6666, 8964, 4684, 8636, 2468, 4483, 4448, 6664,
    9966, 2464, 6888, 10000, 6149, 8466, 9947, 8866, 8868, 6434, 2644, 4284, 4844, 6663, 6283, 9836, 6466, 8666,
    6866, 2499, 4388, 8444, 8849, 8684, 8846, 6894, 9498, 6488, 6644, 6646, 4946, 6486, 9856, 4224, 4668, 4483,
    6844, 3666, 9266, 4738, 10000, 8648, 6646, 9866, 4466, 3266, 1698, 4984, 6489, 9488, 6644, 6646, 9384, 6668,
    4766, 8266, 9698, 4483, 4668, 8344, 6846, 8342, 8962, 3898, 8888, 6644, 6644, 9368, 4446, 4881, 6986, 3664,
    9406, 8344, 4844, 3486, 4883, 10000, 4663, 6664, 4666, 4386, 7468, 6694, 4466, 4494, 4888, 6444, 6684, 6639,
    3699, 4686, 8562, 6863, 6995, 4688, 4862, 8341, 664, 8664, 6968, 3445, 6648, 8144, 3664, 9368, 2934, 6448,
    3264, 6496, 8966, 8844, 2888, 6486, 10000, 4982, 6644, 6686, 8366, 4688, 6486, 4868, 2976, 4885, 4448, 6689,
    4643, 4849, 6888, 6864, 8744, 8466, 6183, 2484, 3644, 4881, 8446, 8426, 8663, 6644, 8948, 8464, 6665, 4956,
    6448, 7466, 6846, 4468, 8964, 4424, 4788, 10000, 4686, 4444, 6649, 4666, 4288, 6448, 6324, 6668, 8865, 4368,
    4684, 6688, 9884, 8408, 3446, 8648, 8946, 8466, 4886, 6364, 4836, 4448, 6846, 3684, 4668, 8668, 8446, 8646,
    8868, 4443, 6668, 8366, 4488, 8926, 1296, 4646, 10000, 6886, 4488, 2694, 6888, 6466, 2643, 6794, 8684, 8666,
    4486, 6496, 8439, 8666, 4867, 2398, 8644, 8968, 4766, 2436, 4469, 8861, 6423, 6444, 6869, 4484, 8468, 4646,
    6866, 8434, 8641, 3624, 3666, 6448, 4946, 6448, 6363, 10000, 8369, 4688, 6489, 4449, 8488, 6674, 8946, 4649,
    3668, 6236, 4466, 8998, 6476, 8866, 4448, 8969, 3646, 4486, 9668, 4493, 8426, 4446, 9698, 3644, 8866, 4448,
    6168, 8384, 4646, 3634, 6944, 4666, 6493, 4668, 3448, 3644, 10000, 3647, 6886, 4489, 4893, 4438, 8448, 8468,
    4193, 4414, 6961, 6868, 8946, 6448, 8364, 8483, 8642, 6461, 6386, 9684, 6846, 2948, 4868, 6183, 4864, 8566,
    4488, 3449, 4246, 6368, 6824, 2444, 4611, 6696, 6878, 4293, 6343, 10000, 4864, 8466, 9886, 6842, 4983, 8943,
    3626, 4836, 6959, 8694, 8444, 9668, 4648, 8616, 2646, 8686, 3644, 4666, 6489, 6441, 9668, 6813, 4449, 8886,
    3667, 4986, 2398, 2496, 3464, 6644, 4888, 4644, 6688, 6468, 6436, 8484, 10000, 8864, 5428, 6866, 6334, 8636,
    9469, 6844, 8063, 8844, 3936, 8698, 4844, 4668, 6644, 4488, 4849, 4344, 6463, 1698, 2648, 6664, 8426, 9673,
    8862, 6644, 8356, 4468, 9438, 4349, 6646, 4886, 4498, 4688, 3668, 1668, 6657, 10000, 8916, 6294, 3664, 7948,
    8667, 5684, 8444, 7688, 4946, 6326, 8866, 9884, 6688, 8264, 4888, 8886, 8468, 4694, 6898, 4483, 2684, 6696,
    6664, 8944, 6648, 461, 4666, 4645, 4464, 6484, 4866, 6498, 6488, 4468, 4689, 6848, 10000, 9646, 6988, 8864,
    8423, 3846, 6846, 4698, 6844, 4463, 6246, 8467, 8886, 6489, 6696, 4266, 8466, 3646, 6868, 8434, 4987, 4489,
    6388, 8944, 9628, 6638, 6642, 6268, 9166, 6686, 6296, 8366, 8668, 4693, 3683, 6886, 9464, 10000, 6464, 8866,
    3626, 7846, 9364, 2461, 6888, 8444, 4146, 9488, 7666, 4946, 4696, 6648, 6088, 4666, 9361, 8484, 6946, 8836,
    4486, 8449, 4668, 6884, 6448, 6694, 7494, 4684, 6446, 6498, 7266, 3284, 4836, 6129, 8384, 3666, 10000, 6268,
    4666, 6844, 6488, 8466, 8486, 8484, 4646, 4463, 4488, 6848, 9668, 6868, 6429, 4698, 6378, 3489, 4946, 6528,
    8866, 4556, 4690, 6284, 6449, 1448, 4844, 6488, 6449, 4593, 4498, 4486, 4446, 8086, 3844, 4846, 6812, 10000,
    4744, 6186, 8464, 6688, 6667, 4446, 4946, 6868, 6434, 6486, 2444, 3684, 8484, 4693, 1888, 8588, 4647, 9363,
    6644, 8627, 6086, 6886, 8989, 6698, 4698, 8386, 4488, 8698, 8866, 4888, 4468, 4448, 9689, 4464, 9461, 6244,
    10000, 7448, 4449, 4668, 6686, 3689, 4686, 9368, 3434, 6646, 4637, 4188, 6849, 8646, 6862, 6489, 4636, 6886,
    3484, 6444, 4844, 2666, 1484, 4696, 6688, 6448, 3569, 6488, 8442, 6266, 7844, 8683, 4488, 9889, 4468, 4684,
    8994, 10000, 4463, 4883, 6684, 6489, 4698, 6368, 3684, 4945, 6848, 4878, 6469, 4694, 8366, 8664, 4447, 2323,
    6489, 4647, 6448, 2844, 4682, 4696, 6466, 6889, 6683, 4664, 2668, 4648, 6741, 8668, 4182, 6886, 4839, 4882,
    6686, 8946, 10000, 9686, 6436, 1489, 6498, 8878, 3439, 8449, 9868, 8464, 8862, 4694, 6886, 3666, 8626, 4836,
    9444, 9636, 6848, 6648, 9844, 6489, 6368, 6568, 4696, 6684, 6662, 4624, 9603, 4644, 8644, 6476, 6469, 9628,
    6484, 6448, 9668, 10000, 6889, 1462, 4890, 8898, 8622, 4643, 9698, 8884, 8966, 8684, 6866, 8389, 6264, 6866,
    6982, 4448, 9865, 6444, 9669, 8864, 8895, 3288, 6669, 6876, 6844, 6684, 6184, 6684, 6382, 4949, 4463, 4444,
    6644, 6496, 4498, 4664, 10000, 8439, 9688, 8846, 8949, 4644, 6663, 6804, 8942, 3646, 4646, 8464, 3696, 6468,
    8846, 8656, 4673, 4834, 4946, 6684, 8946, 8846, 4688, 6684, 8681, 6444, 6844, 8634, 8446, 6674, 9356, 4636,
    4806, 6244, 8496, 3888, 3884, 10000, 9697, 6884, 8366, 8846, 9884, 8684, 8444, 8664, 4344, 6386, 4546, 6368,
    4694, 4646, 8846, 6663, 6844, 6463, 6849, 9668, 9864, 6883, 6844, 4646, 6495, 8444, 8644, 9943, 2244, 9866,
    6873, 6466, 8448, 6668, 4864, 4444, 10000, 6836, 8945, 4662, 9962, 8842, 6946, 4648, 3834, 3466, 6444, 4368,
    3464, 6846, 6463, 9844, 6684, 8684, 8686, 8494, 6684, 8866, 6904, 8344, 9864, 8936, 8948, 6844, 4844, 4466,
    8364, 8444, 4668, 4698, 6684, 3816, 9688,
]


def test_exp_polynomial_matches_math_exp():
    for x in np.concatenate([-np.logspace(-12, 2.8, 400), [0.0, -0.5, -1.0, -700.0]]):
        assert _exp_nonpositive(float(x)) == pytest.approx(math.exp(x), rel=1e-14, abs=0)
    assert _exp_nonpositive(-709.0) == 0.0


def test_temperature_samples_from_the_sampling_stream():
    hot = procgen.nca(n=40, seed=4, height=8, width=8, states=6, steps=3, temperature=1e6)
    assert validate(hot) is None
    later = np.concatenate([np.concatenate(decode(hot[k], hot.params)[1:]).ravel() for k in range(len(hot))])
    counts = np.bincount(later, minlength=6)  # a huge temperature: next states nearly uniform
    assert (np.abs(counts - later.size / 6) < 5 * np.sqrt(later.size / 6)).all(), counts
    cold = procgen.nca(n=40, seed=4, height=8, width=8, states=6, steps=3)
    # frame 0 draws nothing from the sampling stream: the same grids at any temperature
    assert all(np.array_equal(decode(hot[k], hot.params)[0], decode(cold[k], cold.params)[0]) for k in range(40))


def test_extreme_temperatures():
    plain = procgen.nca(n=20, seed=1, height=6, width=6, states=5, steps=4)
    for temperature in (1e-320, 1e-12):  # a cold softmax is the argmax (these rows have no tied logits)
        cold = procgen.nca(n=20, seed=1, height=6, width=6, states=5, steps=4, temperature=temperature)
        assert np.array_equal(cold.tokens, plain.tokens)
    for temperature in (1e300, 1e308):  # a hot one is uniform, never NaN
        hot = procgen.nca(n=20, seed=1, height=6, width=6, states=5, steps=4, temperature=temperature)
        assert validate(hot) is None and not np.array_equal(hot.tokens, plain.tokens)


def test_reference_process_rows_pass_the_validator():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "reference_nca.py"
    spec = importlib.util.spec_from_file_location("reference_nca", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fn, params = module.REFERENCE["nca"]
    for chosen in (params, {"height": 6, "width": 4, "states": 4, "steps": 5, "framing": "wrap", "burn_in": 2}):
        rows = fn(6, random.Random(0), **chosen)
        tokens = np.array([t for row in rows for t in row], np.int32)
        offsets = np.cumsum([0] + [len(row) for row in rows]).astype(np.int64)
        assert TASK.validator(tokens, offsets, np.zeros(len(rows), np.int32), TASK.resolve_params(chosen)) is None


# --- the complexity band --------------------------------------------------------------------------

def test_gzip_ratio_is_the_released_code_measure():
    ids = procgen.nca(n=1, seed=0)[0].astype(np.int64)
    ids = ids[ids < 10000]
    data = ids.astype("<i4").tobytes()
    assert gzip_ratio(ids) == len(gzip.compress(data, compresslevel=9)) / len(data)


def test_band_keeps_only_rows_in_band_and_the_first_candidate_that_passes():
    params = {"height": 6, "width": 6, "states": 5, "hidden": 8, "steps": 6}
    band = procgen.nca(n=30, seed=2, min_gzip_ratio=0.55, max_gzip_ratio=0.75, **params)
    assert validate(band) is None
    for k in range(30):
        assert 0.55 <= gzip_ratio(patch_ids(band[k], band.params)) <= 0.75
    attempts = kept_attempts(band)
    keyed_replay_check(band, attempts)
    assert max(attempts) > 0  # some rows needed several candidates
    plain = procgen.nca(n=30, seed=2, **params)
    base = base_key(2, "nca", "train")
    unbanded = plain.params
    for k, attempt in enumerate(attempts):
        if attempt == 0:  # candidate 0 is the unfiltered row
            assert band[k].tolist() == plain[k].tolist()
        for earlier in range(attempt):  # every earlier candidate was outside the band
            grids = replay_frames(base, k, unbanded, earlier)
            ids = [int(v) for g in grids for v in
                   (g.reshape(3, 2, 3, 2).transpose(0, 2, 1, 3).reshape(-1, 4) @ (5 ** np.arange(4)))]
            assert not 0.55 <= gzip_ratio(ids) <= 0.75


def test_band_rows_do_not_depend_on_n_or_start_and_are_deterministic():
    params = {"height": 6, "width": 8, "states": 6, "hidden": 6, "steps": 5, "min_gzip_ratio": 0.62}
    whole = procgen.nca(n=60, seed=9, **params)
    part = procgen.nca(n=15, seed=9, start=37, **params)
    assert np.array_equal(part.tokens, whole[37:52].tokens)
    assert np.array_equal(procgen.nca(n=60, seed=9, **params).tokens, whole.tokens)
    assert not np.array_equal(procgen.nca(n=60, seed=10, **params).tokens, whole.tokens)
    single = [procgen.nca(n=1, seed=9, start=i, **params).tokens for i in (0, 13, 59)]
    assert all(np.array_equal(s, whole[i:i + 1].tokens) for s, i in zip(single, (0, 13, 59)))


def test_plain_rows_do_not_depend_on_n_or_start_and_are_deterministic():
    whole = procgen.nca(n=50, seed=11, height=8, width=6, temperature=0.7, burn_in=3)
    part = procgen.nca(n=10, seed=11, start=17, height=8, width=6, temperature=0.7, burn_in=3)
    assert np.array_equal(part.tokens, whole[17:27].tokens)
    assert np.array_equal(procgen.nca(n=50, seed=11, height=8, width=6, temperature=0.7, burn_in=3).tokens,
                          whole.tokens)
    assert not np.array_equal(procgen.nca(n=50, seed=11, split="test", height=8, width=6, temperature=0.7,
                                          burn_in=3).tokens, whole.tokens)


def test_a_band_too_narrow_raises_instead_of_returning_a_bad_row():
    with pytest.raises(ValueError, match=r"nca: no candidate of row 0 .* max_attempts=5; the band is too narrow"):
        procgen.nca(n=3, seed=0, height=4, width=4, steps=2, min_gzip_ratio=0.5, max_gzip_ratio=0.5001,
                    max_attempts=5)


# --- the validator rejects corrupted rows -----------------------------------------------------------

def corrupt(batch, row, position, value, **override):
    tokens = batch.tokens.copy()
    tokens[batch.offsets[row] + position] = value
    return TASK.validator(tokens, batch.offsets, batch.answer_start, dict(batch.params, **override))


def encode(grid, n):
    h, w = grid.shape
    return (grid.reshape(h // 2, 2, w // 2, 2).transpose(0, 2, 1, 3).reshape(-1, 4) @ (n ** np.arange(4))).tolist()


def test_a_flipped_cell_that_breaks_neighbourhood_consistency_is_caught():
    b = procgen.nca(n=20, seed=5, height=8, width=8, states=4, steps=6)
    params, n, patches = b.params, 4, 16
    for k in range(len(b)):  # find a neighbourhood met twice before the last frame
        grids = decode(b[k], params)
        seen = {}
        for t in range(len(grids) - 1):
            g = grids[t]
            for y in range(8):
                for x in range(8):
                    key = tuple(g[(y + dy) % 8, (x + dx) % 8] for dy in (-1, 0, 1) for dx in (-1, 0, 1))
                    if key in seen and seen[key][0] < t:
                        break
                    seen.setdefault(key, (t, y, x))
                else:
                    continue
                break
            else:
                continue
            break
        else:
            continue
        frame = grids[t + 1].copy()
        frame[y, x] = (frame[y, x] + 1) % n  # the second occurrence now leads elsewhere
        tokens = b.tokens.copy()
        at = b.offsets[k] + (t + 1) * (patches + 1)
        tokens[at:at + patches] = encode(frame, n)
        bad = TASK.validator(tokens, b.offsets, b.answer_start, params)
        assert bad == (k, bad[1]) and "neighbourhood" in bad[1]
        assert validate(b) is None  # the uncorrupted rows pass
        # sampled rows are not held to one rule
        assert TASK.validator(tokens, b.offsets, b.answer_start, dict(params, temperature=0.5)) is None
        return
    pytest.fail("no repeated neighbourhood found")


def test_wrong_delimiters_and_out_of_range_ids_are_caught():
    b = procgen.nca(n=10, seed=6)  # 36 patches per frame, <grid> = 10000 at 36, 73, ...
    bad = corrupt(b, 3, 36, 1234)  # the delimiter replaced by a patch
    assert bad[0] == 3 and "delimiter" in bad[1]
    bad = corrupt(b, 4, 5, 10000)  # a delimiter inside a frame
    assert bad[0] == 4 and "delimiter" in bad[1]
    bad = corrupt(b, 5, 7, 10001)  # the pad id
    assert bad[0] == 5 and "patch id" in bad[1]
    bad = corrupt(b, 6, 100, 60000)
    assert bad[0] == 6 and "patch id" in bad[1]
    w = procgen.nca(n=5, seed=6, height=4, width=4, steps=3, framing="wrap")  # <grid> 4 patches </grid>
    assert validate(w) is None
    bad = corrupt(w, 2, 0, 10001)  # </grid> where <grid> belongs
    assert bad[0] == 2 and "delimiter" in bad[1]
    bad = corrupt(w, 2, 5, 10000)
    assert bad[0] == 2 and "delimiter" in bad[1]
    bad = corrupt(w, 1, 3, 10001)  # </grid> inside a frame
    assert bad[0] == 1 and "delimiter" in bad[1]


def test_layout_errors_are_caught():
    b = procgen.nca(n=4, seed=7, height=4, width=4, steps=2)  # rows of 14 tokens
    answer_start = b.answer_start.copy()
    answer_start[2] = 1
    bad = TASK.validator(b.tokens, b.offsets, answer_start, b.params)
    assert bad[0] == 2 and "answer_start" in bad[1]
    bad = TASK.validator(b.tokens[:13], np.array([0, 13]), b.answer_start[:1], b.params)
    assert bad[0] == 0 and "length" in bad[1]
    assert validate(b, steps=3) is not None  # the frame count is part of the layout


def test_a_gzip_band_violation_is_caught():
    params = {"height": 6, "width": 6, "states": 5, "hidden": 8, "steps": 6}
    band = procgen.nca(n=12, seed=3, min_gzip_ratio=0.6, **params)
    plain = procgen.nca(n=200, seed=3, **params)
    low = next(k for k in range(200) if gzip_ratio(patch_ids(plain[k], plain.params)) < 0.6)
    tokens = band.tokens.copy()
    tokens[band.offsets[8]:band.offsets[9]] = plain[low]  # a valid, consistent row outside the band
    bad = TASK.validator(tokens, band.offsets, band.answer_start, band.params)
    assert bad[0] == 8 and "gzip ratio" in bad[1]
    ratios = [gzip_ratio(patch_ids(band[k], band.params)) for k in range(12)]
    first = next(k for k, r in enumerate(ratios) if r < 0.7)
    bad = validate(band, min_gzip_ratio=0.7)  # the same rows held to a narrower band
    assert bad[0] == first and "gzip ratio" in bad[1]
    assert validate(plain) is None and validate(plain, max_gzip_ratio=0.0)[0] == 0


# --- golden rows -------------------------------------------------------------------------------------

GOLDEN_SHA256 = "5700b5ab19c70b6e9b58e5ce164fd905a5559df84336fd2d5667b38b2d006ab6"  # first 8 rows at defaults


def test_golden_rows():
    b = procgen.nca(n=8, seed=0, split="train")
    assert b[0].tolist() == GOLDEN_DEFAULT_ROW_0
    assert hashlib.sha256(b.tokens.tobytes()).hexdigest() == GOLDEN_SHA256
    assert b.num_tokens == 8 * 961 and b.tokens.dtype == np.uint16
    small = procgen.nca(n=2, seed=0, height=4, width=4, states=3, hidden=4, steps=3)
    assert [r.tolist() for r in small] == [[75, 53, 59, 0, 81, 59, 45, 41, 26, 81, 15, 46, 41, 74, 81, 7, 31, 42, 75],
                                           [64, 30, 48, 7, 81, 7, 39, 15, 3, 81, 54, 30, 59, 28, 81, 6, 12, 46, 3]]
    sampled = procgen.nca(n=2, seed=0, height=4, width=6, states=4, hidden=6, steps=2, framing="wrap", burn_in=2,
                          temperature=0.5)
    assert [r.tolist() for r in sampled] == [
        [256, 81, 191, 141, 57, 111, 249, 257, 256, 154, 213, 69,
         185, 225, 65, 257, 256, 106, 220, 187, 214, 221, 125, 257],
        [256, 86, 169, 154, 90, 154, 118, 257, 256, 190, 106, 170,
         158, 123, 90, 257, 256, 90, 170, 106, 150, 106, 170, 257]]
    banded = procgen.nca(n=3, seed=0, height=4, width=4, states=5, hidden=8, steps=4, min_gzip_ratio=0.7)
    assert [r.tolist() for r in banded] == [
        [0, 243, 534, 547, 625, 210, 405, 516, 245, 625, 158, 135,
         250, 204, 625, 133, 147, 87, 15, 625, 128, 408, 525, 275],
        [199, 203, 594, 46, 625, 34, 302, 125, 10, 625, 151, 126,
         1, 181, 625, 180, 129, 531, 0, 625, 3, 26, 135, 181],
        [477, 557, 403, 564, 625, 122, 539, 624, 114, 625, 574, 361,
         361, 572, 625, 614, 322, 572, 614, 625, 362, 574, 614, 312]]


# --- vocabulary and parameter errors -------------------------------------------------------------------

def test_vocab_names_and_sizes():
    b = procgen.nca(n=1, height=4, width=4, steps=1)
    assert len(b.vocab) == 10002 and b.vocab[10000] == "<grid>" and b.pad_id == 10001
    assert b.vocab[0] == "00/00" and b.vocab[1 + 10 * 2 + 100 * 3 + 1000 * 9] == "12/39"
    w = procgen.nca(n=1, height=4, width=4, steps=1, states=16, framing="wrap")
    assert len(w.vocab) == 65539 and w.vocab[65536:] == ["<grid>", "</grid>", "<pad>"] and w.tokens.dtype == np.int32
    assert w.vocab[15 + 16 * 10] == "fa/00"
    assert procgen.nca(n=1, states=3, height=2, width=2, steps=1).tokens.dtype == np.uint8


@pytest.mark.parametrize("params, message", [
    ({"height": 7}, "nca: height must be even"),
    ({"width": 3}, "nca: width must be even"),
    ({"steps": 27}, (r"nca: height=12, width=12, steps=27 and framing='separate' give rows of 1035 tokens, more "
                     r"than max_tokens=1024; lower steps/height/width or raise max_tokens")),
    ({"framing": "wrap", "steps": 26}, r"rows of 1026 tokens, more than max_tokens=1024"),
    ({"height": 1024, "width": 1024, "steps": 1000, "max_tokens": 10 ** 9}, r"too slow per row"),
    ({"min_gzip_ratio": 0.6, "max_gzip_ratio": 0.5}, "min_gzip_ratio must be <= max_gzip_ratio"),
    ({"states": 17}, "states"), ({"states": 1}, "states"), ({"hidden": 0}, "hidden"), ({"hidden": 129}, "hidden"),
    ({"temperature": -1.0}, "temperature"), ({"framing": "both"}, "framing"), ({"min_gzip_ratio": -0.1}, "min_gzip"),
    ({"max_attempts": 0}, "max_attempts"),
])
def test_bad_params_raise_one_line(params, message):
    with pytest.raises(ValueError, match=message) as info:
        procgen.nca(n=1, **params)
    assert "\n" not in str(info.value)


def test_max_tokens_admits_longer_rows():
    b = procgen.nca(n=2, steps=40, max_tokens=2000)
    assert b.lengths.tolist() == [41 * 37 - 1] * 2 and validate(b) is None
