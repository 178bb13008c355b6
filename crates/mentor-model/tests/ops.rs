//! Each fused CPU kernel against its basic-op version: same forward, same gradients. A
//! kernel whose backward were wrong (or missing) would train a different model silently.

use candle_core::{Device, Result, Tensor, Var};
use mentor_model::ops::{self, RopeTables};

fn rand(shape: &[usize], dev: &Device) -> Result<Var> {
    Var::from_tensor(&Tensor::randn(0f32, 1.0, shape, dev)?)
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()
}

/// Runs `f` on the inputs twice (fused, basic), backpropagates the same random projection of
/// the output, and compares outputs and every input gradient.
fn check(
    name: &str,
    inputs: &[Var],
    fused: impl Fn(&[Tensor]) -> Result<Tensor>,
    basic: impl Fn(&[Tensor]) -> Result<Tensor>,
) -> Result<()> {
    let xs: Vec<Tensor> = inputs.iter().map(|v| v.as_tensor().clone()).collect();
    let (a, b) = (fused(&xs)?, basic(&xs)?);
    assert_eq!(a.dims(), b.dims(), "{name}: shapes");
    let fwd = max_abs_diff(&a, &b)?;
    assert!(fwd < 1e-4, "{name}: forward differs by {fwd}");
    let probe = Tensor::randn(0f32, 1.0, a.dims(), a.device())?;
    let (ga, gb) = (
        (a * &probe)?.sum_all()?.backward()?,
        (b * &probe)?.sum_all()?.backward()?,
    );
    for (i, v) in inputs.iter().enumerate() {
        let (x, y) = (
            ga.get(v).expect("fused grad"),
            gb.get(v).expect("basic grad"),
        );
        let scale = y.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?.max(1.0);
        let d = max_abs_diff(x, y)? / scale;
        assert!(
            d < 1e-4,
            "{name}: gradient of input {i} differs by {d} (relative)"
        );
    }
    Ok(())
}

#[test]
fn rms_norm_matches_basic_ops() -> Result<()> {
    let dev = Device::Cpu;
    let (x, w) = (rand(&[6, 5, 16], &dev)?, rand(&[16], &dev)?);
    check(
        "rms_norm",
        &[x, w],
        |v| ops::rms_norm(&v[0], &v[1], 1e-5),
        |v| ops::rms_norm_basic(&v[0], &v[1], 1e-5),
    )
}

#[test]
fn silu_mul_matches_basic_ops() -> Result<()> {
    let dev = Device::Cpu;
    let (g, u) = (rand(&[7, 33], &dev)?, rand(&[7, 33], &dev)?);
    check(
        "silu_mul",
        &[g, u],
        |v| ops::silu_mul(&v[0], &v[1]),
        |v| ops::silu_mul_basic(&v[0], &v[1]),
    )
}

#[test]
fn rope_matches_basic_ops_at_any_positions() -> Result<()> {
    let dev = Device::Cpu;
    let tables = RopeTables::new(10_000.0, 8, 32, &dev)?;
    let x = rand(&[2, 5, 3, 8], &dev)?;
    // row 0 at 0..5, row 1 left-padded: positions 0, 0, 0, 1, 2
    let positions = [0, 1, 2, 3, 4, 0, 0, 0, 1, 2];
    check(
        "rope",
        &[x],
        |v| ops::rope(&v[0], &tables, &positions),
        |v| ops::rope_basic(&v[0], &tables, &positions),
    )
}

#[test]
fn causal_softmax_matches_basic_ops() -> Result<()> {
    let dev = Device::Cpu;
    // 2 groups of 4 queries over 6 keys (2 already cached)
    let s = rand(&[2, 3, 8, 6], &dev)?;
    check(
        "causal_softmax",
        &[s],
        |v| ops::causal_softmax(&v[0], 0.35, 4),
        |v| ops::causal_softmax_basic(&v[0], 0.35, 4),
    )
}
