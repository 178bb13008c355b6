"""The shapes of crates/mentor-model/examples/gemm_probe.rs through PyTorch (MKL), in GFLOP/s.

    python benches/gemm_torch.py --threads 2
"""
import argparse, time

import torch

ap = argparse.ArgumentParser()
ap.add_argument("--threads", type=int, default=2)
torch.set_num_threads(ap.parse_args().threads)


def rate(flops, f):
    f()
    t = time.perf_counter()
    for _ in range(5):
        f()
    return flops / ((time.perf_counter() - t) / 5) / 1e9


for name, m, k, o in [("q", 2048, 576, 576), ("up", 2048, 576, 1536), ("down", 2048, 1536, 576),
                      ("head", 512, 576, 49152), ("decode-up", 16, 576, 1536),
                      ("decode-head", 16, 576, 49152), ("decode-1-up", 1, 576, 1536)]:
    x, w, g = torch.randn(m, k), torch.randn(o, k), torch.randn(m, o)
    fl = 2 * m * k * o
    print(f"{name} [{m}x{k}]·[{o}x{k}]ᵀ: x·wᵀ {rate(fl, lambda: x @ w.t()):.1f}, "
          f"g·w {rate(fl, lambda: g @ w):.1f}, gᵀ·x {rate(fl, lambda: g.t() @ x):.1f} GFLOP/s")
