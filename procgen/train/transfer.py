"""Move warmed-up weights between models: transfer, multi-donor assembly, freezing, controls.

Works by parameter-name patterns on procgen GPTs, Hugging Face GPT-2 (``GPT2LMHeadModel``) and
Llama-style models (``LlamaForCausalLM`` and relatives with ``model.layers.{i}.self_attn.q_proj``
names), including ``DistributedDataParallel`` / ``torch.compile`` wrappers. Components:

====== ================================================== ===============================================
name   GPT-2 family (procgen GPT, HF GPT-2)               Llama family
====== ================================================== ===============================================
attn   ``h.{i}.attn.c_attn``, ``h.{i}.attn.c_proj``       ``layers.{i}.self_attn.{q,k,v,o}_proj``
mlp    ``h.{i}.mlp.c_fc``, ``h.{i}.mlp.c_proj``           ``layers.{i}.mlp.{gate,up,down}_proj``
ln     ``h.{i}.ln_1``, ``h.{i}.ln_2``, ``ln_f``           ``input_layernorm``, ``post_attention_layernorm``,
                                                          ``model.norm``
embed  ``wte`` (+ ``lm_head`` if untied)                  ``embed_tokens`` (+ ``lm_head`` if untied)
pos    ``wpe``                                            (none: rotary positions)
all    attn + mlp + ln + pos                              attn + mlp + ln
====== ================================================== ===============================================

``all`` leaves out the token embeddings on purpose: they belong to a vocabulary, and a procedural
warm-up's vocabulary is not the target's. Name ``embed`` to copy them (equal vocab sizes), or use
``embeddings="mean" | "random"``.

A procgen GPT and a Hugging Face GPT-2 are one family: their names match, and GPT-2's transposed
``Conv1D`` weights are turned the right way round when copying between them.

>>> from procgen.train.model import GPT, GPTConfig
>>> warm = GPT(GPTConfig(vocab_size=8))                 # e.g. after a warm-up on Dyck
>>> fresh = GPT(GPTConfig(vocab_size=50))
>>> report = transfer(warm, fresh, "attn", embeddings="mean")
>>> report["copied"]["transformer.h.0.attn.c_attn.weight"]
'transformer.h.0.attn.c_attn.weight'
"""

from __future__ import annotations

import math
import re

import torch

COMPONENTS = ("attn", "mlp", "ln", "embed", "pos", "all")
EMBEDDING_POLICIES = ("keep", "random", "mean")
_ALL = ("attn", "mlp", "ln", "pos")
_LAYER_COMPONENTS = ("attn", "mlp", "ln")
_INIT_STD = 0.02  # GPT-2 / Llama initializer_range

# per family: how to recognise it, where its layers are, and which (sub)names form each component
_FAMILIES = {
    "gpt2": dict(
        marker=re.compile(r"(?:^|\.)h\.\d+\.attn\.c_attn\.weight$"),
        layer=re.compile(r"(?:^|\.)h\.(\d+)\.(.+)$"),
        in_layer=(("attn", re.compile(r"attn\.")), ("mlp", re.compile(r"mlp\.")),
                  ("ln", re.compile(r"ln_\d+\."))),
        outside=(("embed", "input", re.compile(r"(?:^|\.)wte\.weight$")),
                 ("embed", "output", re.compile(r"(?:^|\.)lm_head\.weight$")),
                 ("pos", "pos", re.compile(r"(?:^|\.)wpe\.weight$")),
                 ("ln", "final_norm.", re.compile(r"(?:^|\.)ln_f\.(\w+)$"))),
    ),
    "llama": dict(
        marker=re.compile(r"(?:^|\.)layers\.\d+\.self_attn\.q_proj\.weight$"),
        layer=re.compile(r"(?:^|\.)layers\.(\d+)\.(.+)$"),
        in_layer=(("attn", re.compile(r"self_attn\.")), ("mlp", re.compile(r"mlp\.")),
                  ("ln", re.compile(r"\w*norm\."))),
        outside=(("embed", "input", re.compile(r"(?:^|\.)embed_tokens\.weight$")),
                 ("embed", "output", re.compile(r"(?:^|\.)lm_head\.weight$")),
                 ("ln", "final_norm.", re.compile(r"(?:^|\.)norm\.(\w+)$"))),
    ),
}


