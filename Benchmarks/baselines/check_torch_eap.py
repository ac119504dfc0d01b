"""Checks torch_eap.py on the tiny Llama fixture (Tests/Fixtures/tiny-llama); runs in seconds.

Independent references: Tests/Fixtures/reference.py (a slow functional model in float64 with a
separate residual copy per receiver and autograd gradients per receiver) and HF transformers.
Checks:
  - edge order and count: torch_eap's edge names equal the order built here from design §3's
    rule, for the fixture and for SmolLM2's shape (30 layers, 9 heads: 123,211 edges);
  - the functional forward's logits equal HF's (each prompt alone, unpadded);
  - EAP and EAP-IG scores (float64) equal Σ (corrupt_s − clean_s)·∂M/∂input_r from the reference
    receiver gradients, for every metric, with right padding and several micro-batches;
  - EAP scores equal the finite-difference derivative of M under α-patching (reference patching);
  - float32 scores agree with float64, and the command line writes the same scores to --scores.
Prints PASS/FAIL per check and exits 1 if any fails:
  python3 Benchmarks/baselines/check_torch_eap.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
FIXTURES = ROOT / "Tests" / "Fixtures"
sys.dont_write_bytecode = True  # keep __pycache__ out of Tests/Fixtures
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(FIXTURES))
import baseline_common as bc  # noqa: E402

torch = bc.setup_torch(2, "check_torch_eap.py")
np = bc.import_or_exit("numpy", "check_torch_eap.py")
import reference as ref  # noqa: E402
import torch_eap as te  # noqa: E402

MODEL = FIXTURES / "tiny-llama"
failures: list[str] = []


def check(name: str, ok: bool, detail: str) -> None:
    print(f"{'PASS' if ok else 'FAIL'} {name}: {detail}", flush=True)
    if not ok:
        failures.append(name)


def relative_error(mine, expected) -> float:
    mine, expected = torch.as_tensor(mine, dtype=torch.float64), torch.as_tensor(expected, dtype=torch.float64)
    return ((mine - expected).abs().max() / expected.abs().max().clamp_min(1e-30)).item()


def make_pairs(vocab: int) -> te.Pairs:
    """Six random pairs of different lengths; some answers have two tokens."""
    gen = torch.Generator().manual_seed(11)
    lengths = [5, 9, 7, 9, 4, 8]
    clean = [torch.randint(1, vocab, (n,), generator=gen).tolist() for n in lengths]
    corrupt = [[t if torch.rand(1, generator=gen).item() < 0.5 else int(torch.randint(1, vocab, (1,), generator=gen))
                for t in ids] for ids in clean]
    answers = torch.randint(1, vocab, (len(lengths), 4), generator=gen).tolist()
    correct = [a[:2] if i % 3 == 0 else a[:1] for i, a in enumerate(answers)]
    incorrect = [a[2:] if i % 2 == 0 else a[2:3] for i, a in enumerate(answers)]
    return te.Pairs(clean, corrupt, correct, incorrect)


def reference_edges(g) -> list[tuple[str, str]]:
    """(sender, receiver) in score order, from design §3's rule on the names alone."""

    def rank(sender: str) -> tuple[int, int]:
        if sender == "input":
            return (-1, 0)
        layer = int(sender[1:].split(".")[0])
        return (layer, 0 if sender.startswith("a") else 1)

    edges = []
    for receiver in g.receivers():
        if receiver == "logits":
            bound = (g.n_layers, 0)
        else:
            layer = int(receiver[1:].split(".")[0].split("<")[0])
            bound = (layer, 0) if receiver.startswith("a") else (layer, 1)
        edges += [(s, receiver) for s in g.senders() if rank(s) < bound]
    return edges


def reference_scores(g, pairs: te.Pairs, metric: str, steps: int | None) -> torch.Tensor:
    """Σ (corrupt_s − clean_s)·∂M/∂input_r with the reference's per-receiver gradients."""
    clean_ids, lengths = ref.pad(pairs.clean)
    corrupt_ids, _ = ref.pad(pairs.corrupt)
    clean, corrupt = g.embed(clean_ids), g.embed(corrupt_ids)
    clean_run, corrupt_run = ref.forward(g, clean), ref.forward(g, corrupt)
    probs = torch.softmax(ref.last_logits(clean_run.logits, lengths), -1) if metric == "kl" else None
    points = [clean] if steps is None else [corrupt + (k / steps) * (clean - corrupt) for k in range(steps)]
    receivers = g.receivers()
    grads = {r: 0 for r in receivers}
    for embeds in points:
        _, step_grads = ref.receiver_gradients(g, embeds, lengths, pairs.correct, pairs.incorrect, metric, receivers,
                                               probs)
        for r in receivers:
            grads[r] = grads[r] + step_grads[r] / len(points)
    return torch.tensor([((corrupt_run.senders[s] - clean_run.senders[s]) * grads[r]).sum().item()
                         for s, r in reference_edges(g)], dtype=torch.float64)


