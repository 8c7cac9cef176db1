"""procgen.train.transfer: exactly the named tensors move, and nothing else changes."""

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from procgen.train.model import GPT, GPTConfig  # noqa: E402
from procgen.train.transfer import (add_noise, assemble, freeze, parameter_names,  # noqa: E402
                                    shuffle_weights, transfer)

torch.set_num_threads(1)


def gpt(seed, name="2_4_16", vocab=20, **overrides):
    torch.manual_seed(seed)
    model = GPT(GPTConfig.from_name(name, vocab_size=vocab, block_size=32, **overrides))
    with torch.no_grad():  # LayerNorms start at exactly 1/0: make every tensor distinct per seed
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    return model


def llama(seed, vocab=50, layers=2, width=16):
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(hidden_size=width, intermediate_size=32, num_hidden_layers=layers,
                                      num_attention_heads=2, num_key_value_heads=2, vocab_size=vocab,
                                      bos_token_id=None, eos_token_id=None, pad_token_id=None)
    model = transformers.LlamaForCausalLM(config)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    return model


def hf_gpt2(seed, vocab=20):
    torch.manual_seed(seed)
    config = transformers.GPT2Config(n_layer=2, n_head=4, n_embd=16, vocab_size=vocab, n_positions=32,
                                     activation_function="gelu_new", bos_token_id=None, eos_token_id=None)
    return transformers.GPT2LMHeadModel(config)


def snapshot(model):
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def assert_moved(dst, before, src_state, expected, src_names=None):
    """Tensors in ``expected`` equal the source's, all others are dst's own, bit for bit."""
    src_names = src_names or {}
    for name, p in dst.named_parameters():
        if name in expected:
            source = src_state[src_names.get(name, name)]
            assert torch.equal(p, source), f"{name} was not copied"
            assert not torch.equal(p, before[name]), f"{name}: test cannot tell src from dst"
        else:
            assert torch.equal(p, before[name]), f"{name} changed but was not named"


LLAMA_EXPECTED = {
    "attn": {f"model.layers.{i}.self_attn.{x}_proj.weight" for i in range(2) for x in "qkvo"},
    "mlp": {f"model.layers.{i}.mlp.{x}_proj.weight" for i in range(2) for x in ("gate", "up", "down")},
    "ln": {f"model.layers.{i}.{x}_layernorm.weight" for i in range(2) for x in ("input", "post_attention")}
    | {"model.norm.weight"},
    "embed": {"model.embed_tokens.weight", "lm_head.weight"},
}


@pytest.mark.parametrize("components", ["attn", "mlp", "ln", "embed", ["attn", "mlp"], "all"])
def test_llama_moves_exactly_the_named_tensors(components):
    src, dst = llama(1), llama(2)
    before = snapshot(dst)
    report = transfer(src, dst, components)
    names = [components] if isinstance(components, str) else components
    names = ["attn", "mlp", "ln"] if names == ["all"] else names
    expected = set().union(*(LLAMA_EXPECTED[c] for c in names))
    assert set(report["touched"]) == expected == set(report["copied"])
    assert_moved(dst, before, snapshot(src), expected)


def test_llama_has_no_positions():
    with pytest.raises(ValueError, match="no 'pos' parameters.*rotary"):
        transfer(llama(1), llama(2), "pos")


GPT_EXPECTED = {
    "attn": {f"transformer.h.{i}.attn.{x}.{w}" for i in range(2) for x in ("c_attn", "c_proj")
             for w in ("weight", "bias")},
    "mlp": {f"transformer.h.{i}.mlp.{x}.{w}" for i in range(2) for x in ("c_fc", "c_proj")
            for w in ("weight", "bias")},
    "ln": {f"transformer.h.{i}.{x}.{w}" for i in range(2) for x in ("ln_1", "ln_2") for w in ("weight", "bias")}
    | {"transformer.ln_f.weight", "transformer.ln_f.bias"},
    "pos": {"transformer.wpe.weight"},
    "embed": {"transformer.wte.weight"},
}


@pytest.mark.parametrize("components", ["attn", "mlp", "ln", "pos", "embed", "all"])
def test_gpt_moves_exactly_the_named_tensors(components):
    src, dst = gpt(1), gpt(2)
    before = snapshot(dst)
    report = transfer(src, dst, components)
    names = ["attn", "mlp", "ln", "pos"] if components == "all" else [components]
    expected = set().union(*(GPT_EXPECTED[c] for c in names))
    assert set(report["touched"]) == expected
    assert_moved(dst, before, snapshot(src), expected)
    assert sorted(parameter_names(dst, components)) == sorted(expected)