class _Tensor:
    """One classified parameter: its component, layer (None outside the blocks) and a key that
    names the same tensor in any model of the family."""

    def __init__(self, name, param, component, layer, key, transposed):
        self.name, self.param, self.component = name, param, component
        self.layer, self.key, self.transposed = layer, key, transposed

    def logical(self):
        """The tensor in nn.Linear orientation (GPT-2's Conv1D stores (in, out))."""
        value = self.param.detach()
        return value.t() if self.transposed else value


def _family(model) -> str:
    names = [name for name, _ in model.named_parameters()]
    for family, spec in _FAMILIES.items():
        if any(spec["marker"].search(name) for name in names):
            return family
    raise ValueError(f"unsupported model {type(model).__name__}: expected a procgen GPT, a Hugging Face "
                     f"GPT-2 or a Llama-style model (parameters named like 'transformer.h.0.attn.c_attn' "
                     f"or 'model.layers.0.self_attn.q_proj')")


def _classify(model) -> tuple[str, list[_Tensor]]:
    family = _family(model)
    spec = _FAMILIES[family]
    tensors = []
    for name, param in model.named_parameters():  # tied weights appear once
        owner = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
        transposed = type(owner).__name__ == "Conv1D" and name.endswith(".weight")
        match = spec["layer"].search(name)
        if match:
            layer, key = int(match.group(1)), match.group(2)
            component = next((c for c, pattern in spec["in_layer"] if pattern.match(key)), None)
            if component is not None:
                tensors.append(_Tensor(name, param, component, layer, key, transposed))
            continue
        for component, key, pattern in spec["outside"]:
            found = pattern.search(name)
            if found:
                key = key + found.group(1) if found.groups() else key
                tensors.append(_Tensor(name, param, component, None, key, transposed))
                break
    return family, tensors


def _components(components) -> tuple[tuple[str, ...], set[str]]:
    """(expanded component names, the ones named explicitly)."""
    if isinstance(components, str):
        components = [components]
    try:
        names = list(components)
    except TypeError:
        names = [components]
    unknown = [c for c in names if c not in COMPONENTS]
    if not names or unknown:
        problem = f"unknown component {unknown[0]!r}" if unknown else "no component named"
        raise ValueError(f"components: {problem}; valid components are {', '.join(COMPONENTS)}")
    expanded = []
    for name in names:
        for component in (_ALL if name == "all" else (name,)):
            if component not in expanded:
                expanded.append(component)
    return tuple(expanded), set(names) - {"all"}


def _select(model, components, what: str) -> tuple[str, list[_Tensor]]:
    """The classified tensors of ``model`` in ``components``; an explicitly named component the
    model lacks (``pos`` on Llama) is an error."""
    wanted, explicit = _components(components)
    family, tensors = _classify(model)
    missing = sorted(explicit - {t.component for t in tensors})
    if missing:
        why = " (it uses rotary positions)" if missing[0] == "pos" else ""
        raise ValueError(f"components: {what} ({type(model).__name__}, {family} family) has no "
                         f"{missing[0]!r} parameters{why}")
    return family, [t for t in tensors if t.component in wanted]


def _layer_count(tensors) -> int:
    layers = {t.layer for t in tensors if t.layer is not None}
    return max(layers) + 1 if layers else 0


def _config(model):
    for attribute in ("module", "_orig_mod"):  # DistributedDataParallel, torch.compile
        model = getattr(model, attribute, model)
    return getattr(model, "config", None)


def _heads(model):
    config = _config(model)
    return getattr(config, "n_head", None) or getattr(config, "num_attention_heads", None)


def _layer_map(layers, n_src: int, n_dst: int) -> dict[int, int]:
    if layers is None:
        if n_src > n_dst:
            raise ValueError(f"layers: the source has {n_src} layers but the target only {n_dst}; pass "
                             f"layers={{src_layer: dst_layer, ...}} to choose which go where")
        return {i: i for i in range(n_src)}
    if not isinstance(layers, dict) or not layers:
        raise ValueError(f"layers must be a non-empty dict {{src_layer: dst_layer}}, got {layers!r}")
    for s, d in layers.items():
        for value, side, count in ((s, "source", n_src), (d, "target", n_dst)):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < count:
                raise ValueError(f"layers: {side} layer {value!r} does not exist (the {side} has {count} "
                                 f"layers: 0..{count - 1})")
    if len(set(layers.values())) != len(layers):
        raise ValueError(f"layers: two source layers map to the same target layer in {layers!r}")
    return dict(layers)


