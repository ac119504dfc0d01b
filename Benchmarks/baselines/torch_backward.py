"""PyTorch + HF transformers backward baseline: forward + backward of logit_diff w.r.t. the input embeddings.

The model is loaded as in torch_forward.py, weights frozen (`requires_grad=False`, so no weight
gradient is ever formed). Each example has random token ids and two fixed, distinct answer tokens
(seeded); the metric is the mean over examples of logit(answer 1) − logit(answer 2) at the last
position. One timed step: embeddings (a leaf with requires_grad) → `model.model` (all layers and
the final norm) → the two unembedding rows at the last position only (the full-vocabulary logits
are never formed) → `torch.autograd.grad` w.r.t. the embeddings.

With --receivers the same step runs through torch_eap.py's functional model instead of
`model.model`, so the backward pass also forms the gradient at every receiver of the graph (each
head's q/k/v input through its own norm, every MLP input, logits), as CircuitKit's backward does:
the gradients are handed to a sink that drops them, where EAP would contract them.

  python3 Benchmarks/baselines/torch_backward.py --model ~/.cache/circuitkit/models/SmolLM2-135M-Instruct.Q4_1.gguf \\
      --batch 64 --tokens 16 --threads 2 --repeats 3 [--receivers] --json
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import baseline_common as bc  # noqa: E402

SCRIPT = "torch_backward.py"


class ReceiverSink:
    """Stands in for torch_eap.Attribution: receives every receiver's gradient and drops it."""

    def __init__(self, torch, receivers: int, size: int) -> None:
        self.buffer = torch.empty(receivers, size)  # [3H, B·T·d]: one layer's attention receivers

    def attention_rows(self, size: int):
        assert size == self.buffer.shape[1]
        return self.buffer

    def attention(self, layer: int) -> None:
        pass

    def mlp(self, layer: int, grad) -> None:
        pass

    def logits(self, grad) -> None:
        pass


def main() -> None:
    def configure(p):
        p.add_argument("--receivers", action="store_true",
                       help="run through torch_eap.py's functional model, forming the gradient at every receiver")
    args = bc.random_batch_args(__doc__.split("\n")[0], repeats=3, script=SCRIPT, configure=configure)
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

    if args.receivers:
        import torch_eap  # noqa: E402  (same folder)

        functional = torch_eap.FunctionalLlama(model)
        sink = ReceiverSink(torch, 3 * functional.n_heads, args.batch * args.tokens * functional.d)
        last = torch.full((args.batch,), args.tokens - 1)

    def final_hidden(x):
        """[B, d] after the final norm at the last position."""
        if args.receivers:
            return functional.forward(ids, last, embeds=x, attribution=sink)
        return model.model(inputs_embeds=x, use_cache=False).last_hidden_state[:, -1]

    def forward_backward():
        x = embeds.detach().requires_grad_(True)
        logits = final_hidden(x) @ unembed.T  # [B, 2]
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
        "receivers": args.receivers,
        "answers": answers.tolist(),
        "metric": "logit_diff",
        "metric_value": metric,
        **bc.model_run_record(args, model, load_s, timing, meter),
    }, args.json)


if __name__ == "__main__":
    main()
