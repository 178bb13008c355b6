//! Fused CPU kernels with a hand-written backward, for the decoder's elementwise work.
//!
//! Built from basic candle ops, RMSNorm, SiLU·up, rotary embeddings and the causal softmax each
//! keep four to six intermediate tensors alive until `backward()` (candle's graph holds every
//! op input), which is most of a naive training step's memory. Each kernel here is one node:
//! it keeps only its inputs and output, and its backward is written out. On other devices or
//! dtypes the same functions fall back to the basic-op versions, which autograd differentiates.
//! Every kernel is checked against its fallback, forward and gradient, in `tests/ops.rs`.

use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, DType, Device, Layout, Result, Shape, Tensor, D,
};
use rayon::prelude::*;

fn fused(t: &Tensor) -> bool {
    t.device().is_cpu() && t.dtype() == DType::F32
}

/// The contiguous f32 slice behind a CPU storage, or an error naming the op.
fn slice<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<&'a [f32]> {
    let (a, b) = l
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg(format!("{op}: input must be contiguous")))?;
    Ok(&s.as_slice::<f32>()?[a..b])
}

fn host(t: &Tensor) -> Result<Vec<f32>> {
    t.flatten_all()?.to_vec1::<f32>()
}

fn tensor(v: Vec<f32>, shape: &Shape, dev: &Device) -> Result<Tensor> {
    Tensor::from_vec(v, shape.clone(), dev)
}

// ---------------------------------------------------------------------------------------------
// RMSNorm

struct RmsNorm {
    eps: f32,
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "mentor-rms-norm"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w) = (slice(xs, xl, self.name())?, slice(ws, wl, self.name())?);
        let (out, _) = slices::rms_norm(x, w, self.eps);
        Ok((CpuStorage::F32(out), xl.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (xv, wv, gv) = (host(x)?, host(w)?, host(grad)?);
        let (mut gx, mut gw) = (vec![0f32; xv.len()], vec![0f32; wv.len()]);
        let rstd = slices::rstd(&xv, wv.len(), self.eps);
        slices::rms_norm_backward(&mut gx, &mut gw, &xv, &rstd, &wv, &gv, false);
        Ok((
            Some(tensor(gx, x.shape(), x.device())?),
            Some(tensor(gw, w.shape(), w.device())?),
        ))
    }
}

/// RMSNorm over the last dimension: `x / sqrt(mean(x²) + eps) * weight`.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    if fused(x) {
        return x
            .contiguous()?
            .apply_op2(weight, RmsNorm { eps: eps as f32 });
    }
    rms_norm_basic(x, weight, eps)
}

pub fn rms_norm_basic(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    let dt = x.dtype();
    let x = x.to_dtype(DType::F32)?;
    let mean_sq = x.sqr()?.mean_keepdim(D::Minus1)?;
    x.broadcast_div(&mean_sq.affine(1.0, eps)?.sqrt()?)?
        .to_dtype(dt)?
        .broadcast_mul(&weight.to_dtype(dt)?)
}

// ---------------------------------------------------------------------------------------------
// SwiGLU: silu(gate) · up

struct SiluMul;

impl CustomOp2 for SiluMul {
    fn name(&self) -> &'static str {
        "mentor-silu-mul"
    }

    fn cpu_fwd(
        &self,
        gs: &CpuStorage,
        gl: &Layout,
        us: &CpuStorage,
        ul: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (g, u) = (slice(gs, gl, self.name())?, slice(us, ul, self.name())?);
        let out = slices::silu_mul(g, u);
        Ok((CpuStorage::F32(out), gl.shape().clone()))
    }

    fn bwd(
        &self,
        gate: &Tensor,
        up: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // the host copies of gate and up become their gradients in place
        let (mut dg, mut du, dv) = (host(gate)?, host(up)?, host(grad)?);
        slices::silu_mul_backward(&mut dg, &mut du, &dv);
        Ok((
            Some(tensor(dg, gate.shape(), gate.device())?),
            Some(tensor(du, up.shape(), up.device())?),
        ))
    }
}

/// `silu(gate) * up`, the SwiGLU activation of the MLP.
pub fn silu_mul(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    if fused(gate) {
        return gate.contiguous()?.apply_op2(&up.contiguous()?, SiluMul);
    }
    silu_mul_basic(gate, up)
}

pub fn silu_mul_basic(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    let sigmoid = gate.neg()?.exp()?.affine(1.0, 1.0)?.recip()?;
    (gate * sigmoid)? * up
}

// ---------------------------------------------------------------------------------------------
// Rotary embeddings, fused with the head transpose

