"""PyTorch side of `scripts/bench-generate.sh`: greedy batched generation with transformers
`generate` on the same GGUF weights and prompts as `mentor bench generate` (chat template, left
padding, a fixed number of new tokens). Prints one JSON line.

With `--config` (a Hugging Face config.json, e.g. benches/configs/) the model is a random
initialisation of that shape and every prompt `--prompt-tokens` random ids, as in
`mentor bench generate --model CONFIG.json`: what a GPU machine with no weights can run."""
import argparse, json, os, resource, time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

PROMPTS = [
    "Explain why the sky is blue.",
    "Write a short story about a robot who learns to paint.",
    "List three uses of a paperclip and explain each.",
    "Tom has 3 apples and buys 5 more. How many apples does he have? Think step by step.",
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf")
    ap.add_argument("--config")
    ap.add_argument("--prompt-tokens", type=int, default=64)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="f32", help="f32 or bf16 (weights and compute)")
    ap.add_argument("--batch", default="1,16")
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    dtype = torch.bfloat16 if a.dtype == "bf16" else torch.float32
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    if a.config:
        import sys
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from train_step_torch import config_from_json
        torch.manual_seed(0)
        cfg = config_from_json(a.config)
        model = AutoModelForCausalLM.from_config(cfg).to(dtype).to(dev).eval()
        pad_id = 0
    else:
        d, f = os.path.split(os.path.abspath(a.gguf))
        tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
        tok.padding_side = "left"
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        pad_id = tok.pad_token_id
        model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, torch_dtype=dtype).to(dev).eval()
    rows = []
    for b in [int(x) for x in a.batch.split(",")]:
        if a.config:
            ids = torch.randint(0, cfg.vocab_size, (b, a.prompt_tokens), device=dev)
            enc = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        else:
            texts = [tok.apply_chat_template([{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}],
                                             tokenize=False, add_generation_prompt=True) for i in range(b)]
            enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(dev)
        sync()
        t = time.perf_counter()
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=a.new_tokens, min_new_tokens=a.new_tokens,
                                 do_sample=False, pad_token_id=pad_id)
        sync()
        s = time.perf_counter() - t
        new = (out.shape[1] - enc["input_ids"].shape[1]) * b
        rows.append({"batch": b, "new_tokens": new, "seconds": s, "tokens_per_s": new / s})
    print(json.dumps({"bench": "generate", "impl": f"transformers generate (torch {torch.__version__})",
                      "device": a.device, "dtype": a.dtype,
                      "rows": rows, "threads": torch.get_num_threads(),
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    main()
