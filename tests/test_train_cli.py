"""``procgen train warmup | finetune | eval`` end to end, and their one-line errors (exit 2)."""

import json

import pytest

torch = pytest.importorskip("torch")

from click.testing import CliRunner  # noqa: E402

from procgen.cli import cli  # noqa: E402
from procgen.train.model import GPT  # noqa: E402

torch.set_num_threads(1)
QUICK = ["--steps", "4", "--batch-size", "8", "--log-every", "2", "--eval-rows", "16", "--quiet"]


def invoke(*args):
    return CliRunner().invoke(cli, ["train", *map(str, args)])


@pytest.fixture(scope="module")
def warm(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "dyck"
    result = invoke("warmup", "--task", "dyck", "--model", "1_2_16", "--out", out, *QUICK, "--k", "2",
                    "--length", "16", "--max-depth", "4")
    assert result.exit_code == 0, result.output
    return out


def test_warmup_writes_config_metrics_and_checkpoint(warm):
    config = json.loads((warm / "run_config.json").read_text())
    assert config["command"] == "warmup" and config["task"] == "dyck"
    assert config["task_params"]["k"] == 2 and config["task_params"]["max_depth"] == 4
    assert config["options"]["steps"] == 4 and config["options"]["model_name"] == "1_2_16"
    model = GPT.from_pretrained(warm)
    assert (model.config.vocab_size, model.config.block_size, model.config.n_layer) == (5, 16, 1)
    records = [json.loads(line) for line in (warm / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [2, 4]
    assert (warm / "trainer_state.pt").is_file()


def test_finetune_transfers_from_the_warmup_then_eval(warm, tmp_path):
    out = tmp_path / "haystack"
    result = invoke("finetune", "--task", "haystack", "--init", warm, "--transfer", "attn,mlp",
                    "--embeddings", "mean", "--out", out, *QUICK, "--pairs", "4", "--lr", "0")
    # --lr 0 is refused (must be > 0), so run it for real with a tiny lr below
    assert result.exit_code == 2 and "--lr" in result.output
    result = invoke("finetune", "--task", "haystack", "--init", warm, "--transfer", "attn,mlp",
                    "--embeddings", "mean", "--out", out, *QUICK, "--pairs", "4", "--lr", "1e-9",
                    "--warmup-steps", "0", "--weight-decay", "0", "--schedule", "constant")
    assert result.exit_code == 0, result.output
    config = json.loads((out / "run_config.json").read_text())
    assert config["init"] == str(warm) and config["transfer"]["components"] == ["attn", "mlp"]
    assert config["task_params"]["pairs"] == 4
    donor, model = GPT.from_pretrained(warm), GPT.from_pretrained(out)
    assert model.config.vocab_size == 256 and model.config.n_embd == donor.config.n_embd
    # with lr 1e-9 the transferred weights are still the donor's, the embeddings the donor's mean row
    name = "transformer.h.0.attn.c_attn.weight"
    assert torch.allclose(model.state_dict()[name], donor.state_dict()[name], atol=1e-6)
    wte = model.transformer.wte.weight
    assert torch.allclose(wte, donor.transformer.wte.weight.mean(0).expand_as(wte), atol=1e-6)
    assert not torch.allclose(model.transformer.h[0].attn.c_attn.weight,
                              GPT(model.config).transformer.h[0].attn.c_attn.weight)

    result = invoke("eval", "--model-dir", out, "--task", "haystack", "-n", "20", "--pairs", "4",
                    "--out", tmp_path / "eval.json")
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)
    assert scores["rows"] == 20 and scores["tokens"] == 20 and 0 <= scores["accuracy"] <= 1
    saved = json.loads((tmp_path / "eval.json").read_text())
    assert saved["result"] == scores and saved["task_params"]["pairs"] == 4


@pytest.mark.parametrize("args, words", [
    (["finetune", "--task", "haystack", "--init", "{warm}", "--transfer", "attn,bogus"],
     ["--transfer", "unknown component 'bogus'", "attn, mlp"]),
    (["finetune", "--task", "haystack", "--init", "{missing}", "--transfer", "attn"],
     ["--init", "does not exist"]),
    (["finetune", "--task", "haystack", "--init", "{empty}", "--transfer", "attn"],
     ["--init", "no config.json"]),
    (["finetune", "--task", "haystack", "--init", "{warm}", "--transfer", "pos", "--block-size", "8"],
     ["--block-size", "haystack (62 tokens)", "got 8"]),
    (["finetune", "--task", "haystack", "--init", "{warm}", "--transfer", "all", "--freeze", "attn,nope"],
     ["--freeze", "unknown component 'nope'"]),
    (["eval", "--model-dir", "{warm}", "--task", "haystack"],
     ["vocab_size mismatch", "haystack needs 256", "vocab_size=5"]),
    (["eval", "--model-dir", "{warm}", "--task", "dyck", "--k", "2", "--length", "40"],
     ["block_size", "40 tokens"]),
    (["warmup", "--task", "dyck", "--kk", "2"], ["No such option", "--kk"]),
    (["warmup", "--task", "dyck", "--k", "0"], ["--k", "[1, 1048576]"]),
    (["warmup", "--task", "nosuchtask"], ["task must be one of", "nosuchtask"]),
    (["warmup", "--task", "dyck", "--model", "2_3_16"], ["divisible"]),
    (["warmup", "--task", "dyck", "--out", "{warm}"], ["already holds a checkpoint", "--resume"]),
])
def test_bad_inputs_exit_2_with_one_line(args, words, warm, tmp_path):
    (tmp_path / "empty").mkdir()
    places = {"warm": warm, "missing": tmp_path / "missing", "empty": tmp_path / "empty"}
    args = [a.format(**places) for a in args]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "out")] if args[0] != "eval" else []
    if args[0] != "eval":
        args += QUICK
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("procgen: error:"), result.stderr
    for word in words:
        assert word in lines[0]
    assert "Traceback" not in result.output


