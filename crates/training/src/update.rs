//! A miner's update: the change it made to the parameters it owns, dense or top-k sparse,
//! its values in f32 or in 8 bits, with a canonical byte encoding that is what gets hashed
//! (commit), sent (reveal) and counted (bytes per round).
//!
//! Encoding (little-endian): magic `AGUP`, version u8, round u64, uid u16, base id [32],
//! tensor count u32, then per tensor: name length u16, name, rank u8, dims u32 each, kind u8:
//! - 0 dense: values f32 × numel;
//! - 1 sparse: count u32, indices u32 × count strictly increasing, values f32 × count;
//! - 2 dense 8-bit: scales f32 × ⌈numel / 64⌉, values i8 × numel;
//! - 3 sparse 8-bit: count u32, count gaps as LEB128 varints (shortest form; the first is
//!   the first index, each next one the distance to the previous index minus one), scales
//!   f32 × ⌈count / 64⌉, values i8 × count.
//!
//! An 8-bit value `q` (−127..=127) in block `b` (of [`QUANT_BLOCK`] consecutive values)
//! stands for `q × scales[b]`; each block's scale is its largest magnitude over 127.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::error::TrainingError;
use crate::params::{Digest32, HostTensor, ParamSet};

const MAGIC: &[u8; 4] = b"AGUP";
const VERSION: u8 = 1;
/// Bounds on what a decoder accepts (a peer could send anything).
const MAX_TENSORS: usize = 1 << 16;
const MAX_NUMEL: usize = 1 << 28;

/// Consecutive 8-bit values that share one scale.
pub const QUANT_BLOCK: usize = 64;

/// How the values of an update's matrices travel (vectors always go in f32: they are a
/// sliver of the bytes and scale whole layers).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum ValueEncoding {
    /// 4 bytes a value.
    #[default]
    F32,
    /// 1 byte a value plus an f32 scale per [`QUANT_BLOCK`] values; the rounding error is
    /// carried to the next round like the entries top-k leaves out.
    Int8,
}

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
    /// Every value, in 8 bits.
    DenseQ8(Quantized),
    /// Only the listed positions (strictly increasing), their values in 8 bits.
    SparseQ8 {
        /// Flat positions.
        indices: Vec<u32>,
        /// Values at those positions.
        values: Quantized,
    },
}

/// Values in 8 bits: `values[i] × scales[i / QUANT_BLOCK]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Quantized {
    /// One per block of [`QUANT_BLOCK`] values: the block's largest magnitude over 127.
    pub scales: Vec<f32>,
    /// The values, each in −127..=127.
    pub values: Vec<i8>,
}

impl Quantized {
    /// Rounds `x` to 8 bits, block by block.
    pub fn quantize(x: &[f32]) -> Self {
        let mut scales = Vec::with_capacity(x.len().div_ceil(QUANT_BLOCK));
        let mut values = Vec::with_capacity(x.len());
        for block in x.chunks(QUANT_BLOCK) {
            let max = block.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let scale = max / 127.0;
            scales.push(scale);
            values.extend(block.iter().map(|&v| {
                if scale > 0.0 {
                    (v / scale).round().clamp(-127.0, 127.0) as i8
                } else {
                    0
                }
            }));
        }
        Self { scales, values }
    }

