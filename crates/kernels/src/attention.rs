//! Causal attention for a block of new rows of one sequence, in one pass per head.
//!
//! Per query row the scores against every visible key, a softmax and the weighted sum of
//! values are computed in place: no score matrix, mask or transposed copy is built, which
//! for the few dozen rows of a scored request costs more than the arithmetic.

use crate::out::SharedOut;
use crate::{KernelError, Parallel};

/// The shapes of one attention call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttentionShape {
    /// Query heads.
    pub heads: usize,
    /// Key/value heads; query head `h` reads key head `h / (heads / kv_heads)`.
    pub kv_heads: usize,
    /// Values per head.
    pub head_dim: usize,
    /// New rows (query positions).
    pub rows: usize,
    /// Positions already in the cache before the new rows.
    pub start: usize,
    /// Positions each key and value head has room for in `k` and `v`, at least
    /// `start + rows`: head `g` takes rows `g · capacity ..` of them, and only its first
    /// `start + rows` are read. A cache that grows in place keeps spare rows after each
    /// head's; a tightly packed one has `capacity = start + rows`.
    pub capacity: usize,
}

impl AttentionShape {
    fn total(&self) -> usize {
        self.start + self.rows
    }
}

/// `out[i, h·d..(h+1)·d] = softmax(scale · q_{h,i} · K_hᵀ over positions ≤ start + i) · V_h`.
///
/// Layouts: `q` is `(heads, rows, head_dim)`; `k` and `v` are
/// `(kv_heads, capacity, head_dim)`; `out` is `(rows, heads · head_dim)`. Heads are
/// split over `parallel`.
pub fn causal_attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    shape: AttentionShape,
    scale: f32,
    out: &mut [f32],
    parallel: &dyn Parallel,
) -> Result<(), KernelError> {
    let AttentionShape {
        heads,
        kv_heads,
        head_dim,
        rows,
        capacity,
        ..
    } = shape;
    let total = shape.total();
    if heads == 0 || kv_heads == 0 || head_dim == 0 || heads % kv_heads != 0 {
        return Err(KernelError::Shape(format!(
            "{heads} query heads over {kv_heads} key heads of {head_dim} values"
        )));
    }
    if capacity < total {
        return Err(KernelError::Shape(format!(
            "room for {capacity} positions per key head, {total} to attend to"
        )));
    }
    let lengths = [
        (q.len(), heads * rows * head_dim, "queries"),
        (k.len(), kv_heads * capacity * head_dim, "keys"),
        (v.len(), kv_heads * capacity * head_dim, "values"),
        (out.len(), rows * heads * head_dim, "output"),
    ];
    for (got, want, what) in lengths {
        if got != want {
            return Err(KernelError::Shape(format!(
                "{got} {what} where the shape takes {want}"
            )));
        }
    }
    let out = SharedOut::new(out, heads * head_dim);
    let call = Call {
        q,
        k,
        v,
        shape,
        scale,
        out: &out,
    };
    parallel.run(heads, &|range| {
        // A work range is a run of consecutive heads, so the heads that share a key head
        // (grouped-query attention) reuse one transposed copy of its keys.
        let mut space = Workspace::default();
        for h in range {
            crate::attend_head(&call, h, &mut space);
        }
    });
    Ok(())
}

/// The inputs of one attention call, shared by every head.
pub(crate) struct Call<'a> {
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    shape: AttentionShape,
    scale: f32,
    out: &'a SharedOut,
}

/// A thread's working space across the heads it computes.
#[derive(Default)]
pub(crate) struct Workspace {
    /// Which key head `keys_t` holds, transposed to `(head_dim, padded)`.
    keys_of: Option<usize>,
    keys_t: Vec<f32>,
    block: Block,
    /// The single-row path's scores and output.
    scores: Vec<f32>,
    acc: Vec<f32>,
}

/// Query rows that share each load of a key or value in the blocked path.
pub(crate) const QUERY_BLOCK: usize = 8;

/// Keys per score vector, and value features per output vector: one AVX-512 register.
const LANES: usize = 16;

