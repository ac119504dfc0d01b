"""Generates reference/smollm2.safetensors: logits and receiver gradients of the real model.

Needs ~/.cache/circuitkit/models/SmolLM2-135M-Instruct.Q4_1.gguf (98,362,432 bytes). HF
transformers dequantizes it to float32 and un-permutes Q/K; token ids come from a tokenizer
built here from the GGUF vocabulary with SmolLM2's pre-tokenizer (every digit isolated), since
HF's GGUF tokenizer conversion lacks the digit split. Run:
  /root/ckvenv/bin/python Tests/Fixtures/generate_smollm2.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import gguf
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import AutoModelForCausalLM

HERE = Path(__file__).resolve().parent
sys.dont_write_bytecode = True  # keep __pycache__ out of Tests/Fixtures
sys.path.insert(0, str(HERE))
import reference as ref  # noqa: E402

torch.use_deterministic_algorithms(True)
torch.set_num_threads(1)

MODEL = Path.home() / ".cache/circuitkit/models/SmolLM2-135M-Instruct.Q4_1.gguf"

PROMPTS = [
    "When Mary and John went to the store, John gave a drink to",
    "The war lasted from the year 1732 to the year 17",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) +",
    "Zürich café: naïve crème brûlée costs 12€ — 東京の天気は 🌧️ and",
    "The cat sat on the mat. The dog sat on the rug. The cat sat on the",
    "In 2023, 45 people paid $1,234.56 for 7 tickets to",
    "Then, Sarah and David had a long argument. Afterwards, David said to",
    "Alice: What is the capital of France?\nBob: The capital of France is",
    ("The history of the printing press begins in the fifteenth century, when Johannes Gutenberg "
     "combined movable metal type, oil-based inks and a wooden press adapted from those used to make "
     "wine. Within fifty years, presses had spread to more than two hundred cities across Europe, and "
     "the number of books in circulation grew from thousands to"),
]

# IOI batch: (prompt, indirect object, subject), prompts of different lengths.
IOI = [
    ("When Mary and John went to the store, John gave a drink to", " Mary", " John"),
    ("Then, Sarah and David had a long argument. Afterwards, David said to", " Sarah", " David"),
    ("After Lisa and Tom walked to the park by the old lake, Tom handed a ball to", " Lisa", " Tom"),
    ("When Anna and Mark arrived, Mark gave a book to", " Anna", " Mark"),
]

RECEIVERS = ["a0.h0<q>", "a3.h1<k>", "a3.h2<k>", "a12.h7<v>", "a29.h8<q>", "m3", "m29", "logits"]


def smollm2_tokenizer(reader: gguf.GGUFReader) -> Tokenizer:
    """Byte-level BPE from the GGUF's tokens and merges; digits isolated before ByteLevel."""
    tokens = reader.fields["tokenizer.ggml.tokens"].contents()
    merges = [tuple(m.split(" ")) for m in reader.fields["tokenizer.ggml.merges"].contents()]
    tok = Tokenizer(models.BPE({t: i for i, t in enumerate(tokens)}, merges))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True),
         pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
    )
    tok.decoder = decoders.ByteLevel()
    return tok


def single_token(tok: Tokenizer, text: str) -> int:
    ids = tok.encode(text).ids
    assert len(ids) == 1, f"{text!r} is {len(ids)} tokens"
    return ids[0]