# --- damaged checkpoints (exit 1, naming the file) and devices that are not here (exit 2) -------

def _write(relative, data):
    def damage(run):
        path = run / relative
        path.unlink()  # the top-level files are hard links into checkpoints/: never write through one
        path.write_bytes(data) if isinstance(data, bytes) else path.write_text(data)
    return damage


def _edit_config(relative, **changes):
    def damage(run):
        config = {**json.loads((run / relative).read_text()), **changes}
        _write(relative, json.dumps(config))(run)
    return damage


def _edit_state(**changes):
    def damage(run):
        state = {**torch.load(run / "trainer_state.pt", weights_only=True), **changes}
        torch.save({k: v for k, v in state.items() if v is not None}, run / "trainer_state.pt")
    return damage


def _half(relative):
    def damage(run):
        _write(relative, (run / relative).read_bytes()[:(run / relative).stat().st_size // 2])(run)
    return damage


CHECKPOINT = "checkpoints/step-000004"
WARMUP = ["warmup", "--task", "dyck", "--model", "1_2_16", "--out", "{run}", *QUICK, "--k", "2", "--length", "16",
          "--max-depth", "4"]
FINETUNE = ["finetune", "--task", "haystack", "--init", "{run}", "--transfer", "attn", "--out", "{out}", *QUICK,
            "--pairs", "4"]
EVAL = ["eval", "--model-dir", "{run}", "--task", "dyck", "-n", "8", "--k", "2", "--length", "16", "--max-depth", "4"]
DAMAGED = {  # case: (command, damage to a copy of the warm-up run, the file the message names)
    "finetune --init: weights garbage": (FINETUNE, _write("model.safetensors", b"\0" * 40), "model.safetensors"),
    "finetune --init: weights truncated": (FINETUNE, _half("model.safetensors"), "model.safetensors"),
    "finetune --init: config a list": (FINETUNE, _write("config.json", "[1, 2]"), "config.json"),
    "finetune --init: config of another shape": (FINETUNE, _edit_config("config.json", n_embd=32),
                                                 "model.safetensors"),
    "eval --model-dir: weights garbage": (EVAL, _write("model.safetensors", b"garbage"), "model.safetensors"),
    "eval --model-dir: config not JSON": (EVAL, _write("config.json", "{"), "config.json"),
    "eval --model-dir: config a number": (EVAL, _write("config.json", "7"), "config.json"),
    "eval --model-dir: config of another shape": (EVAL, _edit_config("config.json", n_layer=2), "model.safetensors"),
    "eval --model-dir: config bad value": (EVAL, _edit_config("config.json", block_size=-1), "config.json"),
    "warmup --resume: state garbage": (WARMUP, _write("trainer_state.pt", b"garbage"), "trainer_state.pt"),
    "warmup --resume: state truncated": (WARMUP, _half("trainer_state.pt"), "trainer_state.pt"),
    "warmup --resume: state not a dict": (WARMUP, lambda run: torch.save([1], run / "trainer_state.pt"),
                                          "trainer_state.pt"),
    "warmup --resume: state without optimizer": (WARMUP, _edit_state(optimizer=None), "trainer_state.pt"),
    "warmup --resume: state of another model": (WARMUP, _edit_state(optimizer={"state": {}, "param_groups": []}),
                                                "trainer_state.pt"),
    "warmup --resume: weights changed": (WARMUP, _write(f"{CHECKPOINT}/model.safetensors", b"garbage"),
                                         f"{CHECKPOINT}/model.safetensors"),
    "warmup --resume: weights folder missing": (WARMUP, lambda run: __import__("shutil").rmtree(run / CHECKPOINT),
                                                "trainer_state.pt"),
    "warmup --resume: config damaged": (WARMUP, _write(f"{CHECKPOINT}/config.json", "[]"),
                                        f"{CHECKPOINT}/config.json"),
    "finetune --resume: state garbage": ([*FINETUNE[:7], "--out", "{run}", *FINETUNE[9:], "--resume"],
                                         _write("trainer_state.pt", b"\0" * 64), "trainer_state.pt"),
}


@pytest.mark.parametrize("case", list(DAMAGED))
def test_a_damaged_checkpoint_exits_1_with_one_line_naming_the_file(case, warm, tmp_path):
    import shutil

    command, damage, named = DAMAGED[case]
    run = tmp_path / "run"
    shutil.copytree(warm, run)
    damage(run)
    args = [a.format(run=run, out=tmp_path / "out") for a in command]
    if args[0] == "warmup":
        args.append("--resume")
    result = invoke(*args)
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("procgen: error:"), result.stderr
    assert str(run / named) in lines[0], lines[0]
    assert "Traceback" not in result.output


NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")


@pytest.mark.parametrize("command", ["warmup", "finetune", "eval", "reproduce"])
@pytest.mark.parametrize("device, words", [
    ("bogus", ["--device must be a torch device", "'bogus'"]),
    pytest.param("cuda", ["--device 'cuda' is not available", "torch.cuda.is_available() is False"], marks=NO_CUDA),
    ("cuda:99", ["--device 'cuda:99' is not available"]),
])
def test_a_device_that_is_not_here_exits_2_with_one_line(command, device, words, warm, tmp_path):
    args = {"warmup": WARMUP, "finetune": FINETUNE, "eval": EVAL,
            "reproduce": ["reproduce", "--budget", "smoke", "--out", "{out}"]}[command]
    args = [a.format(run=warm if command != "warmup" else tmp_path / "run", out=tmp_path / "out") for a in args]
    result = invoke(*args, "--device", device)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("procgen: error:"), result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists() and not (tmp_path / "run").exists()  # refused before any work