/// One head's rows. Inlined into each CPU's entry point so that it vectorizes there.
///
/// A prefill or a scored text has many rows, and goes through [`attend_block`] eight rows
/// at a time; a decode step's single row goes through [`attend_row`], which needs no
/// transposed copy of the keys.
#[inline(always)]
pub(crate) fn attend_head(
    ops: &impl AttentionOps,
    call: &Call<'_>,
    h: usize,
    space: &mut Workspace,
) {
    let shape = call.shape;
    let (d, total) = (shape.head_dim, shape.total());
    let kv = h / (shape.heads / shape.kv_heads);
    let first = kv * shape.capacity * d;
    let keys = &call.k[first..first + total * d];
    let values = &call.v[first..first + total * d];
    let queries = &call.q[h * shape.rows * d..(h + 1) * shape.rows * d];
    if shape.rows < QUERY_BLOCK / 2 {
        space.scores.resize(total, 0.0);
        space.acc.resize(d, 0.0);
        for i in 0..shape.rows {
            let query = &queries[i * d..(i + 1) * d];
            let visible = shape.start + i + 1;
            attend_row(
                query,
                keys,
                values,
                visible,
                call.scale,
                &mut space.scores,
                &mut space.acc,
            );
            call.out.write(i, h * d, &space.acc);
        }
        return;
    }
    // Keys transposed to `(d, padded)`: a block of sixteen scores is then sixteen lanes of
    // broadcast-multiply-adds over the features, with no horizontal sums. Padding keys
    // are zero and are masked out of the softmax.
    let padded = total.next_multiple_of(LANES);
    if space.keys_of != Some(kv) {
        space.keys_t.clear();
        space.keys_t.resize(d * padded, 0.0);
        for (f, row) in space.keys_t.chunks_exact_mut(padded).enumerate() {
            for (dst, key) in row.iter_mut().zip(keys.chunks_exact(d)) {
                *dst = key[f];
            }
        }
        space.keys_of = Some(kv);
    }
    let block = &mut space.block;
    block.queries.resize(QUERY_BLOCK * d, 0.0);
    block.probs.resize(QUERY_BLOCK * padded, 0.0);
    block.acc.resize(QUERY_BLOCK * d, 0.0);
    for first in (0..shape.rows).step_by(QUERY_BLOCK) {
        let rows = QUERY_BLOCK.min(shape.rows - first);
        attend_block(
            ops,
            queries,
            &space.keys_t,
            values,
            call,
            first,
            rows,
            block,
        );
        for r in 0..rows {
            call.out
                .write(first + r, h * d, &block.acc[r * d..(r + 1) * d]);
        }
    }
}

/// Working space of the blocked path, `QUERY_BLOCK` rows of each.
#[derive(Default)]
struct Block {
    /// The block's queries, pre-multiplied by the scale (rows past the block's end are 0).
    queries: Vec<f32>,
    /// Scores, then probabilities, per row over the padded key positions.
    probs: Vec<f32>,
    /// The attention outputs.
    acc: Vec<f32>,
}

/// The two products of the blocked path, per CPU: `scores = Q Kᵀ` and `out = P V` for
/// [`QUERY_BLOCK`] rows at a time.
pub(crate) trait AttentionOps {
    /// `scores[r·padded + j] = Σ_f queries[r·d + f] · keys_t[f·padded + j]` for every row
    /// `r` of the block and `j < 16·chunks`, where `padded = keys_t.len() / d`.
    fn block_scores(
        &self,
        queries: &[f32],
        keys_t: &[f32],
        d: usize,
        chunks: usize,
        scores: &mut [f32],
    );
    /// `out[r·d + f] = Σ_{j < visible} probs[r·padded + j] · values[j·d + f]` for every
    /// row `r` of the block, where `padded = probs.len() / QUERY_BLOCK`.
    fn block_values(
        &self,
        probs: &[f32],
        values: &[f32],
        d: usize,
        visible: usize,
        out: &mut [f32],
    );
}

impl AttentionOps for crate::rows::PortableOps {
    fn block_scores(
        &self,
        queries: &[f32],
        keys_t: &[f32],
        d: usize,
        chunks: usize,
        scores: &mut [f32],
    ) {
        let padded = keys_t.len() / d;
        for r in 0..QUERY_BLOCK {
            let row = &mut scores[r * padded..r * padded + chunks * LANES];
            row.fill(0.0);
            for f in 0..d {
                let x = queries[r * d + f];
                for (s, &k) in row.iter_mut().zip(&keys_t[f * padded..]) {
                    *s += x * k;
                }
            }
        }
    }