def _width(tensors) -> int:
    return next(t.param.shape[1] for t in tensors if t.key == "input")


def _copy_plan(src, dst, components, layers=None) -> tuple[list, dict]:
    """Validate everything and list the copies (dst tensor, value, src name) without writing."""
    src_family, src_all = _classify(src)
    dst_family, dst_all = _classify(dst)
    if src_family != dst_family:
        raise ValueError(f"cannot transfer between a {src_family} and a {dst_family} model "
                         f"({type(src).__name__} -> {type(dst).__name__}): parameter layouts differ")
    _, src_sel = _select(src, components, "the source")
    _, dst_sel = _select(dst, components, "the target")
    wanted, _ = _components(components)
    if _width(src_all) != _width(dst_all):
        raise ValueError(f"width mismatch: the source has width {_width(src_all)}, the target "
                         f"{_width(dst_all)}; weights can only move between models of equal width")
    if "attn" in wanted and _heads(src) != _heads(dst):
        raise ValueError(f"head-count mismatch: the source has {_heads(src)} attention heads, the target "
                         f"{_heads(dst)}; attention weights split into heads differently cannot be moved")
    moves_layers = any(c in _LAYER_COMPONENTS for c in wanted)
    layer_map = _layer_map(layers, _layer_count(src_all), _layer_count(dst_all)) \
        if moves_layers or layers is not None else {}
    src_for_dst_layer = {d: s for s, d in layer_map.items()}

    by_key = {(t.layer, t.key): t for t in src_sel}
    used = set()
    plan = []
    for t in dst_sel:
        if t.layer is not None and t.layer not in src_for_dst_layer:
            continue  # a target layer no source layer maps to keeps its weights
        source_layer = src_for_dst_layer.get(t.layer) if t.layer is not None else None
        source = by_key.get((source_layer, t.key))
        if source is None and t.key == "output":
            source = by_key.get((None, "input"))  # tied source -> untied target: its output layer is wte
        if source is None:
            raise ValueError(f"the source has no tensor for the target's {t.name!r} "
                             f"(e.g. one model has biases and the other has none)")
        used.add(source.name)
        value, label = source.logical(), source.name
        expected = tuple(t.param.shape[::-1]) if t.transposed else tuple(t.param.shape)
        if t.key == "pos" and value.shape[1:] == expected[1:]:
            # contexts of different lengths: positions 0..n-1 mean the same in both, copy those rows
            rows = min(value.shape[0], expected[0])
            if value.shape[0] != expected[0]:
                label = f"{source.name}[:{rows}]"
            value = value[:rows]
        elif tuple(value.shape) != expected:
            hint = " (vocab sizes differ: use embeddings='mean' or 'random')" if t.component == "embed" else ""
            raise ValueError(f"shape mismatch: source {source.name!r} {tuple(source.param.shape)} vs target "
                             f"{t.name!r} {tuple(t.param.shape)}{hint}")
        if src is dst:
            value = value.clone()  # a model onto itself: read everything before writing anything
        plan.append((t, value.t() if t.transposed else value, label))
    mapped_sources = set(layer_map) | {None}
    left = [s.name for s in src_sel if s.name not in used and s.layer in mapped_sources and s.key != "output"]
    if left:
        raise ValueError(f"the target has no tensor for the source's {left[0]!r} "
                         f"(e.g. one model has biases and the other has none)")
    return plan, layer_map


