"""Generates the tiny random-weight models and their PyTorch references.

Outputs (paths relative to Tests/Fixtures):
  tiny-gpt2/{config.json, model.safetensors}        HF GPT-2 directory, hub (`gpt2`) key layout
  tiny-llama/{config.json, model.safetensors}       HF LlamaForCausalLM via save_pretrained
  tiny-llama-gguf/tiny-llama.gguf                   the same Llama as llama.cpp-style GGUF
  reference/{tiny-gpt2, tiny-llama, tiny-llama-gguf}.safetensors
See README.md for what the references contain. Run:
  /root/ckvenv/bin/python Tests/Fixtures/generate_models.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import gguf
import numpy as np
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

HERE = Path(__file__).resolve().parent
sys.dont_write_bytecode = True  # keep __pycache__ out of Tests/Fixtures
sys.path.insert(0, str(HERE))
import reference as ref  # noqa: E402

torch.use_deterministic_algorithms(True)
torch.set_num_threads(1)

VOCAB = 512
LENGTHS = [7, 4, 6]
IG_ALPHA = 0.4  # the eap-ig point: corrupt + 0.4 (clean − corrupt)


# --------------------------------------------------------------------------------------------
# "Interesting" random weights: O(1) logits and gradients, heads that matter
# --------------------------------------------------------------------------------------------


def fill(model, std_of, seed: int) -> None:
    """Overwrites every parameter: norm weights ~ U(0.7, 1.3), others N(0, std_of(name)²)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if is_norm_weight(name):
                p.copy_(0.7 + 0.6 * torch.rand(p.shape, generator=gen, dtype=torch.float64))
            else:
                p.copy_(std_of(name) * torch.randn(p.shape, generator=gen, dtype=torch.float64))


def is_norm_weight(name: str) -> bool:
    return name.endswith("weight") and any(k in name for k in ("ln_", "layernorm", "norm."))


def gpt2_std(name: str) -> float:
    if name.endswith("bias"):
        return 0.1 if "ln_" in name else 0.2
    return {"wte": 0.4, "wpe": 0.2, "c_attn": 0.3, "attn.c_proj": 0.2, "c_fc": 0.25, "mlp.c_proj": 0.12}[
        next(k for k in ("wte", "wpe", "c_attn", "attn.c_proj", "c_fc", "mlp.c_proj") if k in name)
    ]


def llama_std(name: str) -> float:
    table = {"embed_tokens": 0.6, "q_proj": 0.3, "k_proj": 0.3, "v_proj": 0.3, "o_proj": 0.2,
             "gate_proj": 0.3, "up_proj": 0.3, "down_proj": 0.15, "lm_head": 0.3}
    return table[next(k for k in table if k in name)]


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------


def build_gpt2() -> GPT2LMHeadModel:
    config = GPT2Config(
        vocab_size=VOCAB, n_positions=64, n_embd=32, n_layer=2, n_head=4, activation_function="gelu_new",
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, layer_norm_epsilon=1e-5,
        bos_token_id=0, eos_token_id=0, architectures=["GPT2LMHeadModel"],
    )
    model = GPT2LMHeadModel(config).eval()
    fill(model, gpt2_std, seed=20240601)
    return model


def save_gpt2_hub_layout(model: GPT2LMHeadModel, folder: Path) -> None:
    """config.json + model.safetensors keyed like the hub `gpt2` checkpoint.

    That checkpoint stores the GPT2Model keys without the "transformer." prefix, no lm_head
    (tied to wte), Conv1D weights as [in, out], and per layer the causal-mask buffer
    `h.N.attn.bias` ([1, 1, n_positions, n_positions] lower-triangular ones), which HF
    ignores on load (`_keys_to_ignore_on_load_unexpected`).
    """
    folder.mkdir(parents=True, exist_ok=True)
    model.config.to_json_file(folder / "config.json")
    tensors = {}
    for k, v in model.state_dict().items():
        if k.startswith("transformer."):
            tensors[k[len("transformer."):]] = v.detach().numpy().astype(np.float32)
    P = model.config.n_positions
    mask = np.tril(np.ones((P, P), dtype=np.float32)).reshape(1, 1, P, P)
    for l in range(model.config.n_layer):
        tensors[f"h.{l}.attn.bias"] = mask
    ref.write_safetensors(folder / "model.safetensors", tensors, {"format": "pt"})


