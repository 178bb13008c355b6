//! `x·wᵀ` for a few rows of `x` (decode steps): dot products read straight off the weight.
//!
//! A decode step multiplies one row per sequence by every weight matrix. The gemm crate packs
//! the whole right-hand side into its own layout on every call; at 16 rows that copy was about
//! half of a decode step's samples. Each weight row `w_j` is already contiguous along `k`, as is
//! each row of `x`, so `y[i, j] = x_i · w_j` can stream every weight once while all of `x` stays
//! in cache. Kernels for AVX-512 and AVX2 + FMA (x86-64); elsewhere the caller's matmul runs.
//! `MENTOR_FEW_ROWS=off` (or `avx2`) forces the GEMM (or the AVX2 kernel), for comparisons.

use candle_core::{CpuStorage, CustomOp2, DType, Device, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::ops::Shared;

/// Up to this many rows the dot products beat packing the weight: at 16 rows ~2× the gemm
/// crate, at 32 about even on a 576 × 1536 weight, at 64 slower (`examples/gemm_probe.rs`).
/// Prefill and training products are larger and go to the GEMM.
pub const MAX_ROWS: usize = 32;

/// Rows of `x` per kernel call; see [`Isa::tile_cols`] for the weight rows.
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

/// Whether [`matmul_t`] takes the kernel: f32 on an AVX2 or AVX-512 CPU, at most
/// [`MAX_ROWS`] rows of `x`, a contiguous weight.
pub fn applies(x: &Tensor, w: &Tensor) -> Result<bool> {
    Ok(isa().is_some()
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

/// The vector instructions a kernel is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// 16 lanes, 32 registers.
    Avx512,
    /// 8 lanes with FMA, 16 registers.
    Avx2,
}

impl Isa {
    /// Weight rows per tile: `TILE_ROWS × cols` accumulators plus `cols + 1` loads must fit the
    /// registers (4 × 4 + 5 of 32; 4 × 3 + 4 of 16). At 6 × 4 the compiler spilled.
    fn tile_cols(self) -> usize {
        match self {
            Isa::Avx512 => 4,
            Isa::Avx2 => 3,
        }
    }

    /// Whether this CPU can run it.
    fn supported(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            match self {
                Isa::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
                Isa::Avx2 => {
                    std::arch::is_x86_feature_detected!("avx2")
                        && std::arch::is_x86_feature_detected!("fma")
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }
}

/// The kernel this process uses: the widest the CPU supports, unless `MENTOR_FEW_ROWS` says
/// `off` or `avx2`; `None` leaves every product to the GEMM.
pub fn isa() -> Option<Isa> {
    static CHOICE: std::sync::OnceLock<Option<Isa>> = std::sync::OnceLock::new();
    *CHOICE.get_or_init(|| {
        let wanted = std::env::var("MENTOR_FEW_ROWS").unwrap_or_default();
        let order: &[Isa] = match wanted.as_str() {
            "off" => &[],
            "avx2" => &[Isa::Avx2],
            _ => &[Isa::Avx512, Isa::Avx2],
        };
        order.iter().copied().find(|i| i.supported())
    })
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
        let isa = isa().expect("checked by `applies`");
        let (xs, ws) = (
            &xs.as_slice::<f32>()?[xa..xb],
            &ws.as_slice::<f32>()?[wa..wb],
        );
        x_wt(isa, xs, ws, m, k, n, &mut y);
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

/// `y[i, j] = Σ_p x[i, p]·w[j, p]` for row-major `x` `[m, k]`, `w` `[n, k]`, `y` `[m, n]`.
/// Tasks take disjoint runs of weight rows; within one, a tile of a few weight rows stays in L1
/// while every x row passes over it.
fn x_wt(isa: Isa, x: &[f32], w: &[f32], m: usize, k: usize, n: usize, y: &mut [f32]) {
    assert!(isa.supported() && x.len() == m * k && w.len() == n * k && y.len() == m * n);
    let out = Shared(y.as_mut_ptr());
    let step = isa.tile_cols();
    (0..n.div_ceil(TASK_ROWS)).into_par_iter().for_each(|task| {
        let end = n.min((task + 1) * TASK_ROWS);
        for j in (task * TASK_ROWS..end).step_by(step) {
            let cols = step.min(end - j);
            for i in (0..m).step_by(TILE_ROWS) {
                let rows = TILE_ROWS.min(m - i);
                // SAFETY: the ISA is supported (asserted); the tile reads rows i..i+rows of x
                // and j..j+cols of w (in bounds by the loops) and writes y[i.., j..j+cols],
                // which no other task writes.
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    x86::tile(
                        isa,
                        (rows, cols),
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
mod x86 {
    use super::Isa;
    use std::arch::x86_64::*;

    /// One instruction set's vector of f32 lanes, for [`body`].
    trait Lanes {
        type V: Copy;
        const N: usize;
        unsafe fn zero() -> Self::V;
        unsafe fn load(p: *const f32) -> Self::V;
        /// The first `len < N` lanes from `p`, zeros after (nothing past them is read).
        unsafe fn load_first(p: *const f32, len: usize) -> Self::V;
        /// `a·b + acc`.
        unsafe fn fma(a: Self::V, b: Self::V, acc: Self::V) -> Self::V;
        unsafe fn sum(v: Self::V) -> f32;
    }

    struct Avx512;
    struct Avx2;

    impl Lanes for Avx512 {
        type V = __m512;
        const N: usize = 16;
        #[inline(always)]
        unsafe fn zero() -> __m512 {
            _mm512_setzero_ps()
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m512 {
            _mm512_loadu_ps(p)
        }
        #[inline(always)]
        unsafe fn load_first(p: *const f32, len: usize) -> __m512 {
            _mm512_maskz_loadu_ps(((1u32 << len) - 1) as __mmask16, p)
        }
        #[inline(always)]
        unsafe fn fma(a: __m512, b: __m512, acc: __m512) -> __m512 {
            _mm512_fmadd_ps(a, b, acc)
        }
        #[inline(always)]
        unsafe fn sum(v: __m512) -> f32 {
            _mm512_reduce_add_ps(v)
        }
    }

    impl Lanes for Avx2 {
        type V = __m256;
        const N: usize = 8;
        #[inline(always)]
        unsafe fn zero() -> __m256 {
            _mm256_setzero_ps()
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m256 {
            _mm256_loadu_ps(p)
        }
        #[inline(always)]
        unsafe fn load_first(p: *const f32, len: usize) -> __m256 {
            let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            _mm256_maskload_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32(len as i32), lane))
        }
        #[inline(always)]
        unsafe fn fma(a: __m256, b: __m256, acc: __m256) -> __m256 {
            _mm256_fmadd_ps(a, b, acc)
        }
        #[inline(always)]
        unsafe fn sum(v: __m256) -> f32 {
            let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps::<1>(s, s)))
        }
    }

    /// Dispatches a `rows × cols` tile (rows ≤ 4, cols ≤ the ISA's) to its unrolled kernel.
    pub unsafe fn tile(
        isa: Isa,
        (rows, cols): (usize, usize),
        x: *const f32,
        w: *const f32,
        k: usize,
        y: *mut f32,
        ldy: usize,
    ) {
        macro_rules! pick {
            ($kernel:ident; $($r:literal),*) => {
                match (rows, cols) {
                    $( ($r, 4) => $kernel::<$r, 4>(x, w, k, y, ldy),
                       ($r, 3) => $kernel::<$r, 3>(x, w, k, y, ldy),
                       ($r, 2) => $kernel::<$r, 2>(x, w, k, y, ldy),
                       ($r, 1) => $kernel::<$r, 1>(x, w, k, y, ldy), )*
                    _ => unreachable!("tile of {rows}×{cols}"),
                }
            };
        }
        match isa {
            Isa::Avx512 => pick!(avx512; 1, 2, 3, 4),
            Isa::Avx2 => pick!(avx2; 1, 2, 3, 4),
        }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn avx512<const R: usize, const C: usize>(
        x: *const f32,
        w: *const f32,
        k: usize,
        y: *mut f32,
        ldy: usize,
    ) {
        body::<Avx512, R, C>(x, w, k, y, ldy)
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx2<const R: usize, const C: usize>(
        x: *const f32,
        w: *const f32,
        k: usize,
        y: *mut f32,
        ldy: usize,
    ) {
        body::<Avx2, R, C>(x, w, k, y, ldy)
    }

    /// `R × C` dot products of length `k`, N lanes at a time: per step C weight loads and R
    /// x loads feed R·C independent FMA chains. The weight comes from memory once per step;
    /// the next C rows (contiguous after these) are prefetched alongside, since rows of a few
    /// KB are too short for the hardware prefetcher to ramp up on (without it, batch-16 decode
    /// ran at less than half the speed). Inlined into the `target_feature` wrappers above, so
    /// the intrinsics compile to that instruction set.
    #[inline(always)]
    unsafe fn body<L: Lanes, const R: usize, const C: usize>(
        x: *const f32,
        w: *const f32,
        k: usize,
        y: *mut f32,
        ldy: usize,
    ) {
        let mut acc = [[L::zero(); C]; R];
        let next = w.wrapping_add(C * k);
        let mut p = 0;
        while p + L::N <= k {
            let mut wv = [L::zero(); C];
            for (c, v) in wv.iter_mut().enumerate() {
                *v = L::load(w.add(c * k + p));
                if p % 16 == 0 {
                    // one prefetch per 64-byte line
                    _mm_prefetch::<_MM_HINT_T0>(next.wrapping_add(c * k + p) as *const i8);
                }
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let xv = L::load(x.add(r * k + p));
                for (a, v) in row.iter_mut().zip(wv) {
                    *a = L::fma(xv, v, *a);
                }
            }
            p += L::N;
        }
        if p < k {
            let mut wv = [L::zero(); C];
            for (c, v) in wv.iter_mut().enumerate() {
                *v = L::load_first(w.add(c * k + p), k - p);
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let xv = L::load_first(x.add(r * k + p), k - p);
                for (a, v) in row.iter_mut().zip(wv) {
                    *a = L::fma(xv, v, *a);
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (c, a) in row.iter().enumerate() {
                *y.add(r * ldy + c) = L::sum(*a);
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
        let isas: Vec<Isa> = [Isa::Avx512, Isa::Avx2]
            .into_iter()
            .filter(|i| i.supported())
            .collect();
        if isas.is_empty() {
            eprintln!("no kernel runs on this CPU: products go to the GEMM");
        }
        let shapes = [
            (1, 5, 3),
            (16, 576, 130),
            (7, 37, 9),
            (13, 100, 67),
            (4, 8, 4),
        ];
        for (isa, (m, k, n)) in isas.iter().flat_map(|&i| shapes.map(|s| (i, s))) {
            let x: Vec<f32> = (0..m * k)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
                .collect();
            let w: Vec<f32> = (0..n * k)
                .map(|i| ((i * 53 % 89) as f32 - 44.0) / 30.0)
                .collect();
            let mut y = vec![f32::NAN; m * n];
            x_wt(isa, &x, &w, m, k, n, &mut y);
            for i in 0..m {
                for j in 0..n {
                    let want: f64 = (0..k)
                        .map(|p| x[i * k + p] as f64 * w[j * k + p] as f64)
                        .sum();
                    let got = y[i * n + j] as f64;
                    assert!(
                        (got - want).abs() <= 1e-4 * (1.0 + want.abs()),
                        "{isa:?} m={m} k={k} n={n} y[{i},{j}] = {got}, want {want}"
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
        assert_eq!(applies(&x, &w)?, isa().is_some());
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
