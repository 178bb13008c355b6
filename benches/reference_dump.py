"""Reference outputs for `crates/mentor-model/tests/reference.rs` (run by
`scripts/check-reference.sh`): what Hugging Face transformers (PyTorch, float32) and llama.cpp
compute on the same GGUF weights.

Writes into --out:
- reference.safetensors: `logits.{i}` — transformers' logits for every position of prompt i;
  `ids.{i}` — its token ids; `greedy.{i}` — 32 greedy tokens from transformers `generate`.
- tokenizer.json: a few hundred varied strings with the ids llama.cpp gives them (vocab only,
  no special-token parsing) and those transformers' GGUF-converted tokenizer gives.
"""
import argparse, json, os, random

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer

PROMPTS = [
    "<|im_start|>user\nWhat is 12 + 7? Answer briefly.<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>system\nYou are a careful tutor.<|im_end|>\n<|im_start|>user\nExplain why the sky is blue in two sentences.<|im_end|>\n<|im_start|>assistant\n",
    "Question: Tom has 3 apples and buys 5 more. How many apples does he have?\nAnswer: Let's think step by step.",
]


def varied_strings(n=300, seed=0):
    rng = random.Random(seed)
    pieces = ["Hello", "world", " ", "  ", "\t", "\n", "\n\n", "   ", "123", "4567", "3.14", "-42",
              "1,000,000", "é", "ü", "ñ", "中文", "日本語", "한국어", "Привет", "مرحبا", "🙂", "👍🏽",
              "don't", "I'm", "we'll", "CAPS", "camelCase", "snake_case", "x=y+2", "(a+b)*c",
              "$12.50", "100%", "#tag", "@user", "http://example.com/a?b=c", "<b>", "</b>",
              "e.g.", "i.e.", "...", "—", "–", "«", "»", "’", "“quoted”", "tab\tsep", "the answer is 7"]
    out = ["", " ", "Hello world", "  leading", "trailing  ", "a\n\nb", "1234567890", "3 + 4 = 7"]
    while len(out) < n:
        k = rng.randint(1, 8)
        out.append("".join(rng.choice(pieces) + (" " if rng.random() < 0.5 else "") for _ in range(k)))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--new-tokens", type=int, default=32)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    d, f = os.path.split(os.path.abspath(a.gguf))
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, torch_dtype=torch.float32).eval()

    try:
        from llama_cpp import Llama
        lcpp = Llama(model_path=a.gguf, vocab_only=True, verbose=False)
    except Exception as e:  # the tokenizer comparison needs llama.cpp; logits do not
        print(f"llama.cpp unavailable ({e}); tokenizer reference from transformers only")
        lcpp = None

    tensors = {}
    for i, p in enumerate(PROMPTS):
        if lcpp is not None:
            ids = lcpp.tokenize(p.encode(), add_bos=False, special=True)
        else:
            ids = tok(p, add_special_tokens=False)["input_ids"]
        x = torch.tensor([ids])
        with torch.no_grad():
            logits = model(input_ids=x).logits[0]
            gen = model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=a.new_tokens,
                                 do_sample=False, eos_token_id=None, pad_token_id=0)
        tensors[f"ids.{i}"] = torch.tensor(ids, dtype=torch.int64)
        tensors[f"logits.{i}"] = logits.contiguous()
        tensors[f"greedy.{i}"] = gen[0, len(ids):].contiguous()
    save_file(tensors, os.path.join(a.out, "reference.safetensors"))

    rows = []
    for s in varied_strings():
        row = {"text": s, "transformers": tok(s, add_special_tokens=False)["input_ids"]}
        if lcpp is not None:
            row["llama_cpp"] = lcpp.tokenize(s.encode(), add_bos=False, special=False)
        rows.append(row)
    with open(os.path.join(a.out, "tokenizer.json"), "w") as fh:
        json.dump({"strings": rows}, fh, ensure_ascii=False)
    import transformers
    print(json.dumps({"transformers": transformers.__version__, "torch": torch.__version__,
                      "llama_cpp": lcpp is not None, "prompts": len(PROMPTS), "strings": len(rows)}))


if __name__ == "__main__":
    main()
