"""PyTorch side of `scripts/bench-train.sh`: one training step (forward + backward + AdamW) of
transformers' LlamaForCausalLM at the shape `mentor bench train` uses, on a random batch in
which every position is a target. Prints one JSON line like mentor's (tokens_per_s, peak_rss_mb).

The model is built from the GGUF's own hyper-parameters (read with the `gguf` package) and
randomly initialised: weights do not change the time or memory of a step.
"""
import argparse, json, resource, sys, time

import gguf
import torch
from transformers import LlamaConfig, LlamaForCausalLM


def config_from_gguf(path):
    r = gguf.GGUFReader(path)
    arch = bytes(r.fields["general.architecture"].parts[-1]).decode()

    def val(key, default=None):
        f = r.fields.get(f"{arch}.{key}")
        return default if f is None else f.parts[-1][0].item()

    names = {t.name for t in r.tensors}
    vocab = next(t for t in r.tensors if t.name == "token_embd.weight").shape[-1]
    return LlamaConfig(
        vocab_size=int(vocab),
        hidden_size=val("embedding_length"),
        intermediate_size=val("feed_forward_length"),
        num_hidden_layers=val("block_count"),
        num_attention_heads=val("attention.head_count"),
        num_key_value_heads=val("attention.head_count_kv"),
        rms_norm_eps=float(val("attention.layer_norm_rms_epsilon", 1e-5)),
        rope_theta=float(val("rope.freq_base", 10000.0)),
        tie_word_embeddings="output.weight" not in names,
        attention_bias=arch == "qwen2",
        max_position_embeddings=2048,
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--attn", default="sdpa", help="eager or sdpa")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cfg = config_from_gguf(a.gguf)
    cfg._attn_implementation = a.attn
    model = LlamaForCausalLM(cfg).float().train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.0)
    ids = torch.randint(0, cfg.vocab_size, (a.batch, a.seq))
    labels = torch.randint(0, cfg.vocab_size, (a.batch, a.seq))
    times = []
    for i in range(a.warmup + a.steps):
        t = time.perf_counter()
        logits = model(input_ids=ids).logits
        loss = torch.nn.functional.cross_entropy(logits.view(-1, cfg.vocab_size), labels.view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        del logits, loss
        s = time.perf_counter() - t
        print(f"step {i}: {s:.2f}s", file=sys.stderr)
        if i >= a.warmup:
            times.append(s)
    times.sort()
    med = times[len(times) // 2]
    print(json.dumps({
        "bench": "train", "impl": f"pytorch {torch.__version__} ({a.attn})",
        "batch": a.batch, "seq": a.seq, "step_seconds": times, "median_step_s": med,
        "tokens_per_s": a.batch * a.seq / med,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": torch.get_num_threads(),
    }))


if __name__ == "__main__":
    main()
