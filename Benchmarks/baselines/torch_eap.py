"""PyTorch EAP / EAP-IG baseline: edge attribution scores for every edge of a Llama model's graph.

Graph, scores and edge order are those of design.md §3 and §6 (EAP-IG / TransformerLens names):
senders `input`, `a{l}.h{h}` (head output z_h·W_O[:, h]ᵀ, no bias) and `m{l}`; receivers per layer
`a{l}.h{h}<q|k|v>` (heads ascending; with grouped-query attention every query head has its own
<k>/<v>) and `m{l}`, then `logits`. Every receiver reads its own copy of the residual stream and
normalizes it on its own. For an edge s→r,

    score = Σ_{examples, positions, d} (corrupt_s − clean_s) · ∂M/∂input_r

with M the metric averaged over examples, on the clean run (EAP), or with the gradient averaged
over k = 0..m−1 runs whose input embeddings are corrupt + (k/m)(clean − corrupt) (EAP-IG).
Scores are written as raw little-endian float32 in edge order: for each receiver in the order
above, its upstream senders in topological order.

How it is computed (one micro-batch of pairs at a time, sorted by length, right-padded; causal
attention means real positions never see padding, so no padding mask is needed):
1. A corrupt forward stores every sender's output in one buffer `diffs[S, B, T, d]`; the clean
   forward subtracts its own, leaving corrupt − clean. Head outputs are one batched matmul over
   heads (z_h @ W_O,h), summed into the residual stream. EAP: corrupt under inference_mode, clean
   with autograd (it is the run differentiated). EAP-IG: the k = 0 point is the corrupt input, so
   the corrupt forward runs with autograd as that step; the clean one under inference_mode.
2. Forwards with autograd (weights frozen) expose, through a custom autograd function per layer,
   q, k, v per query head (k and v gathered from their KV group, so their gradients arrive per
   query head; RoPE is one complex multiplication). Its backward turns the 3H gradients into the
   3H receivers' input gradients in one bmm through each receiver's own projection slice, with
   the RMSNorm backward folded in, returns their sum to the residual stream and contracts them
   with diffs[:upstream] in one GEMM ([3H, B·T·d] × [B·T·d, upstream]). Layer l's MLP receiver
   reads the same sender prefix as layer l+1's attention receivers (minus one sender), so its
   gradient joins that GEMM as an extra row. The `logits` receiver is contracted at the last real
   positions only. No receiver gradient outlives its layer's backward step, and for logit_diff
   the full-vocabulary logits are never formed (only the answer tokens' unembedding rows).

  python3 Benchmarks/baselines/torch_eap.py --model ~/.cache/circuitkit/models/SmolLM2-135M-Instruct.Q4_1.gguf \\
      --pairs pairs.json --method eap-ig --steps 5 --metric logit_diff --batch-size 32 --threads 2 \\
      --repeats 3 --scores scores.f32 --json
"""

from __future__ import annotations

import gc
import json
import math
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import baseline_common as bc  # noqa: E402

SCRIPT = "torch_eap.py"
METRICS = ("logit_diff", "prob_diff", "kl", "logprob")

torch = bc.import_torch(SCRIPT)
F = torch.nn.functional


# --------------------------------------------------------------------------------------------
# Graph layout (design §3)
# --------------------------------------------------------------------------------------------


