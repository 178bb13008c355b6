//! AdamW and the learning-rate schedule, with state that checkpoints.
//!
//! candle-nn has an AdamW, but its moment estimates are private, so a resumed run would restart
//! them from zero; this one keeps them in the open and saves them beside the weights.

use candle_core::{CpuStorage, DType, InplaceOp2, InplaceOp3, Layout, Result, Tensor, Var};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Decoupled weight decay, applied to matrices only (not to norms and biases).
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

pub struct AdamW {
    pub cfg: AdamWConfig,
    params: Vec<(String, Var)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    /// Updates taken so far (the bias correction's t).
    pub steps: u64,
}

impl AdamW {
    pub fn new(params: Vec<(String, Var)>, cfg: AdamWConfig) -> Result<Self> {
        // each its own storage: the CPU update writes them in place
        let zeros = || {
            params
                .iter()
                .map(|(_, p)| p.zeros_like())
                .collect::<Result<Vec<_>>>()
        };
        let (m, v) = (zeros()?, zeros()?);
        Ok(AdamW {
            cfg,
            params,
            m,
            v,
            steps: 0,
        })
    }

    pub fn params(&self) -> &[(String, Var)] {
        &self.params
    }

    /// One update with `grads[i]` for `params[i]` (`None`: no gradient, parameter untouched).
    pub fn step(&mut self, grads: &[Option<Tensor>], lr: f64) -> Result<()> {
        self.steps += 1;
        let c = &self.cfg;
        let (bc1, bc2) = (
            1.0 - c.beta1.powi(self.steps as i32),
            1.0 - c.beta2.powi(self.steps as i32),
        );
        for (i, (_, p)) in self.params.iter().enumerate() {
            let Some(g) = &grads[i] else { continue };
            let decay = if p.rank() >= 2 { c.weight_decay } else { 0.0 };
            if in_place(&[p.as_tensor(), g, &self.m[i], &self.v[i]]) {
                self.m[i].inplace_op2(
                    g,
                    &Ema {
                        beta: c.beta1 as f32,
                        square: false,
                    },
                )?;
                self.v[i].inplace_op2(
                    g,
                    &Ema {
                        beta: c.beta2 as f32,
                        square: true,
                    },
                )?;
                let update = Update {
                    lr: lr as f32,
                    bc1: bc1 as f32,
                    bc2: bc2 as f32,
                    eps: c.eps as f32,
                    decay: (lr * decay) as f32,
                };
                p.as_tensor().inplace_op3(&self.m[i], &self.v[i], &update)?;
                continue;
            }
            let m = ((&self.m[i] * c.beta1)? + (g * (1.0 - c.beta1))?)?;
            let v = ((&self.v[i] * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
            let step = ((&m / bc1)? / ((&v / bc2)?.sqrt()? + c.eps)?)?;
            let mut next = (p.as_tensor() - (step * lr)?)?;
            if decay > 0.0 {
                next = (next - (p.as_tensor() * (lr * decay))?)?;
            }
            p.set(&next)?;
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(())
    }

    /// Saves the moments as safetensors (`m.NAME`, `v.NAME`).
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut t = HashMap::new();
        for (i, (name, _)) in self.params.iter().enumerate() {
            t.insert(format!("m.{name}"), self.m[i].clone());
            t.insert(format!("v.{name}"), self.v[i].clone());
        }
        candle_core::safetensors::save(&t, path)
    }

    /// Restores moments saved by [`AdamW::save`] for the same parameters.
    pub fn load(&mut self, path: &Path, steps: u64) -> Result<()> {
        let dev = self.params.first().map(|p| p.1.device().clone());
        let Some(dev) = dev else { return Ok(()) };
        let mut t = candle_core::safetensors::load(path, &dev)?;
        for (i, (name, _)) in self.params.iter().enumerate() {
            let take = |t: &mut HashMap<String, Tensor>, k: String| {
                t.remove(&k)
                    .ok_or_else(|| candle_core::Error::Msg(format!("{}: no `{k}`", path.display())))
            };
            self.m[i] = take(&mut t, format!("m.{name}"))?;
            self.v[i] = take(&mut t, format!("v.{name}"))?;
        }
        self.steps = steps;
        Ok(())
    }
}

// In-place CPU kernels for the update: the tensor version above makes about ten passes over
// every weight and allocates a tensor for each; these make three and allocate nothing.

/// Whether the update can run in place: contiguous f32 tensors on the CPU.
fn in_place(ts: &[&Tensor]) -> bool {
    ts.iter()
        .all(|t| t.device().is_cpu() && t.dtype() == DType::F32 && t.is_contiguous())
}

fn f32s<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    let (a, b) = l
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg("adamw: not contiguous".into()))?;
    Ok(&s.as_slice::<f32>()?[a..b])
}

