"""PyTorch + HF transformers forward baseline: tokens/s of LlamaForCausalLM on random tokens.

The model is loaded from the GGUF (`from_pretrained(dir, gguf_file=name, dtype=float32)`,
dequantized to float32) with transformers' default attention (SDPA) and frozen weights. One
forward = `model(input_ids, logits_to_keep=1, use_cache=False)` under `torch.inference_mode()`:
the whole batch through every layer, the unembedding at the last position only, no KV cache.
Token ids are uniform over the vocabulary with a fixed seed. tokens/s = batch·tokens / best time.

  python3 Benchmarks/baselines/torch_forward.py --model ~/.cache/circuitkit/models/SmolLM2-135M-Instruct.Q4_1.gguf \\
      --batch 64 --tokens 16 --threads 2 --repeats 5 --json
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import baseline_common as bc  # noqa: E402

SCRIPT = "torch_forward.py"


def main() -> None:
    args = bc.random_batch_args(__doc__.split("\n")[0], repeats=5, script=SCRIPT)
    torch = bc.setup_torch(args.threads, SCRIPT)
    meter = bc.MemoryMeter()
    model, load_s = bc.load_llama(args.model, SCRIPT)
    vocab = model.config.vocab_size
    ids = torch.randint(0, vocab, (args.batch, args.tokens), generator=torch.Generator().manual_seed(args.seed))

    def forward():
        with torch.inference_mode():
            return model(input_ids=ids, logits_to_keep=1, use_cache=False).logits

    meter.start_phase()
    timing, logits = bc.best_of(forward, args.repeats, args.warmup, "forward")
    meter.end_phase()
    assert logits.shape == (args.batch, 1, vocab) and torch.isfinite(logits).all(), "forward produced bad logits"
    tokens_per_s = args.batch * args.tokens / timing["best_s"]
    bc.log(f"forward {args.batch}x{args.tokens}: best {timing['best_s']:.4f} s, {tokens_per_s:.0f} tokens/s")

    bc.emit({"benchmark": "torch_forward", **bc.model_run_record(args, model, load_s, timing, meter)}, args.json)


if __name__ == "__main__":
    main()
