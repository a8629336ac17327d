//! A miner's update: the change it made to the parameters it owns, dense or top-k sparse,
//! with a canonical byte encoding that is what gets hashed (commit), sent (reveal) and
//! counted (bytes per round).
//!
//! Encoding (little-endian): magic `AGUP`, version u8, round u64, uid u16, base id [32],
//! tensor count u32, then per tensor: name length u16, name, rank u8, dims u32 each, kind u8
//! (0 dense: values f32 × numel; 1 sparse: count u32, indices u32 × count strictly
//! increasing, values f32 × count).

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::error::TrainingError;
use crate::params::{Digest32, HostTensor, ParamSet};

const MAGIC: &[u8; 4] = b"AGUP";
const VERSION: u8 = 1;
/// Bounds on what a decoder accepts (a peer could send anything).
const MAX_TENSORS: usize = 1 << 16;
const MAX_NUMEL: usize = 1 << 28;

/// One tensor's change.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorDelta {
    /// Every value.
    Dense(Vec<f32>),
    /// Only the listed positions (strictly increasing); the rest are zero.
    Sparse {
        /// Flat positions.
        indices: Vec<u32>,
        /// Values at those positions.
        values: Vec<f32>,
    },
}

/// A miner's update for one round.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    /// Round it was trained in.
    pub round: u64,
    /// The miner.
    pub uid: u16,
    /// The checkpoint it was trained from.
    pub base: Digest32,
    /// Per tensor: shape and change.
    pub tensors: BTreeMap<String, (Vec<usize>, TensorDelta)>,
}

impl Update {
    /// A dense update from a parameter delta.
    pub fn dense(round: u64, uid: u16, base: Digest32, delta: &ParamSet) -> Self {
        Self {
            round,
            uid,
            base,
            tensors: delta
                .tensors
                .iter()
                .map(|(n, t)| {
                    (
                        n.clone(),
                        (t.shape.clone(), TensorDelta::Dense(t.data.clone())),
                    )
                })
                .collect(),
        }
    }

    /// The change as a dense parameter set.
    pub fn to_dense(&self) -> ParamSet {
        let mut out = ParamSet::default();
        for (n, (shape, d)) in &self.tensors {
            let numel: usize = shape.iter().product();
            let data = match d {
                TensorDelta::Dense(v) => v.clone(),
                TensorDelta::Sparse { indices, values } => {
                    let mut v = vec![0.0; numel];
                    for (&i, &x) in indices.iter().zip(values) {
                        if let Some(slot) = v.get_mut(i as usize) {
                            *slot = x;
                        }
                    }
                    v
                }
            };
            out.tensors.insert(
                n.clone(),
                HostTensor {
                    shape: shape.clone(),
                    data,
                },
            );
        }
        out
    }