def finite_difference(g, pairs: te.Pairs, edge: str, eps: float = 1e-4) -> float:
    """dM/dα of edge `sender->receiver` at α = 0 by central differences under reference patching."""
    clean_ids, lengths = ref.pad(pairs.clean)
    corrupt_ids, _ = ref.pad(pairs.corrupt)
    corrupt_senders = ref.forward(g, g.embed(corrupt_ids)).senders
    values = []
    for alpha in (eps, -eps):
        run = ref.forward(g, g.embed(clean_ids), patch=ref.Patch.of(corrupt_senders, {edge: alpha}))
        values.append(ref.metric("logit_diff", run.logits, lengths, pairs.correct, pairs.incorrect).item())
    return (values[0] - values[1]) / (2 * eps)


def main() -> None:
    hf, _ = bc.load_llama(str(MODEL), "check_torch_eap.py")
    g = ref.graph_from_llama(hf)
    mine64 = te.FunctionalLlama(hf, torch.float64)
    mine32 = te.FunctionalLlama(hf)
    pairs = make_pairs(mine64.vocab)

    names = mine64.layout.edge_names()
    expected = [f"{s}->{r}" for s, r in reference_edges(g)]
    check("edge order", names == expected and mine64.layout.n_edges == len(expected),
          f"{len(names)} edges, first {names[:2]}, last {names[-1]}")
    smol = te.EdgeLayout(30, 9)
    check("SmolLM2 edge count", smol.n_edges == 123_211 == len(smol.edge_names()), f"{smol.n_edges} (design: 123,211)")

    batches32 = te.micro_batches(pairs, 6, torch.float32)
    with torch.inference_mode():
        hidden = mine32.forward(batches32[0].clean, batches32[0].last)
        mine_logits = hidden @ mine32.w_u.T
        order = sorted(range(len(pairs)), key=lambda i: len(pairs.clean[i]))
        hf_logits = torch.stack([hf(torch.tensor([pairs.clean[i]])).logits[0, -1] for i in order])
    error = (mine_logits - hf_logits).abs().max().item()
    check("forward vs HF", error < 1e-4, f"max |Δ logits| {error:.2e} (float32)")

    for method, steps in (("eap", None), ("eap-ig", 3)):
        for metric in te.METRICS:
            expected_scores = reference_scores(g, pairs, metric, steps)
            scores, _ = te.attribute(mine64, te.micro_batches(pairs, 4, torch.float64), metric, steps)
            scale = expected_scores.abs().max().item()
            if scale < 1e-12:  # KL at the clean point: every gradient is zero
                error = scores.abs().max().item()
                check(f"{method} {metric} vs reference", error < 1e-12,
                      f"all scores zero as expected (max {error:.1e})")
                continue
            error = relative_error(scores, expected_scores)
            check(f"{method} {metric} vs reference", error < 1e-9,
                  f"max |Δ| / max |score| = {error:.1e} over {len(scores)} edges (float64, 2 micro-batches)")

    scores64, values = te.attribute(mine64, te.micro_batches(pairs, 4, torch.float64), "logit_diff", None)
    clean_ids, lengths = ref.pad(pairs.clean)
    clean_value = ref.metric("logit_diff", ref.forward(g, g.embed(clean_ids)).logits, lengths, pairs.correct,
                             pairs.incorrect).item()
    check("clean metric", abs(values["clean"] - clean_value) < 1e-9,
          f"{values['clean']:.6f} vs reference {clean_value:.6f}")
    for edge in ["input->a1.h2<k>", "a0.h1->a1.h0<q>", "a0.h3->a1.h1<v>", "input->m0", "a1.h2->m1", "m0->logits"]:
        fd = finite_difference(g, pairs, edge)
        score = scores64[names.index(edge)].item()
        check(f"finite difference {edge}", abs(fd - score) < 1e-6 * max(1.0, abs(score)),
              f"EAP {score:.8f} vs dM/dα {fd:.8f}")

    scores32, _ = te.attribute(mine32, te.micro_batches(pairs, 4, torch.float32), "logit_diff", None)
    error = relative_error(scores32, scores64)
    check("float32 vs float64", error < 1e-4, f"max |Δ| / max |score| = {error:.1e}")

    with tempfile.TemporaryDirectory() as tmp:
        pairs_path, scores_path = Path(tmp) / "pairs.json", Path(tmp) / "scores.f32"
        pairs_path.write_text(json.dumps(pairs.__dict__))
        command = [sys.executable, str(HERE / "torch_eap.py"), "--model", str(MODEL), "--pairs", str(pairs_path),
                   "--method", "eap-ig", "--steps", "3", "--batch-size", "4", "--repeats", "1", "--warmup", "0",
                   "--scores", str(scores_path), "--json"]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            check("command line", False, f"exit {done.returncode}: {done.stderr[-2000:]}")
        else:
            result = json.loads(done.stdout.strip().splitlines()[-1])
            written = torch.from_numpy(np.fromfile(scores_path, dtype="<f4"))
            expected_scores = reference_scores(g, pairs, "logit_diff", 3)
            error = relative_error(written, expected_scores)
            check("command line", result["edges"] == len(written) == len(expected) and error < 1e-4,
                  f"{len(written)} scores written, max |Δ| / max |score| = {error:.1e} vs reference; "
                  f"best {result['best_s']:.3f} s, compute peak {result['compute_peak_rss_bytes']} bytes")

    print("FAIL" if failures else "PASS", f"({len(failures)} of the checks failed)" if failures else "(all checks)")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