def test_embeddings_mean_random_keep():
    src, dst = gpt(1, vocab=12), gpt(2, vocab=40)  # vocab sizes differ: fine for mean/random
    before = snapshot(dst)
    report = transfer(src, dst, "all", embeddings="mean")
    assert report["embedding_params"] == ["transformer.wte.weight"]
    mean = src.transformer.wte.weight.detach().mean(dim=0)
    rows = dst.transformer.wte.weight.detach()
    assert rows.shape == (40, 16) and torch.allclose(rows, mean.expand(40, 16), atol=0, rtol=0)
    assert dst.lm_head.weight is dst.transformer.wte.weight  # still tied

    transfer(src, dst, "attn", embeddings="random", seed=5)
    rows = dst.transformer.wte.weight.detach()
    assert abs(rows.std().item() - 0.02) < 0.004 and not torch.equal(rows[0], rows[1])
    transfer(src, dst, "attn", embeddings="keep")
    assert torch.equal(dst.transformer.wte.weight, rows)
    assert not torch.equal(rows, before["transformer.wte.weight"])


def test_embeddings_mean_untied_llama():
    src, dst = llama(1, vocab=30), llama(2, vocab=50)
    report = transfer(src, dst, "attn", embeddings="mean")
    assert report["embedding_params"] == ["model.embed_tokens.weight", "lm_head.weight"]
    mean = src.model.embed_tokens.weight.detach().mean(dim=0)  # official: output rows from the input embedding
    for dst_module in (dst.model.embed_tokens, dst.lm_head):
        assert torch.equal(dst_module.weight.detach(), mean.expand(50, 16))
    assert not torch.equal(mean, src.lm_head.weight.detach().mean(dim=0))


def test_layer_mapping_deeper_source():
    src, dst = gpt(1, name="4_4_16"), gpt(2)
    with pytest.raises(ValueError, match="4 layers but the target only 2.*layers="):
        transfer(src, dst, "attn")
    before = snapshot(dst)
    report = transfer(src, dst, "mlp", layers={3: 0})
    assert report["layers"] == {3: 0}
    expected = {n for n in GPT_EXPECTED["mlp"] if ".h.0." in n}
    names = {n: n.replace(".h.0.", ".h.3.") for n in expected}
    assert report["copied"] == names
    assert_moved(dst, before, snapshot(src), expected, names)


def test_gpt_and_hf_gpt2_share_patterns():
    src, dst = gpt(1), hf_gpt2(2)
    report = transfer(src, dst, "all")
    ids = torch.randint(0, 20, (2, 10))
    dst.eval()
    src.eval()
    transfer(src, dst, "embed")
    assert "transformer.h.1.attn.c_attn.weight" in report["touched"]
    assert torch.allclose(src(ids)[0], dst(ids).logits, atol=1e-5)  # Conv1D transposed correctly
    back = gpt(3)
    transfer(dst, back, ["all", "embed"])
    assert torch.allclose(back.eval()(ids)[0], dst(ids).logits, atol=1e-5)


def test_assemble_two_donors():
    donor_a, donor_b, into = gpt(1, vocab=8), gpt(2, vocab=12), gpt(3, vocab=40)
    before = snapshot(into)
    model = assemble({"attn": donor_a, "mlp": donor_b}, into=into, embeddings="mean")
    assert model is into
    for name, p in into.named_parameters():
        if name in GPT_EXPECTED["attn"]:
            assert torch.equal(p, dict(donor_a.named_parameters())[name]), name
        elif name in GPT_EXPECTED["mlp"]:
            assert torch.equal(p, dict(donor_b.named_parameters())[name]), name
        elif name == "transformer.wte.weight":
            assert torch.equal(p[5], donor_a.transformer.wte.weight.detach().mean(dim=0))
        else:
            assert torch.equal(p, before[name]), name
    report = into.transfer_report
    assert set(report["donors"]) == {"attn", "mlp"}
    assert set(report["touched"]) == GPT_EXPECTED["attn"] | GPT_EXPECTED["mlp"] | {"transformer.wte.weight"}


def test_assemble_checks_before_writing():
    into = gpt(3)
    before = snapshot(into)
    with pytest.raises(ValueError, match="'attn' is supplied by both"):
        assemble({"attn": gpt(1), "all": gpt(2)}, into=into)
    with pytest.raises(ValueError, match="width mismatch"):
        assemble({"attn": gpt(1), "mlp": gpt(2, name="2_4_32")}, into=into)
    for name, p in into.named_parameters():
        assert torch.equal(p, before[name]), name


def test_freeze_survives_an_optimizer_step():
    model = gpt(1)
    frozen = freeze(model, ["attn", "ln"])
    assert set(frozen) == GPT_EXPECTED["attn"] | GPT_EXPECTED["ln"]
    before = snapshot(model)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2,
                                  weight_decay=0.1)
    ids = torch.randint(0, 20, (4, 16))
    _, loss = model(ids, labels=ids)
    loss.backward()
    optimizer.step()
    for name, p in model.named_parameters():
        if name in frozen:
            assert torch.equal(p, before[name]) and not p.requires_grad, name
        else:
            assert not torch.equal(p, before[name]), name