    /// The canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&self.round.to_le_bytes());
        out.extend_from_slice(&self.uid.to_le_bytes());
        out.extend_from_slice(&self.base);
        out.extend_from_slice(&(self.tensors.len() as u32).to_le_bytes());
        for (name, (shape, d)) in &self.tensors {
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.push(shape.len() as u8);
            for &s in shape {
                out.extend_from_slice(&(s as u32).to_le_bytes());
            }
            match d {
                TensorDelta::Dense(v) => {
                    out.push(0);
                    v.iter()
                        .for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
                }
                TensorDelta::Sparse { indices, values } => {
                    out.push(1);
                    out.extend_from_slice(&(indices.len() as u32).to_le_bytes());
                    indices
                        .iter()
                        .for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
                    values
                        .iter()
                        .for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
                }
            }
        }
        out
    }

    /// The commitment a miner publishes before revealing: SHA-256 of the canonical bytes.
    pub fn commitment(&self) -> Digest32 {
        Sha256::digest(self.encode()).into()
    }

    /// Parses canonical bytes, checking structure, bounds, order and finiteness. Whether the
    /// tensors fit the model and the miner's ownership is the validator's next check.
    pub fn decode(bytes: &[u8]) -> Result<Self, TrainingError> {
        let mut r = Reader { bytes, pos: 0 };
        if r.take(4)? != MAGIC || r.u8()? != VERSION {
            return Err(bad("not an update (magic or version)"));
        }
        let round = u64::from_le_bytes(r.array()?);
        let uid = u16::from_le_bytes(r.array()?);
        let base: Digest32 = r.array()?;
        let count = u32::from_le_bytes(r.array()?) as usize;
        if count > MAX_TENSORS {
            return Err(bad("too many tensors"));
        }
        let mut tensors = BTreeMap::new();
        let mut last: Option<String> = None;
        for _ in 0..count {
            let len = u16::from_le_bytes(r.array()?) as usize;
            let name = String::from_utf8(r.take(len)?.to_vec())
                .map_err(|_| bad("tensor name is not UTF-8"))?;
            if last.as_ref().is_some_and(|l| l >= &name) {
                return Err(bad("tensor names not strictly increasing"));
            }
            let rank = r.u8()? as usize;
            let mut shape = Vec::with_capacity(rank);
            let mut numel: usize = 1;
            for _ in 0..rank {
                let s = u32::from_le_bytes(r.array()?) as usize;
                numel = numel
                    .checked_mul(s)
                    .filter(|&n| n <= MAX_NUMEL)
                    .ok_or_else(|| bad("tensor too large"))?;
                shape.push(s);
            }
            let delta = match r.u8()? {
                0 => TensorDelta::Dense(r.f32s(numel)?),
                1 => {
                    let k = u32::from_le_bytes(r.array()?) as usize;
                    if k > numel {
                        return Err(bad("more sparse entries than values"));
                    }
                    let indices = r.u32s(k)?;
                    if indices.windows(2).any(|w| w[0] >= w[1])
                        || indices.last().is_some_and(|&i| i as usize >= numel)
                    {
                        return Err(bad("sparse indices out of order or range"));
                    }
                    TensorDelta::Sparse {
                        indices,
                        values: r.f32s(k)?,
                    }
                }
                _ => return Err(bad("unknown tensor kind")),
            };
            last = Some(name.clone());
            tensors.insert(name, (shape, delta));
        }
        if r.pos != bytes.len() {
            return Err(bad("trailing bytes"));
        }
        let u = Self {
            round,
            uid,
            base,
            tensors,
        };
        if !u.to_dense().all_finite() {
            return Err(bad("non-finite values"));
        }
        Ok(u)
    }
}

