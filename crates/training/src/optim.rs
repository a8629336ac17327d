//! AdamW on host parameter sets, written out so that its state can be committed, sent and
//! replayed: a pure function of (config, state, params, grads).

use sha2::{Digest, Sha256};

use crate::error::TrainingError;
use crate::params::{Digest32, ParamSet};

/// AdamW's hyper-parameters, plus the learning-rate schedule (linear warm-up, then an
/// optional cosine decay) and global gradient clipping.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamWConfig {
    /// Peak learning rate.
    pub lr: f64,
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Denominator floor.
    pub eps: f64,
    /// Decoupled weight decay, applied to matrices only (not norms).
    pub weight_decay: f64,
    /// Steps of linear warm-up from zero.
    pub warmup_steps: u64,
    /// Global gradient-norm clip (0 disables).
    pub grad_clip: f64,
    /// Step at which the cosine decay that follows warm-up ends: the whole run's length in
    /// steps, so that the schedule runs once across every round (0 keeps the peak rate).
    #[serde(default)]
    pub decay_steps: u64,
    /// Learning rate at the end of the decay, as a share of the peak.
    #[serde(default = "default_min_lr_ratio")]
    pub min_lr_ratio: f64,
}

fn default_min_lr_ratio() -> f64 {
    0.1
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            lr: 3e-3,
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-8,
            weight_decay: 0.01,
            warmup_steps: 20,
            grad_clip: 1.0,
            decay_steps: 0,
            min_lr_ratio: default_min_lr_ratio(),
        }
    }
}

/// AdamW's moments for a set of parameters and the number of steps taken.
#[derive(Debug, Clone, PartialEq)]
pub struct AdamWState {
    /// Steps taken so far.
    pub step: u64,
    /// First moments.
    pub m: ParamSet,
    /// Second moments.
    pub v: ParamSet,
}

impl AdamWState {
    /// Zero moments shaped like `params`.
    pub fn new(params: &ParamSet) -> Self {
        Self {
            step: 0,
            m: params.zeros_like(),
            v: params.zeros_like(),
        }
    }

    /// Digest of the step count and both moments.
    pub fn hash(&self) -> Digest32 {
        let mut h = Sha256::new();
        h.update(b"agora-training/adamw/v1");
        h.update(self.step.to_le_bytes());
        h.update(self.m.content_hash());
        h.update(self.v.content_hash());
        h.finalize().into()
    }
}

/// The learning rate at `step` (1-based): linear warm-up to the peak, then cosine decay to
/// `min_lr_ratio` of it at `decay_steps`, held there after.
pub fn lr_at(cfg: &AdamWConfig, step: u64) -> f64 {
    if cfg.warmup_steps > 0 && step < cfg.warmup_steps {
        return cfg.lr * step as f64 / cfg.warmup_steps as f64;
    }
    if cfg.decay_steps <= cfg.warmup_steps {
        return cfg.lr;
    }
    let span = (cfg.decay_steps - cfg.warmup_steps) as f64;
    let progress = ((step - cfg.warmup_steps) as f64 / span).min(1.0);
    let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
    cfg.lr * (cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * cosine)
}

