"""Generates HF transformers' attention weights (`output_attentions`) for the tiny models.

For tiny-gpt2 and tiny-llama, on a few prompts (the clean and corrupt prompts of
reference/<model>.safetensors and one random 32-token prompt), every layer's and head's attention
pattern as HF's eager attention returns it, each prompt run alone.

Outputs (paths relative to Tests/Fixtures):
  reference/attention-tiny-gpt2.safetensors
  reference/attention-tiny-llama.safetensors
See README.md for what they contain. Run from the repository root:
  /root/ckvenv/bin/python Tests/Fixtures/generate_attention.py
Reads tiny-gpt2/, tiny-llama/ and reference/{tiny-gpt2, tiny-llama}.safetensors (run
generate_models.py first if those change). Generated with Python 3.11.7, torch 2.13.0+cpu,
transformers 5.24.0, safetensors 0.8.0, numpy 2.4.6 (gguf 0.19.0 only because generate_masked
imports generate_models).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.dont_write_bytecode = True  # keep __pycache__ out of Tests/Fixtures
sys.path.insert(0, str(HERE))

import torch  # noqa: E402

import reference as ref  # noqa: E402
from generate_masked import load_tiny, read_pairs  # noqa: E402  (main() runs only as a script)

torch.use_deterministic_algorithms(True)
torch.set_num_threads(1)

LONG_PROMPT = 32  # tokens of the random prompt added to the reference's pairs

NOTES = (
    "float32 attention weights from HF transformers (attn_implementation='eager', output_attentions=True), "
    "each prompt run alone with no padding. attention.p{i} is [layers, heads, n, n] for prompts[i] of n "
    "tokens: row = query position, column = key position, zero above the diagonal. Prompts: the clean "
    "then the corrupt prompts of reference/<model>.safetensors, then one random prompt."
)


def prompts(label: str, vocab: int, seed: int) -> list[list[int]]:
    """The reference's clean and corrupt prompts (unpadded) and one random LONG_PROMPT-token prompt."""
    pairs = read_pairs(label)
    lengths = json.loads(pairs["lengths"])
    out = [row[:n] for key in ["clean_tokens", "corrupt_tokens"] for row, n in zip(json.loads(pairs[key]), lengths)]
    gen = torch.Generator().manual_seed(seed)
    return out + [torch.randint(0, vocab, (LONG_PROMPT,), generator=gen).tolist()]


def generate(label: str, model, seed: int) -> None:
    tokens = prompts(label, model.config.vocab_size, seed)
    tensors = {}
    for i, t in enumerate(tokens):
        with torch.no_grad():
            attentions = model(torch.tensor([t]), output_attentions=True).attentions
        pattern = torch.stack([a[0] for a in attentions])  # [layers, heads, n, n]
        n = len(t)
        sums = (pattern.sum(-1) - 1).abs().max().item()
        above = pattern.triu(1).abs().max().item()
        assert sums < 1e-5 and above == 0.0, f"{label} prompt {i}: rows sum to 1 within {sums}, above the diagonal {above}"
        assert pattern.shape[-2:] == (n, n), f"{label} prompt {i}: shape {tuple(pattern.shape)}"
        tensors[f"attention.p{i}"] = ref.f32(pattern)
    metadata = {
        "prompts": json.dumps(tokens),
        "config": f"{label}: {model.config.num_hidden_layers} layers, {model.config.num_attention_heads} heads. " + NOTES,
    }
    out = HERE / "reference" / f"attention-{label}.safetensors"
    ref.write_safetensors(out, tensors, metadata)
    print(f"{label}: {len(tokens)} prompts of lengths {[len(t) for t in tokens]}; wrote {out.name} ({out.stat().st_size} bytes)")


def main() -> None:
    which = set(sys.argv[1:]) or {"tiny-gpt2", "tiny-llama"}
    for label, seed in [("tiny-gpt2", 51), ("tiny-llama", 52)]:
        if label in which:
            generate(label, load_tiny(label), seed)


if __name__ == "__main__":
    main()