class EdgeLayout:
    """Sender indices, receivers' upstream counts and edge offsets for L layers of H heads.

    Senders in topological order: `input` = 0, `a{l}.h{h}` = 1 + l(H+1) + h, `m{l}` = 1 + l(H+1) + H.
    Every receiver's upstream senders are a prefix of that order, so the edges of a receiver are
    `scores[offset : offset + upstream]`, and one layer's 3H attention receivers (same upstream)
    form a row-major [3H, upstream] block.
    """

    def __init__(self, n_layers: int, n_heads: int) -> None:
        self.n_layers, self.n_heads = n_layers, n_heads
        self.n_senders = 1 + n_layers * (n_heads + 1)
        self.attention_upstream = [1 + l * (n_heads + 1) for l in range(n_layers)]
        self.mlp_upstream = [u + n_heads for u in self.attention_upstream]
        self.attention_offset, self.mlp_offset = [], []
        offset = 0
        for l in range(n_layers):
            self.attention_offset.append(offset)
            offset += 3 * n_heads * self.attention_upstream[l]
            self.mlp_offset.append(offset)
            offset += self.mlp_upstream[l]
        self.logits_offset = offset
        self.n_edges = offset + self.n_senders

    def head_sender(self, layer: int) -> int:
        """Index of sender `a{layer}.h0` (the layer's heads follow it)."""
        return 1 + layer * (self.n_heads + 1)

    def mlp_sender(self, layer: int) -> int:
        """Index of sender `m{layer}`."""
        return 1 + layer * (self.n_heads + 1) + self.n_heads

    def sender_names(self) -> list[str]:
        """Sender names in topological order."""
        names = ["input"]
        for l in range(self.n_layers):
            names += [f"a{l}.h{h}" for h in range(self.n_heads)] + [f"m{l}"]
        return names

    def edge_names(self) -> list[str]:
        """`sender->receiver` for every edge, in score order."""
        senders, names = self.sender_names(), []
        for l in range(self.n_layers):
            upstream = senders[: self.attention_upstream[l]]
            for h in range(self.n_heads):
                for port in "qkv":
                    names += [f"{s}->a{l}.h{h}<{port}>" for s in upstream]
            names += [f"{s}->m{l}" for s in senders[: self.mlp_upstream[l]]]
        return names + [f"{s}->logits" for s in senders]


# --------------------------------------------------------------------------------------------
# The model, functional, over HF weights
# --------------------------------------------------------------------------------------------


@dataclass
class LayerWeights:
    """One decoder layer's weights, with each RMSNorm weight folded into the matrices it feeds.

    Within every q and k head the projection rows are reordered from HF's half-split RoPE layout
    to interleaved pairs (j, j + hd/2) → (2j, 2j + 1), so that RoPE is one complex multiplication.
    Attention scores are dot products of q and k, unchanged by reordering both alike, and every
    gradient w.r.t. a receiver's input is too.
    """

    index: int
    w_qkv: torch.Tensor  # [(H + 2·KV)·hd, d]: fused q/k/v projection ⊙ input norm weight
    w_receivers: torch.Tensor  # [3H, hd, d]: per query head (q, k, v) slices ⊙ input norm weight
    w_o: torch.Tensor  # [d, H·hd]
    w_o_heads: torch.Tensor  # [H, hd, d]: W_O's slice per head, transposed
    w_gate_up: torch.Tensor  # [2I, d] ⊙ post-attention norm weight
    w_down: torch.Tensor  # [d, I]


def rope_theta(config) -> float:
    """The RoPE base of an HF Llama config; only unscaled (`default`) RoPE is supported."""
    params = getattr(config, "rope_parameters", None) or {}
    kind = params.get("rope_type", "default")
    if kind != "default":
        sys.exit(f"{SCRIPT}: RoPE type {kind!r} is not supported (only 'default')")
    return float(params.get("rope_theta", getattr(config, "rope_theta", 10000.0)))


def inverse_rms(x, eps: float):
    """1 / sqrt(mean(x²) + eps) over the last axis, keeping it."""
    return torch.rsqrt(x.pow(2).mean(-1, keepdim=True).add_(eps))