def test_shuffle_weights_permutes_within_tensors():
    model = gpt(1)
    before = snapshot(model)
    touched = shuffle_weights(model, "mlp", seed=3)
    assert set(touched) == GPT_EXPECTED["mlp"]
    for name, p in model.named_parameters():
        if name in touched:
            assert torch.equal(p.flatten().sort().values, before[name].flatten().sort().values), name
            assert not torch.equal(p, before[name]), name
        else:
            assert torch.equal(p, before[name]), name
    again = gpt(1)
    shuffle_weights(again, "mlp", seed=3)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), again.parameters()))  # seeded


def test_add_noise_has_the_requested_scale():
    model = gpt(1, name="2_4_64")
    before = snapshot(model)
    touched = add_noise(model, "attn", std=0.05, seed=1)
    assert set(touched) == {n for n in before if ".attn." in n}
    deltas = torch.cat([(p.detach() - before[n]).flatten() for n, p in model.named_parameters() if n in touched])
    assert abs(deltas.std().item() - 0.05) < 0.005 and abs(deltas.mean().item()) < 0.005
    for name, p in model.named_parameters():
        if name not in touched:
            assert torch.equal(p, before[name]), name
    with pytest.raises(ValueError, match="std"):
        add_noise(model, "attn", std=-1.0)


@pytest.mark.parametrize("call, words", [
    (lambda: transfer(gpt(1), gpt(2), "attention"), ["unknown component 'attention'", "attn, mlp, ln"]),
    (lambda: freeze(gpt(1), ["mlp", "heads"]), ["'heads'", "embed, pos, all"]),
    (lambda: transfer(gpt(1), gpt(2, name="2_4_32"), "attn"), ["width mismatch", "16", "32"]),
    (lambda: transfer(gpt(1), gpt(2, name="2_4_32"), "mlp", layers={0: 0}), ["width mismatch"]),
    (lambda: transfer(gpt(1), gpt(2, name="2_2_16"), "attn"), ["head-count mismatch", "4", "2"]),
    (lambda: transfer(gpt(1, name="3_4_16"), gpt(2), "mlp"), ["3 layers", "only 2", "layers="]),
    (lambda: transfer(gpt(1), gpt(2), "mlp", layers={0: 2}), ["target layer 2 does not exist", "0..1"]),
    (lambda: transfer(gpt(1), gpt(2), "mlp", layers={5: 0}), ["source layer 5 does not exist"]),
    (lambda: transfer(gpt(1), gpt(2), "mlp", layers={0: 1, 1: 1}), ["same target layer"]),
    (lambda: transfer(gpt(1), gpt(2), "attn", embeddings="zero"), ["embeddings", "keep, random, mean"]),
    (lambda: transfer(gpt(1), gpt(2), "embed", embeddings="mean"), ["contradicts"]),
    (lambda: transfer(gpt(1, vocab=8), gpt(2), "embed"), ["shape mismatch", "vocab sizes differ"]),
    (lambda: transfer(gpt(1), gpt(2, bias=False), "mlp"), ["no tensor", "biases"]),
    (lambda: transfer(gpt(1), llama(2), "attn"), ["gpt2 and a llama"]),
    (lambda: transfer(torch.nn.Linear(2, 2), gpt(2), "attn"), ["unsupported model Linear"]),
])
def test_bad_inputs(call, words):
    with pytest.raises(ValueError) as info:
        call()
    for word in words:
        assert word in str(info.value)


def test_failed_transfer_writes_nothing():
    src, dst = gpt(1), gpt(2, bias=False)
    before = snapshot(dst)
    with pytest.raises(ValueError):
        transfer(src, dst, ["attn", "mlp"], embeddings="mean")
    for name, p in dst.named_parameters():
        assert torch.equal(p, before[name]), name


def test_positions_of_different_context_lengths_share_their_first_rows():
    torch.manual_seed(0)
    short, long = (GPT(GPTConfig.from_name("2_4_16", vocab_size=20, block_size=n)) for n in (16, 48))
    before = long.transformer.wpe.weight.detach().clone()
    report = transfer(short, long, "pos")
    assert report["copied"] == {"transformer.wpe.weight": "transformer.wpe.weight[:16]"}
    assert torch.equal(long.transformer.wpe.weight[:16], short.transformer.wpe.weight)
    assert torch.equal(long.transformer.wpe.weight[16:], before[16:])
    transfer(long, short, "all")
    assert torch.equal(short.transformer.wpe.weight, long.transformer.wpe.weight[:16])
