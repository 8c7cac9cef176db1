"""procgen.train.model: shapes, loss, checkpoints and exact Hugging Face GPT-2 conversion."""

import json
import math

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("safetensors")

from procgen.train.model import GPT, GPTConfig, state_dict_from_hf, state_dict_to_hf  # noqa: E402

torch.set_num_threads(1)
VOCAB = 50


def scaled_up(model, seed):
    """Weights of order 1 (not GPT-2's 0.02), so activations reach GELU's curved part and a wrong
    GELU variant or a transposed weight shows in the logits."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * 0.3)
    return model


def tiny(seed=0, **overrides) -> GPT:
    torch.manual_seed(seed)
    model = GPT(GPTConfig.from_name("2_4_16", vocab_size=VOCAB, block_size=32, **overrides))
    return scaled_up(model, seed).eval()


def tiny_hf(seed=0):
    torch.manual_seed(seed)
    config = transformers.GPT2Config(n_layer=2, n_head=2, n_embd=16, vocab_size=VOCAB, n_positions=32,
                                     activation_function="gelu_new", bos_token_id=None, eos_token_id=None)
    return scaled_up(transformers.GPT2LMHeadModel(config), seed).eval()


def random_ids(batch=3, length=20, seed=1):
    return torch.randint(0, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


def test_from_name_parses_sizes():
    config = GPTConfig.from_name("12_12_768", vocab_size=50257, block_size=1024)
    assert (config.n_layer, config.n_head, config.n_embd, config.block_size) == (12, 12, 768, 1024)
    assert GPTConfig.from_name("4_8_512", vocab_size=10, dropout=0.1, bias=False).dropout == 0.1


@pytest.mark.parametrize("name, words", [
    ("2_4", ["layers_heads_width", "'2_4'"]),
    ("2_4_16_3", ["layers_heads_width"]),
    ("a_4_16", ["layers_heads_width"]),
    ("0_4_16", ["positive"]),
    ("2_3_16", ["n_embd=16", "n_head=3", "divisible"]),
])
def test_bad_model_names(name, words):
    with pytest.raises(ValueError) as info:
        GPTConfig.from_name(name, vocab_size=10)
    for word in words:
        assert word in str(info.value)


def test_bad_config_values():
    with pytest.raises(ValueError, match="vocab_size"):
        GPTConfig(vocab_size=0)
    with pytest.raises(ValueError, match="dropout"):
        GPTConfig(vocab_size=5, dropout=1.0)
    with pytest.raises(ValueError, match="n_layer"):
        GPTConfig.from_name("2_4_16", vocab_size=5, n_layer=3)


def test_forward_shapes_and_shifted_loss():
    model = tiny()
    ids = random_ids()
    labels = ids.clone()
    labels[:, :7] = -100  # loss only on positions 7.. (predicted from 6..)
    logits, loss = model(ids, labels=labels)
    assert logits.shape == (3, 20, VOCAB)
    manual = torch.nn.functional.cross_entropy(logits[:, 6:-1].reshape(-1, VOCAB), ids[:, 7:].reshape(-1))
    assert torch.allclose(loss, manual, atol=1e-6)
    assert model(ids)[1] is None
    with pytest.raises(ValueError, match="block_size=32"):
        model(torch.zeros(1, 33, dtype=torch.long))


def test_causal_and_padding_mask():
    model = tiny()
    ids = random_ids(batch=2)
    changed = ids.clone()
    changed[:, 12:] = (changed[:, 12:] + 1) % VOCAB
    # causal: a change at position >= 12 leaves the logits before it untouched
    assert torch.equal(model(ids)[0][:, :12], model(changed)[0][:, :12])
    assert not torch.allclose(model(ids)[0][:, 12:], model(changed)[0][:, 12:])
    # left padding: masked tokens have no effect on the others, and nothing is NaN
    mask = torch.ones_like(ids)
    mask[:, :4] = 0
    other = ids.clone()
    other[:, :4] = (other[:, :4] + 3) % VOCAB
    a, b = model(ids, attention_mask=mask)[0], model(other, attention_mask=mask)[0]
    assert torch.allclose(a[:, 4:], b[:, 4:], atol=1e-6)
    assert torch.isfinite(a).all()


def test_init_and_tied_embeddings():
    model = GPT(GPTConfig.from_name("4_8_512", vocab_size=1000, block_size=64))
    assert model.lm_head.weight is model.transformer.wte.weight
    proj = model.transformer.h[0].mlp.c_proj.weight
    assert abs(proj.std().item() - 0.02 / math.sqrt(8)) < 0.001
    assert abs(model.transformer.h[0].mlp.c_fc.weight.std().item() - 0.02) < 0.001
    assert model.num_params(non_embedding=False) - model.num_params() == 64 * 512
    n = model.num_params()
    assert model.estimate_flops_per_token(seq_len=64) == 6 * n + 12 * 4 * 512 * 64


def test_to_hf_same_logits():
    for model in (tiny(), tiny(seed=3, bias=False)):
        ids = random_ids()
        hf_model = model.to_hf().eval()
        assert isinstance(hf_model, transformers.GPT2LMHeadModel)
        assert torch.allclose(model(ids)[0], hf_model(ids).logits, atol=1e-5)


def test_from_hf_same_logits():
    hf_model = tiny_hf()
    model = GPT.from_hf(hf_model).eval()
    ids = random_ids()
    assert torch.allclose(model(ids)[0], hf_model(ids).logits, atol=1e-5)
    labels = ids.clone()
    labels[:, :5] = -100
    assert torch.allclose(model(ids, labels=labels)[1], hf_model(ids, labels=labels).loss, atol=1e-5)


def test_from_hf_rejects_other_models():
    config = transformers.GPT2Config(n_layer=1, n_head=2, n_embd=16, vocab_size=VOCAB, n_positions=32,
                                     activation_function="gelu", bos_token_id=None, eos_token_id=None)
    with pytest.raises(ValueError, match="activation_function='gelu'"):
        GPT.from_hf(transformers.GPT2LMHeadModel(config))
    llama = transformers.LlamaForCausalLM(transformers.LlamaConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=2, vocab_size=VOCAB, bos_token_id=None, eos_token_id=None))
    with pytest.raises(ValueError, match="model_type='llama'"):
        GPT.from_hf(llama)


def test_state_dict_conversion_round_trips_exactly():
    state = tiny().state_dict()
    hf_state = state_dict_to_hf(state)
    assert hf_state["transformer.h.0.attn.c_attn.weight"].shape == (16, 48)  # Conv1D: (in, out)
    assert set(hf_state) == set(tiny_hf().state_dict())
    back = state_dict_from_hf(hf_state)
    assert set(back) == set(state)
    for name, tensor in state.items():
        assert torch.equal(back[name], tensor), name
    hf_original = tiny_hf().state_dict()
    hf_back = state_dict_to_hf(state_dict_from_hf(hf_original))
    for name, tensor in hf_original.items():
        assert torch.equal(hf_back[name], tensor), name


def test_save_and_load_pretrained(tmp_path):
    model = tiny(dropout=0.1)
    model.save_pretrained(tmp_path / "ckpt")
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config["model_type"] == "procgen-gpt" and config["n_embd"] == 16 and config["dropout"] == 0.1
    loaded = GPT.from_pretrained(tmp_path / "ckpt")
    assert loaded.config == model.config
    assert loaded.lm_head.weight is loaded.transformer.wte.weight
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    ids = random_ids()
    assert torch.equal(model(ids)[0], loaded.eval()(ids)[0])


def test_from_pretrained_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        GPT.from_pretrained(tmp_path / "nowhere")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "procgen-gpt", "vocab_size": 5}))
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        GPT.from_pretrained(tmp_path)


def test_training_step_reduces_loss():
    model = tiny().train()
    ids = random_ids(batch=8, length=16)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(20):
        _, loss = model(ids, labels=ids)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.5


# --- untied embeddings (the official fine-tune model) ------------------------------------------

def test_untied_embeddings_are_separate_parameters():
    model = tiny(tie_embeddings=False)
    assert model.lm_head.weight is not model.transformer.wte.weight
    assert not torch.equal(model.lm_head.weight, model.transformer.wte.weight)
    tied = tiny()
    assert model.num_params() - tied.num_params() == VOCAB * 16  # one more (V, C) matrix
    with pytest.raises(ValueError, match="tie_embeddings must be True or False"):
        GPTConfig(vocab_size=5, tie_embeddings="no")


def test_untied_round_trips_through_hf_and_safetensors(tmp_path):
    model = tiny(seed=4, tie_embeddings=False)
    ids = random_ids()
    hf_model = model.to_hf().eval()
    assert hf_model.config.tie_word_embeddings is False
    assert hf_model.lm_head.weight.data_ptr() != hf_model.transformer.wte.weight.data_ptr()
    assert torch.allclose(model(ids)[0], hf_model(ids).logits, atol=1e-5)
    back = GPT.from_hf(hf_model).eval()
    assert back.config.tie_embeddings is False
    for (name, a), (_, b) in zip(model.state_dict().items(), back.state_dict().items()):
        assert torch.equal(a, b), name
    model.save_pretrained(tmp_path / "untied")
    loaded = GPT.from_pretrained(tmp_path / "untied").eval()
    assert loaded.lm_head.weight is not loaded.transformer.wte.weight
    assert torch.equal(loaded.lm_head.weight, model.lm_head.weight)
    assert torch.equal(model(ids)[0], loaded(ids)[0])


# --- the scored-positions fast path ------------------------------------------------------------

def _ragged_labels(seed, batch=12, length=20, scored_per_row=(1, 3)):
    """Right-padded rows of random lengths whose last few positions carry labels."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, VOCAB, (batch, length), generator=generator)
    labels = torch.full_like(ids, -100)
    lengths = torch.randint(4, length + 1, (batch,), generator=generator)
    for row, n in enumerate(lengths.tolist()):
        k = int(torch.randint(scored_per_row[0], scored_per_row[1] + 1, (1,), generator=generator))
        labels[row, n - k:n] = ids[row, n - k:n]
    return ids, labels, lengths