def build_llama() -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=8, rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0}, max_position_embeddings=64,
        tie_word_embeddings=False, attention_bias=False, mlp_bias=False, hidden_act="silu",
        bos_token_id=0, eos_token_id=0, architectures=["LlamaForCausalLM"],
    )
    model = LlamaForCausalLM(config).eval()
    fill(model, llama_std, seed=20240602)
    return model


# --------------------------------------------------------------------------------------------
# GGUF (llama.cpp convert_hf_to_gguf conventions)
# --------------------------------------------------------------------------------------------

Q = gguf.GGMLQuantizationType
# Storage type per GGUF tensor: norms F32; the rest alternate F32 / F16 / Q8_0 across layers.
GGUF_TYPES = {
    "token_embd.weight": Q.F16, "output.weight": Q.Q8_0, "output_norm.weight": Q.F32,
    "blk.0.attn_q.weight": Q.Q8_0, "blk.0.attn_k.weight": Q.F16, "blk.0.attn_v.weight": Q.Q8_0,
    "blk.0.attn_output.weight": Q.F32, "blk.0.ffn_gate.weight": Q.Q8_0, "blk.0.ffn_up.weight": Q.F16,
    "blk.0.ffn_down.weight": Q.Q8_0,
    "blk.1.attn_q.weight": Q.F16, "blk.1.attn_k.weight": Q.Q8_0, "blk.1.attn_v.weight": Q.F32,
    "blk.1.attn_output.weight": Q.Q8_0, "blk.1.ffn_gate.weight": Q.F16, "blk.1.ffn_up.weight": Q.Q8_0,
    "blk.1.ffn_down.weight": Q.F32,
}


def permute_for_gguf(w: np.ndarray, n_head: int) -> np.ndarray:
    """Reorders each head's rows from half-split to interleaved-pair RoPE order.

    Within a head, output row i of the first half and row i of the second half (a rotation
    pair in HF's rotate_half convention) become rows 2i and 2i+1.
    """
    rows = w.shape[0]
    half = rows // n_head // 2
    return w.reshape(n_head, 2, half, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def read_tiny_tokenizer() -> tuple[list[str], list[str], list[int]]:
    """Tokens (by id), merges and token types from tiny-tokenizer/{vocab.json, merges.txt}.

    Special added tokens of tiny-tokenizer/tokenizer.json are CONTROL, the rest NORMAL, as
    convert_hf_to_gguf marks them.
    """
    folder = HERE / "tiny-tokenizer"
    vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    tokens = [None] * len(vocab)
    for token, i in vocab.items():
        tokens[i] = token
    assert None not in tokens and len(tokens) == VOCAB, "tiny-tokenizer vocab must have ids 0..511"
    merges = [line for line in (folder / "merges.txt").read_text(encoding="utf-8").split("\n")
              if line and not line.startswith("#version")]
    added = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))["added_tokens"]
    special = {t["id"] for t in added if t["special"]}
    types = [int(gguf.TokenType.CONTROL if i in special else gguf.TokenType.NORMAL) for i in range(VOCAB)]
    return tokens, merges, types