def main() -> None:
    reader = gguf.GGUFReader(str(MODEL))
    tok = smollm2_tokenizer(reader)
    model = AutoModelForCausalLM.from_pretrained(MODEL.parent, gguf_file=MODEL.name, dtype=torch.float32,
                                                 attn_implementation="eager").eval()
    g = ref.graph_from_llama(model)

    ioi_ids = tok.encode(IOI[0][0]).ids
    expected = [2427, 5099, 284, 2322, 3514, 288, 260, 4249, 28, 2322, 4502, 253, 5968, 288]
    assert ioi_ids == expected, f"tokenizer sanity check failed: {ioi_ids}"

    prompt_tokens = [tok.encode(p).ids for p in PROMPTS]
    for p, ids in zip(PROMPTS, prompt_tokens):
        assert tok.decode(ids) == p, f"round trip failed for {p!r}"
    last = torch.zeros(len(PROMPTS), model.config.vocab_size)
    with torch.no_grad():
        for i, ids in enumerate(prompt_tokens):
            logits = model(torch.tensor([ids])).logits[0].float()
            last[i] = logits[-1]
            mine = ref.forward(g, g.embed(torch.tensor([ids]))).logits[0]
            d = (mine.float() - logits).abs().max().item()
            assert d < 1e-3, f"graph model differs from HF by {d} on {PROMPTS[i]!r}"
            print(f"prompt {i}: {len(ids)} tokens, graph vs HF max |Δ| {d:.1e}")
    mary, john = last[0, 5099].item(), last[0, 2322].item()
    print(f"' Mary' {mary:.4f}, ' John' {john:.4f}")
    assert abs(mary - 11.0370) < 5e-4 and abs(john - 4.9174) < 5e-4, "IOI sanity logits differ from design §2"

    ioi_tokens = [tok.encode(p).ids for p, _, _ in IOI]
    correct = [[single_token(tok, io)] for _, io, _ in IOI]
    incorrect = [[single_token(tok, s)] for _, _, s in IOI]
    ids, lengths = ref.pad(ioi_tokens)
    assert len(set(lengths)) == len(lengths), f"IOI prompts need different lengths: {lengths}"
    value, grads = ref.receiver_gradients(g, g.embed(ids), lengths, correct, incorrect, "logit_diff", RECEIVERS)
    for r in RECEIVERS:
        for i, n in enumerate(lengths):
            assert grads[r][i, n:].abs().sum().item() == 0.0, f"padding gradient at {r}"
    check_gradient(g, g.embed(ids), lengths, correct, incorrect, grads)
    per_example = []
    with torch.no_grad():
        for i, t in enumerate(ioi_tokens):
            z = model(torch.tensor([t])).logits[0, -1]
            per_example.append((z[correct[i][0]] - z[incorrect[i][0]]).item())
    hf_value = sum(per_example) / len(per_example)
    assert abs(hf_value - value) < 1e-3, f"logit_diff {value} vs HF {hf_value}"
    print(f"IOI logit_diff {value:.4f} (HF {hf_value:.4f}), lengths {lengths}; "
          + ", ".join(f"{r} max|g| {grads[r].abs().max():.3g}" for r in RECEIVERS))

    tensors = {"last_logits": ref.f32(last)}
    for r in RECEIVERS:
        tensors[f"grad.logit_diff.{r}"] = ref.f32(grads[r])
    T = max(lengths)
    metadata = {
        "prompts": json.dumps(PROMPTS, ensure_ascii=False),
        "prompt_tokens": json.dumps(prompt_tokens),
        "ioi_prompts": json.dumps([p for p, _, _ in IOI]),
        "tokens": json.dumps([t + [0] * (T - len(t)) for t in ioi_tokens]),
        "lengths": json.dumps(lengths),
        "correct": json.dumps(correct),
        "incorrect": json.dumps(incorrect),
        "receivers": json.dumps(RECEIVERS),
        "metrics_clean": json.dumps({"logit_diff": value}),
        "config": ("SmolLM2-135M-Instruct.Q4_1.gguf dequantized by HF transformers (float32 weights); "
                   "last_logits from HF in float32, one prompt at a time; gradients of logit_diff "
                   "(mean over the 4 IOI examples of logit(IO) - logit(S) at the last real token) computed "
                   "in float64 by Tests/Fixtures/reference.py with split receivers (design §3), stored "
                   "as float32; tokens right-padded with 0, gradients zero at padding positions."),
    }
    out = HERE / "reference" / "smollm2.safetensors"
    out.parent.mkdir(exist_ok=True)
    ref.write_safetensors(out, tensors, metadata)
    print(f"wrote {out} ({out.stat().st_size} bytes)")


def check_gradient(g, embeds, lengths, correct, incorrect, grads) -> None:
    """Central finite differences along a random direction for two receivers."""
    gen = torch.Generator().manual_seed(7)
    for r in ["a3.h2<k>", "m29"]:
        u = torch.randn(embeds.shape, generator=gen, dtype=torch.float64)
        eps = 1e-5
        ms = [ref.metric("logit_diff", ref.forward(g, embeds, deltas={r: s * eps * u}).logits, lengths, correct,
                         incorrect).item() for s in (1, -1)]
        fd = (ms[0] - ms[1]) / (2 * eps)
        an = (grads[r] * u).sum().item()
        assert abs(fd - an) < 1e-5 * max(1.0, abs(an)), f"{r}: gradient {an} vs finite difference {fd}"
    print("finite differences agree")


if __name__ == "__main__":
    main()