fn bad(why: &str) -> TrainingError {
    TrainingError::InvalidInput(format!("update: {why}"))
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], TrainingError> {
        let end = self.pos.checked_add(n).ok_or_else(|| bad("truncated"))?;
        let s = self
            .bytes
            .get(self.pos..end)
            .ok_or_else(|| bad("truncated"))?;
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, TrainingError> {
        Ok(self.take(1)?[0])
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], TrainingError> {
        self.take(N)?.try_into().map_err(|_| bad("truncated"))
    }
    fn f32s(&mut self, n: usize) -> Result<Vec<f32>, TrainingError> {
        let b = self.take(n.checked_mul(4).ok_or_else(|| bad("truncated"))?)?;
        Ok(b.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
    fn u32s(&mut self, n: usize) -> Result<Vec<u32>, TrainingError> {
        let b = self.take(n.checked_mul(4).ok_or_else(|| bad("truncated"))?)?;
        Ok(b.chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
}

/// Top-k sparsification with error feedback: adds the carried `residual` to `delta`, keeps
/// the `density` share of largest-magnitude entries of each matrix (at least one; ties go
/// to the lower position) and every entry of each vector, and carries the rest in
/// `residual` to the next round.
pub fn compress_topk(
    delta: &ParamSet,
    residual: &mut ParamSet,
    density: f64,
) -> Result<BTreeMap<String, (Vec<usize>, TensorDelta)>, TrainingError> {
    if !(density > 0.0 && density <= 1.0) {
        return Err(TrainingError::InvalidInput(format!(
            "density must be in (0, 1], got {density}"
        )));
    }
    if residual.is_empty() {
        *residual = delta.zeros_like();
    }
    residual.check_same_layout(delta)?;
    let mut out = BTreeMap::new();
    for ((name, d), (_, r)) in delta.tensors.iter().zip(residual.tensors.iter_mut()) {
        for (ri, &di) in r.data.iter_mut().zip(&d.data) {
            *ri += di;
        }
        let n = r.data.len();
        // Vectors (the norms' gains) are a sliver of the bytes but scale whole layers:
        // starving them to a few entries a round cost more loss than any matrix share.
        let k = if d.shape.len() <= 1 {
            n
        } else {
            ((density * n as f64).ceil() as usize).clamp(1, n.max(1))
        };
        let mut order: Vec<u32> = (0..n as u32).collect();
        let by_size = |a: &u32, b: &u32| {
            r.data[*b as usize]
                .abs()
                .total_cmp(&r.data[*a as usize].abs())
                .then(a.cmp(b))
        };
        if k < n {
            order.select_nth_unstable_by(k, by_size);
            order.truncate(k);
        }
        order.sort_unstable();
        let values: Vec<f32> = order.iter().map(|&i| r.data[i as usize]).collect();
        for &i in &order {
            r.data[i as usize] = 0.0;
        }
        out.insert(
            name.clone(),
            (
                d.shape.clone(),
                TensorDelta::Sparse {
                    indices: order,
                    values,
                },
            ),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delta(v: Vec<f32>) -> ParamSet {
        let mut p = ParamSet::default();
        p.tensors.insert(
            "a".into(),
            HostTensor {
                shape: vec![1, v.len()],
                data: v,
            },
        );
        p
    }

    #[test]
    fn vectors_are_sent_whole() {
        let mut d = delta(vec![1.0, -3.0, 0.5, 2.0]);
        d.tensors.insert(
            "norm".into(),
            HostTensor {
                shape: vec![4],
                data: vec![0.1, 0.0, -0.2, 0.3],
            },
        );
        let mut res = ParamSet::default();
        let s = compress_topk(&d, &mut res, 0.25).unwrap();
        assert_eq!(
            s["norm"].1,
            TensorDelta::Sparse {
                indices: vec![0, 1, 2, 3],
                values: vec![0.1, 0.0, -0.2, 0.3]
            }
        );
        assert!(res.tensors["norm"].data.iter().all(|&x| x == 0.0));
        assert!(matches!(&s["a"].1, TensorDelta::Sparse { indices, .. } if indices == &[1]));
    }

    #[test]
    fn encode_decode_round_trip_dense_and_sparse() {
        let d = delta(vec![1.0, -2.0, 0.5, 0.0]);
        let dense = Update::dense(3, 7, [9; 32], &d);
        assert_eq!(Update::decode(&dense.encode()).unwrap(), dense);
        let mut res = ParamSet::default();
        let sparse = Update {
            tensors: compress_topk(&d, &mut res, 0.5).unwrap(),
            ..dense.clone()
        };
        assert_eq!(Update::decode(&sparse.encode()).unwrap(), sparse);
        assert!(sparse.encode().len() < dense.encode().len() + 8);
        assert_ne!(sparse.commitment(), dense.commitment());
    }

    #[test]
    fn topk_keeps_the_largest_and_carries_the_rest() {
        let d = delta(vec![1.0, -3.0, 0.5, 2.0]);
        let mut res = ParamSet::default();
        let s = compress_topk(&d, &mut res, 0.5).unwrap();
        assert_eq!(
            s["a"].1,
            TensorDelta::Sparse {
                indices: vec![1, 3],
                values: vec![-3.0, 2.0]
            }
        );
        assert_eq!(res.tensors["a"].data, vec![1.0, 0.0, 0.5, 0.0]);
        // The carried 1.0 plus a new 0.6 now beats the fresh entries.
        let s = compress_topk(&delta(vec![0.6, 0.1, 0.0, 0.2]), &mut res, 0.25).unwrap();
        assert_eq!(
            s["a"].1,
            TensorDelta::Sparse {
                indices: vec![0],
                values: vec![1.6]
            }
        );
    }

    #[test]
    fn malformed_bytes_are_rejected() {
        let u = Update::dense(1, 2, [0; 32], &delta(vec![1.0, 2.0]));
        let bytes = u.encode();
        for cut in [0, 5, bytes.len() - 1] {
            assert!(Update::decode(&bytes[..cut]).is_err());
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(Update::decode(&extra).is_err());
        let nan = Update::dense(1, 2, [0; 32], &delta(vec![f32::NAN]));
        assert!(Update::decode(&nan.encode()).is_err());
        let unsorted = Update {
            tensors: [(
                "a".to_string(),
                (
                    vec![4],
                    TensorDelta::Sparse {
                        indices: vec![2, 1],
                        values: vec![1.0, 1.0],
                    },
                ),
            )]
            .into_iter()
            .collect(),
            ..u
        };
        assert!(Update::decode(&unsorted.encode()).is_err());
    }
}