def write_gguf(model: LlamaForCausalLM, path: Path) -> None:
    c = model.config
    path.parent.mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_type("model")
    w.add_name("tiny-llama")
    w.add_block_count(c.num_hidden_layers)
    w.add_context_length(c.max_position_embeddings)
    w.add_embedding_length(c.hidden_size)
    w.add_feed_forward_length(c.intermediate_size)
    w.add_head_count(c.num_attention_heads)
    w.add_head_count_kv(c.num_key_value_heads)
    w.add_rope_freq_base(ref.rope_theta(c))
    w.add_layer_norm_rms_eps(c.rms_norm_eps)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    w.add_vocab_size(c.vocab_size)
    w.add_rope_dimension_count(c.head_dim)
    tokens, merges, types = read_tiny_tokenizer()
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    specials = [i for i, t in enumerate(types) if t == gguf.TokenType.CONTROL]
    if specials:
        w.add_bos_token_id(specials[0])
        w.add_eos_token_id(specials[0])
    w.add_add_bos_token(False)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)

    sd = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    per_layer = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
                 "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
                 "post_attention_layernorm": "ffn_norm", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
                 "mlp.down_proj": "ffn_down"}
    for l in range(c.num_hidden_layers):
        for hf, gg in per_layer.items():
            names[f"model.layers.{l}.{hf}.weight"] = f"blk.{l}.{gg}.weight"
    order = ["token_embd.weight"] + [f"blk.{l}.{gg}.weight" for l in range(c.num_hidden_layers)
                                     for gg in per_layer.values()] + ["output_norm.weight", "output.weight"]
    by_gguf = {names[k]: v for k, v in sd.items()}
    for name in order:
        data = by_gguf[name]
        if name.endswith("attn_q.weight"):
            data = permute_for_gguf(data, c.num_attention_heads)
        elif name.endswith("attn_k.weight"):
            data = permute_for_gguf(data, c.num_key_value_heads)
        qtype = GGUF_TYPES.get(name, Q.F32)
        if qtype == Q.F32:
            w.add_tensor(name, data)
        elif qtype == Q.F16:
            w.add_tensor(name, data.astype(np.float16))
        else:
            w.add_tensor(name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# --------------------------------------------------------------------------------------------
# References
# --------------------------------------------------------------------------------------------


def make_tokens(seed: int) -> tuple[list[list[int]], list[list[int]]]:
    """Random clean and corrupt token ids with lengths LENGTHS (corrupt ≠ clean)."""
    gen = torch.Generator().manual_seed(seed)
    clean = [torch.randint(0, VOCAB, (n,), generator=gen).tolist() for n in LENGTHS]
    corrupt = [torch.randint(0, VOCAB, (n,), generator=gen).tolist() for n in LENGTHS]
    assert all(a != b for a, b in zip(clean, corrupt))
    return clean, corrupt


def pick_answers(clean_last: torch.Tensor, corrupt_last: torch.Tensor):
    """Answers the model actually prefers, so that every metric is far from zero.

    correct_i: the clean run's top 1 / 2 / 1 tokens at the last real position; incorrect_i: the
    corrupt run's top 1 / 1 / 2 tokens there that are not correct.
    """
    correct, incorrect = [], []
    for i, (n_c, n_w) in enumerate([(1, 1), (2, 1), (1, 2)]):
        c = clean_last[i].argsort(descending=True)[:n_c].tolist()
        w = [t for t in corrupt_last[i].argsort(descending=True).tolist() if t not in c][:n_w]
        correct.append(c)
        incorrect.append(w)
    return correct, incorrect


def hf_logits(model, tokens: list[list[int]]) -> torch.Tensor:
    """HF float32 logits, each example run alone (no padding), zeros at padding positions."""
    T = max(len(t) for t in tokens)
    out = torch.zeros(len(tokens), T, model.config.vocab_size)
    with torch.no_grad():
        for i, t in enumerate(tokens):
            out[i, : len(t)] = model(torch.tensor([t])).logits[0].float()
    return out


def check_against_hf(g: ref.Graph, model, tokens: list[list[int]], logits32: torch.Tensor, label: str) -> None:
    """Asserts the graph model matches HF: logits, residual stream per layer, sender sums."""
    ids, lengths = ref.pad(tokens)
    run = ref.forward(g, g.embed(ids))
    worst = 0.0
    for i, n in enumerate(lengths):
        worst = max(worst, (run.logits[i, :n].float() - logits32[i, :n]).abs().max().item())
        with torch.no_grad():
            hidden = model(torch.tensor([tokens[i]]), output_hidden_states=True).hidden_states
        for l in range(g.n_layers):
            d = (run.resid_pre[l][i, :n].float() - hidden[l][0]).abs().max().item()
            assert d < 1e-4, f"{label}: residual before layer {l} differs from HF by {d}"
    assert worst < 1e-4, f"{label}: logits differ from HF by {worst}"
    total = sum(run.senders.values()) + run.bias_sum
    d = (total - run.resid_final).abs().max().item()
    assert d < 1e-12, f"{label}: senders do not sum to the residual stream ({d})"
    print(f"{label}: graph vs HF logits max |Δ| = {worst:.2e}; senders sum to residual ({d:.1e})")


def check_gradient(g, embeds, lengths, correct, incorrect, grads, receivers, label):
    """Central finite differences of logit_diff along a random direction per receiver."""
    gen = torch.Generator().manual_seed(7)
    for r in receivers:
        u = torch.randn(embeds.shape, generator=gen, dtype=torch.float64)
        for i, n in enumerate(lengths):
            u[i, n:] = 0
        eps = 1e-5
        ms = [ref.metric("logit_diff", ref.forward(g, embeds, deltas={r: s * eps * u}).logits, lengths, correct,
                         incorrect).item() for s in (1, -1)]
        fd = (ms[0] - ms[1]) / (2 * eps)
        an = (grads[r] * u).sum().item()
        assert abs(fd - an) < 1e-6 * max(1.0, abs(an)), f"{label}: {r} gradient {an} vs finite difference {fd}"
    print(f"{label}: finite differences agree for {receivers}")


def check_input_gradient(model, g, embeds, lengths, correct, incorrect, grads, label):
    """HF's own autograd: ∂logit_diff/∂(input embeddings) equals the sum over all receivers."""
    hf = type(model)(model.config).eval()
    hf.load_state_dict(model.state_dict())
    hf = hf.double()
    x = embeds.clone().requires_grad_(True)
    if g.arch == "gpt2":
        # HF adds the position embedding itself: pass token embeddings, differentiate those.
        logits = hf(inputs_embeds=x - g.wpe[: x.shape[1]][None]).logits
    else:
        logits = hf(inputs_embeds=x).logits
    m = ref.metric("logit_diff", logits, lengths, correct, incorrect)
    (gx,) = torch.autograd.grad(m, x)
    total = sum(grads.values())
    d = (gx - total).abs().max().item()
    # HF computes RoPE angles in float32 even in a float64 model.
    tolerance = (1e-12 if g.arch == "gpt2" else 1e-5) * max(1.0, total.abs().max().item())
    assert d < tolerance, f"{label}: Σ receiver gradients differs from HF's input gradient by {d}"
    print(f"{label}: Σ receiver gradients = HF input-embedding gradient (|Δ| {d:.1e})")


def edges(g: ref.Graph) -> list[str]:
    """Every edge of design §3 as "sender->receiver"."""
    out = []
    for l in range(g.n_layers):
        upstream = ["input"] + [s for s in g.senders()[1:] if int(s[1:].split(".")[0]) < l]
        for h in range(g.n_heads):
            out += [f"{s}->a{l}.h{h}<{p}>" for p in "qkv" for s in upstream]
        out += [f"{s}->m{l}" for s in upstream + [f"a{l}.h{h}" for h in range(g.n_heads)]]
    out += [f"{s}->logits" for s in g.senders()]
    return out


def metric_values(logits, lengths, correct, incorrect, reference_probs) -> dict[str, float]:
    return {m: ref.metric(m, logits, lengths, correct, incorrect, reference_probs).item() for m in ref.METRICS}


def write_reference(label: str, model, g: ref.Graph, tokens, notes: str) -> None:
    clean, corrupt = tokens
    clean_ids, lengths = ref.pad(clean)
    corrupt_ids, _ = ref.pad(corrupt)
    logits_clean, logits_corrupt = hf_logits(model, clean), hf_logits(model, corrupt)
    check_against_hf(g, model, clean, logits_clean, f"{label} clean")
    check_against_hf(g, model, corrupt, logits_corrupt, f"{label} corrupt")

    clean_emb, corrupt_emb = g.embed(clean_ids), g.embed(corrupt_ids)
    clean_run, corrupt_run = ref.forward(g, clean_emb), ref.forward(g, corrupt_emb)
    correct, incorrect = pick_answers(ref.last_logits(clean_run.logits, lengths),
                                      ref.last_logits(corrupt_run.logits, lengths))
    q_corrupt = torch.softmax(ref.last_logits(corrupt_run.logits, lengths), -1)
    q_clean = torch.softmax(ref.last_logits(clean_run.logits, lengths), -1)

    tensors = {"logits.clean": ref.f32(logits_clean), "logits.corrupt": ref.f32(logits_corrupt)}
    for name, x in clean_run.senders.items():
        tensors[f"sender.{name}"] = ref.f32(ref.zero_padding(x, lengths))

    receivers = g.receivers()
    values = {}
    for m in ref.METRICS:
        value, grads = ref.receiver_gradients(g, clean_emb, lengths, correct, incorrect, m, receivers, q_corrupt)
        values[m] = value
        for r, x in grads.items():
            for i, n in enumerate(lengths):
                assert x[i, n:].abs().sum().item() == 0.0, f"{label}: padding gradient at {r}"
            tensors[f"grad.{m}.{r}"] = ref.f32(x)
        if m == "logit_diff":
            check_gradient(g, clean_emb, lengths, correct, incorrect, grads,
                           ["a0.h1<q>", f"a{g.n_layers - 1}.h2<k>", f"a{g.n_layers - 1}.h3<v>", "m0", "logits"],
                           label)
            check_input_gradient(model, g, clean_emb, lengths, correct, incorrect, grads, label)
    ig_emb = corrupt_emb + IG_ALPHA * (clean_emb - corrupt_emb)
    ig_value, grads = ref.receiver_gradients(g, ig_emb, lengths, correct, incorrect, "logit_diff", receivers)
    for r, x in grads.items():
        tensors[f"grad.ig.logit_diff.{r}"] = ref.f32(x)

    # Edge patching (design §4) on top of the clean run; kl here is KL(p_clean ‖ p_run) (design §5).
    last = g.n_layers - 1
    patch_sets = [
        {"input->a1.h2<k>": 1.0},
        {"a0.h1->a1.h3<q>": 1.0},
        {"a0.h0->m0": 1.0},
        {f"m{last}->logits": 1.0},
        {"a0.h3->a1.h0<v>": 0.5},
        {"input->a0.h0<q>": 1.0, "a0.h0->a1.h1<k>": 1.0, "m0->a1.h2<v>": 1.0, "a1.h2->logits": 1.0},
        {e: 1.0 for e in edges(g)},
    ]
    patches = []
    for edge_set in patch_sets:
        run = ref.forward(g, clean_emb, patch=ref.Patch.of(corrupt_run.senders, edge_set))
        patches.append({"edges": edge_set, "values": metric_values(run.logits, lengths, correct, incorrect, q_clean)})
    every = patches[-1]["values"]
    expected = metric_values(corrupt_run.logits, lengths, correct, incorrect, q_clean)
    assert all(abs(every[k] - expected[k]) < 1e-10 for k in every), f"{label}: all-edges patch != corrupt run"
    patches[-1]["edges"] = "all"

    pad_rows = lambda rows: [r + [0] * (max(lengths) - len(r)) for r in rows]  # noqa: E731
    metadata = {
        "clean_tokens": json.dumps(pad_rows(clean)),
        "corrupt_tokens": json.dumps(pad_rows(corrupt)),
        "lengths": json.dumps(lengths),
        "correct": json.dumps(correct),
        "incorrect": json.dumps(incorrect),
        "senders": json.dumps(g.senders()),
        "receivers": json.dumps(receivers),
        "metrics_clean": json.dumps(values),
        "metrics_ig": json.dumps({"logit_diff": ig_value}),
        "ig_alpha": json.dumps(IG_ALPHA),
        "patches": json.dumps(patches),
        "config": notes,
    }
    out = HERE / "reference" / f"{label}.safetensors"
    out.parent.mkdir(exist_ok=True)
    ref.write_safetensors(out, tensors, metadata)
    grad_abs = torch.cat([torch.from_numpy(v).abs().flatten() for k, v in tensors.items() if k.startswith("grad.")])
    print(f"{label}: wrote {out.name} ({out.stat().st_size} bytes, {len(tensors)} tensors); metrics {values}; "
          f"|grad| mean {grad_abs.mean():.3g} max {grad_abs.max():.3g}; "
          f"logits std {logits_clean[0, :LENGTHS[0]].std():.3g}")


NOTES = ("float32 tensors; gradients computed in float64 by Tests/Fixtures/reference.py (split receivers, "
         "design §3) and rounded to float32; logits from HF transformers in float32. Token lists are "
         "right-padded with 0; zeros at padding positions in logits/senders/gradients. "
         "kl gradients use the corrupt run's distribution at the last real position as reference; "
         "in `patches` kl is KL(p_clean || p_run).")


def main() -> None:
    which = set(sys.argv[1:]) or {"tiny-gpt2", "tiny-llama", "tiny-llama-gguf"}

    gpt2 = build_gpt2()
    if "tiny-gpt2" in which:
        folder = HERE / "tiny-gpt2"
        save_gpt2_hub_layout(gpt2, folder)
        loaded = GPT2LMHeadModel.from_pretrained(folder, attn_implementation="eager").eval()
        for k, v in gpt2.state_dict().items():
            assert torch.equal(v, loaded.state_dict()[k]), f"tiny-gpt2: {k} did not round-trip"
        write_reference("tiny-gpt2", loaded, ref.graph_from_gpt2(loaded), make_tokens(11),
                        "tiny-gpt2 (GPT-2, 2 layers, 4 heads, d 32, vocab 512). " + NOTES)

    llama = build_llama()
    if "tiny-llama" in which:
        folder = HERE / "tiny-llama"
        llama.save_pretrained(folder)
        (folder / "model.safetensors").chmod(0o644)  # save_pretrained writes it owner-only
        loaded = LlamaForCausalLM.from_pretrained(folder, attn_implementation="eager").eval()
        for k, v in llama.state_dict().items():
            assert torch.equal(v, loaded.state_dict()[k]), f"tiny-llama: {k} did not round-trip"
        write_reference("tiny-llama", loaded, ref.graph_from_llama(loaded), make_tokens(12),
                        "tiny-llama (Llama, 2 layers, 4 heads, 2 KV heads, head_dim 8, d 32, vocab 512, "
                        "half-split RoPE). " + NOTES)

    if "tiny-llama-gguf" in which:
        path = HERE / "tiny-llama-gguf" / "tiny-llama.gguf"
        write_gguf(llama, path)
        loaded = LlamaForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32,
                                                  attn_implementation="eager").eval()
        for k, v in llama.state_dict().items():
            d = (v - loaded.state_dict()[k]).abs().max().item()
            assert d < 0.02, f"tiny-llama-gguf: {k} dequantizes {d} away from the original"
        write_reference("tiny-llama-gguf", loaded, ref.graph_from_llama(loaded), make_tokens(12),
                        "tiny-llama-gguf (the tiny-llama weights stored as GGUF F32/F16/Q8_0; reference "
                        "weights are HF's dequantized, un-permuted load of the file). " + NOTES)


if __name__ == "__main__":
    main()
