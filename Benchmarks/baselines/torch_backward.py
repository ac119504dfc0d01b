"""PyTorch + HF transformers backward baseline: forward + backward of logit_diff w.r.t. the input embeddings.

The model is loaded as in torch_forward.py, weights frozen (`requires_grad=False`, so no weight
gradient is ever formed). Each example has random token ids and two fixed, distinct answer tokens
(seeded); the metric is the mean over examples of logit(answer 1) − logit(answer 2) at the last
position. One timed step: embeddings (a leaf with requires_grad) → `model.model` (all layers and
the final norm) → the two unembedding rows at the last position only (the full-vocabulary logits
are never formed) → `torch.autograd.grad` w.r.t. the embeddings.

  python3 Benchmarks/baselines/torch_backward.py --model ~/.cache/circuitkit/models/SmolLM2-135M-Instruct.Q4_1.gguf \\
      --batch 64 --tokens 16 --threads 2 --repeats 3 --json
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import baseline_common as bc  # noqa: E402

SCRIPT = "torch_backward.py"


def main() -> None:
    args = bc.random_batch_args(__doc__.split("\n")[0], repeats=3, script=SCRIPT)
    torch = bc.setup_torch(args.threads, SCRIPT)
    meter = bc.MemoryMeter()
    model, load_s = bc.load_llama(args.model, SCRIPT)
    vocab = model.config.vocab_size
    generator = torch.Generator().manual_seed(args.seed)
    ids = torch.randint(0, vocab, (args.batch, args.tokens), generator=generator)
    answers = torch.randperm(vocab, generator=generator)[:2]  # [correct, incorrect], the same for every example
    with torch.no_grad():
        embeds = model.get_input_embeddings()(ids)
        unembed = model.get_output_embeddings().weight[answers]  # [2, d]

    def forward_backward():
        x = embeds.detach().requires_grad_(True)
        hidden = model.model(inputs_embeds=x, use_cache=False).last_hidden_state[:, -1]  # [B, d] after the final norm
        logits = hidden @ unembed.T  # [B, 2]
        metric = (logits[:, 0] - logits[:, 1]).mean()
        (grad,) = torch.autograd.grad(metric, x)
        return metric.item(), grad

    meter.start_phase()
    timing, (metric, grad) = bc.best_of(forward_backward, args.repeats, args.warmup, "forward+backward")
    meter.end_phase()
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0, "backward produced a bad gradient"
    bc.log(f"forward+backward {args.batch}x{args.tokens}: best {timing['best_s']:.4f} s, logit_diff {metric:.4f}")

    bc.emit({
        "benchmark": "torch_backward",
        "answers": answers.tolist(),
        "metric": "logit_diff",
        "metric_value": metric,
        **bc.model_run_record(args, model, load_s, timing, meter),
    }, args.json)


if __name__ == "__main__":
    main()
