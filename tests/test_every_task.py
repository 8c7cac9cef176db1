"""Every registered task through every integration, with no task-specific code: a mixture, a written
and validated dataset, its Parquet conversion and a push to the local Hub of tests/hub_server.py
(card included), the streaming interfaces and two training steps. A new task module is covered here the moment it is registered."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

import procgen
from procgen.hub import to_parquet
from procgen.tasks import get_task, task_names

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

TASKS = [name for name in task_names() if name != "mix"]


def params_of(name: str) -> dict:
    return json.loads(json.dumps(get_task(name).example_params))  # a copy, with tuples as lists


@pytest.mark.parametrize("name", TASKS)
def test_the_task_joins_a_mixture(name):
    weights = {name: 1.0, "set": 1.0} if name != "set" else {name: 1.0, "sort": 1.0}
    batch = procgen.mix(weights, rows=40, seed=1, params={name: params_of(name)})
    assert get_task("mix").check(batch) is None
    assert set(batch.row_task.tolist()) == {0, 1}


@pytest.mark.parametrize("name", TASKS)
def test_the_task_writes_validates_and_converts_to_parquet(name, tmp_path):
    params = params_of(name)
    manifest = procgen.write(name, tmp_path / "d", n=24, shards=2, progress=False, **params)
    report = procgen.validate(tmp_path / "d")
    assert report["rows"] == 24 and report["tokens"] == manifest["num_tokens"]
    shards = to_parquet(tmp_path / "d", tmp_path / "hub")
    table = pq.read_table([str(tmp_path / "hub" / s.path_in_repo) for s in shards][0])
    first = procgen.generate(name, 1, **params)
    assert table.column("input_ids")[0].as_py() == first[0].tolist()


@pytest.mark.parametrize("name", TASKS)
def test_the_task_streams_the_rows_generate_makes(name):
    params = params_of(name)
    expected = procgen.generate(name, 12, seed=2, **params)
    streamed = np.concatenate([b.tokens for b in procgen.stream(name, seed=2, n=12, batch_rows=5, **params)])
    assert np.array_equal(streamed, expected.tokens)
    rows = [row["input_ids"] for row in procgen.to_iterable_dataset(name, seed=2, n=12, num_shards=3, **params)]
    assert [list(r) for r in rows] == [expected[i].tolist() for i in range(12)]


@pytest.mark.parametrize("name", TASKS)
def test_the_task_trains_a_tiny_model(name):
    from procgen.train import build_model, train

    params = params_of(name)
    torch.manual_seed(0)
    model = build_model("1_2_16", name, params)
    summary = train(model, name, 2, params=params, batch_size=4, warmup_steps=0, progress=False, log_every=1,
                    eval_data=False)
    assert np.isfinite(summary["loss"])


@pytest.mark.parametrize("name", TASKS)
def test_the_task_pushes_to_the_hub_with_its_card(name, tmp_path, hub_server):
    procgen.write(name, tmp_path / "d", n=10, progress=False, **params_of(name))
    procgen.push(tmp_path / "d", f"me/{name}", token=hub_server.token, endpoint=hub_server.url, progress=False)
    files = hub_server.files(f"me/{name}")
    assert "data/train-00000-of-00001.parquet" in files
    card = hub_server.read_file(f"me/{name}", "README.md").decode()
    assert f"procgen generate {name}" in card and "input_ids" in card
