//! Attention of one new token per row against the KV cache, on the CPU (decode steps).
//!
//! candle runs a decode step's attention as two batched matmuls of `rows · kv_heads` tiny
//! products (the few query heads that share a kv head, against a few hundred cached keys), each
//! handed to the gemm crate, which packs its operands and hands work to threads per product; and
//! every column is computed, the left padding of a merged batch included, then masked. In a
//! batch-32 decode of SmolLM2-135M those matmuls were ~15 % of the samples (perf, 2026-12-07).
//! Here each (row, kv head) is one task that reads the cache where it lies, skips the columns the
//! row cannot see, and does its dot products, softmax and weighted sum of values itself.
//! `MENTOR_DECODE_ATTENTION=off` keeps candle's path, for comparisons.

use candle_core::{CpuStorage, DType, Device, Result, Storage, Tensor};
use rayon::prelude::*;

use crate::few_rows::{isa, Isa};
use crate::ops::slices;

/// Whether decode steps take [`attend`] (unless `MENTOR_DECODE_ATTENTION=off`).
pub fn enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("MENTOR_DECODE_ATTENTION").as_deref() != Ok("off"))
}

/// `softmax(scale · q·kᵀ)·v` over the columns `from[r]..` of each row `r`, for grouped queries
/// `q: [b, kv, rep, hd]` (one new token a row; the `rep` query heads of kv head `g` are rows
/// `g·rep..`) and a cache `k, v: [b, kv, cols, hd]` (any layout whose `hd` axis is contiguous,
/// e.g. a view of a longer cache). Returns `[b, kv, rep, hd]`, or `None` where this kernel does
/// not apply (not f32 on the CPU, an unexpected layout): the caller runs the general path.
pub fn attend(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f64,
    from: &[usize],
) -> Result<Option<Tensor>> {
    if !matches!(q.device(), Device::Cpu)
        || [q, k, v]
            .iter()
            .any(|t| t.dtype() != DType::F32 || t.rank() != 4)
    {
        return Ok(None);
    }
    let (b, kv, rep, hd) = q.dims4()?;
    let (kb, kkv, cols, khd) = k.dims4()?;
    if (kb, kkv, khd) != (b, kv, hd)
        || v.dims4()? != (b, kv, cols, hd)
        || from.len() != b
        || cols == 0
    {
        return Ok(None);
    }
    let q = q.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
    let (ks, kl) = k.storage_and_layout();
    let (vs, vl) = v.storage_and_layout();
    let (Storage::Cpu(CpuStorage::F32(kd)), Storage::Cpu(CpuStorage::F32(vd))) = (&*ks, &*vs)
    else {
        return Ok(None);
    };
    let (kst, vst) = (kl.stride(), vl.stride());
    if kst[3] != 1 || vst[3] != 1 {
        return Ok(None);
    }
    let at = |st: &[usize], off: usize, r: usize, g: usize| off + r * st[0] + g * st[1];
    let (k_off, v_off) = (kl.start_offset(), vl.start_offset());
    let mut out = vec![0f32; b * kv * rep * hd];
    let isa = isa();
    out.par_chunks_mut(rep * hd)
        .enumerate()
        .for_each(|(task, out)| {
            let (r, g) = (task / kv, task % kv);
            let first = from[r].min(cols - 1);
            let head = Head {
                q: &q[task * rep * hd..][..rep * hd],
                k: &kd[at(kst, k_off, r, g)..],
                v: &vd[at(vst, v_off, r, g)..],
                k_row: kst[2],
                v_row: vst[2],
                hd,
                first,
                cols,
                scale: scale as f32,
            };
            match isa {
                // SAFETY: `isa()` returns only what this CPU supports
                #[cfg(target_arch = "x86_64")]
                Some(Isa::Avx512) => unsafe { head.run_avx512(out) },
                #[cfg(target_arch = "x86_64")]
                Some(Isa::Avx2) => unsafe { head.run_avx2(out) },
                _ => head.run(out),
            }
        });
    drop((ks, vs));
    Ok(Some(Tensor::from_vec(out, (b, kv, rep, hd), &Device::Cpu)?))
}

/// One (row, kv head) task: its query heads, and its keys and values where the cache holds them
/// (column `c` of `k` starts at `c · k_row`).
struct Head<'a> {
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    k_row: usize,
    v_row: usize,
    hd: usize,
    first: usize,
    cols: usize,
    scale: f32,
}

