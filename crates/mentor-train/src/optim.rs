//! AdamW and the learning-rate schedule, with state that checkpoints.
//!
//! candle-nn has an AdamW, but its moment estimates are private, so a resumed run would restart
//! them from zero; this one keeps them in the open and saves them beside the weights.

use candle_core::{Result, Tensor, Var};
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
        let m = params
            .iter()
            .map(|(_, p)| p.zeros_like())
            .collect::<Result<Vec<_>>>()?;
        let v = m.clone();
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
            let m = ((&self.m[i] * c.beta1)? + (g * (1.0 - c.beta1))?)?;
            let v = ((&self.v[i] * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
            let step = ((&m / bc1)? / ((&v / bc2)?.sqrt()? + c.eps)?)?;
            let mut next = (p.as_tensor() - (step * lr)?)?;
            if c.weight_decay > 0.0 && p.rank() >= 2 {
                next = (next - (p.as_tensor() * (lr * c.weight_decay))?)?;
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

/// Scales `grads` so their global L2 norm is at most `max_norm`; returns the norm before.
pub fn clip_grad_norm(grads: &mut [Option<Tensor>], max_norm: f64) -> Result<f64> {
    let mut sq = 0f64;
    for g in grads.iter().flatten() {
        sq += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
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
