//! Throughput of the products a SmolLM2-135M training step (batch 8 × 256) and a decode step
//! make, in GFLOP/s, through candle's matmul (the gemm crate), as `x·wᵀ`, `g·w` and `gᵀ·x`;
//! `benches/gemm_torch.py` runs the same shapes through PyTorch (MKL):
//! `RAYON_NUM_THREADS=2 cargo run --release -p mentor-model --example gemm_probe`.
use candle_core::{Device, Tensor};
use mentor_model::few_rows;
use std::time::Instant;

fn rate(flops: f64, f: impl Fn() -> candle_core::Result<Tensor>) -> candle_core::Result<f64> {
    f()?;
    let reps = 5;
    let t = Instant::now();
    for _ in 0..reps {
        f()?;
    }
    Ok(flops / (t.elapsed().as_secs_f64() / reps as f64) / 1e9)
}

fn main() -> candle_core::Result<()> {
    let dev = Device::Cpu;
    for (name, m, k, o) in [
        ("q", 2048, 576, 576),
        ("up", 2048, 576, 1536),
        ("down", 2048, 1536, 576),
        ("head", 512, 576, 49152),
        ("decode-up", 16, 576, 1536),
        ("decode-head", 16, 576, 49152),
        ("decode-1-up", 1, 576, 1536),
        ("decode-1-head", 1, 576, 49152),
        ("decode-8-up", 8, 576, 1536),
        ("d32-up", 32, 576, 1536),
        ("d32-head", 32, 576, 49152),
    ] {
        let x = Tensor::randn(0f32, 1., (m, k), &dev)?;
        let w = Tensor::randn(0f32, 1., (o, k), &dev)?;
        let flops = 2.0 * m as f64 * k as f64 * o as f64;
        let g = Tensor::randn(0f32, 1., (m, o), &dev)?;
        let fwd = rate(flops, || x.matmul(&w.t()?))?;
        let gx = rate(flops, || g.matmul(&w))?;
        let gw = rate(flops, || g.t()?.matmul(&x))?;
        println!("{name} [{m}x{k}]·[{o}x{k}]ᵀ: x·wᵀ {fwd:.1}, g·w {gx:.1}, gᵀ·x {gw:.1} GFLOP/s");
        if few_rows::applies(&x, &w)? {
            let dots = rate(flops, || few_rows::matmul_t(&x, &w))?;
            println!("{name}: few_rows x·wᵀ {dots:.1} GFLOP/s");
        }
    }
    Ok(())
}
