use candle_core::{Device, Tensor};
use std::time::Instant;
fn main() -> candle_core::Result<()> {
    let dev = Device::Cpu;
    let n = 2048;
    for (name, m, k, o) in [
        ("q", n, 576, 576),
        ("kv", n, 576, 192),
        ("up", n, 576, 1536),
        ("down", n, 1536, 576),
        ("head", 512, 576, 49152),
    ] {
        let x = Tensor::randn(0f32, 1., (m, k), &dev)?;
        let w = Tensor::randn(0f32, 1., (o, k), &dev)?;
        let g = Tensor::randn(0f32, 1., (m, o), &dev)?;
        let flops = 2.0 * m as f64 * k as f64 * o as f64;
        let mut res = vec![];
        for (what, f) in [
            (
                "fwd x·wT",
                Box::new(|| x.matmul(&w.t()?)) as Box<dyn Fn() -> candle_core::Result<Tensor>>,
            ),
            ("gx g·w", Box::new(|| g.matmul(&w))),
            ("gw gT·x", Box::new(|| g.t()?.matmul(&x))),
        ] {
            f()?;
            let t = Instant::now();
            let reps = 5;
            for _ in 0..reps {
                f()?;
            }
            let s = t.elapsed().as_secs_f64() / reps as f64;
            res.push(format!("{what} {:.1}", flops / s / 1e9));
        }
        println!("{name} [{m}x{k}]x[{k}x{o}]: {} GFLOP/s", res.join(", "));
    }
    Ok(())
}