def _embedding_plan(src, dst, embeddings: str, seed: int) -> list:
    """Copies that apply the token-embedding policy to ``dst``'s embedding (and untied lm_head)."""
    if embeddings not in EMBEDDING_POLICIES:
        raise ValueError(f"embeddings must be one of {', '.join(EMBEDDING_POLICIES)}, got {embeddings!r}")
    if embeddings == "keep":
        return []
    _, src_embed = _select(src, "embed", "the source")
    _, dst_embed = _select(dst, "embed", "the target")
    if _width(src_embed) != _width(dst_embed):
        raise ValueError(f"width mismatch: the source has width {_width(src_embed)}, the target "
                         f"{_width(dst_embed)}; weights can only move between models of equal width")
    generator = torch.Generator().manual_seed(seed)
    src_rows = {t.key: t.logical() for t in src_embed}
    plan = []
    for t in dst_embed:
        if embeddings == "mean":
            # as the official harness: input and output rows both from the source's *input* embedding
            value = src_rows["input"].float().mean(dim=0).expand(t.param.shape)  # (V_dst, C)
        else:
            value = torch.randn(t.param.shape, generator=generator) * _INIT_STD
        plan.append((t, value, f"{embeddings} of source embeddings" if embeddings == "mean" else "random"))
    return plan


def _apply(plan) -> None:
    with torch.no_grad():
        for t, value, _ in plan:
            t.param[:value.shape[0]].copy_(value)  # all rows, or the first n of a longer wpe


def _check_embed_policy(wanted, embeddings) -> None:
    if "embed" in wanted and embeddings != "keep":
        raise ValueError(f"embeddings={embeddings!r} contradicts copying the 'embed' component; use one "
                         f"or the other")


def transfer(src, dst, components, embeddings: str = "keep", layers: dict | None = None,
             seed: int = 0) -> dict:
    """Copy the ``components`` of ``src``'s layers into ``dst`` in place; return a report.

    Parameters:
      src, dst: procgen GPTs, HF GPT-2 or Llama-style models, of one family and equal width.
      components: a component name or a list of them (``attn``, ``mlp``, ``ln``, ``embed``, ``pos``,
        ``all``); see the module docstring.
      embeddings: ``dst``'s token embeddings (and untied ``lm_head``): ``"keep"`` (default) leaves them,
        ``"mean"`` sets every row (of the input embedding and of an untied output layer) to the mean
        of ``src``'s input-embedding rows, as the paper's official harness does (vocab sizes may differ),
        ``"random"`` re-draws them from N(0, 0.02) with ``seed``.
      layers: ``{src_layer: dst_layer}``; default the identity, which needs ``src`` to have no more
        layers than ``dst``. Target layers not mapped to keep their weights; ``ln_f``/``wpe`` are
        copied whenever ``ln``/``pos`` are named. Position embeddings of different context lengths
        share their first ``min(T_src, T_dst)`` rows (the copied name reads ``wpe.weight[:T]``).
      seed: seed of ``embeddings="random"`` (default 0).

    Returns ``{"components", "layers", "copied": {dst_name: src_name}, "embeddings",
    "embedding_params", "touched"}``; ``touched`` lists every parameter of ``dst`` that was written.
    Nothing is written unless every check passes.

    >>> from procgen.train.model import GPT, GPTConfig
    >>> a, b = GPT(GPTConfig(vocab_size=8, n_layer=4)), GPT(GPTConfig(vocab_size=8, n_layer=2))
    >>> sorted(transfer(a, b, "mlp", layers={2: 0, 3: 1})["layers"].items())
    [(2, 0), (3, 1)]
    """
    wanted, _ = _components(components)
    _check_embed_policy(wanted, embeddings)
    plan, layer_map = _copy_plan(src, dst, components, layers)
    embedding_plan = _embedding_plan(src, dst, embeddings, seed)
    _apply(plan + embedding_plan)
    return _report(wanted, layer_map, plan, embeddings, embedding_plan)


def _report(wanted, layer_map, plan, embeddings, embedding_plan) -> dict:
    copied = {t.name: source for t, _, source in plan}
    embedding_params = [t.name for t, _, _ in embedding_plan]
    return {"components": list(wanted), "layers": layer_map, "copied": copied, "embeddings": embeddings,
            "embedding_params": embedding_params, "touched": list(copied) + embedding_params}


