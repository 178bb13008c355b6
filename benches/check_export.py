"""Checks mentor's exported student against the tools users load it with.

Greedy decoding of the same prompts by (1) mentor itself, (2) transformers on the exported HF
directory, (3) llama.cpp (llama-cpp-python) on the exported GGUF. Prints one JSON line per
prompt and a summary; exits 1 if transformers' tokens differ from mentor's, or if the f32
GGUF's tokens differ (an f16/q8_0 file may drift after a near-tie; that is reported, not failed).

Usage: python check_export.py HF_DIR GGUF_FILE MENTOR_JSON MAX_TOKENS [--exact-gguf]
"""
import json
import sys

hf_dir, gguf_path, mentor_json, max_tokens = sys.argv[1:5]
exact_gguf = "--exact-gguf" in sys.argv
max_tokens = int(max_tokens)
mentor = json.load(open(mentor_json))["generations"]

import torch  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402
from llama_cpp import Llama  # noqa: E402

torch.manual_seed(0)
tok = AutoTokenizer.from_pretrained(hf_dir)
model = AutoModelForCausalLM.from_pretrained(hf_dir, torch_dtype=torch.float32).eval()
llm = Llama(model_path=gguf_path, n_ctx=1024, n_threads=2, verbose=False)


def leading_match(a, b):
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


rows = []
for g in mentor:
    prompt = g["prompt"]
    ids = tok(prompt, return_tensors="pt", add_special_tokens=False).input_ids
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=max_tokens, do_sample=False, num_beams=1,
                             pad_token_id=tok.pad_token_id or tok.eos_token_id)
    hf_ids = out[0, ids.shape[1]:].tolist()
    stops = {tok.eos_token_id} | set(model.generation_config.eos_token_id
                                     if isinstance(model.generation_config.eos_token_id, list)
                                     else [model.generation_config.eos_token_id])
    hf_ids = [t for t in hf_ids]
    while hf_ids and hf_ids[-1] in stops:
        hf_ids.pop()
    prompt_tokens = llm.tokenize(prompt.encode(), add_bos=False, special=True)
    assert prompt_tokens == ids[0].tolist(), "llama.cpp tokenises the prompt differently"
    cpp_ids = []
    for t in llm.generate(prompt_tokens, temp=0.0, top_k=1, top_p=1.0, repeat_penalty=1.0, reset=True):
        if llm.token_eos() == t or t in stops or len(cpp_ids) >= max_tokens:
            break
        cpp_ids.append(t)
    m = g["token_ids"]
    row = {"id": g["id"], "mentor": len(m), "hf_same": hf_ids == m, "gguf_same": cpp_ids == m,
           "hf_leading": leading_match(hf_ids, m), "gguf_leading": leading_match(cpp_ids, m),
           "text": g["text"][:80]}
    rows.append(row)
    print(json.dumps(row), flush=True)

hf_ok = all(r["hf_same"] for r in rows)
gguf_ok = all(r["gguf_same"] for r in rows)
print(json.dumps({"prompts": len(rows), "transformers_identical": sum(r["hf_same"] for r in rows),
                  "llama_cpp_identical": sum(r["gguf_same"] for r in rows),
                  "transformers": __import__("transformers").__version__,
                  "llama_cpp_python": __import__("llama_cpp").__version__}))
sys.exit(0 if hf_ok and (gguf_ok or not exact_gguf) else 1)
