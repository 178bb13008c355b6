"""llama.cpp side of `scripts/bench-teacher.sh`: greedy generation of a fixed number of new tokens
on the same GGUF file, prompts and chat template as `mentor bench generate --quantized`, through
llama-cpp-python's bindings of llama.cpp's C API. A batch of B prompts decodes as B sequences of
one llama.cpp batch (one `llama_decode` per step, as llama.cpp's server does with parallel slots),
so aggregate tokens/s compares with mentor's batched decode. Timed from the first prefill to the
last token, as mentor's is. Prints one JSON line."""
import argparse, ctypes, json, os, resource, time

import numpy as np
import llama_cpp as L
from transformers import AutoTokenizer

PROMPTS = [
    "Explain why the sky is blue.",
    "Write a short story about a robot who learns to paint.",
    "List three uses of a paperclip and explain each.",
    "Tom has 3 apples and buys 5 more. How many apples does he have? Think step by step.",
]


@L.llama_log_callback
def _silent(level, text, user_data):
    pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--batch", default="1,8")
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()
    batches = [int(x) for x in a.batch.split(",")]
    d, f = os.path.split(os.path.abspath(a.gguf))
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)

    L.llama_log_set(_silent, ctypes.c_void_p())
    L.llama_backend_init()
    mp = L.llama_model_default_params()
    model = L.llama_model_load_from_file(a.gguf.encode(), mp)
    vocab = L.llama_model_get_vocab(model)
    n_vocab = L.llama_vocab_n_tokens(vocab)
    max_b = max(batches)
    cp = L.llama_context_default_params()
    cp.n_ctx = max_b * 512
    cp.n_batch = max_b * 512
    cp.n_ubatch = 512
    cp.n_seq_max = max_b
    cp.n_threads = a.threads
    cp.n_threads_batch = a.threads
    ctx = L.llama_init_from_model(model, cp)
    batch = L.llama_batch_init(max_b * 512, 0, max_b)

    def submit(entries):
        """entries: (token, pos, seq, want_logits); returns the batch indices with logits."""
        batch.n_tokens = len(entries)
        out = []
        for k, (t, pos, seq, want) in enumerate(entries):
            batch.token[k] = t
            batch.pos[k] = pos
            batch.n_seq_id[k] = 1
            batch.seq_id[k][0] = seq
            batch.logits[k] = want
            if want:
                out.append(k)
        if L.llama_decode(ctx, batch) != 0:
            raise RuntimeError("llama_decode failed")
        return out

    def argmax(k):
        ptr = L.llama_get_logits_ith(ctx, k)
        return int(np.ctypeslib.as_array(ptr, shape=(n_vocab,)).argmax())

    rows = []
    for b in batches:
        L.llama_memory_clear(L.llama_get_memory(ctx), True)
        prompts = [tok.apply_chat_template([{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}],
                                           tokenize=True, add_generation_prompt=True) for i in range(b)]
        t = time.perf_counter()
        entries = [(tk, i, s, i == len(p) - 1) for s, p in enumerate(prompts) for i, tk in enumerate(p)]
        idx = submit(entries)
        nxt = [argmax(k) for k in idx]
        pos = [len(p) for p in prompts]
        new = b
        for _ in range(a.new_tokens - 1):
            idx = submit([(nxt[s], pos[s], s, True) for s in range(b)])
            nxt = [argmax(k) for k in idx]
            pos = [x + 1 for x in pos]
            new += b
        s = time.perf_counter() - t
        rows.append({"batch": b, "new_tokens": new, "seconds": s, "tokens_per_s": new / s})
    L.llama_batch_free(batch)
    print(json.dumps({"bench": "generate", "impl": f"llama.cpp via llama-cpp-python {L.__version__}",
                      "model": a.gguf, "rows": rows, "threads": a.threads,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    main()