def assemble(donors: dict, into, embeddings: str = "keep", layers: dict | None = None, seed: int = 0):
    """Build ``into`` from several donors, e.g. attention from one warm-up and MLPs from another.

    ``donors`` maps a component name (or ``"all"``) to the model that supplies it; the components
    must not overlap. ``embeddings``/``layers``/``seed`` are as in :func:`transfer`; the
    ``"mean"`` embedding comes from the first donor. Every check runs before anything is written.
    Returns ``into``; the report (per donor, as :func:`transfer`'s) is in ``into.transfer_report``.

    >>> from procgen.train.model import GPT, GPTConfig
    >>> dyck, sort = GPT(GPTConfig(vocab_size=8)), GPT(GPTConfig(vocab_size=12))
    >>> model = assemble({"attn": dyck, "mlp": sort}, into=GPT(GPTConfig(vocab_size=50)), embeddings="mean")
    >>> sorted(model.transfer_report["donors"])
    ['attn', 'mlp']
    """
    if not isinstance(donors, dict) or not donors:
        raise ValueError(f"donors must be a non-empty dict {{component: model}}, got {donors!r}")
    claimed = {}
    for key in donors:
        wanted, _ = _components(key)
        _check_embed_policy(wanted, embeddings)
        for component in wanted:
            if component in claimed:
                raise ValueError(f"donors: component {component!r} is supplied by both {claimed[component]!r} "
                                 f"and {key!r}")
            claimed[component] = key
    plans = {key: _copy_plan(donor, into, key, layers) for key, donor in donors.items()}
    embedding_plan = _embedding_plan(next(iter(donors.values())), into, embeddings, seed)
    for plan, _ in plans.values():
        _apply(plan)
    _apply(embedding_plan)
    reports = {key: _report(_components(key)[0], layer_map, plan, "keep", [])
               for key, (plan, layer_map) in plans.items()}
    embedding_params = [t.name for t, _, _ in embedding_plan]
    into.transfer_report = {
        "donors": reports, "embeddings": embeddings, "embedding_params": embedding_params,
        "touched": [name for r in reports.values() for name in r["touched"]] + embedding_params}
    return into


def parameter_names(model, components) -> list[str]:
    """Names of ``model``'s parameters in ``components`` (tied weights once).

    >>> from procgen.train.model import GPT, GPTConfig
    >>> parameter_names(GPT(GPTConfig(vocab_size=8, n_layer=1)), "pos")
    ['transformer.wpe.weight']
    """
    return [t.name for t in _select(model, components, "the model")[1]]


def freeze(model, components) -> list[str]:
    """Set ``requires_grad=False`` on the ``components`` of ``model``; return their names.

    >>> from procgen.train.model import GPT, GPTConfig
    >>> len(freeze(GPT(GPTConfig(vocab_size=8, n_layer=1)), "attn"))
    4
    """
    _, tensors = _select(model, components, "the model")
    for t in tensors:
        t.param.requires_grad_(False)
    return [t.name for t in tensors]


def shuffle_weights(model, components, seed: int = 0) -> list[str]:
    """Control: permute the entries within each tensor of ``components`` (same values, structure
    destroyed), with a generator seeded by ``seed``. Returns the names touched.

    >>> from procgen.train.model import GPT, GPTConfig
    >>> shuffle_weights(GPT(GPTConfig(vocab_size=8, n_layer=1)), "mlp")[0]
    'transformer.h.0.mlp.c_fc.weight'
    """
    _, tensors = _select(model, components, "the model")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in tensors:
            flat = t.param.detach().reshape(-1)
            order = torch.randperm(flat.numel(), generator=generator).to(flat.device)
            t.param.copy_(flat[order].view_as(t.param))
    return [t.name for t in tensors]


def add_noise(model, components, std: float, seed: int = 0) -> list[str]:
    """Control: add N(0, ``std``^2) noise (seeded by ``seed``) to every tensor of ``components``.
    Returns the names touched.

    >>> from procgen.train.model import GPT, GPTConfig
    >>> add_noise(GPT(GPTConfig(vocab_size=8, n_layer=1)), "ln", std=0.01)
    ['transformer.h.0.ln_1.weight', 'transformer.h.0.ln_1.bias', 'transformer.h.0.ln_2.weight', \
'transformer.h.0.ln_2.bias', 'transformer.ln_f.weight', 'transformer.ln_f.bias']
    """
    if isinstance(std, bool) or not isinstance(std, (int, float)) or not math.isfinite(std) or std < 0:
        raise ValueError(f"std must be a finite number >= 0, got {std!r}")
    _, tensors = _select(model, components, "the model")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in tensors:
            noise = torch.randn(t.param.shape, generator=generator) * std
            t.param.add_(noise.to(device=t.param.device, dtype=t.param.dtype))
    return [t.name for t in tensors]