    fn block_values(
        &self,
        probs: &[f32],
        values: &[f32],
        d: usize,
        visible: usize,
        out: &mut [f32],
    ) {
        let padded = probs.len() / QUERY_BLOCK;
        for r in 0..QUERY_BLOCK {
            let acc = &mut out[r * d..(r + 1) * d];
            acc.fill(0.0);
            for (&p, value) in probs[r * padded..r * padded + visible]
                .iter()
                .zip(values.chunks_exact(d))
            {
                for (a, &x) in acc.iter_mut().zip(value) {
                    *a += p * x;
                }
            }
        }
    }
}

/// Rows `first..first + rows` of one head against the transposed keys.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn attend_block(
    ops: &impl AttentionOps,
    queries: &[f32],
    keys_t: &[f32],
    values: &[f32],
    call: &Call<'_>,
    first: usize,
    rows: usize,
    block: &mut Block,
) {
    let (shape, scale) = (call.shape, call.scale);
    let d = shape.head_dim;
    let padded = keys_t.len() / d;
    // The last row of the block sees the most keys; the others mask the rest.
    let visible = shape.start + first + rows;
    let chunks = visible.div_ceil(LANES);
    block.queries.fill(0.0);
    for (dst, &x) in block
        .queries
        .iter_mut()
        .zip(&queries[first * d..(first + rows) * d])
    {
        *dst = x * scale;
    }
    ops.block_scores(&block.queries, keys_t, d, chunks, &mut block.probs);
    let width = chunks * LANES;
    let mut sums = [0f32; QUERY_BLOCK];
    for (r, sum) in sums.iter_mut().enumerate() {
        let row = &mut block.probs[r * padded..(r + 1) * padded];
        if r >= rows {
            row.fill(0.0);
            continue;
        }
        // Masked positions join the vectorized exponentials at a score whose exponential
        // underflows next to the row's maximum, and are then set to exactly zero.
        let seen = shape.start + first + r + 1;
        row[seen..width].fill(f32::MIN);
        *sum = exp_in_place(&mut row[..width]);
        row[seen..].fill(0.0);
    }
    ops.block_values(
        &block.probs,
        &values[..visible * d],
        d,
        visible,
        &mut block.acc,
    );
    // The weights were left unnormalized: dividing the few outputs by each row's sum
    // replaces a pass over all its probabilities that would wait on that sum.
    for (out, sum) in block.acc.chunks_exact_mut(d).zip(&sums).take(rows) {
        let inv = 1.0 / sum;
        out.iter_mut().for_each(|x| *x *= inv);
    }
}

/// `x ← exp(x − max x)`, returning the sum: a softmax's numerators and its denominator.
/// Sixteen partial maxima and sums let it vectorize, and they are combined pairwise: a
/// chain of sixteen dependent scalar steps per row would cost more than the exponentials.
#[inline(always)]
fn exp_in_place(x: &mut [f32]) -> f32 {
    let larger = |a: f32, b: f32| if b > a { b } else { a };
    let mut maxima = [f32::NEG_INFINITY; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (m, &v) in maxima.iter_mut().zip(chunk) {
            *m = larger(*m, v);
        }
    }
    let max = chunks
        .remainder()
        .iter()
        .fold(pairwise(maxima, larger), |m, &v| larger(m, v));
    let mut sums = [0f32; LANES];
    let mut chunks = x.chunks_exact_mut(LANES);
    for chunk in &mut chunks {
        for (s, v) in sums.iter_mut().zip(chunk.iter_mut()) {
            *v = crate::rows::exp(*v - max);
            *s += *v;
        }
    }
    let mut sum = pairwise(sums, |a, b| a + b);
    for v in chunks.into_remainder() {
        *v = crate::rows::exp(*v - max);
        sum += *v;
    }
    sum
}

/// `lanes` reduced by `op` in a tree of halves: four dependent steps for sixteen lanes.
#[inline(always)]
fn pairwise(mut lanes: [f32; LANES], op: impl Fn(f32, f32) -> f32) -> f32 {
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for i in 0..width {
            lanes[i] = op(lanes[i], lanes[i + width]);
        }
    }
    lanes[0]
}