/// Rotary tables, `[max_pos, head_dim]` each, frequencies repeated for both halves (the Hugging
/// Face "rotate half" layout).
#[derive(Clone)]
pub struct RopeTables {
    pub cos: Tensor,
    pub sin: Tensor,
    pub(crate) cos_host: std::sync::Arc<Vec<f32>>,
    pub(crate) sin_host: std::sync::Arc<Vec<f32>>,
    head_dim: usize,
}

impl RopeTables {
    pub fn new(theta: f64, head_dim: usize, max_pos: usize, dev: &Device) -> Result<Self> {
        let half = head_dim / 2;
        let (mut cos, mut sin) = (
            vec![0f32; max_pos * head_dim],
            vec![0f32; max_pos * head_dim],
        );
        for p in 0..max_pos {
            for i in 0..half {
                let inv = 1.0 / theta.powf(2.0 * i as f64 / head_dim as f64);
                let a = (p as f64 * inv) as f32;
                let (c, s) = (a.cos(), a.sin());
                for j in [i, i + half] {
                    cos[p * head_dim + j] = c;
                    sin[p * head_dim + j] = s;
                }
            }
        }
        Ok(RopeTables {
            cos: Tensor::from_vec(cos.clone(), (max_pos, head_dim), dev)?,
            sin: Tensor::from_vec(sin.clone(), (max_pos, head_dim), dev)?,
            cos_host: std::sync::Arc::new(cos),
            sin_host: std::sync::Arc::new(sin),
            head_dim,
        })
    }

    pub fn max_positions(&self) -> usize {
        self.cos_host.len() / self.head_dim
    }
}

/// `[b, t, heads, hd]` → rotated `[b, heads, t, hd]`; token `i` of row `bi` is at position
/// `positions[bi·t + i]`.
struct Rope {
    tables: RopeTables,
    positions: Vec<usize>,
}

impl Rope {
    /// Applies (or, with `inverse`, un-applies the transpose of) the rotation from layout
    /// `[b, t, h, hd]` to `[b, h, t, hd]` (`inverse`: from `[b, h, t, hd]` back to `[b, t, h, hd]`).
    fn run(&self, x: &[f32], dims: (usize, usize, usize, usize), inverse: bool) -> Vec<f32> {
        let (_, t, h, hd) = dims;
        let half = hd / 2;
        let (cos, sin) = (&self.tables.cos_host, &self.tables.sin_host);
        let mut out = vec![0f32; x.len()];
        // one output chunk per (batch, head): [t, hd] rows in the [b, h, t, hd] layout
        out.par_chunks_mut(t * hd).enumerate().for_each(|(bh, o)| {
            let (bi, hi) = (bh / h, bh % h);
            for ti in 0..t {
                let pos = self.positions[bi * t + ti];
                let (c, s) = (&cos[pos * hd..][..hd], &sin[pos * hd..][..hd]);
                let src = &x[((bi * t + ti) * h + hi) * hd..][..hd];
                let dst = &mut o[ti * hd..][..hd];
                for i in 0..half {
                    if inverse {
                        // forward: y1 = x1·c − x2·s, y2 = x2·c + x1·s; its transpose
                        dst[i] = src[i] * c[i] + src[i + half] * s[i + half];
                        dst[i + half] = src[i + half] * c[i + half] - src[i] * s[i];
                    } else {
                        dst[i] = src[i] * c[i] - src[i + half] * s[i];
                        dst[i + half] = src[i + half] * c[i + half] + src[i] * s[i + half];
                    }
                }
            }
        });
        out
    }
}

impl CustomOp1 for Rope {
    fn name(&self) -> &'static str {
        "mentor-rope"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, t, h, hd) = l.shape().dims4()?;
        let out = self.run(slice(s, l, self.name())?, (b, t, h, hd), false);
        Ok((CpuStorage::F32(out), Shape::from((b, h, t, hd))))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let (b, t, h, hd) = x.dims4()?;
        // grad is [b, h, t, hd]; read it as the [b, t, h, hd] input of the transposed walk
        let g = grad.transpose(1, 2)?.contiguous()?;
        let gx = self.run(&host(&g)?, (b, t, h, hd), true);
        // `run` wrote [b, h, t, hd]; the input layout is [b, t, h, hd]
        let gx = Tensor::from_vec(gx, (b, h, t, hd), x.device())?
            .transpose(1, 2)?
            .contiguous()?;
        Ok(Some(gx))
    }
}

