"""A minimal GPT, nanoGPT-style: one file, no framework.

Pre-LN transformer blocks, learned absolute positions, causal scaled-dot-product attention, a
4x-wide tanh-GELU MLP and tied (or, as an option, untied) input/output embeddings -- GPT-2's
architecture exactly, so a model
converts to and from ``transformers.GPT2LMHeadModel`` with the same logits. Parameter names follow
GPT-2 (``transformer.h.0.attn.c_attn.weight`` ...); the only difference is that GPT-2 stores its
projections as ``Conv1D`` (weight of shape ``(in, out)``) where we use ``nn.Linear`` (``(out, in)``),
which :func:`state_dict_to_hf` / :func:`state_dict_from_hf` transpose.

:meth:`GPT.scored_forward` is the fast training path for probes that score a few positions per row
(the haystack scores one of 62): the last block computes its attention output and MLP only at the
positions that predict a label (its keys and values still come from every position), and the output
layer runs only there. It gives the same loss and gradients as :meth:`GPT.forward`.

>>> config = GPTConfig.from_name("2_4_16", vocab_size=10)
>>> model = GPT(config)
>>> logits, loss = model(torch.zeros(1, 8, dtype=torch.long), labels=torch.zeros(1, 8, dtype=torch.long))
>>> tuple(logits.shape)
(1, 8, 10)

Shapes in comments: B batch, T time (sequence), C width (n_embd), V vocab, nh heads, hs head size.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn as nn
from torch.nn import functional as F

from procgen._checks import check_int
from procgen._files import atomic_open

MODEL_TYPE = "procgen-gpt"
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
IGNORE_INDEX = -100  # label value that carries no loss (Hugging Face convention)

# GPT-2 keeps these as Conv1D, i.e. transposed relative to nn.Linear
_CONV1D_SUFFIXES = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used as it is: damaged, truncated, or not matching the
    files it belongs with. The message names the file; ``procgen train`` reports it in one line
    with exit status 1 (a bad file), where other ValueErrors exit 2 (a bad option)."""


@dataclass
class GPTConfig:
    """Size and regularisation of a :class:`GPT`.

    Parameters: ``vocab_size``; ``block_size`` (256) the longest sequence (learned positions);
    ``n_layer`` (2), ``n_head`` (4), ``n_embd`` (16, divisible by ``n_head``); ``dropout`` (0.0) on
    embeddings, attention and residuals; ``bias`` (True) in linear layers and LayerNorms;
    ``tie_embeddings`` (True): the output layer shares the token embedding's weights (GPT-2's
    default; the paper's fine-tune models are untied).

    >>> GPTConfig.from_name("12_12_768", vocab_size=50257).n_embd
    768
    """

    vocab_size: int
    block_size: int = 256
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 16
    dropout: float = 0.0
    bias: bool = True
    tie_embeddings: bool = True

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            setattr(self, name, check_int(getattr(self, name), name, 1))
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} must be divisible by n_head={self.n_head}")
        dropout = self.dropout
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        for name in ("bias", "tie_embeddings"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")

    @classmethod
    def from_name(cls, name: str, vocab_size: int, block_size: int = 256, **overrides) -> GPTConfig:
        """Config from a "layers_heads_width" size name, e.g. "2_4_16", "4_8_512", "12_12_768".

        ``overrides`` set the other fields (``dropout``, ``bias``, ``tie_embeddings``).

        >>> GPTConfig.from_name("4_8_512", vocab_size=100, dropout=0.1).n_head
        8
        """
        parts = name.split("_") if isinstance(name, str) else []
        if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
            raise ValueError(f"model name must be 'layers_heads_width' with three positive integers "
                             f"(e.g. '2_4_16', '12_12_768'), got {name!r}")
        n_layer, n_head, n_embd = map(int, parts)
        if n_embd % n_head:
            raise ValueError(f"model name {name!r}: width n_embd={n_embd} must be divisible by "
                             f"the number of heads n_head={n_head}")
        clash = sorted({"n_layer", "n_head", "n_embd"} & set(overrides))
        if clash:
            raise ValueError(f"{', '.join(clash)} come from the model name {name!r}; do not override them")
        return cls(vocab_size=vocab_size, block_size=block_size, n_layer=n_layer, n_head=n_head,
                   n_embd=n_embd, **overrides)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head = config.n_head
        self.dropout = config.dropout
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)  # q, k, v at once
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x, attn_mask=None, queries=None):
        """``queries`` (B, P): compute the output only at these positions (then ``attn_mask`` must
        be the (B, 1, P, T) mask of those queries); keys and values come from every position."""
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)  # 3 x (B, T, C)
        if queries is not None:
            q = q.gather(1, queries[..., None].expand(-1, -1, C))  # (B, P, C)
        P = q.shape[1]
        q = q.view(B, P, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, P, hs)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask,
                                           dropout_p=self.dropout if self.training else 0.0,
                                           is_causal=attn_mask is None)  # (B, nh, P, hs)
        y = y.transpose(1, 2).contiguous().view(B, P, C)  # re-assemble heads side by side
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        x = F.gelu(self.c_fc(x), approximate="tanh")  # GPT-2's "gelu_new", fused in one kernel
        return self.dropout(self.c_proj(x))


