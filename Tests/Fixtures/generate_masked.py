"""Generates PyTorch references for forward passes under a real-valued edge mask α.

For tiny-gpt2 and tiny-llama, on the prompt pairs of reference/<model>.safetensors, every edge
s→r of the graph (design §3, in the dense order of generate_models.edges) gets a weight α_e, and
receiver r reads resid + Σ_s α_{s→r} (corrupt_s − current_s) (design §4, reference.Patch:
current_s is the sender's output in the masked run itself, so patches propagate; corrupt_s comes
from an unpatched run on the corrupt prompt and is a constant). For two masks (dense, sparse) and
each metric of design §5 this writes M, ∂M/∂α [E] and ∂M/∂(clean input embedding) [B, T, d].

Outputs (paths relative to Tests/Fixtures):
  reference/masked-tiny-gpt2.safetensors
  reference/masked-tiny-llama.safetensors
See README.md for what they contain. Run from the repository root:
  /root/ckvenv/bin/python Tests/Fixtures/generate_masked.py
Reads tiny-gpt2/, tiny-llama/ and reference/{tiny-gpt2, tiny-llama}.safetensors (run
generate_models.py first if those change). Generated with Python 3.11.7, torch 2.13.0+cpu,
transformers 5.24.0, safetensors 0.8.0, numpy 2.4.6, gguf 0.19.0 (needed only because
generate_models is imported for `edges`).
"""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.dont_write_bytecode = True  # keep __pycache__ out of Tests/Fixtures
sys.path.insert(0, str(HERE))

import torch  # noqa: E402
from transformers import GPT2LMHeadModel, LlamaForCausalLM  # noqa: E402

import reference as ref  # noqa: E402
from generate_models import edges  # noqa: E402  (main() runs only as a script)

torch.use_deterministic_algorithms(True)
torch.set_num_threads(1)

MASKS = ["dense", "sparse"]
PAIR_KEYS = ["clean_tokens", "corrupt_tokens", "lengths", "correct", "incorrect"]
FD_STEP = 1e-5
FD_TOLERANCE = 1e-6  # relative to max(|autograd|, FD_FLOOR); the floor only guards against 0
FD_FLOOR = 1e-8
EAP_TOLERANCE = 1e-9

NOTES = (
    "float32 tensors, computed in float64 by Tests/Fixtures/reference.py and rounded to float32 (the "
    "masks are float32 values, used exactly). Receiver r reads resid + sum_s alpha[s->r] (corrupt_s - "
    "current_s) (design §4; current_s is the sender's output in the masked run itself, so patches "
    "propagate; corrupt_s is the unpatched corrupt run's output, a constant). Edges in the order of the "
    "`edges` metadata. Metrics are means over examples at each example's last real position, and the "
    "gradients are of that mean. kl is KL(p_clean || p_run) with p_clean the softmax of the unpatched "
    "clean run. grad_input is d M / d (clean input embedding), the `input` sender of the masked run "
    "(token + position embedding for GPT-2), zero at padding positions. grad_alpha.zero.logit_diff is "
    "the gradient at alpha = 0 (the EAP scores <corrupt_s - clean_s, dM/dinput_r>)."
)


