"""procgen.hub: Parquet export, dataset card and push, against the local Hub of tests/hub_server.py.

The real ``huggingface_hub`` client pushes (in this process, ``endpoint=`` the local server); the
real ``datasets.load_dataset`` reads back (in a subprocess whose HF_ENDPOINT points at it).
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import tempfile

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner

import procgen
from procgen.dataset import DatasetError, read_manifest
from procgen.hub import PAPERS, HubError, push, to_parquet

# huggingface_hub 2.4 itself passes upload bodies as data=<file>, which httpx2 deprecates
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=:DeprecationWarning")

DYCK = dict(k=2, length=8)
ROWS = 60
DYCK_FEATURES = {"input_ids": {"feature": {"dtype": "uint8", "_type": "Value"}, "_type": "List"},
                 "answer_start": {"dtype": "int32", "_type": "Value"}}


@pytest.fixture(scope="module")
def tiny_dyck(tmp_path_factory):
    """A 2-shard dyck dataset (read-only for the tests: copy it before damaging it)."""
    path = tmp_path_factory.mktemp("datasets") / "dyck-k2"
    procgen.write("dyck", path, n=ROWS, shards=2, seed=0, progress=False, **DYCK)
    return path


def rows_of(batch) -> list[list[int]]:
    return [row.tolist() for row in batch]


def snapshot(path) -> dict[str, str]:
    return {name: hashlib.sha256((path / name).read_bytes()).hexdigest() for name in sorted(os.listdir(path))}


def card(hub, repo_id: str) -> tuple[dict, str]:
    text = hub.read_file(repo_id, "README.md").decode()
    match = re.match(r"---\n(.*?)\n---\n(.*)", text, re.S)
    assert match, text[:200]
    return yaml.safe_load(match.group(1)), match.group(2)


def push_to(hub, path, repo_id="me/dyck", **kwargs) -> str:
    return push(path, repo_id, token=hub.token, endpoint=hub.url, progress=False, **kwargs)


# --- round trip ---------------------------------------------------------------------------------

def test_push_then_load_dataset_returns_the_generated_rows(hub_server, tiny_dyck, tmp_path):
    url = push_to(hub_server, tiny_dyck)

    repo, oid, _ = hub_server.commits[-1]
    assert url.endswith(f"/datasets/me/dyck/commit/{oid}") and repo == "me/dyck"
    files = hub_server.files("me/dyck")
    shards = ["data/train-00000-of-00002.parquet", "data/train-00001-of-00002.parquet"]
    assert sorted(files) == [".gitattributes", "README.md", *shards]
    assert all(files[name].is_lfs for name in shards)  # data went through the LFS batch API
    assert len(hub_server.requests_of("lfs_upload")) == 2
    assert len(hub_server.commits) == 2  # the repo's initial commit + exactly one push commit

    loaded = hub_server.load_dataset("me/dyck", [(None, "train")], tmp_path)
    expected = procgen.generate("dyck", ROWS, seed=0, **DYCK)
    got = loaded["None/train"]
    assert got["num_rows"] == ROWS
    assert got["input_ids"] == rows_of(expected)
    assert got["answer_start"] == expected.answer_start.tolist()
    assert got["features"] == DYCK_FEATURES
    assert loaded["configs"] == ["default"]


def test_configs_and_splits_accumulate_in_one_repo(hub_server, tiny_dyck, tmp_path):
    shuffle = tmp_path / "shuffle"
    validation = tmp_path / "validation"
    resharded = tmp_path / "resharded"
    procgen.write("dyck_shuffle", shuffle, n=30, shards=1, seed=1, progress=False, **DYCK)
    procgen.write("dyck", validation, n=20, shards=1, seed=0, split="validation", progress=False, **DYCK)
    procgen.write("dyck", resharded, n=ROWS, shards=3, seed=0, progress=False, **DYCK)  # same rows, 3 files

    push_to(hub_server, tiny_dyck)
    push_to(hub_server, shuffle, config_name="shuffle")
    after_shuffle = hub_server.files("me/dyck")
    push_to(hub_server, validation)  # its split: "validation", into the default config
    assert {p: f for p, f in hub_server.files("me/dyck").items() if p.startswith("shuffle/")} == \
        {p: f for p, f in after_shuffle.items() if p.startswith("shuffle/")}
    push_to(hub_server, resharded)  # replaces default/train: the 2-shard files must go

    files = sorted(hub_server.files("me/dyck"))
    assert [f for f in files if f.startswith("data/train")] == \
        [f"data/train-0000{k}-of-00003.parquet" for k in range(3)]
    assert "data/validation-00000-of-00001.parquet" in files and "shuffle/train-00000-of-00001.parquet" in files

    meta, body = card(hub_server, "me/dyck")
    configs = {c["config_name"]: {f["split"]: f["path"] for f in c["data_files"]} for c in meta["configs"]}
    assert configs == {"default": {"train": "data/train-*.parquet", "validation": "data/validation-*.parquet"},
                       "shuffle": {"train": "shuffle/train-*.parquet"}}
    infos = {i["config_name"]: {s["name"]: s["num_examples"] for s in i["splits"]} for i in meta["dataset_info"]}
    assert infos == {"default": {"train": ROWS, "validation": 20}, "shuffle": {"train": 30}}
    for config, split, task in (("default", "train", "dyck"), ("default", "validation", "dyck"),
                                ("shuffle", "train", "dyck_shuffle")):
        assert body.count(f"<!-- procgen:begin config={config} split={split} -->") == 1
        assert f"## `{config}` / `{split}`: {task}\n" in body

    loaded = hub_server.load_dataset("me/dyck", [(None, "train"), ("default", "validation"), ("shuffle", "train")],
                                     tmp_path)
    assert loaded["configs"] == ["default", "shuffle"]
    assert loaded["None/train"]["input_ids"] == rows_of(procgen.generate("dyck", ROWS, seed=0, **DYCK))
    assert loaded["default/validation"]["input_ids"] == \
        rows_of(procgen.generate("dyck", 20, seed=0, split="validation", **DYCK))
    assert loaded["shuffle/train"]["input_ids"] == rows_of(procgen.generate("dyck_shuffle", 30, seed=1, **DYCK))


def test_a_split_with_other_columns_is_refused_from_its_config(hub_server, tiny_dyck, tmp_path):
    wide = tmp_path / "wide"
    procgen.write("dyck", wide, n=10, shards=1, seed=0, split="validation", progress=False, k=200, length=8)
    assert read_manifest(wide)["dtype"] == "uint16"
    push_to(hub_server, tiny_dyck)
    commits = len(hub_server.commits)
    with pytest.raises(ValueError, match="config_name"):
        push_to(hub_server, wide)
    assert len(hub_server.commits) == commits
    push_to(hub_server, wide, config_name="k200")  # fine as its own config
    meta, _ = card(hub_server, "me/dyck")
    features = {i["config_name"]: i["features"][0] for i in meta["dataset_info"]}
    assert features == {"default": {"name": "input_ids", "list": "uint8"},
                        "k200": {"name": "input_ids", "list": "uint16"}}


# --- the card -----------------------------------------------------------------------------------

def test_card_documents_and_regenerates_the_dataset(hub_server, tiny_dyck, tmp_path, capsys):
    push_to(hub_server, tiny_dyck)
    meta, body = card(hub_server, "me/dyck")
    manifest = read_manifest(tiny_dyck)

    assert meta["license"] == "apache-2.0"
    assert {"procedural", "synthetic"} <= set(meta["tags"])
    assert meta["task_categories"] == ["text-generation"]
    assert meta["size_categories"] == ["n<1K"]
    assert meta["dataset_info"]["features"] == [{"name": "input_ids", "list": "uint8"},
                                                {"name": "answer_start", "dtype": "int32"}]
    assert meta["dataset_info"]["splits"][0]["num_examples"] == ROWS
    for name, value in manifest["params"].items():
        shown = "none" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        assert f"| `{name}` | `{shown}` |" in body
    assert f"| seed | {manifest['seed']} |" in body and f"| tokens | {manifest['num_tokens']:,} |" in body
    vocab = procgen.generate("dyck", 1, **DYCK).vocab  # brackets: no run to collapse, one row per id
    assert all(f"| {i} | `{name}` |" in body for i, name in enumerate(vocab))
    assert "License: `apache-2.0`" in body and "](https://pypi.org/project/procgen-data/)" in body
    assert procgen.generate("dyck", 1, seed=0, **DYCK).render(0) in body  # the example row
    assert str(tiny_dyck) not in body  # no local path on a public card

    # the command on the card regenerates the very same shards
    command = re.search(r"```bash\n(procgen generate .*)\n```", body).group(1)
    words = shlex.split(command)
    words[words.index("--out") + 1] = str(tmp_path / "again")
    from procgen.cli import cli

    result = CliRunner().invoke(cli, words[1:] + ["--quiet"])
    assert result.exit_code == 0, result.output
    again = read_manifest(tmp_path / "again")
    assert [s["sha256"] for s in again["shards"]] == [s["sha256"] for s in manifest["shards"]]

    captured = capsys.readouterr()
    text = hub_server.read_file("me/dyck", "README.md").decode()
    assert hub_server.token not in text + captured.out + captured.err
    for root, _, names in os.walk(hub_server.root):  # nothing the server stored holds the token
        assert all(hub_server.token.encode() not in open(os.path.join(root, n), "rb").read() for n in names)


def vocab_rows(body: str) -> list[str]:
    """The rows of the (first) vocabulary table of a card body."""
    table = body[body.index("| ids | tokens |"):].split("\n\n")[0].splitlines()
    assert table[1] == "|---:|---|"
    return table[2:]


def test_card_collapses_vocabulary_runs_and_marks_answers(hub_server, tmp_path):
    path = tmp_path / "haystack"
    procgen.write("haystack", path, n=10, shards=1, seed=0, progress=False)
    push_to(hub_server, path, repo_id="me/haystack")
    _, body = card(hub_server, "me/haystack")
    vocab = procgen.generate("haystack", 1).vocab
    assert len(vocab) == 256
    rows = vocab_rows(body)
    assert len(rows) <= 8, rows  # not one row per id
    assert "| 1–127 | `v1` … `v127` |" in rows and "| 128–157 | `k0` … `k29` |" in rows
    assert "| 158–187 | `q0` … `q29` |" in rows and "| 0 | `<pad>` |" in rows
    covered = [i for row in rows for a, _, b in [row.split(" | ")[0].strip("| ").partition("–")]
               for i in range(int(a), int(b or a) + 1)]
    assert covered == list(range(256))  # every id, once, in order
    assert "256 ids in total." in body
    assert "`|` marks where the answer starts" in body
    example = procgen.generate("haystack", 1, seed=0).render(0)
    assert " | " in example and example in body


def test_card_cites_the_papers_with_bibtex(hub_server, tiny_dyck):
    push_to(hub_server, tiny_dyck)
    push_to(hub_server, tiny_dyck, split="test")  # a merged card still cites them once
    _, body = card(hub_server, "me/dyck")
    assert body.count("## Citation") == 1
    citation = body[body.index("## Citation"):]
    assert citation.index("<!-- procgen:card-end -->") > citation.index("```bibtex")
    bibtex = re.search(r"```bibtex\n(.*?)\n```", citation, re.S).group(1)
    for arxiv, title in (("2601.21725", "Procedural Pretraining: Warming Up Language Models with Abstract Data"),
                         ("2505.22308", "Transformers Pretrained on Procedural Data Contain Modular Structures "
                                        "for Algorithmic Reasoning")):
        assert f"[arXiv:{arxiv}](https://arxiv.org/abs/{arxiv})" in body
        assert f"title={{{title}}}" in bibtex and f"journal={{arXiv preprint arXiv:{arxiv}}}" in bibtex
    entries = re.findall(r"@article\{(\w+),\n(?:  \w+=\{[^{}]*\},\n)+\}", bibtex)
    assert entries == ["jiang2025proceduralpretraining", "shinnick2025transformers"]
    assert "https://github.com/zlshinnick/procedural-pretraining" in body


def test_the_docs_and_the_readme_cite_the_same_papers():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    readme = open(os.path.join(root, "README.md"), encoding="utf-8").read()
    for paper in PAPERS:
        assert paper.bibtex in readme, paper.arxiv
    hook = open(os.path.join(root, "docs", "hooks.py"), encoding="utf-8").read()
    assert "PAPERS" in hook  # the docs' citation footer is rendered from procgen.hub.PAPERS


# --- the licence ----------------------------------------------------------------------------------

def test_the_licence_comes_from_the_user(hub_server, tiny_dyck, tmp_path):
    push_to(hub_server, tiny_dyck, license="CC-BY-4.0")  # SPDX spelling: the Hub's ids are lower case
    meta, body = card(hub_server, "me/dyck")
    assert meta["license"] == "cc-by-4.0" and "License: `cc-by-4.0`" in body
    push_to(hub_server, tiny_dyck, split="test")  # no licence given: the card's stays
    assert card(hub_server, "me/dyck")[0]["license"] == "cc-by-4.0"
    push_to(hub_server, tiny_dyck, split="test", license="mit")
    assert card(hub_server, "me/dyck")[0]["license"] == "mit"


def test_a_bad_licence_is_a_one_line_error_before_any_request(hub_server, tiny_dyck):
    for bad in ("", "  ", "Apache 2.0", "mit\nother", "-mit", "x" * 65, 2, ["mit"]):
        with pytest.raises(ValueError, match="license") as error:
            push_to(hub_server, tiny_dyck, license=bad)
        assert "\n" not in str(error.value)
    assert hub_server.requests == []


def test_cli_push_takes_a_licence(hub_server, tiny_dyck, monkeypatch):
    from procgen.cli import cli

    monkeypatch.setenv("HF_TOKEN", hub_server.token)
    base = ["push", str(tiny_dyck), "me/dyck", "--endpoint", hub_server.url, "--quiet"]
    bad = CliRunner().invoke(cli, [*base, "--license", "not a licence"])
    assert bad.exit_code == 2 and bad.stderr.count("\n") == 1 and "license" in bad.stderr
    ok = CliRunner().invoke(cli, [*base, "--license", "mit"])
    assert ok.exit_code == 0, ok.stderr
    assert card(hub_server, "me/dyck")[0]["license"] == "mit"


def test_a_hand_written_card_is_kept(hub_server, tiny_dyck):
    from huggingface_hub import HfApi

    api = HfApi(endpoint=hub_server.url, token=hub_server.token)
    api.create_repo("me/dyck", repo_type="dataset")
    api.upload_file(path_or_fileobj=b"---\nlanguage: en\ntags:\n- mine\n---\n# My notes\n\nKeep me.\n",
                    path_in_repo="README.md", repo_id="me/dyck", repo_type="dataset")
    push_to(hub_server, tiny_dyck)
    push_to(hub_server, tiny_dyck, split="test")
    meta, body = card(hub_server, "me/dyck")
    assert meta["language"] == "en" and meta["tags"][0] == "mine" and "procedural" in meta["tags"]
    assert body.startswith("# My notes\n\nKeep me.\n")
    assert body.count("<!-- procgen:card -->") == 1 and body.count("<!-- procgen:begin") == 2


# --- refusals and failures ----------------------------------------------------------------------

def test_a_corrupt_dataset_is_refused_before_any_request(hub_server, tiny_dyck, tmp_path):
    damaged = tmp_path / "damaged"
    shutil.copytree(tiny_dyck, damaged)
    shard = damaged / "data-00001-of-00002.arrow"
    data = bytearray(shard.read_bytes())
    data[-20] ^= 0x01
    shard.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match="shard 1"):
        push_to(hub_server, damaged)
    assert hub_server.requests == [] and hub_server.commits == []


def test_no_token_is_a_clear_error_and_sends_nothing(hub_server, tiny_dyck, tmp_path, monkeypatch):
    import huggingface_hub.constants as constants

    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token-here"))
    with pytest.raises(ValueError, match=r"hf auth login.*HF_TOKEN"):
        push(tiny_dyck, "me/dyck", endpoint=hub_server.url, progress=False)
    assert hub_server.requests == []

    monkeypatch.setenv("HF_TOKEN", hub_server.token)  # the standard variable is picked up
    push(tiny_dyck, "me/dyck", endpoint=hub_server.url, progress=False)
    assert hub_server.requests and all(r.authorization for r in hub_server.requests if r.kind != "lfs_upload")


def test_a_rejected_token_is_reported_without_echoing_it(hub_server, tiny_dyck):
    with pytest.raises(HubError) as error:
        push(tiny_dyck, "me/dyck", token="hf_wrongTokenValue", endpoint=hub_server.url, progress=False)
    message = str(error.value)
    assert "HTTP 401" in message and "HF_TOKEN" in message and "hf_wrongTokenValue" not in message
    assert hub_server.commits == []


@pytest.fixture
def clean_tmp(tmp_path, monkeypatch):
    """Route tempfile (and so push's work directory) into an empty folder the test can inspect."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_server_error_on_commit_leaves_nothing_behind(hub_server, tiny_dyck, clean_tmp):
    before = snapshot(tiny_dyck)
    hub_server.fail_next("commit", times=1, mode="500")
    with pytest.raises(HubError) as error:
        push_to(hub_server, tiny_dyck)
    message = str(error.value)
    assert "\n" not in message and "HTTP 500" in message and "uploading" in message
    assert os.listdir(clean_tmp) == []
    assert snapshot(tiny_dyck) == before and procgen.validate(tiny_dyck)["ok"]
    assert [c[2] for c in hub_server.commits] == ["initial commit"]


@pytest.fixture
def no_backoff_sleep(monkeypatch):
    """huggingface_hub retries uploads with sleeps of 1, 2, 4, 8, 8 s: record them instead."""
    import huggingface_hub.utils._http as http

    sleeps = []
    monkeypatch.setattr(http.time, "sleep", sleeps.append)
    return sleeps


def test_connection_dropped_during_upload_is_a_clear_error(hub_server, tiny_dyck, clean_tmp, no_backoff_sleep):
    before = snapshot(tiny_dyck)
    hub_server.fail_next("lfs_upload", times=100, mode="drop")
    with pytest.raises(HubError) as error:
        push_to(hub_server, tiny_dyck)
    message = str(error.value)
    assert "\n" not in message and "uploading" in message and "disconnected" in message.lower()
    drops = hub_server.requests_of("lfs_upload")
    assert len(drops) >= 6 and {r.status for r in drops} == {"drop"}  # the client retried, then gave up
    assert no_backoff_sleep
    assert os.listdir(clean_tmp) == []
    assert snapshot(tiny_dyck) == before and procgen.validate(tiny_dyck)["ok"]
    assert len(hub_server.commits) == 1


def test_a_transient_drop_is_retried_and_the_push_succeeds(hub_server, tiny_dyck, no_backoff_sleep):
    hub_server.fail_next("lfs_upload", times=1, mode="drop")
    push_to(hub_server, tiny_dyck)
    assert [r.status for r in hub_server.requests_of("lfs_upload")].count("drop") == 1
    assert len(hub_server.files("me/dyck")) == 4


def test_a_bare_repo_name_goes_to_the_token_owner(hub_server, tiny_dyck):
    url = push_to(hub_server, tiny_dyck, repo_id="solo")
    assert "/datasets/procgen-test/solo/commit/" in url
    meta, body = card(hub_server, "procgen-test/solo")
    assert 'load_dataset("procgen-test/solo", "default", split="train")' in body


def test_bad_arguments_raise_value_errors_naming_them(hub_server, tiny_dyck):
    for kwargs, word in ((dict(split="no spaces"), "split"), (dict(config_name="data"), "config_name"),
                         (dict(config_name="a/b"), "config_name")):
        with pytest.raises(ValueError, match=word):
            push_to(hub_server, tiny_dyck, **kwargs)
    with pytest.raises(ValueError, match="repo_id"):
        push_to(hub_server, tiny_dyck, repo_id="a/b/c")
    assert hub_server.requests == []


def test_cli_push_exit_codes(hub_server, tiny_dyck, monkeypatch):
    from procgen.cli import cli

    monkeypatch.setenv("HF_TOKEN", hub_server.token)
    runner = CliRunner()
    base = ["push", str(tiny_dyck), "me/dyck", "--endpoint", hub_server.url, "--quiet"]

    bad = runner.invoke(cli, [*base, "--split", "two words"])
    assert bad.exit_code == 2 and bad.stderr.count("\n") == 1 and "split" in bad.stderr

    hub_server.fail_next("commit", times=1, mode="500")
    failed = runner.invoke(cli, base)
    assert failed.exit_code == 1 and failed.stderr.count("\n") == 1 and "HTTP 500" in failed.stderr

    ok = runner.invoke(cli, base[:-1])
    assert ok.exit_code == 0, ok.stderr
    assert f"pushed {ROWS} rows" in ok.stdout and hub_server.token not in ok.output


# --- Parquet conversion -------------------------------------------------------------------------

def test_parquet_conversion_streams_in_bounded_row_groups(tmp_path, monkeypatch):
    from procgen import _shards

    monkeypatch.setattr(_shards, "CHUNK_TOKENS", 300)  # several record batches per shard
    path = tmp_path / "ragged"
    params = dict(k=3, min_length=4, max_length=40)
    procgen.write("dyck", path, n=500, shards=2, seed=3, progress=False, **params)
    with pa.OSFile(str(path / "data-00000-of-00002.arrow"), "rb") as file:
        assert sum(1 for _ in pa.ipc.open_stream(file)) > 3

    budget = 100
    shards = to_parquet(path, tmp_path / "pq", split="train", workers=2, row_group_tokens=budget)
    assert [s.path_in_repo for s in shards] == [f"data/train-0000{k}-of-00002.parquet" for k in range(2)]
    expected = procgen.generate("dyck", 500, seed=3, **params)
    rows, answer_start = [], []
    for shard in shards:
        parquet = pq.ParquetFile(shard.path)
        assert parquet.metadata.num_row_groups > 5
        assert parquet.schema_arrow.field("input_ids").type == pa.list_(pa.uint8())
        assert parquet.metadata.row_group(0).column(0).compression == "ZSTD"
        for group in range(parquet.metadata.num_row_groups):
            table = parquet.read_row_group(group)
            lengths = pc.list_value_length(table.column("input_ids")).to_numpy()
            assert lengths.sum() <= budget or len(lengths) == 1
        table = parquet.read()
        rows += table.column("input_ids").to_pylist()
        answer_start += table.column("answer_start").to_pylist()
    assert rows == rows_of(expected) and answer_start == expected.answer_start.tolist()
    assert sum(s.num_tokens for s in shards) == expected.num_tokens
    assert np.diff([0, *np.cumsum([s.num_rows for s in shards])]).tolist() == [250, 250]