impl Head<'_> {
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn run_avx512(&self, out: &mut [f32]) {
        self.run(out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn run_avx2(&self, out: &mut [f32]) {
        self.run(out)
    }

    /// Inlined into the `target_feature` wrappers, so its loops are compiled for their vectors.
    /// Columns outside, query heads inside: each cached key and value is read once.
    #[inline(always)]
    fn run(&self, out: &mut [f32]) {
        let hd = self.hd;
        let rep = self.q.len() / hd;
        let n = self.cols - self.first;
        // p[j·n + i]: head j's score, then probability, of visible column i
        let mut p = vec![0f32; rep * n];
        for (i, c) in (self.first..self.cols).enumerate() {
            let kc = &self.k[c * self.k_row..][..hd];
            for (j, qh) in self.q.chunks_exact(hd).enumerate() {
                p[j * n + i] = dot(qh, kc);
            }
        }
        for pj in p.chunks_exact_mut(n) {
            slices::softmax_prefix(pj, n, self.scale);
        }
        out.fill(0.0);
        for (i, c) in (self.first..self.cols).enumerate() {
            let vc = &self.v[c * self.v_row..][..hd];
            for (j, oh) in out.chunks_exact_mut(hd).enumerate() {
                let w = p[j * n + i];
                oh.iter_mut().zip(vc).for_each(|(o, x)| *o += w * x);
            }
        }
    }
}

/// `a · b` in 16 independent lanes, summed as a tree: a serial float sum would neither
/// vectorise nor, over 16 lanes, cost less than the products.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 16;
    let (ac, bc) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y)
        .sum();
    let mut acc = [0f32; LANES];
    for (x, y) in ac.zip(bc) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    for half in [8, 4, 2, 1] {
        for i in 0..half {
            acc[i] += acc[i + half];
        }
    }
    acc[0] + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The general path the model runs otherwise: masked scores, softmax, matmul.
    fn reference(q: &Tensor, k: &Tensor, v: &Tensor, scale: f64, from: &[usize]) -> Tensor {
        let (b, _, rep, _) = q.dims4().unwrap();
        let cols = k.dim(2).unwrap();
        let mut mask = vec![0f32; b * rep * cols];
        for r in 0..b {
            for j in 0..rep {
                for c in 0..from[r].min(cols - 1) {
                    mask[(r * rep + j) * cols + c] = f32::NEG_INFINITY;
                }
            }
        }
        let mask = Tensor::from_vec(mask, (b, 1, rep, cols), &Device::Cpu).unwrap();
        let scores = (q.matmul(&k.t().unwrap()).unwrap() * scale)
            .unwrap()
            .broadcast_add(&mask)
            .unwrap();
        candle_nn::ops::softmax_last_dim(&scores)
            .unwrap()
            .matmul(v)
            .unwrap()
    }

    #[test]
    fn matches_masked_softmax_attention_on_a_view_of_a_longer_cache() -> Result<()> {
        let dev = Device::Cpu;
        // hd = 20 leaves a remainder after the 16 lanes; the cache is a view of 40 columns
        let (b, kv, rep, hd, cols) = (3, 2, 3, 20, 11);
        let q = Tensor::randn(0f32, 1.0, (b, kv, rep, hd), &dev)?;
        let k_all = Tensor::randn(0f32, 1.0, (b, kv, 40, hd), &dev)?;
        let v_all = Tensor::randn(0f32, 1.0, (b, kv, 40, hd), &dev)?;
        let (k, v) = (k_all.narrow(2, 0, cols)?, v_all.narrow(2, 0, cols)?);
        assert!(!k.is_contiguous());
        // no padding; some; all but the last column
        let from = [0, 4, cols - 1];
        let got = attend(&q, &k, &v, 0.3, &from)?.expect("applies to f32 on the CPU");
        let want = reference(&q, &k.contiguous()?, &v.contiguous()?, 0.3, &from);
        let diff = (&got - &want)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-5, "max difference {diff}");
        // a row that sees only its newest column returns that column's value
        let last = got.get(2)?.get(1)?.get(0)?;
        let v_last = v.get(2)?.get(1)?.get(cols - 1)?;
        let d = (last - v_last)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(d < 1e-6);
        Ok(())
    }

    #[test]
    fn other_dtypes_are_left_to_the_general_path() -> Result<()> {
        let t = Tensor::zeros((1, 1, 1, 4), DType::F16, &Device::Cpu)?;
        assert!(attend(&t, &t, &t, 1.0, &[0])?.is_none());
        Ok(())
    }
}