class Block(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=1e-5, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=1e-5, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x, attn_mask=None, queries=None):
        """``queries`` (B, P): the block's output only at these positions, (B, P, C)."""
        y = self.attn(self.ln_1(x), attn_mask, queries)
        if queries is not None:
            x = x.gather(1, queries[..., None].expand(-1, -1, x.shape[2]))  # (B, P, C)
        x = x + y
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """GPT-2-style decoder; ``forward(input_ids, labels=None, attention_mask=None)``.

    >>> model = GPT(GPTConfig(vocab_size=10, n_layer=1))
    >>> model.num_params()
    3472
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd, eps=1e-5, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.transformer.wte.weight = self.lm_head.weight  # tied: one tensor, two names

        self.apply(self._init_weights)
        # GPT-2: residual projections scaled so the residual stream's variance does not grow with depth
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, input_ids, labels=None, attention_mask=None, only_scored: bool = False,
                length_groups: int = 1):
        """Logits ``(B, T, V)`` and, given ``labels``, the mean next-token cross-entropy.

        ``labels``: like ``input_ids`` (HF style), ``-100`` where no loss is wanted; position ``t`` is
        scored on ``labels[:, t + 1]`` (the shift happens here). ``attention_mask`` ``(B, T)``: 1 for
        tokens, 0 for padding that no token may attend to. Right-padded batches need no mask (causal
        attention never looks ahead); left padding does. Loss is computed in float32.
        ``only_scored=True`` (needs ``labels``): :meth:`scored_forward`'s fast path, returning its
        ``(logits at the scored positions (B, P, V), loss)``; the flag lets a DDP wrapper call it.
        """
        if only_scored:
            if labels is None:
                raise ValueError("only_scored=True needs labels (they say which positions are scored)")
            logits, _, loss = self.scored_forward(input_ids, labels, attention_mask, length_groups)
            return logits, loss
        B, T = input_ids.shape
        x = self._embed(input_ids)  # (B, T, C)
        mask = None if attention_mask is None else self._attention_mask(attention_mask)
        for block in self.transformer.h:
            x = block(x, mask)
        logits = self.lm_head(self.transformer.ln_f(x))  # (B, T, V)

        loss = None
        if labels is not None:
            # shift the labels, not the logits: no copy of the (B, T, V) tensor
            targets = F.pad(labels[:, 1:], (0, 1), value=IGNORE_INDEX)  # (B, T)
            loss = F.cross_entropy(logits.view(B * T, -1).float(), targets.reshape(B * T),
                                   ignore_index=IGNORE_INDEX)
        return logits, loss

    def scored_forward(self, input_ids, labels, attention_mask=None, length_groups: int = 1):
        """Logits only where a label is predicted: ``(logits (B, P, V), targets (B, P), loss)``.

        Position ``t`` of row ``b`` is scored when ``labels[b, t + 1] != -100`` (the shift of
        :meth:`forward`); ``logits[b, p]`` is the prediction at row ``b``'s ``p``-th scored
        position, ``targets[b, p]`` its label (``-100`` in the slots of rows with fewer than ``P``
        scored positions). ``loss`` is the mean cross-entropy over scored positions and equals
        ``forward(input_ids, labels, attention_mask)[1]``, gradients included.

        Savings: the last block's attention output and MLP, ``ln_f`` and the output layer run only
        at the scored positions (its keys and values still see every position), and nothing runs
        past a row's last scored position. ``length_groups`` > 1 sorts the rows by that last
        position and runs them in this many groups, each cut to its own width: for rows of very
        different lengths (the haystack's 4..62 tokens) that skips most of the padding (when it
        would skip less than a fifth, one group runs). With most
        positions scored (LM-style rows) the blocks run at every position, as in :meth:`forward`.

        >>> model = GPT(GPTConfig(vocab_size=10, n_layer=1))
        >>> ids = torch.tensor([[1, 2, 3, 4]])
        >>> logits, targets, loss = model.scored_forward(ids, torch.tensor([[-100, -100, -100, 4]]))
        >>> tuple(logits.shape), targets.tolist()
        ((1, 1, 10), [[4]])
        """
        B, T = input_ids.shape
        scored = F.pad(labels[:, 1:] != IGNORE_INDEX, (0, 1), value=False)  # (B, T): t predicts t + 1
        counts = scored.sum(1)  # (B,)
        P = max(int(counts.max()), 1)
        # each row's scored positions first, in order (a stable sort of the "not scored" flags)
        queries = torch.sort((~scored).to(torch.uint8), dim=1, stable=True).indices[:, :P]  # (B, P)
        valid = torch.arange(P, device=input_ids.device) < counts[:, None]  # (B, P)
        queries = torch.where(valid, queries, queries[:, :1])  # padding slots repeat a real query
        targets = labels.gather(1, queries + 1).masked_fill(~valid, IGNORE_INDEX)  # (B, P)
        widths = queries.max(1).values + 1  # (B,) nothing after a row's last scored position matters
        groups = max(1, min(int(length_groups), B))
        if groups > 1:
            order = torch.argsort(widths, stable=True)
            chunks = order.tensor_split(groups)
            grouped = sum(len(rows) * int(widths[rows].max()) for rows in chunks if len(rows))
            if grouped > 0.8 * B * int(widths.max()):  # rows of similar length: groups would only cost calls
                groups = 1
        if groups == 1:
            hidden = self._scored_hidden(input_ids, queries, attention_mask, int(widths.max()))
        else:
            hidden = torch.empty(B, P, self.config.n_embd, device=input_ids.device,
                                 dtype=self.transformer.wte.weight.dtype)
            for rows in chunks:
                if len(rows):
                    width = int(widths[rows].max())
                    mask = None if attention_mask is None else attention_mask[rows]
                    hidden = hidden.index_put((rows,), self._scored_hidden(input_ids[rows], queries[rows], mask,
                                                                           width))
        logits = self.lm_head(self.transformer.ln_f(hidden))  # (B, P, V)
        loss = F.cross_entropy(logits.reshape(B * P, -1).float(), targets.reshape(-1), ignore_index=IGNORE_INDEX)
        return logits, targets, loss

    def _scored_hidden(self, input_ids, queries, attention_mask, width):
        """Final hidden states (before ``ln_f``) at ``queries`` (B, P) of rows cut to ``width``."""
        input_ids = input_ids[:, :width]
        attention_mask = None if attention_mask is None else attention_mask[:, :width]
        B, T = input_ids.shape
        P = queries.shape[1]
        x = self._embed(input_ids)  # (B, T, C)
        mask = None if attention_mask is None else self._attention_mask(attention_mask)
        last = self.transformer.h[-1]
        if 2 * P > T:  # most positions are queries: pruning saves nothing, gather at the end
            for block in self.transformer.h:
                x = block(x, mask)
            return x.gather(1, queries[..., None].expand(-1, -1, x.shape[2]))  # (B, P, C)
        for block in self.transformer.h[:-1]:
            x = block(x, mask)
        position = torch.arange(T, device=input_ids.device)
        allowed = queries[:, None, :, None] >= position  # (B, 1, P, T) causal, for the chosen queries
        if attention_mask is not None:
            allowed = (allowed & attention_mask.bool()[:, None, None, :]) | (queries[:, None, :, None] == position)
        return last(x, allowed, queries)  # (B, P, C)

    def _embed(self, input_ids):
        """Token + position embeddings (after dropout), (B, T, C)."""
        T = input_ids.shape[1]
        if T > self.config.block_size:
            raise ValueError(f"sequence length {T} exceeds block_size={self.config.block_size}")
        pos = torch.arange(T, dtype=torch.long, device=input_ids.device)  # (T,)
        return self.transformer.drop(self.transformer.wte(input_ids) + self.transformer.wpe(pos))

    @staticmethod
    def _attention_mask(attention_mask):
        # (B, T) padding mask -> (B, 1, T, T) boolean "may attend" mask, causal and padding combined.
        # Every query may always see itself, so fully padded rows give finite (ignored) outputs.
        T = attention_mask.shape[1]
        ones = torch.ones(T, T, dtype=torch.bool, device=attention_mask.device)
        causal = torch.tril(ones)  # (T, T)
        allowed = causal & attention_mask.bool()[:, None, None, :]  # (B, 1, T, T)
        return allowed | torch.eye(T, dtype=torch.bool, device=attention_mask.device)

    def num_params(self, non_embedding=True) -> int:
        """Parameter count; ``non_embedding`` leaves out the position embeddings (token embeddings
        stay in: tied, they are the output layer's weights)."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.transformer.wpe.weight.numel()
        return n

    def estimate_flops_per_token(self, seq_len: int | None = None) -> float:
        """Training FLOPs per token (forward + backward), PaLM appendix B: ``6 N + 12 L C T``.

        ``N`` non-embedding parameters (matmuls, output layer included), ``L`` layers, ``C`` width,
        ``T`` the sequence length (default ``block_size``). Divide tokens/s x this by peak FLOP/s
        for MFU.
        """
        cfg = self.config
        T = cfg.block_size if seq_len is None else seq_len
        return 6.0 * self.num_params() + 12.0 * cfg.n_layer * cfg.n_embd * T

    # --- checkpoints ----------------------------------------------------------------------------

    def save_pretrained(self, directory) -> None:
        """Write ``model.safetensors`` and ``config.json`` (config fields + ``"model_type"``) to
        ``directory`` (created if needed). A tied ``lm_head.weight`` is stored once, as
        ``transformer.wte.weight``. Each file is replaced whole (written beside it, then renamed),
        so a reader never sees half a file and a file linked elsewhere is never changed in place."""
        from safetensors.torch import save

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tied = self.config.tie_embeddings
        state = {k: v.detach().contiguous() for k, v in self.state_dict().items()
                 if not (tied and k == "lm_head.weight")}
        with atomic_open(directory / WEIGHTS_NAME) as handle:
            handle.write(save(state, metadata={"format": "pt"}))
        config = {"model_type": MODEL_TYPE, **asdict(self.config)}
        with atomic_open(directory / CONFIG_NAME, "w") as handle:
            handle.write(json.dumps(config, indent=2) + "\n")

    @classmethod
    def from_pretrained(cls, directory) -> GPT:
        """Load a model written by :meth:`save_pretrained` (float32 parameters, on the CPU).

        A missing file raises FileNotFoundError; a damaged or inconsistent one (not JSON, not a
        safetensors file, a config whose sizes do not fit the weights) a :class:`CheckpointError`
        (a ValueError) naming the file and what is wrong.
        """
        directory = Path(directory)
        for name in (CONFIG_NAME, WEIGHTS_NAME):
            if not (directory / name).is_file():
                raise FileNotFoundError(f"no {name} in {str(directory)!r}: not a procgen GPT checkpoint "
                                        f"(write one with GPT.save_pretrained)")
        model = cls(_read_config(directory / CONFIG_NAME))
        state = _read_weights(directory / WEIGHTS_NAME)
        expected = model.state_dict()
        if model.config.tie_embeddings:  # stored once, as transformer.wte.weight
            del expected["lm_head.weight"]
        _check_state_fits(state, expected, directory / WEIGHTS_NAME, directory / CONFIG_NAME)
        if model.config.tie_embeddings:
            state["lm_head.weight"] = state["transformer.wte.weight"]
        model.load_state_dict(state)
        return model

    # --- Hugging Face interop -------------------------------------------------------------------

    def to_hf(self):
        """The same network as a ``transformers.GPT2LMHeadModel`` (same logits; same device, dtype
        and train/eval mode). Without biases (``bias=False``) GPT-2's biases are set to zero."""
        from transformers import GPT2Config, GPT2LMHeadModel

        hf_model = GPT2LMHeadModel(GPT2Config(**self._hf_config()))
        hf_model.load_state_dict(self._hf_state_dict())
        weight = self.transformer.wte.weight
        return hf_model.to(device=weight.device, dtype=weight.dtype).train(self.training)

    def save_hf(self, directory) -> None:
        """Write ``directory`` as a Hugging Face GPT-2 folder (``config.json`` + ``model.safetensors``).

        ``transformers.AutoModelForCausalLM.from_pretrained(directory)`` (or ``GPT2LMHeadModel``)
        loads it with the same logits, to continue training in any HF tool; ``GPT.from_hf``
        converts it back. Equivalent to ``self.to_hf().save_pretrained(directory)``, but written
        without ``transformers`` (a training run needs no second model in memory to write it).

        >>> model.save_hf("runs/dyck/hf")                                   # doctest: +SKIP
        >>> AutoModelForCausalLM.from_pretrained("runs/dyck/hf")            # doctest: +SKIP
        """
        from safetensors.torch import save

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = self._hf_state_dict()
        if self.config.tie_embeddings:
            del state["lm_head.weight"]  # tied: HF stores the shared matrix once, as the input embedding
        with atomic_open(directory / WEIGHTS_NAME) as handle:  # replaced whole, like save_pretrained's files
            handle.write(save({k: v.detach().contiguous() for k, v in state.items()}, metadata={"format": "pt"}))
        dtype = str(self.transformer.wte.weight.dtype).removeprefix("torch.")
        config = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", **self._hf_config(), "dtype": dtype}
        with atomic_open(directory / CONFIG_NAME, "w") as handle:
            handle.write(json.dumps(config, indent=2) + "\n")

    def _hf_config(self) -> dict:
        """Keyword arguments of the equivalent ``transformers.GPT2Config``."""
        cfg = self.config
        return dict(vocab_size=cfg.vocab_size, n_positions=cfg.block_size, n_embd=cfg.n_embd, n_layer=cfg.n_layer,
                    n_head=cfg.n_head, n_inner=None, activation_function="gelu_new", resid_pdrop=cfg.dropout,
                    embd_pdrop=cfg.dropout, attn_pdrop=cfg.dropout, layer_norm_epsilon=1e-5,
                    tie_word_embeddings=cfg.tie_embeddings, bos_token_id=None, eos_token_id=None)

    def _hf_state_dict(self) -> dict:
        """GPT-2 state dict of this model; without biases (``bias=False``) GPT-2's are zeros."""
        own = self.state_dict()
        state = state_dict_to_hf(own)
        if not self.config.bias:  # every linear layer and LayerNorm (not the embeddings, lm_head) has a bias in GPT-2
            for name, weight in own.items():
                bias = name.removesuffix("weight") + "bias"
                if (name.endswith(".weight") and bias not in state
                        and not name.startswith(("transformer.wte.", "transformer.wpe.", "lm_head."))):
                    state[bias] = torch.zeros(weight.shape[0], dtype=weight.dtype, device=weight.device)
        return state

    @classmethod
    def from_hf(cls, hf_model) -> GPT:
        """A :class:`GPT` with the weights of a ``transformers`` GPT-2 model (same logits)."""
        hf_config = hf_model.config
        if getattr(hf_config, "model_type", None) != "gpt2":
            raise ValueError(f"from_hf converts GPT-2 models only, got model_type="
                             f"{getattr(hf_config, 'model_type', None)!r}")
        unsupported = {
            "activation_function": (hf_config.activation_function, ("gelu_new", "gelu_pytorch_tanh")),
            "layer_norm_epsilon": (hf_config.layer_norm_epsilon, (1e-5,)),
            "n_inner": (hf_config.n_inner, (None, 4 * hf_config.n_embd)),
            "scale_attn_weights": (hf_config.scale_attn_weights, (True,)),
            "scale_attn_by_inverse_layer_idx": (hf_config.scale_attn_by_inverse_layer_idx, (False,)),
        }
        for name, (value, allowed) in unsupported.items():
            if value not in allowed:
                raise ValueError(f"from_hf: GPT-2 config {name}={value!r} is not supported "
                                 f"(allowed: {', '.join(map(repr, allowed))})")
        config = GPTConfig(vocab_size=hf_config.vocab_size, block_size=hf_config.n_positions,
                           n_layer=hf_config.n_layer, n_head=hf_config.n_head, n_embd=hf_config.n_embd,
                           dropout=hf_config.resid_pdrop, bias=True,
                           tie_embeddings=bool(getattr(hf_config, "tie_word_embeddings", True)))
        model = cls(config)
        model.load_state_dict(state_dict_from_hf(hf_model.state_dict()))
        weight = next(hf_model.parameters())
        return model.to(device=weight.device, dtype=weight.dtype).train(hf_model.training)


def _read_config(path: Path) -> GPTConfig:
    """The :class:`GPTConfig` in a ``config.json`` written by :meth:`GPT.save_pretrained`."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: expected a JSON object of config fields, got {type(config).__name__}")
    model_type = config.get("model_type")
    if model_type != MODEL_TYPE:
        raise CheckpointError(f"{path}: model_type is {model_type!r}, expected {MODEL_TYPE!r}")
    if "vocab_size" not in config:
        raise CheckpointError(f"{path}: vocab_size is missing")
    known = {f.name for f in fields(GPTConfig)}
    try:
        return GPTConfig(**{k: v for k, v in config.items() if k in known})
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: {err}") from None


def _read_weights(path: Path) -> dict:
    """The tensors of a safetensors file; CheckpointError for a damaged one."""
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as err:  # SafetensorError, and whatever a damaged header makes the parser raise
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path}: not a readable safetensors file ({reason})") from None


def _check_state_fits(state: dict, expected: dict, weights_path: Path, config_path: Path) -> None:
    """CheckpointError naming both files when the weights do not fit the model the config describes."""
    missing = [name for name in expected if name not in state]  # in the model's order: the embeddings first
    unexpected = [name for name in state if name not in expected]
    wrong = [name for name in expected if name in state and state[name].shape != expected[name].shape]
    if missing:
        problem = f"it has no tensor {missing[0]}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
    elif unexpected:
        problem = f"it has an extra tensor {unexpected[0]}" + \
            (f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else "")
    elif wrong:
        name = wrong[0]
        problem = f"{name} has shape {tuple(state[name].shape)}, the config needs {tuple(expected[name].shape)}"
    else:
        return
    raise CheckpointError(f"{weights_path} does not fit {config_path}: {problem}")


def state_dict_to_hf(state_dict: dict) -> dict:
    """procgen GPT state dict -> ``GPT2LMHeadModel`` state dict (Conv1D weights transposed).

    >>> sd = state_dict_to_hf(GPT(GPTConfig(vocab_size=10, n_layer=1)).state_dict())
    >>> tuple(sd["transformer.h.0.mlp.c_fc.weight"].shape)
    (16, 64)
    """
    out = {name: tensor.t().contiguous() if name.endswith(_CONV1D_SUFFIXES) else tensor
           for name, tensor in state_dict.items()}
    out.setdefault("lm_head.weight", out["transformer.wte.weight"])  # tied: one tensor under both names
    return out


def state_dict_from_hf(state_dict: dict) -> dict:
    """``GPT2LMHeadModel`` (or ``GPT2Model``) state dict -> procgen GPT state dict.

    Conv1D weights are transposed; GPT-2's attention-mask buffers (``attn.bias``,
    ``attn.masked_bias``) of older ``transformers`` versions are dropped.
    """
    out = {}
    for name, tensor in state_dict.items():
        if name.endswith((".attn.bias", ".attn.masked_bias")):
            continue
        if not name.startswith(("transformer.", "lm_head.")):
            name = "transformer." + name  # GPT2Model has no "transformer." prefix
        out[name] = tensor.t().contiguous() if name.endswith(_CONV1D_SUFFIXES) else tensor
    out.setdefault("lm_head.weight", out["transformer.wte.weight"])
    return out
