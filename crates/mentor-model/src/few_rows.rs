//! `x·wᵀ` for a few rows of `x` (decode steps): dot products read straight off the weight.
//!
//! A decode step multiplies one row per sequence by every weight matrix. The gemm crate packs
//! the whole right-hand side into its own layout on every call; at 16 rows that copy was about
//! half of a decode step's samples. Each weight row `w_j` is already contiguous along `k`, as is
//! each row of `x`, so `y[i, j] = x_i · w_j` can stream every weight once while all of `x` stays
//! in cache. Used only where the CPU has AVX-512; elsewhere the caller's matmul runs.

use candle_core::{CpuStorage, CustomOp2, DType, Device, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Up to this many rows the dot products beat packing the weight: at 16 rows ~2× the gemm
/// crate, at 32 about even on a 576 × 1536 weight, at 64 slower (`examples/gemm_probe.rs`).
/// Prefill and training products are larger and go to the GEMM.
pub const MAX_ROWS: usize = 32;

/// Rows of `x` per kernel call: 4 × 4 accumulators leave registers for the loads (at 6 × 4
/// the compiler spilled).
const TILE_ROWS: usize = 4;

/// Weight rows per parallel task: enough work to cover rayon's hand-off.
const TASK_ROWS: usize = 64;

/// `x·wᵀ` for a 2-D `x` `[m, k]` and a weight `[n, k]`: the dot-product kernel where
/// [`applies`], candle's matmul otherwise. Differentiable either way, so a student that is
/// being trained can sample through it.
pub fn matmul_t(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    if applies(x, w)? {
        x.contiguous()?.apply_op2(w, FewRows)
    } else {
        x.matmul(&w.t()?)
    }
}

/// Whether [`matmul_t`] takes the kernel: f32 on an AVX-512 CPU, at most [`MAX_ROWS`] rows of
/// `x`, a contiguous weight.
pub fn applies(x: &Tensor, w: &Tensor) -> Result<bool> {
    Ok(available()
        && x.rank() == 2
        && w.rank() == 2
        && x.dim(0)? <= MAX_ROWS
        && x.dim(1)? == w.dim(1)?
        && x.dtype() == DType::F32
        && w.dtype() == DType::F32
        && matches!(x.device(), Device::Cpu)
        && matches!(w.device(), Device::Cpu)
        && w.is_contiguous())
}

/// Whether this CPU runs the kernel (std caches the answer).
fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

struct FewRows;

impl CustomOp2 for FewRows {
    fn name(&self) -> &'static str {
        "mentor-few-rows-matmul"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (m, k) = xl.shape().dims2()?;
        let n = wl.shape().dims2()?.0;
        let (xa, xb) = xl.contiguous_offsets().expect("made contiguous");
        let (wa, wb) = wl.contiguous_offsets().expect("checked contiguous");
        let mut y = vec![0f32; m * n];
        x_wt(
            &xs.as_slice::<f32>()?[xa..xb],
            &ws.as_slice::<f32>()?[wa..wb],
            m,
            k,
            n,
            &mut y,
        );
        Ok((CpuStorage::F32(y), Shape::from((m, n))))
    }

    /// `dx = g·w`, `dw = gᵀ·x`, through candle's matmul.
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((Some(g.matmul(w)?), Some(g.t()?.matmul(x)?)))
    }
}

/// A raw pointer that parallel tasks share; each writes a disjoint set of elements.
#[derive(Clone, Copy)]
struct Shared(*mut f32);
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

impl Shared {
    /// Through a method, so closures capture the `Send` wrapper rather than its field.
    fn ptr(self) -> *mut f32 {
        self.0
    }
}