def _loss_and_grads(model, compute):
    model.zero_grad()
    loss = compute()
    loss.backward()
    return loss.detach(), {name: p.grad.clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("groups", [1, 3, 12])
@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("per_row", [(1, 1), (1, 3), (10, 16)])  # few scored (pruned) / most scored (full)
def test_scored_forward_equals_the_full_computation(groups, tied, per_row):
    model = tiny(seed=1, tie_embeddings=tied).train()
    ids, labels, _ = _ragged_labels(seed=2, scored_per_row=per_row)
    full_loss, full_grads = _loss_and_grads(model, lambda: model(ids, labels=labels)[1])
    fast_loss, fast_grads = _loss_and_grads(
        model, lambda: model.scored_forward(ids, labels, length_groups=groups)[2])
    assert torch.allclose(full_loss, fast_loss, atol=1e-6)
    for name, grad in full_grads.items():
        assert torch.allclose(grad, fast_grads[name], atol=1e-6, rtol=1e-5), name
    # the flag that lets DDP call the fast path
    assert torch.allclose(model(ids, labels=labels, only_scored=True, length_groups=groups)[1], full_loss, atol=1e-6)


def test_scored_forward_logits_and_targets_line_up_with_forward():
    model = tiny(seed=5)
    ids, labels, _ = _ragged_labels(seed=6)
    full = model(ids)[0]
    logits, targets, _ = model.scored_forward(ids, labels, length_groups=4)
    for row in range(ids.shape[0]):
        positions = [t for t in range(ids.shape[1] - 1) if labels[row, t + 1] != -100]
        assert targets[row, :len(positions)].tolist() == [int(labels[row, t + 1]) for t in positions]
        assert (targets[row, len(positions):] == -100).all()
        assert torch.allclose(logits[row, :len(positions)], full[row, positions], atol=1e-5)


def test_scored_forward_with_a_padding_mask():
    model = tiny(seed=7)
    ids, labels, lengths = _ragged_labels(seed=8)
    mask = (torch.arange(ids.shape[1])[None, :] < lengths[:, None]).long()
    mask[:, :2] = 0  # left padding too: the mask matters now
    labels[:, :3] = -100
    full = model(ids, labels=labels, attention_mask=mask)[1]
    fast = model.scored_forward(ids, labels, attention_mask=mask, length_groups=3)[2]
    assert torch.allclose(full, fast, atol=1e-6)


def test_only_scored_needs_labels():
    with pytest.raises(ValueError, match="only_scored=True needs labels"):
        tiny()(random_ids(), only_scored=True)


# --- damaged checkpoints: one ValueError naming the file ---------------------------------------

def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _edit_config(**changes):
    def edit(directory):
        path = directory / "config.json"
        config = {**json.loads(path.read_text()), **changes}
        path.write_text(json.dumps({k: v for k, v in config.items() if v is not None}))
    return edit


def _swap_weights(config):
    def swap(directory):
        torch.manual_seed(0)
        GPT(config).save_pretrained(directory / "other")
        (directory / "other" / "model.safetensors").replace(directory / "model.safetensors")
    return swap


def _rewrite_weights(change):
    def rewrite(directory):
        from safetensors.torch import load_file, save_file

        state = load_file(str(directory / "model.safetensors"))
        change(state)
        save_file(state, str(directory / "model.safetensors"))
    return rewrite


DAMAGED_CHECKPOINTS = {  # case: (damage, the file named, words of the message)
    "weights garbage": (lambda d: (d / "model.safetensors").write_bytes(b"not safetensors" * 10),
                        "model.safetensors", ["not a readable safetensors file"]),
    "weights truncated": (lambda d: _truncate(d / "model.safetensors"), "model.safetensors", ["not a readable"]),
    "weights empty": (lambda d: (d / "model.safetensors").write_bytes(b""), "model.safetensors", ["not a readable"]),
    "weights of another size": (_swap_weights(GPTConfig.from_name("2_4_32", vocab_size=VOCAB, block_size=32)),
                                "model.safetensors", ["does not fit", "config.json", "shape"]),
    "weights lack a tensor": (_rewrite_weights(lambda s: s.pop("transformer.ln_f.bias")), "model.safetensors",
                              ["has no tensor transformer.ln_f.bias"]),
    "weights have an extra tensor": (_rewrite_weights(lambda s: s.update(extra=torch.zeros(2))),
                                     "model.safetensors", ["extra tensor extra"]),
    "config not JSON": (lambda d: (d / "config.json").write_text("{model_type: procgen"), "config.json",
                        ["not valid JSON"]),
    "config not UTF-8": (lambda d: (d / "config.json").write_bytes(b"\xff\xfe\x00{"), "config.json",
                         ["not valid JSON"]),
    "config a list": (lambda d: (d / "config.json").write_text("[1, 2]"), "config.json",
                      ["expected a JSON object", "list"]),
    "config wrong shape": (_edit_config(n_embd=32), "model.safetensors",
                           ["does not fit", "config.json", "transformer.wte.weight has shape (50, 16), the config "
                            "needs (50, 32)"]),
    "config wrong vocabulary": (_edit_config(vocab_size=7), "model.safetensors", ["transformer.wte.weight"]),
    "config bad value": (_edit_config(vocab_size="five"), "config.json", ["vocab_size must be an integer"]),
    "config bad dropout": (_edit_config(dropout="high"), "config.json", ["dropout must be in [0, 1)"]),
    "config without vocab_size": (_edit_config(vocab_size=None), "config.json", ["vocab_size is missing"]),
    "config of another model": (_edit_config(model_type="gpt2"), "config.json", ["model_type is 'gpt2'"]),
}


@pytest.mark.parametrize("case", list(DAMAGED_CHECKPOINTS))
def test_from_pretrained_names_the_damaged_file(case, tmp_path):
    from procgen.train.model import CheckpointError

    damage, name, words = DAMAGED_CHECKPOINTS[case]
    tiny().save_pretrained(tmp_path)
    damage(tmp_path)
    with pytest.raises(ValueError) as err:
        GPT.from_pretrained(tmp_path)
    message = str(err.value)
    assert isinstance(err.value, CheckpointError) and "\n" not in message, message
    assert message.startswith(str(tmp_path / name)), message
    for word in words:
        assert word in message, message


def test_save_pretrained_replaces_files_whole(tmp_path):
    """A re-save writes new files (new inodes): a hard link to the old weights keeps them."""
    tiny(seed=0).save_pretrained(tmp_path / "a")
    (tmp_path / "kept.safetensors").hardlink_to(tmp_path / "a" / "model.safetensors")
    before = (tmp_path / "kept.safetensors").read_bytes()
    tiny(seed=1).save_pretrained(tmp_path / "a")
    assert (tmp_path / "kept.safetensors").read_bytes() == before
    assert (tmp_path / "a" / "model.safetensors").read_bytes() != before
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["config.json", "model.safetensors"]