/// One AdamW step on `params` with `grads` (same layout as the state). Arithmetic is in f32
/// in canonical order except the clip norm (f64), so it is bit-reproducible everywhere.
pub fn adamw_step(
    cfg: &AdamWConfig,
    state: &mut AdamWState,
    params: &mut ParamSet,
    grads: &ParamSet,
) -> Result<(), TrainingError> {
    params.check_same_layout(grads)?;
    params.check_same_layout(&state.m)?;
    params.check_same_layout(&state.v)?;
    if !grads.all_finite() {
        return Err(TrainingError::Diverged(state.step + 1));
    }
    state.step += 1;
    let t = state.step;
    let norm = grads.l2_norm();
    let clip = if cfg.grad_clip > 0.0 && norm > cfg.grad_clip {
        (cfg.grad_clip / norm) as f32
    } else {
        1.0
    };
    let lr = lr_at(cfg, t) as f32;
    let (b1, b2) = (cfg.beta1 as f32, cfg.beta2 as f32);
    let bc1 = 1.0 - (cfg.beta1.powf(t as f64)) as f32;
    let bc2 = 1.0 - (cfg.beta2.powf(t as f64)) as f32;
    let eps = cfg.eps as f32;
    let wd = cfg.weight_decay as f32;
    let tensors = params.tensors.iter_mut().zip(&grads.tensors).zip(
        state
            .m
            .tensors
            .values_mut()
            .zip(state.v.tensors.values_mut()),
    );
    for (((_, p), (_, g)), (m, v)) in tensors {
        let decay = if p.shape.len() >= 2 { wd } else { 0.0 };
        for (((x, &gi), mi), vi) in p
            .data
            .iter_mut()
            .zip(&g.data)
            .zip(m.data.iter_mut())
            .zip(v.data.iter_mut())
        {
            let gi = gi * clip;
            *mi = b1 * *mi + (1.0 - b1) * gi;
            *vi = b2 * *vi + (1.0 - b2) * gi * gi;
            let update = (*mi / bc1) / ((*vi / bc2).sqrt() + eps);
            *x -= lr * (update + decay * *x);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::HostTensor;

    fn one(v: Vec<f32>) -> ParamSet {
        let mut p = ParamSet::default();
        p.tensors.insert(
            "w".into(),
            HostTensor {
                shape: vec![v.len()],
                data: v,
            },
        );
        p
    }

    #[test]
    fn first_step_moves_by_lr_against_the_gradient_sign() {
        let cfg = AdamWConfig {
            lr: 0.1,
            warmup_steps: 0,
            grad_clip: 0.0,
            ..Default::default()
        };
        let mut p = one(vec![1.0, 1.0]);
        let mut s = AdamWState::new(&p);
        adamw_step(&cfg, &mut s, &mut p, &one(vec![2.0, -0.5])).unwrap();
        assert!((p.tensors["w"].data[0] - 0.9).abs() < 1e-5);
        assert!((p.tensors["w"].data[1] - 1.1).abs() < 1e-5);
        assert_eq!(s.step, 1);
    }

    #[test]
    fn schedule_warms_up_then_decays_once_to_the_floor() {
        let cfg = AdamWConfig {
            lr: 1.0,
            warmup_steps: 10,
            decay_steps: 110,
            min_lr_ratio: 0.1,
            ..Default::default()
        };
        assert!((lr_at(&cfg, 5) - 0.5).abs() < 1e-12);
        assert!((lr_at(&cfg, 10) - 1.0).abs() < 1e-12);
        assert!((lr_at(&cfg, 60) - 0.55).abs() < 1e-12);
        assert!((lr_at(&cfg, 110) - 0.1).abs() < 1e-12);
        assert!((lr_at(&cfg, 500) - 0.1).abs() < 1e-12);
        let flat = AdamWConfig {
            decay_steps: 0,
            ..cfg
        };
        assert_eq!(lr_at(&flat, 500), 1.0);
    }

    #[test]
    fn minimises_a_quadratic() {
        let cfg = AdamWConfig {
            lr: 0.05,
            weight_decay: 0.0,
            ..Default::default()
        };
        let mut p = one(vec![3.0, -2.0]);
        let mut s = AdamWState::new(&p);
        for _ in 0..500 {
            let g = one(p.tensors["w"].data.iter().map(|x| 2.0 * x).collect());
            adamw_step(&cfg, &mut s, &mut p, &g).unwrap();
        }
        assert!(p.l2_norm() < 0.05, "{:?}", p.tensors["w"].data);
    }

    #[test]
    fn non_finite_or_misshapen_gradients_change_nothing() {
        let cfg = AdamWConfig::default();
        let mut p = one(vec![1.0]);
        let mut s = AdamWState::new(&p);
        assert!(adamw_step(&cfg, &mut s, &mut p, &one(vec![f32::NAN])).is_err());
        assert!(adamw_step(&cfg, &mut s, &mut p, &one(vec![1.0, 2.0])).is_err());
        assert_eq!(p, one(vec![1.0]));
        assert_eq!(s.step, 0);
    }
}