/// `y[i, j] = Σ_p x[i, p]·w[j, p]` for row-major `x` `[m, k]`, `w` `[n, k]`, `y` `[m, n]`.
/// Tasks take disjoint runs of weight rows; within one, a tile of ≤ 4 weight rows stays in L1
/// while every x row passes over it.
fn x_wt(x: &[f32], w: &[f32], m: usize, k: usize, n: usize, y: &mut [f32]) {
    assert!(available() && x.len() == m * k && w.len() == n * k && y.len() == m * n);
    let out = Shared(y.as_mut_ptr());
    (0..n.div_ceil(TASK_ROWS)).into_par_iter().for_each(|task| {
        let end = n.min((task + 1) * TASK_ROWS);
        for j in (task * TASK_ROWS..end).step_by(4) {
            let cols = 4.min(end - j);
            for i in (0..m).step_by(TILE_ROWS) {
                let rows = TILE_ROWS.min(m - i);
                // SAFETY: AVX-512 checked above; the tile reads rows i..i+rows of x and
                // j..j+cols of w (in bounds by the loops) and writes y[i.., j..j+cols], which
                // no other task writes.
                unsafe {
                    #[cfg(target_arch = "x86_64")]
                    avx512::tile(
                        rows,
                        cols,
                        x.as_ptr().add(i * k),
                        w.as_ptr().add(j * k),
                        k,
                        out.ptr().add(i * n + j),
                        n,
                    );
                }
            }
        }
    });
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    /// Dispatches a `rows × cols` tile (rows ≤ 4, cols ≤ 4) to its unrolled kernel.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn tile(
        rows: usize,
        cols: usize,
        x: *const f32,
        w: *const f32,
        k: usize,
        y: *mut f32,
        ldy: usize,
    ) {
        macro_rules! pick {
            ($($r:literal),*) => {
                match (rows, cols) {
                    $( ($r, 4) => kernel::<$r, 4>(x, w, k, y, ldy),
                       ($r, 3) => kernel::<$r, 3>(x, w, k, y, ldy),
                       ($r, 2) => kernel::<$r, 2>(x, w, k, y, ldy),
                       ($r, 1) => kernel::<$r, 1>(x, w, k, y, ldy), )*
                    _ => unreachable!("tile of {rows}×{cols}"),
                }
            };
        }
        pick!(1, 2, 3, 4)
    }

    /// `R × C` dot products of length `k`, 16 lanes at a time: per step C weight loads and R
    /// x loads feed R·C independent FMA chains. The weight comes from memory once per step;
    /// the next C rows (contiguous after these) are prefetched alongside, since rows of a few
    /// KB are too short for the hardware prefetcher to ramp up on.
    #[target_feature(enable = "avx512f")]
    unsafe fn kernel<const R: usize, const C: usize>(
        x: *const f32,
        w: *const f32,
        k: usize,
        y: *mut f32,
        ldy: usize,
    ) {
        let mut acc = [[_mm512_setzero_ps(); C]; R];
        let mut p = 0;
        let next = w.wrapping_add(C * k);
        while p + 16 <= k {
            let mut wv = [_mm512_setzero_ps(); C];
            for (c, v) in wv.iter_mut().enumerate() {
                *v = _mm512_loadu_ps(w.add(c * k + p));
                _mm_prefetch::<_MM_HINT_T0>(next.wrapping_add(c * k + p) as *const i8);
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let xv = _mm512_loadu_ps(x.add(r * k + p));
                for (a, v) in row.iter_mut().zip(wv) {
                    *a = _mm512_fmadd_ps(xv, v, *a);
                }
            }
            p += 16;
        }
        if p < k {
            let mask: __mmask16 = ((1u32 << (k - p)) - 1) as u16;
            let mut wv = [_mm512_setzero_ps(); C];
            for (c, v) in wv.iter_mut().enumerate() {
                *v = _mm512_maskz_loadu_ps(mask, w.add(c * k + p));
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let xv = _mm512_maskz_loadu_ps(mask, x.add(r * k + p));
                for (a, v) in row.iter_mut().zip(wv) {
                    *a = _mm512_fmadd_ps(xv, v, *a);
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (c, a) in row.iter().enumerate() {
                *y.add(r * ldy + c) = _mm512_reduce_add_ps(*a);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every tile shape and a `k` with a masked tail, against a plain f64 reference.
    #[test]
    fn matches_the_reference_product() {
        if !available() {
            eprintln!("skipped: this CPU has no AVX-512, and the kernel is never used here");
            return;
        }
        for (m, k, n) in [(1, 5, 3), (16, 576, 130), (7, 37, 9), (13, 100, 67)] {
            let x: Vec<f32> = (0..m * k)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
                .collect();
            let w: Vec<f32> = (0..n * k)
                .map(|i| ((i * 53 % 89) as f32 - 44.0) / 30.0)
                .collect();
            let mut y = vec![f32::NAN; m * n];
            x_wt(&x, &w, m, k, n, &mut y);
            for i in 0..m {
                for j in 0..n {
                    let want: f64 = (0..k)
                        .map(|p| x[i * k + p] as f64 * w[j * k + p] as f64)
                        .sum();
                    let got = y[i * n + j] as f64;
                    assert!(
                        (got - want).abs() <= 1e-4 * (1.0 + want.abs()),
                        "m={m} k={k} n={n} y[{i},{j}] = {got}, want {want}"
                    );
                }
            }
        }
    }

    /// The op's value and both gradients equal candle's matmul (where the kernel applies);
    /// other inputs fall through to the matmul.
    #[test]
    fn op_matches_matmul_with_gradients() -> Result<()> {
        let dev = Device::Cpu;
        let w = candle_core::Var::from_tensor(&Tensor::randn(0f32, 1., (70, 37), &dev)?)?;
        let x = candle_core::Var::from_tensor(&Tensor::randn(0f32, 1., (5, 37), &dev)?)?;
        let probe = Tensor::randn(0f32, 1., (5, 70), &dev)?;
        assert_eq!(applies(&x, &w)?, available());
        let ours = matmul_t(&x, &w)?;
        let theirs = x.matmul(&w.t()?)?;
        let gap = |a: &Tensor, b: &Tensor| -> Result<f32> {
            (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()
        };
        assert!(gap(&ours, &theirs)? < 1e-4);
        let g1 = (ours * &probe)?.sum_all()?.backward()?;
        let g2 = (theirs * &probe)?.sum_all()?.backward()?;
        for v in [&x, &w] {
            let (a, b) = (g1.get(v).expect("grad"), g2.get(v).expect("grad"));
            assert!(gap(a, b)? < 1e-4);
        }
        let many = Tensor::ones((MAX_ROWS + 1, 37), DType::F32, &dev)?;
        assert!(!applies(&many, &w)?);
        assert!(!applies(
            &x.to_dtype(DType::F64)?,
            &w.to_dtype(DType::F64)?
        )?);
        assert!(!applies(&x, &w.t()?.contiguous()?.t()?)?);
        Ok(())
    }
}