class FunctionalLlama:
    """An HF LlamaForCausalLM's weights run by a functional forward that exposes the graph."""

    def __init__(self, model, dtype=None) -> None:
        dtype = dtype or torch.float32
        c = model.config
        self.d, self.n_heads, self.n_kv = c.hidden_size, c.num_attention_heads, c.num_key_value_heads
        self.head_dim = getattr(c, "head_dim", None) or self.d // self.n_heads
        self.eps = c.rms_norm_eps
        self.theta = rope_theta(c)
        self.vocab = c.vocab_size
        self.layout = EdgeLayout(c.num_hidden_layers, self.n_heads)
        H, KV, hd, d = self.n_heads, self.n_kv, self.head_dim, self.d
        kv_of_head = torch.arange(H) // (H // KV)
        # Row of [q heads; k heads; v heads] that receiver (h, q|k|v) reads, in graph order.
        self.receiver_rows = torch.stack([torch.arange(H), H + kv_of_head, H + KV + kv_of_head], 1).flatten()
        interleave = torch.stack([torch.arange(hd // 2), torch.arange(hd // 2) + hd // 2], 1).flatten()

        def w(t):
            return t.detach().to(dtype)

        self.w_e = w(model.get_input_embeddings().weight)
        self.w_u = w(model.get_output_embeddings().weight)
        self.final_norm = w(model.model.norm.weight)
        self.layers = []
        for l, layer in enumerate(model.model.layers):
            a, mlp = layer.self_attn, layer.mlp
            for name, proj in (("q", a.q_proj), ("k", a.k_proj), ("v", a.v_proj), ("o", a.o_proj),
                               ("gate", mlp.gate_proj), ("up", mlp.up_proj), ("down", mlp.down_proj)):
                if getattr(proj, "bias", None) is not None:
                    sys.exit(f"{SCRIPT}: layer {l} {name}_proj has a bias; these baselines assume Llama without biases")
            n1, n2 = w(layer.input_layernorm.weight), w(layer.post_attention_layernorm.weight)
            heads = torch.cat([w(a.q_proj.weight).view(H, hd, d)[:, interleave],
                               w(a.k_proj.weight).view(KV, hd, d)[:, interleave],
                               w(a.v_proj.weight).view(KV, hd, d)]) * n1  # [H + 2·KV, hd, d]
            w_o = w(a.o_proj.weight)
            self.layers.append(LayerWeights(
                index=l,
                w_qkv=heads.reshape(-1, d),
                w_receivers=heads[self.receiver_rows].contiguous(),
                w_o=w_o,
                w_o_heads=w_o.view(d, H, hd).permute(1, 2, 0).contiguous(),
                w_gate_up=torch.cat([w(mlp.gate_proj.weight), w(mlp.up_proj.weight)]) * n2,
                w_down=w(mlp.down_proj.weight),
            ))
        self._rope: dict[int, torch.Tensor] = {}

    def rope(self, T: int, dtype):
        """RoPE rotations for the receivers' interleaved pairs: complex [T, 3H, hd/2], 1 for v."""
        if T not in self._rope:
            with torch.inference_mode(False):  # a normal tensor, even when first asked for under inference_mode
                inv_freq = self.theta ** (-torch.arange(0, self.head_dim, 2, dtype=torch.float64) / self.head_dim)
                angles = torch.arange(T, dtype=torch.float64)[:, None, None] * inv_freq
                angles = angles * torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64).repeat(self.n_heads)[:, None]
                complex_dtype = torch.complex64 if dtype == torch.float32 else torch.complex128
                self._rope[T] = torch.polar(torch.ones_like(angles), angles).to(complex_dtype)
        return self._rope[T]

    def forward(self, ids, last, embeds=None, capture=None, attribution=None):
        """Runs token ids [B, T] (or input embeddings [B, T, d]); returns the normalized final
        residual stream at each example's last real position, [B, d].

        `capture(first_sender, outputs[k, B·T, d])` receives every sender's output; `attribution`
        (an `Attribution`) makes the backward pass contract receiver gradients as they appear.
        """
        B, T = ids.shape
        H, hd, d = self.n_heads, self.head_dim, self.d
        x = self.w_e[ids] if embeds is None else embeds
        if capture is not None:
            capture(0, x.detach().reshape(1, B * T, d))
        rotations = self.rope(T, x.dtype)
        for layer in self.layers:
            y = AttentionReceivers.apply(x, layer, self, attribution)  # [B, T, 3H, hd]
            y = torch.view_as_real(torch.view_as_complex(y.view(B, T, 3 * H, hd // 2, 2)) * rotations)
            q, k, v = y.view(B, T, H, 3, hd).transpose(1, 2).unbind(3)  # [B, H, T, hd] each
            z = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # [B, H, T, hd]
            if capture is None:
                x = x + z.transpose(1, 2).reshape(B, T, H * hd) @ layer.w_o.T
            else:
                heads = torch.bmm(z.transpose(0, 1).reshape(H, B * T, hd), layer.w_o_heads)  # [H, B·T, d]
                capture(self.layout.head_sender(layer.index), heads.detach())
                x = x + heads.sum(0).view(B, T, d)
            on_gradient = None if attribution is None else partial(attribution.mlp, layer.index)
            gate, up = (NormalizedReceiver.apply(x, self.eps, on_gradient) @ layer.w_gate_up.T).chunk(2, -1)
            out = (F.silu(gate) * up) @ layer.w_down.T
            if capture is not None:
                capture(self.layout.mlp_sender(layer.index), out.detach().reshape(1, B * T, d))
            x = x + out
        final = x[torch.arange(B), last]
        on_gradient = None if attribution is None else attribution.logits
        return NormalizedReceiver.apply(final, self.eps, on_gradient) * self.final_norm


class AttentionReceivers(torch.autograd.Function):
    """Residual stream [B, T, d] → one layer's 3H receivers' projections [B, T, 3H, hd] (pre-RoPE),
    in graph order (head-major, then q, k, v; k and v from the head's KV group).

    Forward: one fused projection of the normalized stream, gathered per receiver. At α = 0 every
    receiver reads the same residual, so this equals 3H separately normalized copies.
    Backward: the receivers' input gradients g_r = (1/rms)(u_r − x̂ (x̂·u_r)/d), with
    u_r = grad_r @ W_r (the gradient w.r.t. r's normalized input) in one bmm, and x̂·u_r = grad_r·y_r
    (y_r: r's projection output), so the correction costs no extra pass over [3H, B·T, d]. They are
    handed to the attribution for contraction; their sum flows on to the residual stream.
    """

    @staticmethod
    def forward(ctx, resid, layer, model, attribution):
        B, T, d = resid.shape
        inv_rms = inverse_rms(resid, model.eps)
        normed = resid * inv_rms
        projected = (normed @ layer.w_qkv.T).view(B, T, -1, model.head_dim)
        y = projected.index_select(2, model.receiver_rows)
        if attribution is not None:
            ctx.save_for_backward(normed, inv_rms, y)
            ctx.layer, ctx.attribution = layer, attribution
        return y

    @staticmethod
    def backward(ctx, dy):
        normed, inv_rms, y = ctx.saved_tensors
        B, T, R, hd = dy.shape
        n, d = B * T, normed.shape[-1]
        grads = dy.reshape(n, R, hd) * inv_rms.view(n, 1, 1)  # 1/rms folded in
        correction = (grads * y.view(n, R, hd)).sum(-1).div_(d)  # [n, 3H]
        u = ctx.attribution.attention_rows(n * d).view(R, n, d)
        torch.bmm(grads.transpose(0, 1), ctx.layer.w_receivers, out=u)
        u.addcmul_(normed.view(1, n, d), correction.T.unsqueeze(-1), value=-1)
        grad_resid = u.sum(0).view(B, T, d)
        ctx.attribution.attention(ctx.layer.index)
        return grad_resid, None, None, None


class NormalizedReceiver(torch.autograd.Function):
    """x → x / rms(x) for a receiver with its own copy of the stream (an MLP, or `logits`); the
    backward hands ∂M/∂x, the receiver's input gradient, to `on_gradient`."""

    @staticmethod
    def forward(ctx, x, eps, on_gradient):
        inv_rms = inverse_rms(x, eps)
        normed = x * inv_rms
        if on_gradient is not None:
            ctx.save_for_backward(normed, inv_rms)
            ctx.on_gradient = on_gradient
        return normed

    @staticmethod
    def backward(ctx, grad):
        normed, inv_rms = ctx.saved_tensors
        grad_x = torch.addcmul(grad, normed, (normed * grad).mean(-1, keepdim=True), value=-1).mul_(inv_rms)
        ctx.on_gradient(grad_x)
        return grad_x, None, None


class Attribution:
    """Adds Σ diff·grad to the edge scores of one micro-batch as the backward pass produces gradients.

    `diffs` [S, B, T, d] holds corrupt − clean for every sender. Attention gradients of layer l
    wait in rows [0, 3H) of a [3H + 1, B·T·d] buffer until layer l−1's MLP gradient fills the last
    row; then one GEMM with diffs[:upstream(l)] scores both.
    """

    def __init__(self, layout: EdgeLayout, scores, diffs, last) -> None:
        self.layout, self.scores, self.last = layout, scores, last
        self.diffs = diffs.view(diffs.shape[0], -1)  # [S, B·T·d]
        self.batch = diffs.shape[1]
        self.rows = 3 * layout.n_heads
        self.buffer = torch.empty(self.rows + 1, self.diffs.shape[1], dtype=diffs.dtype)
        self.pending: int | None = None  # layer whose attention gradients wait in the buffer
        self.diffs_last = None  # [S, B·d] at the last real positions, gathered at the first backward

    def attention_rows(self, size: int):
        assert size == self.buffer.shape[1] and self.pending is None
        return self.buffer[: self.rows]

    def _add_attention(self, layer: int, block) -> None:
        upstream, offset = self.layout.attention_upstream[layer], self.layout.attention_offset[layer]
        self.scores[offset: offset + self.rows * upstream].view(self.rows, upstream).add_(block)

    def _add_mlp(self, layer: int, row) -> None:
        offset = self.layout.mlp_offset[layer]
        self.scores[offset: offset + self.layout.mlp_upstream[layer]].add_(row)

    def attention(self, layer: int) -> None:
        """Layer `layer`'s attention gradients are in the buffer."""
        if layer == 0:
            upstream = self.layout.attention_upstream[0]
            self._add_attention(0, self.buffer[: self.rows] @ self.diffs[:upstream].T)
        else:
            self.pending = layer

    def mlp(self, layer: int, grad) -> None:
        """The gradient of receiver `m{layer}`, [B, T, d]."""
        upstream = self.layout.mlp_upstream[layer]
        if self.pending == layer + 1:
            self.buffer[self.rows].copy_(grad.reshape(-1))
            scored = self.buffer @ self.diffs[: upstream + 1].T  # [3H + 1, upstream(l+1)]
            self._add_attention(layer + 1, scored[: self.rows])
            self._add_mlp(layer, scored[self.rows, :upstream])
            self.pending = None
        else:
            self._add_mlp(layer, self.diffs[:upstream] @ grad.reshape(-1))

    def logits(self, grad) -> None:
        """The gradient of receiver `logits` at the last real positions, [B, d]."""
        if self.diffs_last is None:
            S = self.diffs.shape[0]
            self.diffs_last = self.diffs.view(S, self.batch, -1, grad.shape[-1])[:, torch.arange(self.batch), self.last]
            self.diffs_last = self.diffs_last.reshape(S, -1)
        self.scores[self.layout.logits_offset:].add_(self.diffs_last @ grad.reshape(-1))


# --------------------------------------------------------------------------------------------
# Metrics (design §5) at the last real positions
# --------------------------------------------------------------------------------------------


class Targets:
    """Answer token ids of a micro-batch, padded, with per-example weights."""

    def __init__(self, correct: list[list[int]], incorrect: list[list[int]], dtype) -> None:
        self.correct, self.correct_w, self.correct_n = self._pad(correct, dtype)
        self.incorrect, self.incorrect_w, self.incorrect_n = self._pad(incorrect, dtype)

    @staticmethod
    def _pad(lists, dtype):
        width = max(len(x) for x in lists)
        ids = torch.tensor([x + [0] * (width - len(x)) for x in lists])
        mask = torch.tensor([[1.0] * len(x) + [0.0] * (width - len(x)) for x in lists], dtype=dtype)
        return ids, mask, mask.sum(1)


def metric_sum(name: str, model: FunctionalLlama, hidden, targets: Targets, reference_logprobs=None):
    """Σ over the micro-batch's examples of metric `name`, from the normalized final residual [B, d]."""
    if name == "logit_diff":
        correct = torch.einsum("bd,bjd->bj", hidden, model.w_u[targets.correct])
        incorrect = torch.einsum("bd,bjd->bj", hidden, model.w_u[targets.incorrect])
        return ((correct * targets.correct_w).sum(1) / targets.correct_n
                - (incorrect * targets.incorrect_w).sum(1) / targets.incorrect_n).sum()
    logprobs = torch.log_softmax(hidden @ model.w_u.T, -1)
    if name == "logprob":
        return ((logprobs.gather(1, targets.correct) * targets.correct_w).sum(1) / targets.correct_n).sum()
    if name == "prob_diff":
        probs = logprobs.exp()
        return ((probs.gather(1, targets.correct) * targets.correct_w).sum()
                - (probs.gather(1, targets.incorrect) * targets.incorrect_w).sum())
    if name == "kl":
        return (reference_logprobs.exp() * (reference_logprobs - logprobs)).sum()
    raise ValueError(f"unknown metric {name!r}; expected one of {', '.join(METRICS)}")


def reference_logprobs(name: str, model: FunctionalLlama, clean_hidden):
    """The clean run's log-probabilities at the last positions when the metric is KL, else None."""
    return torch.log_softmax(clean_hidden @ model.w_u.T, -1).detach() if name == "kl" else None


# --------------------------------------------------------------------------------------------
# EAP and EAP-IG
# --------------------------------------------------------------------------------------------


@dataclass
class Pairs:
    """Clean/corrupt token ids with answers; clean[i] and corrupt[i] have the same length."""

    clean: list[list[int]]
    corrupt: list[list[int]]
    correct: list[list[int]]
    incorrect: list[list[int]]

    def __len__(self) -> int:
        return len(self.clean)

    @staticmethod
    def load(path: str, vocab: int) -> "Pairs":
        """Reads `{"clean": [[ids]], "corrupt": ..., "correct": ..., "incorrect": ...}`, or exits naming the problem."""
        try:
            data = json.loads(Path(path).expanduser().read_text())
        except (OSError, json.JSONDecodeError) as error:
            sys.exit(f"{SCRIPT}: cannot read pairs from {path}: {error}")
        keys = ("clean", "corrupt", "correct", "incorrect")
        if not isinstance(data, dict) or any(not isinstance(data.get(k), list) for k in keys):
            sys.exit(f"{SCRIPT}: {path} must be a JSON object with lists {', '.join(keys)}")
        counts = {k: len(data[k]) for k in keys}
        if len(set(counts.values())) != 1 or counts["clean"] == 0:
            sys.exit(f"{SCRIPT}: {path}: the four lists need the same, non-zero length, got {counts}")
        for key in keys:
            for i, ids in enumerate(data[key]):
                if not isinstance(ids, list) or not ids or any(type(t) is not int or not 0 <= t < vocab for t in ids):
                    sys.exit(f"{SCRIPT}: {path}: {key}[{i}] must be a non-empty list of token ids in [0, {vocab})")
        for i, (a, b) in enumerate(zip(data["clean"], data["corrupt"])):
            if len(a) != len(b):
                sys.exit(f"{SCRIPT}: {path}: pair {i}: clean has {len(a)} tokens, corrupt {len(b)}; they must be equal")
        return Pairs(*(data[k] for k in keys))


@dataclass
class MicroBatch:
    """Pairs run together: token ids right-padded to the longest, and their answers."""

    clean: torch.Tensor  # [B, T] right-padded with 0
    corrupt: torch.Tensor
    last: torch.Tensor  # [B] index of each example's last real token
    targets: Targets


def micro_batches(pairs: Pairs, batch_size: int, dtype) -> list[MicroBatch]:
    """Pairs sorted by length and split into ⌈N / batch_size⌉ micro-batches of near-equal size."""
    order = sorted(range(len(pairs)), key=lambda i: len(pairs.clean[i]))
    count = math.ceil(len(pairs) / batch_size)
    batches = []
    for chunk in (order[len(order) * j // count: len(order) * (j + 1) // count] for j in range(count)):
        lengths = [len(pairs.clean[i]) for i in chunk]
        T = max(lengths)

        def padded(lists):
            return torch.tensor([lists[i] + [0] * (T - len(lists[i])) for i in chunk])

        batches.append(MicroBatch(clean=padded(pairs.clean), corrupt=padded(pairs.corrupt),
                                  last=torch.tensor(lengths) - 1,
                                  targets=Targets([pairs.correct[i] for i in chunk],
                                                  [pairs.incorrect[i] for i in chunk], dtype)))
    return batches


def attribute(model: FunctionalLlama, batches: list[MicroBatch], metric: str, steps: int | None):
    """EAP (steps None) or EAP-IG scores for every edge (float64 [n_edges]) and the clean and
    corrupt metric values.

    EAP per micro-batch: corrupt forward (stores senders), clean forward with autograd (subtracts
    its senders), one backward. EAP-IG: its first point k = 0 is the corrupt input itself, so the
    corrupt forward is that step's forward (with autograd); the clean forward (inference) completes
    the differences before its backward; then steps − 1 more forward/backward pairs.
    """
    layout = model.layout
    n_pairs = sum(b.clean.shape[0] for b in batches)
    scores = torch.zeros(layout.n_edges, dtype=torch.float64)
    values = {"clean": 0.0, "corrupt": 0.0}
    for batch in batches:
        B, T = batch.clean.shape
        diffs = torch.empty(layout.n_senders, B * T, model.d, dtype=model.w_e.dtype)

        def store(first, outputs):
            diffs[first: first + outputs.shape[0]].copy_(outputs)

        def subtract(first, outputs):
            diffs[first: first + outputs.shape[0]].sub_(outputs)

        attribution = Attribution(layout, scores, diffs.view(-1, B, T, model.d), batch.last)
        if steps is None:
            with torch.inference_mode():
                corrupt_hidden = model.forward(batch.corrupt, batch.last, capture=store)
            embeds = model.w_e[batch.clean].requires_grad_(True)
            clean_hidden = model.forward(batch.clean, batch.last, embeds=embeds, capture=subtract,
                                         attribution=attribution)
            reference = reference_logprobs(metric, model, clean_hidden)
            (metric_sum(metric, model, clean_hidden, batch.targets, reference) / n_pairs).backward()
        else:
            corrupt_embeds = model.w_e[batch.corrupt].requires_grad_(True)
            corrupt_hidden = model.forward(batch.corrupt, batch.last, embeds=corrupt_embeds, capture=store,
                                           attribution=attribution)
            with torch.inference_mode():
                clean_hidden = model.forward(batch.clean, batch.last, capture=subtract)
            reference = reference_logprobs(metric, model, clean_hidden)
            (metric_sum(metric, model, corrupt_hidden, batch.targets, reference) / (n_pairs * steps)).backward()
            input_diff = diffs[0].view(B, T, model.d)  # corrupt − clean embeddings
            for k in range(1, steps):
                embeds = (corrupt_embeds.detach() - (k / steps) * input_diff).requires_grad_(True)
                hidden = model.forward(batch.clean, batch.last, embeds=embeds, attribution=attribution)
                (metric_sum(metric, model, hidden, batch.targets, reference) / (n_pairs * steps)).backward()
        with torch.no_grad():
            for key, hidden in (("clean", clean_hidden), ("corrupt", corrupt_hidden)):
                values[key] += metric_sum(metric, model, hidden.detach(), batch.targets, reference).item() / n_pairs
    return scores, values


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def main() -> None:
    p = bc.parser(__doc__.split("\n")[0], repeats=3)
    p.add_argument("--model", default=bc.DEFAULT_MODEL, help="a .gguf file or an HF Llama directory")
    p.add_argument("--pairs", required=True,
                   help='JSON {"clean": [[ids]], "corrupt": [[ids]], "correct": [[ids]], "incorrect": [[ids]]}')
    p.add_argument("--method", choices=("eap", "eap-ig"), default="eap")
    p.add_argument("--steps", type=int, default=5, help="EAP-IG interpolation points m (default 5)")
    p.add_argument("--metric", choices=METRICS, default="logit_diff")
    p.add_argument("--batch-size", type=int, default=32, help="most pairs per micro-batch (default 32)")
    p.add_argument("--scores", help="write the scores here as raw little-endian float32 in edge order")
    p.add_argument("--top", type=int, default=10, help="edges with the largest |score| to list (default 10)")
    args = p.parse_args()
    bc.check_counts(args)
    if args.batch_size < 1 or args.steps < 1:
        sys.exit(f"{SCRIPT}: --batch-size and --steps must be >= 1 (got {args.batch_size}, {args.steps})")
    bc.setup_torch(args.threads, SCRIPT)

    meter = bc.MemoryMeter()
    hf_model, load_s = bc.load_llama(args.model, SCRIPT)
    model = FunctionalLlama(hf_model)
    del hf_model  # the functional model keeps what it needs (folded copies or shared tensors)
    gc.collect()
    pairs = Pairs.load(args.pairs, model.vocab)
    batches = micro_batches(pairs, args.batch_size, model.w_e.dtype)
    steps = args.steps if args.method == "eap-ig" else None
    bc.log(f"{len(pairs)} pairs in {len(batches)} micro-batches of ≤ {args.batch_size}; "
           f"{model.layout.n_edges} edges; {args.method} {args.metric}")

    meter.start_phase()
    timing, (scores, values) = bc.best_of(lambda: attribute(model, batches, args.metric, steps),
                                          args.repeats, args.warmup, args.method)
    meter.end_phase()
    if not torch.isfinite(scores).all():
        sys.exit(f"{SCRIPT}: non-finite scores")
    scores32 = scores.to(torch.float32)
    if args.scores:
        scores32.numpy().astype("<f4").tofile(Path(args.scores).expanduser())
        bc.log(f"wrote {model.layout.n_edges} scores to {args.scores}")
    names = model.layout.edge_names()
    top = torch.argsort(scores.abs(), descending=True)[: args.top].tolist()
    bc.log(f"{args.method}: best {timing['best_s']:.3f} s; {args.metric} clean {values['clean']:.4f}, "
           f"corrupt {values['corrupt']:.4f}; top edge {names[top[0]]} {scores[top[0]]:.4f}")

    bc.emit({
        "benchmark": "torch_eap",
        "model": str(Path(args.model).expanduser()),
        "method": args.method,
        "steps": steps,
        "metric": args.metric,
        "pairs": len(pairs),
        "batch_size": args.batch_size,
        "micro_batches": len(batches),
        "tokens": sum(b.clean.numel() for b in batches),
        "edges": model.layout.n_edges,
        "metric_clean": values["clean"],
        "metric_corrupt": values["corrupt"],
        "scores_path": args.scores,
        "scores_sum": scores.sum().item(),
        "top_edges": [{"edge": names[i], "score": scores[i].item()} for i in top],
        **timing,
        "load_s": load_s,
        "dtype": str(model.w_e.dtype),
        **meter.report(),
        **bc.environment(args.threads),
    }, args.json)


if __name__ == "__main__":
    main()