/// Rotary embedding of `x: [b, t, heads, hd]` into `[b, heads, t, hd]`, token `i` of row `r`
/// at position `positions[r·t + i]` (rows of a left-padded batch start at different places).
pub fn rope(x: &Tensor, tables: &RopeTables, positions: &[usize]) -> Result<Tensor> {
    let (b, t, _, _) = x.dims4()?;
    if positions.len() != b * t || positions.iter().any(|&p| p >= tables.max_positions()) {
        candle_core::bail!(
            "rope: {} positions for {b}×{t} tokens, or one beyond the model's {}",
            positions.len(),
            tables.max_positions()
        );
    }
    if fused(x) {
        return x.contiguous()?.apply_op1(Rope {
            tables: tables.clone(),
            positions: positions.to_vec(),
        });
    }
    rope_basic(x, tables, positions)
}

pub fn rope_basic(x: &Tensor, tables: &RopeTables, positions: &[usize]) -> Result<Tensor> {
    let (b, t, _, hd) = x.dims4()?;
    let x = x.transpose(1, 2)?.contiguous()?; // [b, h, t, hd]
    let idx: Vec<u32> = positions.iter().map(|&p| p as u32).collect();
    let idx = Tensor::from_vec(idx, b * t, x.device())?;
    let cos = tables.cos.index_select(&idx, 0)?.reshape((b, 1, t, hd))?;
    let sin = tables.sin.index_select(&idx, 0)?.reshape((b, 1, t, hd))?;
    let (cos, sin) = (cos.to_dtype(x.dtype())?, sin.to_dtype(x.dtype())?);
    let x1 = x.narrow(D::Minus1, 0, hd / 2)?;
    let x2 = x.narrow(D::Minus1, hd / 2, hd / 2)?;
    let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
    x.broadcast_mul(&cos)? + rotated.broadcast_mul(&sin)?
}

// ---------------------------------------------------------------------------------------------
// Causal softmax

/// `softmax(scale · scores + causal mask)` over the last dim. Scores are `[.., rows, cols]` where
/// the rows are `groups` consecutive blocks of `t_q` queries (grouped-query attention stacks
/// the query heads that share a kv head); query `i` of a block sits at key position
/// `cols − t_q + i` and sees keys up to it.
struct CausalSoftmax {
    scale: f32,
    t_q: usize,
}

impl CustomOp1 for CausalSoftmax {
    fn name(&self) -> &'static str {
        "mentor-causal-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(s, l, self.name())?;
        let cols = *l.shape().dims().last().unwrap();
        let past = cols - self.t_q;
        let mut out = x.to_vec();
        out.par_chunks_mut(cols)
            .enumerate()
            .for_each(|(r, row)| slices::softmax_prefix(row, past + r % self.t_q + 1, self.scale));
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, p: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let (pv, gv) = (host(p)?, host(grad)?);
        let cols = *p.dims().last().unwrap();
        let mut gx = vec![0f32; pv.len()];
        // d scores = scale · p ⊙ (g − Σ g⊙p); masked entries have p = 0
        gx.par_chunks_mut(cols)
            .zip(pv.par_chunks(cols).zip(gv.par_chunks(cols)))
            .for_each(|(o, (p, g))| {
                let dot: f32 = p.iter().zip(g).map(|(p, g)| p * g).sum();
                for j in 0..cols {
                    o[j] = self.scale * p[j] * (g[j] - dot);
                }
            });
        Ok(Some(tensor(gx, p.shape(), p.device())?))
    }
}

/// Causal attention probabilities from raw scores `[.., groups·t_q, cols]` (see
/// [`CausalSoftmax`]): `softmax(scale · scores)` with future keys masked out.
pub fn causal_softmax(scores: &Tensor, scale: f64, t_q: usize) -> Result<Tensor> {
    if fused(scores) {
        return scores.contiguous()?.apply_op1(CausalSoftmax {
            scale: scale as f32,
            t_q,
        });
    }
    causal_softmax_basic(scores, scale, t_q)
}

pub fn causal_softmax_basic(scores: &Tensor, scale: f64, t_q: usize) -> Result<Tensor> {
    let dims = scores.dims();
    let (rows, cols) = (dims[dims.len() - 2], dims[dims.len() - 1]);
    let past = cols - t_q;
    let mask: Vec<f32> = (0..rows)
        .flat_map(|r| (0..cols).map(move |c| if c > past + r % t_q { -1e9 } else { 0.0 }))
        .collect();
    let mask = Tensor::from_vec(mask, (rows, cols), scores.device())?;
    // in f32 whatever the compute dtype (bf16 sums drift), back to it after
    let dt = scores.dtype();
    let s = (scores.to_dtype(DType::F32)? * scale)?.broadcast_add(&mask)?;
    candle_nn::ops::softmax(&s, D::Minus1)?.to_dtype(dt)
}

/// A raw pointer that parallel tasks share; each writes a disjoint set of elements (the host
/// kernels of `cpu_train` and `few_rows`).
#[derive(Clone, Copy)]
pub(crate) struct Shared(pub(crate) *mut f32);
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