/// One query row against its `visible` keys, into `acc` (`scores` is working space).
#[inline(always)]
fn attend_row(
    query: &[f32],
    keys: &[f32],
    values: &[f32],
    visible: usize,
    scale: f32,
    scores: &mut [f32],
    acc: &mut [f32],
) {
    let d = query.len();
    for (s, key) in scores[..visible].iter_mut().zip(keys.chunks_exact(d)) {
        *s = dot(query, key) * scale;
    }
    let sum = exp_in_place(&mut scores[..visible]);
    acc.fill(0.0);
    for (&p, value) in scores[..visible].iter().zip(values.chunks_exact(d)) {
        for (a, &x) in acc.iter_mut().zip(value) {
            *a += p * x;
        }
    }
    let inv = 1.0 / sum;
    acc.iter_mut().for_each(|x| *x *= inv);
}

/// A dot product with sixteen partial sums, so that it vectorizes.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 16];
    let mut chunks_a = a.chunks_exact(16);
    let mut chunks_b = b.chunks_exact(16);
    for (x, y) in (&mut chunks_a).zip(&mut chunks_b) {
        for j in 0..16 {
            lanes[j] += x[j] * y[j];
        }
    }
    let tail: f32 = chunks_a
        .remainder()
        .iter()
        .zip(chunks_b.remainder())
        .map(|(x, y)| x * y)
        .sum();
    lanes.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Serial;

    /// The textbook computation in f64, with an explicit mask.
    fn reference(q: &[f32], k: &[f32], v: &[f32], s: AttentionShape, scale: f32) -> Vec<f64> {
        let (d, total, cap) = (s.head_dim, s.total(), s.capacity);
        let mut out = vec![0f64; s.rows * s.heads * d];
        for h in 0..s.heads {
            let kv = h / (s.heads / s.kv_heads);
            for i in 0..s.rows {
                let scores: Vec<f64> = (0..total)
                    .map(|j| {
                        if j > s.start + i {
                            return f64::NEG_INFINITY;
                        }
                        (0..d)
                            .map(|x| {
                                q[(h * s.rows + i) * d + x] as f64
                                    * k[(kv * cap + j) * d + x] as f64
                            })
                            .sum::<f64>()
                            * scale as f64
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let sum: f64 = e.iter().sum();
                for x in 0..d {
                    out[i * s.heads * d + h * d + x] = (0..total)
                        .map(|j| e[j] / sum * v[(kv * cap + j) * d + x] as f64)
                        .sum();
                }
            }
        }
        out
    }

    fn data(len: usize, seed: u32) -> Vec<f32> {
        (0..len as u32)
            .map(|i| ((i.wrapping_mul(2_654_435_761) ^ seed) % 1000) as f32 / 250.0 - 2.0)
            .collect()
    }

    /// One test case: the shape, queries, keys and values from `seed..seed + 3`, the scale,
    /// and the f64 reference output.
    struct Case {
        shape: AttentionShape,
        q: Vec<f32>,
        k: Vec<f32>,
        v: Vec<f32>,
        scale: f32,
        want: Vec<f64>,
    }

    /// [`case_with_room`] for a tightly packed cache.
    fn case(dims: (usize, usize, usize, usize, usize), seed: u32) -> Case {
        case_with_room(dims, 0, seed)
    }

    /// A case whose key and value heads each have `spare` unused rows after their last
    /// position, filled with NaN so that reading one shows in the output.
    fn case_with_room(
        (heads, kv_heads, head_dim, rows, start): (usize, usize, usize, usize, usize),
        spare: usize,
        seed: u32,
    ) -> Case {
        let shape = AttentionShape {
            heads,
            kv_heads,
            head_dim,
            rows,
            start,
            capacity: start + rows + spare,
        };
        let q = data(heads * rows * head_dim, seed);
        let with_room = |values: Vec<f32>| -> Vec<f32> {
            let used = shape.total() * head_dim;
            values
                .chunks_exact(used)
                .flat_map(|head| {
                    head.iter()
                        .copied()
                        .chain(std::iter::repeat_n(f32::NAN, spare * head_dim))
                })
                .collect()
        };
        let k = with_room(data(kv_heads * shape.total() * head_dim, seed + 1));
        let v = with_room(data(kv_heads * shape.total() * head_dim, seed + 2));
        let scale = 1.0 / (head_dim as f32).sqrt();
        let want = reference(&q, &k, &v, shape, scale);
        Case {
            shape,
            q,
            k,
            v,
            scale,
            want,
        }
    }

    fn assert_matches(got: &[f32], c: &Case) {
        for (i, (g, w)) in got.iter().zip(&c.want).enumerate() {
            assert!(
                (*g as f64 - w).abs() < 1e-5,
                "{:?} at {i}: {g} vs {w}",
                c.shape
            );
        }
    }

    /// `causal_attention` on the case, on one thread and split over two.
    fn assert_matches_on_one_and_two_threads(c: &Case) {
        for parallel in [&Serial as &dyn Parallel, &crate::tests::TwoThreads] {
            let mut got = vec![f32::NAN; c.want.len()];
            causal_attention(&c.q, &c.k, &c.v, c.shape, c.scale, &mut got, parallel).unwrap();
            assert_matches(&got, c);
        }
    }

    #[test]
    fn matches_the_masked_reference() {
        for dims in [
            (4, 2, 32, 5, 0),
            (6, 3, 20, 3, 4),
            (2, 2, 64, 1, 9),
            (8, 2, 16, 7, 2),
            // The blocked path: several blocks, a partial last block, head sizes that
            // are and are not a multiple of sixteen, and a cache offset.
            (4, 2, 64, 19, 0),
            (2, 1, 40, 8, 13),
            (3, 3, 16, 33, 5),
        ] {
            assert_matches_on_one_and_two_threads(&case(dims, 1));
        }
    }

    /// A cache with room to grow: every head's spare rows (NaN) are skipped, on both the
    /// single-row and the blocked path.
    #[test]
    fn spare_rows_after_each_head_are_never_read() {
        for (dims, spare) in [
            ((4, 2, 32, 1, 9), 7),
            ((4, 2, 64, 19, 0), 13),
            ((2, 1, 40, 8, 13), 1),
        ] {
            assert_matches_on_one_and_two_threads(&case_with_room(dims, spare, 7));
        }
    }

    /// The portable path, which CPUs without AVX-512 run, on the same shapes: called
    /// directly, since on this CPU `causal_attention` would take the vector path.
    #[test]
    fn the_portable_path_matches_the_reference() {
        for (dims, spare) in [
            ((4, 2, 64, 19, 0), 0),
            ((2, 1, 40, 9, 13), 5),
            ((2, 2, 8, 2, 3), 0),
        ] {
            let c = case_with_room(dims, spare, 4);
            let heads = c.shape.heads;
            let mut got = vec![f32::NAN; c.want.len()];
            let out = SharedOut::new(&mut got, heads * c.shape.head_dim);
            let call = Call {
                q: &c.q,
                k: &c.k,
                v: &c.v,
                shape: c.shape,
                scale: c.scale,
                out: &out,
            };
            let mut space = Workspace::default();
            for h in 0..heads {
                attend_head(&crate::rows::PortableOps, &call, h, &mut space);
            }
            assert_matches(&got, &c);
        }
    }

    #[test]
    fn bad_shapes_are_refused() {
        let s = AttentionShape {
            heads: 3,
            kv_heads: 2,
            head_dim: 4,
            rows: 1,
            start: 0,
            capacity: 1,
        };
        let mut out = vec![0.0; 12];
        assert!(
            causal_attention(&[0.0; 12], &[0.0; 8], &[0.0; 8], s, 1.0, &mut out, &Serial).is_err()
        );
        let s = AttentionShape {
            heads: 2,
            kv_heads: 1,
            head_dim: 4,
            rows: 2,
            start: 1,
            capacity: 3,
        };
        let mut out = vec![0.0; 16];
        assert!(
            causal_attention(&[0.0; 16], &[0.0; 11], &[0.0; 12], s, 1.0, &mut out, &Serial)
                .is_err()
        );
        // Less room than positions to attend to.
        let s = AttentionShape { capacity: 2, ..s };
        assert!(
            causal_attention(&[0.0; 16], &[0.0; 8], &[0.0; 8], s, 1.0, &mut out, &Serial).is_err()
        );
    }
}