def read_pairs(label: str) -> dict[str, str]:
    """The prompt-pair metadata strings of reference/<label>.safetensors, verbatim."""
    with open(HERE / "reference" / f"{label}.safetensors", "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        metadata = json.loads(f.read(n))["__metadata__"]
    return {k: metadata[k] for k in PAIR_KEYS}


def make_masks(E: int, seed: int) -> dict[str, torch.Tensor]:
    """dense: α ~ U(0.05, 0.95); sparse: ~10 % nonzero, half of them 1, half U(0.05, 0.95).

    Values are rounded to float32 so that the stored masks are exactly the ones used.
    """
    gen = torch.Generator().manual_seed(seed)
    dense = 0.05 + 0.9 * torch.rand(E, generator=gen, dtype=torch.float64)
    k = max(2, round(0.1 * E))
    chosen = torch.randperm(E, generator=gen)[:k]
    sparse = torch.zeros(E, dtype=torch.float64)
    sparse[chosen[: k // 2]] = 1.0
    sparse[chosen[k // 2:]] = 0.05 + 0.9 * torch.rand(k - k // 2, generator=gen, dtype=torch.float64)
    return {m: x.to(torch.float32).to(torch.float64) for m, x in {"dense": dense, "sparse": sparse}.items()}


class Setup:
    """The graph, a batch, the corrupt run's senders and p_clean for one model."""

    def __init__(self, g: ref.Graph, pairs: dict[str, str]):
        self.g = g
        self.edges = edges(g)
        self.lengths = json.loads(pairs["lengths"])
        self.correct = json.loads(pairs["correct"])
        self.incorrect = json.loads(pairs["incorrect"])
        clean_ids = torch.tensor(json.loads(pairs["clean_tokens"]))
        corrupt_ids = torch.tensor(json.loads(pairs["corrupt_tokens"]))
        self.clean_emb = g.embed(clean_ids).detach()
        self.corrupt_emb = g.embed(corrupt_ids).detach()
        with torch.no_grad():
            self.clean_run = ref.forward(g, self.clean_emb)
            corrupt_run = ref.forward(g, self.corrupt_emb)
        self.corrupt = {k: v.detach() for k, v in corrupt_run.senders.items()}
        self.corrupt_logits = corrupt_run.logits.detach()
        self.p_clean = torch.softmax(ref.last_logits(self.clean_run.logits, self.lengths), -1).detach()

    def patch(self, alpha: torch.Tensor) -> ref.Patch:
        """A Patch whose α are elements of `alpha` [E] (tensors, so autograd flows through them)."""
        alphas: dict[str, list] = {}
        for i, edge in enumerate(self.edges):
            sender, receiver = edge.split("->")
            alphas.setdefault(receiver, []).append((sender, alpha[i]))
        return ref.Patch(corrupt=self.corrupt, alphas=alphas)

    def metric(self, name: str, logits: torch.Tensor) -> torch.Tensor:
        return ref.metric(name, logits, self.lengths, self.correct, self.incorrect, self.p_clean)

    def values(self, alpha: torch.Tensor, emb: torch.Tensor | None = None) -> dict[str, float]:
        """Every metric under mask `alpha`, no gradients."""
        with torch.no_grad():
            logits = ref.forward(self.g, self.clean_emb if emb is None else emb, patch=self.patch(alpha)).logits
            return {m: self.metric(m, logits).item() for m in ref.METRICS}

    def gradients(self, alpha: torch.Tensor, name: str) -> tuple[float, torch.Tensor, torch.Tensor]:
        """(M, ∂M/∂α [E], ∂M/∂clean_emb [B, T, d]) under mask `alpha`."""
        a = alpha.clone().requires_grad_(True)
        x = self.clean_emb.clone().requires_grad_(True)
        m = self.metric(name, ref.forward(self.g, x, patch=self.patch(a)).logits)
        ga, gx = torch.autograd.grad(m, [a, x])
        return m.item(), ga, gx


def fd_entries(mask: torch.Tensor, grad: torch.Tensor, seed: int) -> list[int]:
    """8 α entries to check: per class of value (0, 1, inside), the largest |grad| and random ones."""
    gen = torch.Generator().manual_seed(seed)
    classes = [(mask == 0), (mask == 1), (mask > 0) & (mask < 1)]
    classes = [torch.nonzero(c).flatten() for c in classes if c.any()]
    picks: list[int] = []
    while len(picks) < 8:
        for c in classes:
            rest = [i for i in c.tolist() if i not in picks]
            if not rest or len(picks) == 8:
                continue
            if not any(i in picks for i in c.tolist()):
                picks.append(max(rest, key=lambda i: abs(grad[i].item())))
            else:
                picks.append(rest[torch.randint(len(rest), (1,), generator=gen).item()])
    return picks


def check_fd(s: Setup, label: str, mask_name: str, mask: torch.Tensor, grads: dict[str, torch.Tensor]) -> float:
    """Central finite differences of every metric along 8 α entries; returns the worst relative error."""
    worst = 0.0
    picks = fd_entries(mask, grads["logit_diff"], seed=len(s.edges))
    for i in picks:
        plus, minus = mask.clone(), mask.clone()
        plus[i] += FD_STEP
        minus[i] -= FD_STEP
        vp, vm = s.values(plus), s.values(minus)
        for m in ref.METRICS:
            fd = (vp[m] - vm[m]) / (2 * FD_STEP)
            an = grads[m][i].item()
            rel = abs(fd - an) / max(abs(an), FD_FLOOR)
            worst = max(worst, rel)
            assert rel < FD_TOLERANCE, f"{label} {mask_name} {m}: α[{s.edges[i]}] autograd {an} vs FD {fd}"
    desc = ", ".join(f"{s.edges[i]}={mask[i].item():.3g}" for i in picks)
    print(f"{label} {mask_name}: FD on α [{desc}] × {len(ref.METRICS)} metrics, worst rel err {worst:.2e}")
    return worst


def check_fd_input(s: Setup, label: str, mask_name: str, mask: torch.Tensor, grads: dict[str, torch.Tensor]) -> float:
    """Central finite differences of every metric along a random direction of the clean embedding."""
    gen = torch.Generator().manual_seed(5)
    u = ref.zero_padding(torch.randn(s.clean_emb.shape, generator=gen, dtype=torch.float64), s.lengths)
    vp = s.values(mask, s.clean_emb + FD_STEP * u)
    vm = s.values(mask, s.clean_emb - FD_STEP * u)
    worst = 0.0
    for m in ref.METRICS:
        fd = (vp[m] - vm[m]) / (2 * FD_STEP)
        an = (grads[m] * u).sum().item()
        rel = abs(fd - an) / max(abs(an), FD_FLOOR)
        worst = max(worst, rel)
        assert rel < FD_TOLERANCE, f"{label} {mask_name} {m}: input gradient {an} vs FD {fd}"
    print(f"{label} {mask_name}: FD on the input embedding, worst rel err {worst:.2e}")
    return worst


def check_eap(s: Setup, label: str) -> tuple[torch.Tensor, float]:
    """At α = 0, ∂M/∂α_{s→r} = ⟨corrupt_s − clean_s, ∂M/∂input_r⟩ for every metric."""
    zero = torch.zeros(len(s.edges), dtype=torch.float64)
    worst, out = {}, None
    for m in ref.METRICS:
        _, ga, _ = s.gradients(zero, m)
        _, rg = ref.receiver_gradients(s.g, s.clean_emb, s.lengths, s.correct, s.incorrect, m,
                                       s.g.receivers(), s.p_clean)
        eap = torch.stack([((s.corrupt[a] - s.clean_run.senders[a]) * rg[b]).sum()
                           for a, b in (e.split("->") for e in s.edges)])
        worst[m] = (ga - eap).abs().max().item()
        assert worst[m] < EAP_TOLERANCE, f"{label}: EAP identity fails for {m} ({worst[m]})"
        if m == "logit_diff":
            out = ga
    print(f"{label}: EAP identity at α = 0, max |Δ| " + ", ".join(f"{m} {v:.1e}" for m, v in worst.items())
          + f" (max |∂logit_diff/∂α| {out.abs().max().item():.3g})")
    return out, worst["logit_diff"]


def generate(label: str, g: ref.Graph, seed: int) -> None:
    pairs = read_pairs(label)
    s = Setup(g, pairs)
    E = len(s.edges)
    B, T, d = s.clean_emb.shape

    ones = torch.ones(E, dtype=torch.float64)
    zero = torch.zeros(E, dtype=torch.float64)
    clean_values, corrupt_values = s.values(zero), s.values(ones)
    expected = {m: s.metric(m, s.corrupt_logits).item() for m in ref.METRICS}
    unpatched = {m: s.metric(m, s.clean_run.logits).item() for m in ref.METRICS}
    d_corrupt = max(abs(corrupt_values[m] - expected[m]) for m in ref.METRICS)
    d_clean = max(abs(clean_values[m] - unpatched[m]) for m in ref.METRICS)
    assert d_corrupt < 1e-10 and d_clean < 1e-12, f"{label}: α = 1 / α = 0 runs ({d_corrupt}, {d_clean})"
    print(f"{label}: E = {E}; α = 1 reproduces the corrupt run (max |Δ| {d_corrupt:.1e}), "
          f"α = 0 the clean run ({d_clean:.1e}); clean {clean_values}; corrupt {corrupt_values}")

    masks = make_masks(E, seed)
    tensors = {f"alpha.{k}": ref.f32(v) for k, v in masks.items()}
    values = {}
    for mask_name in MASKS:
        mask = masks[mask_name]
        values[mask_name], ga, gx = {}, {}, {}
        for m in ref.METRICS:
            values[mask_name][m], ga[m], gx[m] = s.gradients(mask, m)
            for i, n in enumerate(s.lengths):
                assert gx[m][i, n:].abs().sum().item() == 0.0, f"{label} {mask_name} {m}: padding gradient"
            tensors[f"grad_alpha.{mask_name}.{m}"] = ref.f32(ga[m])
            tensors[f"grad_input.{mask_name}.{m}"] = ref.f32(gx[m])
        check_fd(s, label, mask_name, mask, ga)
        check_fd_input(s, label, mask_name, mask, gx)
        print(f"{label} {mask_name}: {int((mask > 0).sum())} nonzero α; M {values[mask_name]}; max |∂M/∂α| "
              + ", ".join(f"{m} {ga[m].abs().max().item():.3g}" for m in ref.METRICS))

    eap, _ = check_eap(s, label)
    tensors["grad_alpha.zero.logit_diff"] = ref.f32(eap)

    metadata = dict(pairs)
    metadata.update({
        "edges": json.dumps(s.edges),
        "values": json.dumps(values),
        "clean_values": json.dumps(clean_values),
        "corrupt_values": json.dumps(corrupt_values),
        "config": f"{label}: E = {E} edges, B = {B}, Tmax = {T}, d = {d}. " + NOTES,
    })
    out = HERE / "reference" / f"masked-{label}.safetensors"
    ref.write_safetensors(out, tensors, metadata)
    print(f"{label}: wrote {out.name} ({out.stat().st_size} bytes, {len(tensors)} tensors)")


def load_tiny(label: str):
    """The tiny HF model in Tests/Fixtures/<label> (tiny-gpt2 or tiny-llama), with eager attention."""
    kind = GPT2LMHeadModel if label == "tiny-gpt2" else LlamaForCausalLM
    return kind.from_pretrained(HERE / label, attn_implementation="eager").eval()


def main() -> None:
    which = set(sys.argv[1:]) or {"tiny-gpt2", "tiny-llama"}
    for label, graph, seed in [("tiny-gpt2", ref.graph_from_gpt2, 41), ("tiny-llama", ref.graph_from_llama, 42)]:
        if label in which:
            generate(label, graph(load_tiny(label)), seed)


if __name__ == "__main__":
    main()
