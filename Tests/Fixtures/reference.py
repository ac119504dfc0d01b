"""Shared PyTorch reference code for CircuitKit's test fixtures.

An independent, functional re-implementation of GPT-2 and Llama that reads Hugging Face weights
and exposes the computational graph of design.md §3: every sender's output and, per receiver, a
separate copy of the residual stream (TransformerLens `use_split_qkv_input`), so that gradients
of the metrics of design.md §5 with respect to each receiver's input can be taken one by one.

Used by generate_models.py and generate_smollm2.py; never by the Swift package or its tests.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field

import numpy as np
import torch

# --------------------------------------------------------------------------------------------
# Weights in graph form
# --------------------------------------------------------------------------------------------


@dataclass
class Layer:
    """One transformer block's weights, split per attention head.

    Projection matrices act on row vectors (`x @ W`): w_q/w_k/w_v are [H, d, head_dim] (for
    grouped-query attention w_k/w_v hold the KV projection of each query head's group), w_o is
    [H, head_dim, d]. Biases that the architecture lacks are None.
    """

    norm1_w: torch.Tensor
    norm1_b: torch.Tensor | None
    w_q: torch.Tensor
    b_q: torch.Tensor | None
    w_k: torch.Tensor
    b_k: torch.Tensor | None
    w_v: torch.Tensor
    b_v: torch.Tensor | None
    w_o: torch.Tensor
    b_o: torch.Tensor | None
    norm2_w: torch.Tensor
    norm2_b: torch.Tensor | None
    mlp: dict[str, torch.Tensor]


@dataclass
class Graph:
    """A decoder-only model in graph form: embeddings, layers, final norm and unembedding."""

    arch: str  # "gpt2" or "llama"
    n_heads: int
    head_dim: int
    eps: float
    rope_theta: float | None
    wte: torch.Tensor  # [vocab, d]
    wpe: torch.Tensor | None  # [positions, d] (GPT-2 only)
    layers: list[Layer]
    normf_w: torch.Tensor
    normf_b: torch.Tensor | None
    w_u: torch.Tensor  # [d, vocab]

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    def senders(self) -> list[str]:
        """Sender names in topological order (design §3)."""
        names = ["input"]
        for l in range(self.n_layers):
            names += [f"a{l}.h{h}" for h in range(self.n_heads)]
            names.append(f"m{l}")
        return names

    def receivers(self) -> list[str]:
        """Receiver names in topological order (design §3)."""
        names = []
        for l in range(self.n_layers):
            for h in range(self.n_heads):
                names += [f"a{l}.h{h}<q>", f"a{l}.h{h}<k>", f"a{l}.h{h}<v>"]
            names.append(f"m{l}")
        names.append("logits")
        return names

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """The `input` sender for token ids [B, T]: token (+ position) embedding."""
        x = self.wte[tokens]
        if self.wpe is not None:
            x = x + self.wpe[: tokens.shape[1]][None]
        return x


def graph_from_gpt2(model, dtype=torch.float64) -> Graph:
    """Reads an HF GPT2LMHeadModel (Conv1D weights are [in, out]) into graph form."""
    c = model.config
    sd = {k: v.detach().to(dtype) for k, v in model.state_dict().items()}
    d, H = c.n_embd, c.n_head
    hd = d // H
    layers = []
    for l in range(c.n_layer):
        p = f"transformer.h.{l}."
        w_attn, b_attn = sd[p + "attn.c_attn.weight"], sd[p + "attn.c_attn.bias"]

        def heads(offset):
            w = w_attn[:, offset : offset + d].reshape(d, H, hd).permute(1, 0, 2).contiguous()
            b = b_attn[offset : offset + d].reshape(H, hd)
            return w, b

        (w_q, b_q), (w_k, b_k), (w_v, b_v) = heads(0), heads(d), heads(2 * d)
        layers.append(
            Layer(
                norm1_w=sd[p + "ln_1.weight"], norm1_b=sd[p + "ln_1.bias"],
                w_q=w_q, b_q=b_q, w_k=w_k, b_k=b_k, w_v=w_v, b_v=b_v,
                w_o=sd[p + "attn.c_proj.weight"].reshape(H, hd, d), b_o=sd[p + "attn.c_proj.bias"],
                norm2_w=sd[p + "ln_2.weight"], norm2_b=sd[p + "ln_2.bias"],
                mlp={
                    "w_in": sd[p + "mlp.c_fc.weight"], "b_in": sd[p + "mlp.c_fc.bias"],
                    "w_out": sd[p + "mlp.c_proj.weight"], "b_out": sd[p + "mlp.c_proj.bias"],
                },
            )
        )
    return Graph(
        arch="gpt2", n_heads=H, head_dim=hd, eps=c.layer_norm_epsilon, rope_theta=None,
        wte=sd["transformer.wte.weight"], wpe=sd["transformer.wpe.weight"], layers=layers,
        normf_w=sd["transformer.ln_f.weight"], normf_b=sd["transformer.ln_f.bias"],
        w_u=model.lm_head.weight.detach().to(dtype).T.contiguous(),
    )


def graph_from_llama(model, dtype=torch.float64) -> Graph:
    """Reads an HF LlamaForCausalLM (nn.Linear weights are [out, in]) into graph form."""
    c = model.config
    sd = {k: v.detach().to(dtype) for k, v in model.state_dict().items()}
    d, H, KV = c.hidden_size, c.num_attention_heads, c.num_key_value_heads
    hd = getattr(c, "head_dim", None) or d // H
    group = H // KV
    layers = []
    for l in range(c.num_hidden_layers):
        p = f"model.layers.{l}."
        w_q = sd[p + "self_attn.q_proj.weight"].reshape(H, hd, d).transpose(1, 2)
        w_k = sd[p + "self_attn.k_proj.weight"].reshape(KV, hd, d).transpose(1, 2)
        w_v = sd[p + "self_attn.v_proj.weight"].reshape(KV, hd, d).transpose(1, 2)
        kv_of_head = torch.arange(H) // group
        layers.append(
            Layer(
                norm1_w=sd[p + "input_layernorm.weight"], norm1_b=None,
                w_q=w_q.contiguous(), b_q=None,
                w_k=w_k[kv_of_head].contiguous(), b_k=None,
                w_v=w_v[kv_of_head].contiguous(), b_v=None,
                w_o=sd[p + "self_attn.o_proj.weight"].T.reshape(H, hd, d).contiguous(), b_o=None,
                norm2_w=sd[p + "post_attention_layernorm.weight"], norm2_b=None,
                mlp={
                    "w_gate": sd[p + "mlp.gate_proj.weight"].T, "w_up": sd[p + "mlp.up_proj.weight"].T,
                    "w_down": sd[p + "mlp.down_proj.weight"].T,
                },
            )
        )
    return Graph(
        arch="llama", n_heads=H, head_dim=hd, eps=c.rms_norm_eps, rope_theta=float(rope_theta(c)),
        wte=sd["model.embed_tokens.weight"], wpe=None, layers=layers,
        normf_w=sd["model.norm.weight"], normf_b=None,
        w_u=model.lm_head.weight.detach().to(dtype).T.contiguous(),
    )


def rope_theta(config) -> float:
    """The RoPE base of an HF Llama config (transformers 5 keeps it in `rope_parameters`)."""
    params = getattr(config, "rope_parameters", None)
    if params and "rope_theta" in params:
        assert params.get("rope_type", "default") == "default", params
        return params["rope_theta"]
    return config.rope_theta


# --------------------------------------------------------------------------------------------
# Forward pass over the graph
# --------------------------------------------------------------------------------------------


def gelu_tanh(x):
    """GELU, tanh approximation (GPT-2's `gelu_new`)."""
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


def layer_norm(x, w, b, eps):
    mean = x.mean(-1, keepdim=True)
    var = (x - mean).pow(2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * w + b


def rms_norm(x, w, eps):
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope_half_split(x, theta):
    """HF-style rotary embedding (rotate_half) of [B, T, head_dim] at positions 0..T-1."""
    T, hd = x.shape[-2], x.shape[-1]
    inv_freq = theta ** (-torch.arange(0, hd, 2, dtype=torch.float64) / hd)
    angles = torch.arange(T, dtype=torch.float64)[:, None] * inv_freq[None]
    angles = torch.cat([angles, angles], -1).to(x.dtype)
    half = hd // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], -1)
    return x * angles.cos() + rotated * angles.sin()


@dataclass
class Patch:
    """Edge patching of design §4: input_r += Σ α_{s→r} (corrupt_s − current_s)."""

    corrupt: dict[str, torch.Tensor]  # sender name -> [B, T, d] outputs of the corrupt run
    alphas: dict[str, list[tuple[str, float]]] = field(default_factory=dict)  # receiver -> [(sender, α)]

    @staticmethod
    def of(corrupt, edges: dict[str, float]) -> "Patch":
        """Builds a patch from `{"sender->receiver": α}`."""
        alphas: dict[str, list[tuple[str, float]]] = {}
        for edge, alpha in edges.items():
            sender, receiver = edge.split("->")
            alphas.setdefault(receiver, []).append((sender, alpha))
        return Patch(corrupt=corrupt, alphas=alphas)


@dataclass
class Run:
    """Outputs of one forward pass over the graph."""

    logits: torch.Tensor  # [B, T, vocab]
    senders: dict[str, torch.Tensor]  # name -> [B, T, d]
    resid_pre: list[torch.Tensor]  # residual stream entering each layer
    resid_final: torch.Tensor  # residual stream entering the final norm
    bias_sum: torch.Tensor  # Σ of the constants written to the residual stream (b_O)


def forward(g: Graph, embeds: torch.Tensor, deltas: dict[str, torch.Tensor] | None = None,
            patch: Patch | None = None) -> Run:
    """Runs the graph on input embeddings [B, T, d] (the `input` sender).

    Every receiver reads its own copy of the residual stream, plus `deltas[name]` when given
    (a zero leaf whose gradient is ∂M/∂input_r) and plus the patch terms of design §4.
    Attention is causal; right padding therefore never affects real positions.
    """
    deltas = deltas or {}
    senders = {"input": embeds}

    def receiver_input(name, resid):
        x = resid
        if name in deltas:
            x = x + deltas[name]
        if patch is not None:
            for sender, alpha in patch.alphas.get(name, []):
                x = x + alpha * (patch.corrupt[sender] - senders[sender])
        return x

    def norm(x, w, b):
        return layer_norm(x, w, b, g.eps) if g.arch == "gpt2" else rms_norm(x, w, g.eps)

    B, T, d = embeds.shape
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    resid = embeds
    resid_pre = []
    bias_sum = torch.zeros(d, dtype=embeds.dtype)
    for l, L in enumerate(g.layers):
        resid_pre.append(resid)
        head_outputs = []
        for h in range(g.n_heads):
            def project(port, w, b):
                x = norm(receiver_input(f"a{l}.h{h}<{port}>", resid), L.norm1_w, L.norm1_b) @ w[h]
                return x + b[h] if b is not None else x

            q, k, v = project("q", L.w_q, L.b_q), project("k", L.w_k, L.b_k), project("v", L.w_v, L.b_v)
            if g.arch == "llama":
                q, k = rope_half_split(q, g.rope_theta), rope_half_split(k, g.rope_theta)
            scores = (q @ k.transpose(-1, -2)) / math.sqrt(g.head_dim)
            scores = scores.masked_fill(~causal, float("-inf"))
            out = (torch.softmax(scores, -1) @ v) @ L.w_o[h]
            senders[f"a{l}.h{h}"] = out
            head_outputs.append(out)
        resid = resid + torch.stack(head_outputs).sum(0)
        if L.b_o is not None:
            resid = resid + L.b_o
            bias_sum = bias_sum + L.b_o

        x = norm(receiver_input(f"m{l}", resid), L.norm2_w, L.norm2_b)
        if g.arch == "gpt2":
            out = gelu_tanh(x @ L.mlp["w_in"] + L.mlp["b_in"]) @ L.mlp["w_out"] + L.mlp["b_out"]
        else:
            gate = x @ L.mlp["w_gate"]
            out = (torch.nn.functional.silu(gate) * (x @ L.mlp["w_up"])) @ L.mlp["w_down"]
        senders[f"m{l}"] = out
        resid = resid + out

    x = norm(receiver_input("logits", resid), g.normf_w, g.normf_b)
    return Run(logits=x @ g.w_u, senders=senders, resid_pre=resid_pre, resid_final=resid, bias_sum=bias_sum)


# --------------------------------------------------------------------------------------------
# Metrics (design §5) and gradients
# --------------------------------------------------------------------------------------------

METRICS = ["logit_diff", "prob_diff", "kl", "logprob"]


def last_logits(logits: torch.Tensor, lengths: list[int]) -> torch.Tensor:
    """Logits at each example's last real position p_i = length_i − 1: [B, vocab]."""
    return torch.stack([logits[i, n - 1] for i, n in enumerate(lengths)])


def metric(name: str, logits, lengths, correct, incorrect, reference_probs=None) -> torch.Tensor:
    """The mean over examples of metric `name` at the last real positions.

    kl is KL(q ‖ softmax(z)) with q = `reference_probs` [B, vocab].
    """
    z = last_logits(logits, lengths)
    logp = torch.log_softmax(z, -1)
    values = []
    for i in range(z.shape[0]):
        c, w = list(correct[i]), list(incorrect[i])
        if name == "logit_diff":
            values.append(z[i, c].mean() - z[i, w].mean())
        elif name == "prob_diff":
            p = logp[i].exp()
            values.append(p[c].sum() - p[w].sum())
        elif name == "kl":
            q = reference_probs[i]
            values.append((q * (torch.log(q) - logp[i])).sum())
        elif name == "logprob":
            values.append(logp[i, c].mean())
        else:
            raise ValueError(f"unknown metric {name}")
    return torch.stack(values).mean()


def receiver_gradients(g: Graph, embeds, lengths, correct, incorrect, metric_name, receivers,
                       reference_probs=None) -> tuple[float, dict[str, torch.Tensor]]:
    """(M, {receiver: ∂M/∂input_r}) on one forward + backward with a zero delta per receiver."""
    deltas = {r: torch.zeros_like(embeds, requires_grad=True) for r in receivers}
    run = forward(g, embeds.detach(), deltas=deltas)
    m = metric(metric_name, run.logits, lengths, correct, incorrect, reference_probs)
    grads = torch.autograd.grad(m, [deltas[r] for r in receivers])
    return m.item(), dict(zip(receivers, grads))


def pad(tokens: list[list[int]]) -> tuple[torch.Tensor, list[int]]:
    """Right-pads token lists with 0 into a [B, Tmax] tensor and returns (tensor, lengths)."""
    lengths = [len(t) for t in tokens]
    T = max(lengths)
    return torch.tensor([t + [0] * (T - len(t)) for t in tokens]), lengths


def zero_padding(x: torch.Tensor, lengths: list[int]) -> torch.Tensor:
    """Copy of [B, T, ...] with every position at or after length_i set to zero."""
    x = x.clone()
    for i, n in enumerate(lengths):
        x[i, n:] = 0
    return x


# --------------------------------------------------------------------------------------------
# Deterministic safetensors writer
# --------------------------------------------------------------------------------------------

_DTYPES = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16"}


def write_safetensors(path, tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
    """Writes a safetensors file byte-for-byte reproducibly.

    The `safetensors` package serializes `__metadata__` from a hash map whose order changes
    between processes, so the header is built here: keys in sorted order, tensors laid out in
    sorted name order, header padded with spaces to a multiple of 8 bytes.
    """
    header: dict[str, object] = {"__metadata__": {k: metadata[k] for k in sorted(metadata)}}
    blobs, offset = [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        data = a.astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": _DTYPES[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def f32(x: torch.Tensor) -> np.ndarray:
    """A detached float32 numpy copy."""
    return x.detach().to(torch.float32).numpy()
