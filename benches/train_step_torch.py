"""PyTorch side of `scripts/bench-train.sh` and `scripts/gpu-bench.sh`: one training step
(forward + backward + AdamW) of transformers' LlamaForCausalLM / Qwen2ForCausalLM at the shape
`mentor bench train` uses, on a random batch in which every position is a target. Prints one
JSON line like mentor's (tokens_per_s, model_tflops, mfu, peak memory).

The model is built from a GGUF's hyper-parameters (read with the `gguf` package) or from a
Hugging Face config.json (`--config`, e.g. benches/configs/), and randomly initialised: weights
do not change the time or memory of a step. `--dtype bf16` is mixed precision as mentor does
it: f32 weights and AdamW state, the forward under `torch.autocast(bfloat16)`.
"""
import argparse, json, resource, sys, time

import torch
from transformers import LlamaConfig, LlamaForCausalLM


def config_from_json(path):
    with open(path) as f:
        c = json.load(f)
    c.pop("_comment", None)
    if c.get("model_type") == "qwen2":
        from transformers import Qwen2Config
        return Qwen2Config(**c)
    return LlamaConfig(**c)


def train_flops_per_token(cfg, seq):
    """mentor's `train_flops_per_token`: 6 per projection and head weight, plus 12·L·d·seq."""
    d, i, L = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    h, kv = cfg.num_attention_heads, cfg.num_key_value_heads
    hd = d // h
    n = L * (d * h * hd * 2 + d * kv * hd * 2 + 3 * d * i) + cfg.vocab_size * d
    return 6 * n + 12 * L * h * hd * seq


def config_from_gguf(path):
    import gguf
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
    ap.add_argument("--gguf", help="take the model's shape from this GGUF")
    ap.add_argument("--config", help="or from this Hugging Face config.json")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="f32", help="f32, or bf16 (autocast over f32 weights)")
    ap.add_argument("--peak-tflops", type=float, default=None,
                    help="the device's dense peak in --dtype, for MFU (989 for an H100 SXM in bf16)")
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
    if (a.gguf is None) == (a.config is None):
        sys.exit("give exactly one of --gguf and --config")
    cfg = config_from_gguf(a.gguf) if a.gguf else config_from_json(a.config)
    cfg._attn_implementation = a.attn
    dev = torch.device(a.device)
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_config(cfg).float().to(dev).train()
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=a.dtype == "bf16")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.0)
    ids = torch.randint(0, cfg.vocab_size, (a.batch, a.seq), device=dev)
    labels = torch.randint(0, cfg.vocab_size, (a.batch, a.seq), device=dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    times = []
    for i in range(a.warmup + a.steps):
        sync()
        t = time.perf_counter()
        with autocast:
            logits = model(input_ids=ids).logits
        loss = torch.nn.functional.cross_entropy(logits.float().view(-1, cfg.vocab_size), labels.view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        del logits, loss
        sync()
        s = time.perf_counter() - t
        print(f"step {i}: {s:.3f}s", file=sys.stderr)
        if i >= a.warmup:
            times.append(s)
    times.sort()
    med = times[len(times) // 2]
    tps = a.batch * a.seq / med
    tflops = tps * train_flops_per_token(cfg, a.seq) / 1e12
    print(json.dumps({
        "bench": "train", "impl": f"pytorch {torch.__version__} ({a.attn})",
        "device": a.device, "dtype": a.dtype,
        "batch": a.batch, "seq": a.seq, "step_seconds": times, "median_step_s": med,
        "tokens_per_s": tps, "model_tflops": tflops,
        "mfu": tflops / a.peak_tflops if a.peak_tflops else None,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else None,
        "threads": torch.get_num_threads(),
    }))


if __name__ == "__main__":
    main()