    /// The values these bytes stand for.
    pub fn dequantize(&self) -> Vec<f32> {
        self.values
            .iter()
            .enumerate()
            .map(|(i, &q)| f32::from(q) * self.scales.get(i / QUANT_BLOCK).copied().unwrap_or(0.0))
            .collect()
    }
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
            let scatter = |indices: &[u32], values: &[f32]| {
                let mut v = vec![0.0; numel];
                for (&i, &x) in indices.iter().zip(values) {
                    if let Some(slot) = v.get_mut(i as usize) {
                        *slot = x;
                    }
                }
                v
            };
            let data = match d {
                TensorDelta::Dense(v) => v.clone(),
                TensorDelta::Sparse { indices, values } => scatter(indices, values),
                TensorDelta::DenseQ8(q) => q.dequantize(),
                TensorDelta::SparseQ8 { indices, values } => scatter(indices, &values.dequantize()),
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
                TensorDelta::DenseQ8(q) => {
                    out.push(2);
                    put_quantized(&mut out, q);
                }
                TensorDelta::SparseQ8 { indices, values } => {
                    out.push(3);
                    out.extend_from_slice(&(indices.len() as u32).to_le_bytes());
                    let mut next = 0u32;
                    for &i in indices {
                        put_varint(&mut out, i.wrapping_sub(next));
                        next = i.wrapping_add(1);
                    }
                    put_quantized(&mut out, values);
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
                2 => TensorDelta::DenseQ8(r.quantized(numel)?),
                3 => {
                    let k = u32::from_le_bytes(r.array()?) as usize;
                    if k > numel {
                        return Err(bad("more sparse entries than values"));
                    }
                    let mut indices = Vec::with_capacity(k);
                    let mut next = 0u64;
                    for _ in 0..k {
                        let i = next + u64::from(r.varint()?);
                        if i >= numel as u64 {
                            return Err(bad("sparse indices out of range"));
                        }
                        indices.push(i as u32);
                        next = i + 1;
                    }
                    TensorDelta::SparseQ8 {
                        indices,
                        values: r.quantized(k)?,
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

fn put_quantized(out: &mut Vec<u8>, q: &Quantized) {
    q.scales
        .iter()
        .for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
    out.extend(q.values.iter().map(|&v| v as u8));
}

fn put_varint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v & 0x7f) as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
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
    fn quantized(&mut self, n: usize) -> Result<Quantized, TrainingError> {
        let scales = self.f32s(n.div_ceil(QUANT_BLOCK))?;
        if scales.iter().any(|s| !(s.is_finite() && *s >= 0.0)) {
            return Err(bad("8-bit scales must be finite and non-negative"));
        }
        let values: Vec<i8> = self.take(n)?.iter().map(|&b| b as i8).collect();
        if values.contains(&i8::MIN) {
            return Err(bad("8-bit values must be in -127..=127"));
        }
        Ok(Quantized { scales, values })
    }
    /// A LEB128 varint in its shortest form, at most 32 bits.
    fn varint(&mut self) -> Result<u32, TrainingError> {
        let mut v = 0u64;
        for shift in (0..35).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                if (b == 0 && shift > 0) || v > u64::from(u32::MAX) {
                    return Err(bad("varint not in shortest form or too large"));
                }
                return Ok(v as u32);
            }
        }
        Err(bad("varint too long"))
    }
    fn u32s(&mut self, n: usize) -> Result<Vec<u32>, TrainingError> {
        let b = self.take(n.checked_mul(4).ok_or_else(|| bad("truncated"))?)?;
        Ok(b.chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
}

/// What a miner sends for the change `delta`: every value (`density` `None`) or the top-k
/// share, in f32 or 8 bits. Whatever is not sent (entries top-k leaves out, 8-bit rounding
/// error) is carried in `residual` and added to the next round's change; with every value
/// in f32 nothing is left and `residual` stays as it is (empty).
pub fn encode_delta(
    delta: &ParamSet,
    residual: &mut ParamSet,
    density: Option<f64>,
    values: ValueEncoding,
) -> Result<BTreeMap<String, (Vec<usize>, TensorDelta)>, TrainingError> {
    let mut out = match (density, values) {
        (None, ValueEncoding::F32) => {
            return Ok(delta
                .tensors
                .iter()
                .map(|(n, t)| {
                    (
                        n.clone(),
                        (t.shape.clone(), TensorDelta::Dense(t.data.clone())),
                    )
                })
                .collect())
        }
        (Some(d), _) => compress_topk(delta, residual, d)?,
        (None, ValueEncoding::Int8) => {
            if residual.is_empty() {
                *residual = delta.zeros_like();
            }
            residual.check_same_layout(delta)?;
            let mut out = BTreeMap::new();
            for ((name, d), (_, r)) in delta.tensors.iter().zip(residual.tensors.iter_mut()) {
                for (ri, &di) in r.data.iter_mut().zip(&d.data) {
                    *ri += di;
                }
                let all = std::mem::replace(&mut r.data, vec![0.0; d.data.len()]);
                out.insert(name.clone(), (d.shape.clone(), TensorDelta::Dense(all)));
            }
            out
        }
    };
    if values == ValueEncoding::F32 {
        return Ok(out);
    }
    // Round what is sent to 8 bits (matrices only) and put the rounding error back.
    for ((shape, t), (_, r)) in out.values_mut().zip(residual.tensors.iter_mut()) {
        if shape.len() <= 1 {
            if let TensorDelta::Sparse { values, .. } = t {
                // Every entry of a vector is sent: plain f32, no indices.
                *t = TensorDelta::Dense(std::mem::take(values));
            }
            continue;
        }
        match t {
            TensorDelta::Dense(v) => {
                let q = Quantized::quantize(v);
                for ((ri, &x), y) in r.data.iter_mut().zip(v.iter()).zip(q.dequantize()) {
                    *ri += x - y;
                }
                *t = TensorDelta::DenseQ8(q);
            }
            TensorDelta::Sparse { indices, values } => {
                let q = Quantized::quantize(values);
                for ((&i, &x), y) in indices.iter().zip(values.iter()).zip(q.dequantize()) {
                    if let Some(ri) = r.data.get_mut(i as usize) {
                        *ri += x - y;
                    }
                }
                *t = TensorDelta::SparseQ8 {
                    indices: std::mem::take(indices),
                    values: q,
                };
            }
            TensorDelta::DenseQ8(_) | TensorDelta::SparseQ8 { .. } => {}
        }
    }
    Ok(out)
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

    fn layer(n: usize) -> ParamSet {
        let mut p = ParamSet::default();
        p.tensors.insert(
            "m".into(),
            HostTensor {
                shape: vec![n / 4, 4],
                data: (0..n)
                    .map(|i| ((i * 37 % 101) as f32 - 50.0) / 64.0)
                    .collect(),
            },
        );
        p.tensors.insert(
            "norm".into(),
            HostTensor {
                shape: vec![3],
                data: vec![0.5, -0.25, 0.125],
            },
        );
        p
    }

    #[test]
    fn eight_bit_updates_round_trip_and_carry_their_rounding_error() {
        let d = layer(200);
        for density in [None, Some(0.3)] {
            let mut res = ParamSet::default();
            let tensors = encode_delta(&d, &mut res, density, ValueEncoding::Int8).unwrap();
            // Vectors travel whole in f32, matrices in 8 bits.
            assert_eq!(
                tensors["norm"].1,
                TensorDelta::Dense(vec![0.5, -0.25, 0.125])
            );
            assert!(matches!(
                (&tensors["m"].1, density),
                (TensorDelta::DenseQ8(_), None) | (TensorDelta::SparseQ8 { .. }, Some(_))
            ));
            let u = Update {
                round: 4,
                uid: 1,
                base: [3; 32],
                tensors,
            };
            let bytes = u.encode();
            assert_eq!(Update::decode(&bytes).unwrap(), u);
            // What was sent plus what was kept back is the change.
            let sent = u.to_dense();
            for (name, t) in &d.tensors {
                for ((x, y), r) in t
                    .data
                    .iter()
                    .zip(&sent.tensors[name].data)
                    .zip(&res.tensors[name].data)
                {
                    assert!((x - (y + r)).abs() < 1e-6, "{name}: {x} vs {y} + {r}");
                }
            }
            let f32_bytes = Update {
                tensors: encode_delta(&d, &mut ParamSet::default(), density, ValueEncoding::F32)
                    .unwrap(),
                ..u.clone()
            }
            .encode()
            .len();
            assert!(
                bytes.len() * 2 < f32_bytes,
                "{} vs {f32_bytes}",
                bytes.len()
            );
        }
    }

    #[test]
    fn eight_bit_rounding_is_within_half_a_step_of_each_block() {
        let x: Vec<f32> = (0..150)
            .map(|i| (i as f32 * 0.37).sin() * (1 + i / 64) as f32)
            .collect();
        let q = Quantized::quantize(&x);
        assert_eq!(q.scales.len(), 3);
        for (i, (a, b)) in x.iter().zip(q.dequantize()).enumerate() {
            assert!((a - b).abs() <= q.scales[i / QUANT_BLOCK] * 0.5 + 1e-7);
        }
        assert_eq!(Quantized::quantize(&[0.0; 5]).dequantize(), vec![0.0; 5]);
    }

    #[test]
    fn malformed_eight_bit_bytes_are_rejected() {
        let mut res = ParamSet::default();
        let u = Update {
            round: 1,
            uid: 2,
            base: [0; 32],
            tensors: encode_delta(&layer(8), &mut res, Some(0.25), ValueEncoding::Int8).unwrap(),
        };
        let bytes = u.encode();
        assert_eq!(Update::decode(&bytes).unwrap(), u);
        for cut in [bytes.len() - 1, bytes.len() - 3] {
            assert!(Update::decode(&bytes[..cut]).is_err());
        }
        // Layout of the sparse 8-bit matrix "m" (2 × 4, 2 kept): after its kind byte come
        // the count, the gaps, one scale and the values.
        let at = bytes
            .windows(3)
            .position(|w| w == b"\x01\x00m")
            .map(|p| p + 3 + 1 + 8)
            .unwrap();
        assert_eq!(bytes[at], 3);
        let gaps = at + 5;
        let values = gaps + 2 + 4;
        let with = |pos: usize, b: &[u8]| {
            let mut v = bytes.clone();
            v.splice(pos..pos + 1, b.iter().copied());
            v
        };
        // Overlong varint, an index past the end, a -128 value, a negative or NaN scale.
        assert!(Update::decode(&with(gaps, &[0x80 | bytes[gaps], 0x00])).is_err());
        assert!(Update::decode(&with(gaps + 1, &[9])).is_err());
        assert!(Update::decode(&with(values, &[0x80])).is_err());
        let mut neg = bytes.clone();
        neg[values - 1] |= 0x80;
        assert!(Update::decode(&neg).is_err());
        let mut nan = bytes.clone();
        nan[values - 4..values].copy_from_slice(&f32::NAN.to_le_bytes());
        assert!(Update::decode(&nan).is_err());
        let mut kind = bytes.clone();
        kind[at] = 9;
        assert!(Update::decode(&kind).is_err());
    }
}
