//! Host-side parameter sets: the pure representation of weights, updates and optimizer
//! state that hashing, compression, scoring and aggregation work on (no tensor library).

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::error::TrainingError;

/// One named tensor: row-major `f32` values and their shape.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values.
    pub data: Vec<f32>,
}

/// Named tensors in canonical (sorted by name) order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ParamSet {
    /// The tensors by name.
    pub tensors: BTreeMap<String, HostTensor>,
}

/// A 32-byte SHA-256 digest used to address checkpoints, updates and states.
pub type Digest32 = [u8; 32];

impl ParamSet {
    /// Zeros with the same names and shapes.
    pub fn zeros_like(&self) -> Self {
        Self {
            tensors: self
                .tensors
                .iter()
                .map(|(n, t)| {
                    (
                        n.clone(),
                        HostTensor {
                            shape: t.shape.clone(),
                            data: vec![0.0; t.data.len()],
                        },
                    )
                })
                .collect(),
        }
    }

    /// Only the tensors whose names pass `keep`.
    pub fn filter(&self, mut keep: impl FnMut(&str) -> bool) -> Self {
        Self {
            tensors: self
                .tensors
                .iter()
                .filter(|(n, _)| keep(n))
                .map(|(n, t)| (n.clone(), t.clone()))
                .collect(),
        }
    }

    /// Number of scalar values.
    pub fn len(&self) -> usize {
        self.tensors.values().map(|t| t.data.len()).sum()
    }

    /// True when there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks that `other` has exactly the names and shapes of `self`.
    pub fn check_same_layout(&self, other: &Self) -> Result<(), TrainingError> {
        if self.tensors.len() != other.tensors.len() {
            return Err(TrainingError::InvalidInput(format!(
                "expected {} tensors, got {}",
                self.tensors.len(),
                other.tensors.len()
            )));
        }
        for ((a, ta), (b, tb)) in self.tensors.iter().zip(&other.tensors) {
            if a != b || ta.shape != tb.shape || tb.data.len() != ta.data.len() {
                return Err(TrainingError::InvalidInput(format!(
                    "tensor {b} {:?} does not match {a} {:?}",
                    tb.shape, ta.shape
                )));
            }
        }
        Ok(())
    }

    /// Checks that every tensor of `part` exists in `self` with the same shape.
    pub fn check_subset(&self, part: &Self) -> Result<(), TrainingError> {
        for (n, t) in &part.tensors {
            match self.tensors.get(n) {
                Some(mine) if mine.shape == t.shape && mine.data.len() == t.data.len() => {}
                Some(mine) => {
                    return Err(TrainingError::InvalidInput(format!(
                        "tensor {n} has shape {:?}, expected {:?}",
                        t.shape, mine.shape
                    )))
                }
                None => return Err(TrainingError::InvalidInput(format!("unknown tensor {n}"))),
            }
        }
        Ok(())
    }

    /// `self - other` over `other`'s names (which must be a subset of `self`'s).
    pub fn delta_from(&self, base: &Self) -> Result<Self, TrainingError> {
        base.check_subset(self)?;
        let mut out = self.clone();
        for (n, t) in out.tensors.iter_mut() {
            if let Some(b) = base.tensors.get(n) {
                for (x, y) in t.data.iter_mut().zip(&b.data) {
                    *x -= *y;
                }
            }
        }
        Ok(out)
    }

    /// Adds `scale * other` in place over `other`'s names.
    pub fn add_scaled(&mut self, other: &Self, scale: f32) -> Result<(), TrainingError> {
        self.check_subset(other)?;
        for (n, t) in &other.tensors {
            if let Some(mine) = self.tensors.get_mut(n) {
                for (x, y) in mine.data.iter_mut().zip(&t.data) {
                    *x += scale * *y;
                }
            }
        }
        Ok(())
    }

    /// Euclidean norm of all values (accumulated in f64, canonical order).
    pub fn l2_norm(&self) -> f64 {
        self.tensors
            .values()
            .flat_map(|t| t.data.iter())
            .map(|&x| f64::from(x) * f64::from(x))
            .sum::<f64>()
            .sqrt()
    }

    /// Inner product over the names both sets share.
    pub fn dot(&self, other: &Self) -> f64 {
        self.tensors
            .iter()
            .filter_map(|(n, t)| other.tensors.get(n).map(|o| (t, o)))
            .flat_map(|(t, o)| t.data.iter().zip(&o.data))
            .map(|(&a, &b)| f64::from(a) * f64::from(b))
            .sum()
    }

    /// True when every value is finite.
    pub fn all_finite(&self) -> bool {
        self.tensors
            .values()
            .all(|t| t.data.iter().all(|x| x.is_finite()))
    }

    /// SHA-256 over names, shapes and little-endian values in canonical order: the content
    /// address of a checkpoint or an update.
    pub fn content_hash(&self) -> Digest32 {
        let mut h = Sha256::new();
        h.update(b"agora-training/params/v1");
        h.update((self.tensors.len() as u64).to_le_bytes());
        for (n, t) in &self.tensors {
            h.update((n.len() as u64).to_le_bytes());
            h.update(n.as_bytes());
            h.update((t.shape.len() as u64).to_le_bytes());
            for d in &t.shape {
                h.update((*d as u64).to_le_bytes());
            }
            for x in &t.data {
                h.update(x.to_le_bytes());
            }
        }
        h.finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(vals: &[(&str, Vec<f32>)]) -> ParamSet {
        ParamSet {
            tensors: vals
                .iter()
                .map(|(n, d)| {
                    (
                        n.to_string(),
                        HostTensor {
                            shape: vec![d.len()],
                            data: d.clone(),
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn delta_and_add_invert() {
        let base = set(&[("a", vec![1.0, 2.0]), ("b", vec![3.0])]);
        let new = set(&[("a", vec![1.5, 1.0])]);
        let d = new.delta_from(&base).unwrap();
        assert_eq!(d.tensors["a"].data, vec![0.5, -1.0]);
        let mut b2 = base.clone();
        b2.add_scaled(&d, 1.0).unwrap();
        assert_eq!(b2.tensors["a"].data, vec![1.5, 1.0]);
        assert_eq!(b2.tensors["b"].data, vec![3.0]);
    }

    #[test]
    fn hash_changes_with_any_value_or_name() {
        let a = set(&[("a", vec![1.0, 2.0])]);
        let b = set(&[("a", vec![1.0, 2.000001])]);
        let c = set(&[("c", vec![1.0, 2.0])]);
        assert_ne!(a.content_hash(), b.content_hash());
        assert_ne!(a.content_hash(), c.content_hash());
        assert_eq!(a.content_hash(), a.clone().content_hash());
    }

    #[test]
    fn unknown_or_misshapen_tensors_are_rejected() {
        let base = set(&[("a", vec![1.0, 2.0])]);
        assert!(set(&[("z", vec![1.0, 2.0])]).delta_from(&base).is_err());
        assert!(set(&[("a", vec![1.0])]).delta_from(&base).is_err());
    }
}
