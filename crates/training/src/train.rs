//! The inner loop: forward, backward, AdamW on a chosen subset of the parameters.

use crate::error::TrainingError;
use crate::model::{Batch, MoeModel};
use crate::optim::{adamw_step, AdamWConfig, AdamWState};
use crate::params::{HostTensor, ParamSet};

/// What one step measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStats {
    /// Training objective (language model plus weighted balance loss).
    pub total: f32,
    /// Next-token cross-entropy on the batch, in nats.
    pub lm: f32,
    /// Load-balancing loss.
    pub balance: f32,
}

/// A model, the parameters it may change, and their optimizer state.
#[derive(Debug)]
pub struct Trainer {
    model: MoeModel,
    opt: AdamWConfig,
    trainable: ParamSet,
    state: AdamWState,
}

impl Trainer {
    /// Trains the parameters whose names pass `trains`, continuing from `state` when given
    /// (its layout must match those parameters), else from zero moments.
    pub fn new(
        model: MoeModel,
        opt: AdamWConfig,
        trains: impl Fn(&str) -> bool,
        state: Option<AdamWState>,
    ) -> Result<Self, TrainingError> {
        let trainable = model.params()?.filter(trains);
        if trainable.is_empty() {
            return Err(TrainingError::InvalidInput("nothing to train".into()));
        }
        let state = match state {
            Some(s) => {
                trainable.check_same_layout(&s.m)?;
                trainable.check_same_layout(&s.v)?;
                s
            }
            None => AdamWState::new(&trainable),
        };
        Ok(Self {
            model,
            opt,
            trainable,
            state,
        })
    }

    /// The model being trained.
    pub fn model(&self) -> &MoeModel {
        &self.model
    }

    /// The optimizer state.
    pub fn state(&self) -> &AdamWState {
        &self.state
    }

    /// The trainable parameters' current values.
    pub fn trainable(&self) -> &ParamSet {
        &self.trainable
    }

    /// Gives back the model and the optimizer state.
    pub fn into_parts(self) -> (MoeModel, AdamWState) {
        (self.model, self.state)
    }

    /// One forward/backward pass and one AdamW step.
    pub fn step(&mut self, batch: &Batch) -> Result<StepStats, TrainingError> {
        let losses = self.model.losses(batch)?;
        let stats = StepStats {
            total: losses.total.to_scalar()?,
            lm: losses.lm.to_scalar()?,
            balance: losses.balance.to_scalar()?,
        };
        if !stats.total.is_finite() {
            return Err(TrainingError::Diverged(self.state.step + 1));
        }
        let grads = losses.total.backward()?;
        let mut g = ParamSet::default();
        for (name, t) in &self.trainable.tensors {
            let var = self
                .model
                .var(name)
                .ok_or_else(|| TrainingError::InvalidInput(format!("unknown tensor {name}")))?;
            // An expert that no token reached this step has no gradient: zero.
            let data = match grads.get(var.as_tensor()) {
                Some(gt) => gt.flatten_all()?.to_vec1::<f32>()?,
                None => vec![0.0; t.data.len()],
            };
            g.tensors.insert(
                name.clone(),
                HostTensor {
                    shape: t.shape.clone(),
                    data,
                },
            );
        }
        adamw_step(&self.opt, &mut self.state, &mut self.trainable, &g)?;
        self.model.set_params(&self.trainable)?;
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ModelConfig;
    use crate::data::{assigned_batches, heldout_batches, BatchShape, Corpus, HeldoutPart, Shard};

    #[test]
    fn training_lowers_heldout_loss_and_is_bit_reproducible() {
        let corpus = Corpus::synthetic(0, 60_000);
        let shape = BatchShape {
            batch: 4,
            seq_len: 32,
        };
        let batches = assigned_batches(
            &corpus,
            Shard {
                run: 0,
                round: 0,
                round_seed: 0,
                uid: 0,
            },
            30,
            shape,
        )
        .unwrap();
        let held = heldout_batches(&corpus, HeldoutPart::Evaluation, 2, shape).unwrap();
        let run = || {
            let model = MoeModel::init(&ModelConfig::tiny(), 11).unwrap();
            let mut t = Trainer::new(model, AdamWConfig::default(), |_| true, None).unwrap();
            for b in &batches {
                t.step(b).unwrap();
            }
            t
        };
        let before = MoeModel::init(&ModelConfig::tiny(), 11)
            .unwrap()
            .eval_loss(&held)
            .unwrap();
        let a = run();
        let after = a.model().eval_loss(&held).unwrap();
        assert!(after < before - 0.5, "{before} -> {after}");
        let b = run();
        assert_eq!(
            a.model().params().unwrap().content_hash(),
            b.model().params().unwrap().content_hash()
        );
        assert_eq!(a.state().hash(), b.state().hash());
    }

    #[test]
    fn frozen_parameters_do_not_move() {
        let corpus = Corpus::synthetic(0, 20_000);
        let shape = BatchShape {
            batch: 2,
            seq_len: 16,
        };
        let model = MoeModel::init(&ModelConfig::tiny(), 2).unwrap();
        let before = model.params().unwrap();
        let only_expert_0 = |n: &str| crate::config::expert_of(n) == Some(0);
        let mut t = Trainer::new(model, AdamWConfig::default(), only_expert_0, None).unwrap();
        for b in assigned_batches(
            &corpus,
            Shard {
                run: 0,
                round: 0,
                round_seed: 0,
                uid: 0,
            },
            3,
            shape,
        )
        .unwrap()
        {
            t.step(&b).unwrap();
        }
        let after = t.model().params().unwrap();
        for (name, tensor) in &after.tensors {
            let moved = tensor != &before.tensors[name];
            assert_eq!(moved, only_expert_0(name), "{name}");
        }
    }
}