fn f32s_mut<'a>(s: &'a mut CpuStorage, l: &Layout) -> Result<&'a mut [f32]> {
    let (a, b) = l
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg("adamw: not contiguous".into()))?;
    match s {
        CpuStorage::F32(v) => Ok(&mut v[a..b]),
        _ => candle_core::bail!("adamw: not f32"),
    }
}

const CHUNK: usize = 1 << 14;

/// A moment estimate: `m ← β·m + (1 − β)·g` (`g²` when `square`).
struct Ema {
    beta: f32,
    square: bool,
}

impl InplaceOp2 for Ema {
    fn name(&self) -> &'static str {
        "mentor-adamw-moment"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let (m, g) = (f32s_mut(s1, l1)?, f32s(s2, l2)?);
        let (b, a) = (self.beta, 1.0 - self.beta);
        m.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .for_each(|(m, g)| {
                for (m, &g) in m.iter_mut().zip(g) {
                    *m = b * *m + a * if self.square { g * g } else { g };
                }
            });
        Ok(())
    }
}

/// The weight update from the moments: `p ← p − lr·m̂/(√v̂ + ε) − lr·λ·p`.
struct Update {
    lr: f32,
    bc1: f32,
    bc2: f32,
    eps: f32,
    /// lr·λ (0 for norms and biases).
    decay: f32,
}

impl InplaceOp3 for Update {
    fn name(&self) -> &'static str {
        "mentor-adamw-update"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<()> {
        let (p, m, v) = (f32s_mut(s1, l1)?, f32s(s2, l2)?, f32s(s3, l3)?);
        p.par_chunks_mut(CHUNK)
            .zip(m.par_chunks(CHUNK).zip(v.par_chunks(CHUNK)))
            .for_each(|(p, (m, v))| {
                for i in 0..p.len() {
                    let step = (m[i] / self.bc1) / ((v[i] / self.bc2).sqrt() + self.eps);
                    p[i] -= self.lr * step + self.decay * p[i];
                }
            });
        Ok(())
    }
}

/// Scales `grads` so their global L2 norm is at most `max_norm`; returns the norm before.
pub fn clip_grad_norm(grads: &mut [Option<Tensor>], max_norm: f64) -> Result<f64> {
    let mut sq = 0f64;
    for g in grads.iter().flatten() {
        sq += match in_place(&[g]) {
            // read where it lies: `sqr()` would allocate a copy of every gradient
            true => {
                let (storage, layout) = g.storage_and_layout();
                let candle_core::Storage::Cpu(cpu) = &*storage else {
                    unreachable!("checked on the CPU")
                };
                f32s(cpu, layout)?
                    .par_chunks(CHUNK)
                    .map(|c| c.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>())
                    .sum()
            }
            false => g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64,
        };
    }
    let norm = sq.sqrt();
    if max_norm > 0.0 && norm > max_norm {
        let s = max_norm / (norm + 1e-6);
        for g in grads.iter_mut().flatten() {
            *g = (&*g * s)?;
        }
    }
    Ok(norm)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    Constant,
    Cosine,
    Linear,
}

/// Linear warm-up over `warmup` steps, then constant, cosine or linear decay to
/// `min_ratio · peak` at `total`.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub kind: ScheduleKind,
    pub peak: f64,
    pub warmup: u64,
    pub total: u64,
    pub min_ratio: f64,
}

