"""mentor serve through the official OpenAI Python client: a functional check and a bounded
load test. The load test runs unchanged against any OpenAI-compatible server (llama.cpp's).

Usage:
  python serve_openai.py check BASE_URL MODEL
  python serve_openai.py load BASE_URL MODEL REQUESTS CONCURRENCY MAX_TOKENS
Prints one JSON line; `check` exits 1 on the first failed expectation.
"""
import asyncio
import json
import sys
import time

import openai
from openai import AsyncOpenAI, OpenAI


def check(base, model):
    c = OpenAI(base_url=base, api_key="unused", max_retries=0)
    ids = [m.id for m in c.models.list().data]
    assert ids == [model], ids
    msgs = [{"role": "user", "content": "What is 2 + 3? Answer with a number."}]
    whole = c.chat.completions.create(model=model, messages=msgs, max_tokens=24, temperature=0)
    text = whole.choices[0].message.content
    assert whole.choices[0].finish_reason in ("stop", "length")
    assert whole.usage.completion_tokens <= 24 and whole.usage.prompt_tokens > 0
    stream = c.chat.completions.create(model=model, messages=msgs, max_tokens=24, temperature=0,
                                       stream=True, stream_options={"include_usage": True})
    parts, usage = [], None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for ch in chunk.choices:
            if ch.delta.content:
                parts.append(ch.delta.content)
    assert "".join(parts) == text, ("".join(parts), text)
    assert usage.completion_tokens == whole.usage.completion_tokens
    comp = c.completions.create(model=model, prompt="The capital of France is", max_tokens=8,
                                temperature=0, stop=["\n"])
    assert comp.object == "text_completion" and "\n" not in comp.choices[0].text
    seeded = [c.chat.completions.create(model=model, messages=msgs, max_tokens=16, temperature=0.9,
                                        seed=7).choices[0].message.content for _ in range(2)]
    assert seeded[0] == seeded[1], "a seed reproduces"
    errors = {}
    for name, kwargs, exc in [
        ("unknown model", dict(model="gpt-9", messages=msgs), openai.NotFoundError),
        ("context", dict(model=model, messages=msgs, max_tokens=10**6), openai.BadRequestError),
        ("temperature", dict(model=model, messages=msgs, temperature=5), openai.BadRequestError),
        ("n", dict(model=model, messages=msgs, n=3), openai.BadRequestError),
    ]:
        try:
            c.chat.completions.create(**kwargs)
            raise AssertionError(f"{name}: no error")
        except exc as e:
            errors[name] = e.status_code
    again = c.chat.completions.create(model=model, messages=msgs, max_tokens=4, temperature=0)
    assert again.choices[0].message.content is not None
    print(json.dumps({"check": "ok", "answer": text, "errors": errors,
                      "openai": openai.__version__}))


async def load(base, model, n, concurrency, max_tokens):
    c = AsyncOpenAI(base_url=base, api_key="unused", max_retries=0, timeout=600)
    sem = asyncio.Semaphore(concurrency)
    lat, tokens, errors = [], [], []

    async def one(i):
        async with sem:
            t0 = time.perf_counter()
            try:
                r = await c.chat.completions.create(
                    model=model, max_tokens=max_tokens, temperature=0.7, seed=i,
                    messages=[{"role": "user", "content": f"Write one sentence about the number {i}."}])
                lat.append(time.perf_counter() - t0)
                tokens.append(r.usage.completion_tokens)
            except Exception as e:  # counted, and the run goes on
                errors.append(repr(e)[:200])

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    wall = time.perf_counter() - t0
    lat.sort()
    q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] if lat else None
    print(json.dumps({"requests": n, "concurrency": concurrency, "max_tokens": max_tokens,
                      "ok": len(lat), "errors": len(errors), "first_error": errors[:1],
                      "wall_s": round(wall, 2), "req_per_s": round(len(lat) / wall, 3),
                      "tokens_per_s": round(sum(tokens) / wall, 1),
                      "p50_s": round(q(0.50), 2), "p99_s": round(q(0.99), 2)}))


if __name__ == "__main__":
    mode, base, model = sys.argv[1:4]
    if mode == "check":
        check(base, model)
    else:
        asyncio.run(load(base, model, *map(int, sys.argv[4:7])))
