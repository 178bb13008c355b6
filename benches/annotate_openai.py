#!/usr/bin/env python3
"""The `mentor bench annotate` workload through the official `openai` Python client (asyncio).

Two variants: `bare` (the client alone) and `ledger` (each reply committed to SQLite before it is
used, the durability mentor's call path gives). Run by scripts/bench-annotate.sh against the same
loopback server as mentor. Prints a table (or, with --json, one JSON line per level).
"""
import argparse, asyncio, json, sqlite3, sys, tempfile, time

from openai import AsyncOpenAI

try:  # openai >= 3 ships its HTTP stack as `httpx2`; older releases use `httpx`
    import httpx2 as httpx
except ImportError:
    import httpx


async def level(base_url, concurrency, n, ledger, tag):
    # httpx pools 100 connections by default: raise it so 512 in flight are really in flight.
    http = httpx.AsyncClient(limits=httpx.Limits(max_connections=concurrency + 8, max_keepalive_connections=concurrency + 8), timeout=60)
    client = AsyncOpenAI(base_url=base_url, api_key="unused", http_client=http, max_retries=2)
    db = None
    if ledger:
        db = sqlite3.connect(tempfile.mktemp(suffix=".sqlite"))
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE TABLE calls (id INTEGER PRIMARY KEY, request_hash TEXT UNIQUE, response TEXT)")
    sem = asyncio.Semaphore(concurrency)
    lat = []

    async def one(i):
        async with sem:
            t = time.perf_counter()
            prompt = f"py {tag} request {i}: what is {i} + 1?"
            if db is not None and db.execute("SELECT 1 FROM calls WHERE request_hash = ?", (prompt,)).fetchone():
                return
            r = await client.chat.completions.create(model="loopback", messages=[{"role": "user", "content": prompt}])
            if db is not None:
                db.execute("INSERT INTO calls (request_hash, response) VALUES (?, ?)", (prompt, r.model_dump_json()))
                db.commit()
            lat.append((time.perf_counter() - t) * 1e3)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    rps = n / (time.perf_counter() - t0)
    await http.aclose()
    lat.sort()
    pct = lambda p: lat[round((len(lat) - 1) * p)]
    return {"in_flight": concurrency, "requests": n, "req_per_s": rps, "p50_ms": pct(0.5), "p99_ms": pct(0.99)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--in-flight", default="1,64,512")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--json", action="store_true", help="one JSON line per level instead of a table")
    a = ap.parse_args()
    ap_json = a.json
    if not ap_json:
        print(f"{'variant':>8} {'in-flight':>9} {'req/s':>10} {'p50 ms':>9} {'p99 ms':>9}", flush=True)
    for variant in ("bare", "ledger"):
        for c in [int(x) for x in a.in_flight.split(",")]:
            row = asyncio.run(level(a.server, c, max(a.requests, c), variant == "ledger", f"{variant}{c}"))
            row["variant"] = variant
            if ap_json:
                print(json.dumps(row), flush=True)
            else:
                print(f"{variant:>8} {c:>9} {row['req_per_s']:>10.0f} {row['p50_ms']:>9.3f} {row['p99_ms']:>9.3f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