impl Schedule {
    /// The learning rate of update number `step` (0-based).
    pub fn lr(&self, step: u64) -> f64 {
        if step < self.warmup {
            return self.peak * (step + 1) as f64 / self.warmup as f64;
        }
        let span = self.total.saturating_sub(self.warmup).max(1) as f64;
        let done = ((step - self.warmup) as f64 / span).min(1.0);
        let floor = self.peak * self.min_ratio;
        match self.kind {
            ScheduleKind::Constant => self.peak,
            ScheduleKind::Linear => floor + (self.peak - floor) * (1.0 - done),
            ScheduleKind::Cosine => {
                floor + (self.peak - floor) * 0.5 * (1.0 + (std::f64::consts::PI * done).cos())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_then_decays_to_the_floor() {
        let s = Schedule {
            kind: ScheduleKind::Cosine,
            peak: 1.0,
            warmup: 4,
            total: 14,
            min_ratio: 0.1,
        };
        assert_eq!(s.lr(0), 0.25);
        assert_eq!(s.lr(3), 1.0);
        assert!((s.lr(4) - 1.0).abs() < 1e-12);
        assert!((s.lr(9) - 0.55).abs() < 1e-12);
        assert!((s.lr(14) - 0.1).abs() < 1e-12);
        assert!((s.lr(100) - 0.1).abs() < 1e-12);
        let c = Schedule {
            kind: ScheduleKind::Constant,
            ..s
        };
        assert_eq!(c.lr(50), 1.0);
    }

    /// AdamW's first step moves each weight by lr·sign(g) (bias-corrected m/√v = ±1).
    #[test]
    fn first_adamw_step_moves_by_lr_times_sign() -> Result<()> {
        let dev = candle_core::Device::Cpu;
        let p = Var::new(&[1f32, -2.0, 3.0], &dev)?;
        let mut opt = AdamW::new(vec![("w".into(), p.clone())], AdamWConfig::default())?;
        let g = Tensor::new(&[0.5f32, -4.0, 0.0], &dev)?;
        opt.step(&[Some(g)], 0.1)?;
        let got = p.as_tensor().to_vec1::<f32>()?;
        let want = [0.9f32, -1.9, 3.0];
        for (a, b) in got.iter().zip(want) {
            assert!((a - b).abs() < 1e-5, "{got:?}");
        }
        Ok(())
    }

    /// The in-place update is AdamW with decoupled decay on matrices: three steps checked
    /// against the formula in f64, and the tensor-op path (non-contiguous moments) agrees.
    #[test]
    fn in_place_update_follows_the_formula() -> Result<()> {
        let dev = candle_core::Device::Cpu;
        let w0 = [0.5f32, -1.0, 2.0, 0.25];
        let gs = [
            [0.1f32, -0.2, 0.3, 0.0],
            [0.4, 0.1, -0.5, 0.2],
            [-0.3, 0.2, 0.1, 0.1],
        ];
        let cfg = AdamWConfig {
            weight_decay: 0.1,
            ..AdamWConfig::default()
        };
        let p = Var::from_tensor(&Tensor::new(&w0, &dev)?.reshape((2, 2))?)?;
        let mut opt = AdamW::new(vec![("w".into(), p.clone())], cfg.clone())?;
        let q = Var::from_tensor(&Tensor::new(&w0, &dev)?.reshape((2, 2))?)?;
        let mut reference = AdamW::new(vec![("w".into(), q.clone())], cfg.clone())?;
        // transposed twice: same values, not contiguous, so the tensor-op path runs
        reference.m[0] = reference.m[0].t()?.contiguous()?.t()?;
        let (mut w, mut m, mut v) = (w0.map(f64::from), [0f64; 4], [0f64; 4]);
        for (t, g) in gs.iter().enumerate() {
            let lr = 0.05;
            let gt = Tensor::new(g, &dev)?.reshape((2, 2))?;
            opt.step(&[Some(gt.clone())], lr)?;
            reference.step(&[Some(gt)], lr)?;
            let (bc1, bc2) = (
                1.0 - 0.9f64.powi(t as i32 + 1),
                1.0 - 0.999f64.powi(t as i32 + 1),
            );
            for i in 0..4 {
                let gi = g[i] as f64;
                m[i] = 0.9 * m[i] + 0.1 * gi;
                v[i] = 0.999 * v[i] + 0.001 * gi * gi;
                w[i] -= lr * (m[i] / bc1) / ((v[i] / bc2).sqrt() + 1e-8) + lr * 0.1 * w[i];
            }
        }
        let got = p.as_tensor().flatten_all()?.to_vec1::<f32>()?;
        let other = q.as_tensor().flatten_all()?.to_vec1::<f32>()?;
        for i in 0..4 {
            assert!((got[i] as f64 - w[i]).abs() < 1e-5, "{got:?} vs {w:?}");
            assert!((got[i] - other[i]).abs() < 1e-5, "{got:?} vs {other:?}");
        }
        Ok(())
    }

    #[test]
    fn clipping_bounds_the_global_norm() -> Result<()> {
        let dev = candle_core::Device::Cpu;
        let mut g = vec![
            Some(Tensor::new(&[3f32, 0.0], &dev)?),
            None,
            Some(Tensor::new(&[4f32], &dev)?),
        ];
        let before = clip_grad_norm(&mut g, 1.0)?;
        assert!((before - 5.0).abs() < 1e-6);
        let after = clip_grad_norm(&mut g, 0.0)?;
        assert!((after - 1.0).abs() < 1e-4, "{after}");
        Ok(())
    }
}