impl Shared {
    /// Through a method, so closures capture the `Send` wrapper rather than its field.
    pub(crate) fn ptr(self) -> *mut f32 {
        self.0
    }
}

// ---------------------------------------------------------------------------------------------
// The row kernels on host slices: the custom ops above and `cpu_train` both run these.

pub(crate) mod slices {
    use crate::fastmath;
    use rayon::prelude::*;

    /// In place: `row[..visible]` becomes `softmax(scale · row[..visible])`, the rest zeros.
    pub(crate) fn softmax_prefix(row: &mut [f32], visible: usize, scale: f32) {
        let (seen, future) = row.split_at_mut(visible);
        let max = fastmath::max(seen) * scale;
        seen.iter_mut()
            .for_each(|v| *v = fastmath::exp(*v * scale - max));
        let inv = 1.0 / fastmath::sum(seen);
        seen.iter_mut().for_each(|v| *v *= inv);
        future.fill(0.0);
    }

    /// The inverse RMS of every `d`-wide row: `1 / sqrt(mean(x²) + eps)`.
    pub(crate) fn rstd(x: &[f32], d: usize, eps: f32) -> Vec<f32> {
        x.par_chunks(d)
            .map(|row| 1.0 / (row.iter().map(|v| v * v).sum::<f32>() / d as f32 + eps).sqrt())
            .collect()
    }

    /// RMSNorm of every row: `(x · rstd · w, rstd)`.
    pub(crate) fn rms_norm(x: &[f32], w: &[f32], eps: f32) -> (Vec<f32>, Vec<f32>) {
        let rstd = rstd(x, w.len(), eps);
        (normed(x, &rstd, w), rstd)
    }

    /// `x · rstd · w` per row, from a norm's saved `rstd`.
    pub(crate) fn normed(x: &[f32], rstd: &[f32], w: &[f32]) -> Vec<f32> {
        let d = w.len();
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(d)
            .zip(x.par_chunks(d).zip(rstd))
            .for_each(|(o, (row, &r))| {
                for i in 0..d {
                    o[i] = row[i] * r * w[i];
                }
            });
        out
    }

    /// RMSNorm backward: `dx (+)= r·(g·w − x̂·mean(g·w·x̂))` per row (x̂ = x·r), `dw += Σ g·x̂`.
    pub(crate) fn rms_norm_backward(
        dx: &mut [f32],
        dw: &mut [f32],
        x: &[f32],
        rstd: &[f32],
        w: &[f32],
        g: &[f32],
        acc: bool,
    ) {
        let d = w.len();
        let partial = dx
            .par_chunks_mut(d)
            .zip(x.par_chunks(d).zip(g.par_chunks(d)).zip(rstd))
            .fold(
                || vec![0f32; d],
                |mut gw, (dxr, ((xr, gr), &r))| {
                    let mut dot = 0f32;
                    for i in 0..d {
                        let xh = xr[i] * r;
                        dot += gr[i] * w[i] * xh;
                        gw[i] += gr[i] * xh;
                    }
                    let mean = dot / d as f32;
                    for i in 0..d {
                        let v = r * (gr[i] * w[i] - xr[i] * r * mean);
                        dxr[i] = if acc { dxr[i] + v } else { v };
                    }
                    gw
                },
            )
            .reduce(
                || vec![0f32; d],
                |mut a, b| {
                    a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
                    a
                },
            );
        dw.iter_mut().zip(partial).for_each(|(a, b)| *a += b);
    }

    pub(crate) fn silu_mul(gate: &[f32], up: &[f32]) -> Vec<f32> {
        let mut out = vec![0f32; gate.len()];
        out.par_chunks_mut(4096)
            .zip(gate.par_chunks(4096).zip(up.par_chunks(4096)))
            .for_each(|(o, (g, u))| {
                for i in 0..o.len() {
                    o[i] = g[i] * fastmath::sigmoid(g[i]) * u[i];
                }
            });
        out
    }

    /// In place: `gate` and `up` become their gradients from `d`, that of `silu(gate)·up`.
    pub(crate) fn silu_mul_backward(gate: &mut [f32], up: &mut [f32], d: &[f32]) {
        gate.par_chunks_mut(4096)
            .zip(up.par_chunks_mut(4096).zip(d.par_chunks(4096)))
            .for_each(|(g, (u, d))| {
                for i in 0..g.len() {
                    let (gv, uv) = (g[i], u[i]);
                    let sg = fastmath::sigmoid(gv);
                    u[i] = d[i] * gv * sg;
                    g[i] = d[i] * uv * sg * (1.0 + gv * (1.0 - sg));
                }
            });
    }
}
