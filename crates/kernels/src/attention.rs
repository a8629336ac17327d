//! Causal attention for a block of new rows of one sequence, in one pass per head.
//!
//! Per query row the scores against every visible key, a softmax and the weighted sum of
//! values are computed in place: no score matrix, mask or transposed copy is built, which
//! for the few dozen rows of a scored request costs more than the arithmetic.
//!
//! Every row's output has the same bits whichever way the rows are batched: one row at a
//! time (a decode step) or many (a prefill, a scored text), first in a block of rows or
//! last. The single-row path and the blocked path run the same sums in the same order, and
//! a row's softmax covers its own visible keys rather than its block's. A validator that
//! rescores a miner's tokens in one pass then reproduces the log-probabilities the miner's
//! step-by-step decoding saw, to the bit, on the same kernels. Without this, a last-bit
//! difference that rounds an int8 activation the other way grows over the layers and
//! positions into log-probabilities tenths of a nat apart.

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
    /// Positions each key and value head has room for: a multiple of
    /// [`CAPACITY_MULTIPLE`], at least `start + rows`. Only the first `start + rows`
    /// positions of a head are used; a cache that grows in place keeps spare room after
    /// them.
    pub capacity: usize,
}

/// What [`AttentionShape::capacity`] must be a multiple of: the keys are read sixteen
/// positions at a time.
pub const CAPACITY_MULTIPLE: usize = LANES;

impl AttentionShape {
    fn total(&self) -> usize {
        self.start + self.rows
    }
}

/// `out[i, h·d..(h+1)·d] = softmax(scale · q_{h,i} · K_hᵀ over positions ≤ start + i) · V_h`.
///
/// Layouts: `q` is `(heads, rows, head_dim)`; `k` is `(kv_heads, head_dim, capacity)`,
/// each key head stored transposed (feature `f` of position `j` at `f · capacity + j`),
/// so that sixteen positions' scores are sixteen lanes of one multiply-add; `v` is
/// `(kv_heads, capacity, head_dim)`; `out` is `(rows, heads · head_dim)`. Heads are split
/// over `parallel`.
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
    if capacity < total || !capacity.is_multiple_of(CAPACITY_MULTIPLE) {
        return Err(KernelError::Shape(format!(
            "room for {capacity} positions per key head, {total} to attend to (the room \
             must be a multiple of {CAPACITY_MULTIPLE})"
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
    block: Block,
    /// The single-row path's scaled query, scores and output.
    query: Vec<f32>,
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
/// at a time; a decode step's single row goes through [`attend_row`], with the same
/// arithmetic per row.
#[inline(always)]
pub(crate) fn attend_head(
    ops: &impl AttentionOps,
    call: &Call<'_>,
    h: usize,
    space: &mut Workspace,
) {
    let shape = call.shape;
    let (d, total, capacity) = (shape.head_dim, shape.total(), shape.capacity);
    let kv = h / (shape.heads / shape.kv_heads);
    let head = kv * capacity * d..(kv + 1) * capacity * d;
    let keys_t = &call.k[head.clone()];
    let values = &call.v[head.start..head.start + total * d];
    let queries = &call.q[h * shape.rows * d..(h + 1) * shape.rows * d];
    if shape.rows < QUERY_BLOCK / 2 {
        for i in 0..shape.rows {
            let query = &queries[i * d..(i + 1) * d];
            attend_row(
                ops,
                query,
                keys_t,
                values,
                shape.start + i + 1,
                call.scale,
                space,
            );
            call.out.write(i, h * d, &space.acc);
        }
        return;
    }
    let padded = total.next_multiple_of(LANES);
    let block = &mut space.block;
    block.queries.resize(QUERY_BLOCK * d, 0.0);
    block.probs.resize(QUERY_BLOCK * padded, 0.0);
    block.acc.resize(QUERY_BLOCK * d, 0.0);
    for first in (0..shape.rows).step_by(QUERY_BLOCK) {
        let rows = QUERY_BLOCK.min(shape.rows - first);
        attend_block(ops, queries, keys_t, values, call, first, rows, block);
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

/// The two products of attention, per CPU: `scores = Q Kᵀ` and `out = P V`, for
/// `rows` query rows at once: [`QUERY_BLOCK`] in the blocked path, one in the single-row
/// path. A row's result must not depend on which of the two computed it: each lane sums
/// over the features, or over the positions, in ascending order, with the same operations.
pub(crate) trait AttentionOps {
    /// `scores[r·stride + j] = Σ_f queries[r·d + f] · keys_t[f·key_stride + j]` for every
    /// row `r < rows` and `j < 16·chunks`, where `stride = scores.len() / rows` and
    /// `key_stride = keys_t.len() / d`.
    fn scores(
        &self,
        rows: usize,
        queries: &[f32],
        keys_t: &[f32],
        d: usize,
        chunks: usize,
        scores: &mut [f32],
    );
    /// `out[r·d + f] = Σ_{j < visible} probs[r·stride + j] · values[j·d + f]` for every
    /// row `r < rows`, where `stride = probs.len() / rows`.
    fn values(
        &self,
        rows: usize,
        probs: &[f32],
        values: &[f32],
        d: usize,
        visible: usize,
        out: &mut [f32],
    );
}

/// The portable products: one fused multiply-add per term, in the order the trait
/// states. Inlined into each CPU's entry point so that the lanes vectorize there.
impl AttentionOps for crate::rows::PortableOps {
    #[inline(always)]
    fn scores(
        &self,
        rows: usize,
        queries: &[f32],
        keys_t: &[f32],
        d: usize,
        chunks: usize,
        scores: &mut [f32],
    ) {
        let (stride, key_stride) = (scores.len() / rows, keys_t.len() / d);
        for (query, row) in queries.chunks_exact(d).zip(scores.chunks_exact_mut(stride)) {
            let row = &mut row[..chunks * LANES];
            row.fill(0.0);
            for (f, &x) in query.iter().enumerate() {
                for (s, &k) in row.iter_mut().zip(&keys_t[f * key_stride..]) {
                    *s = x.mul_add(k, *s);
                }
            }
        }
    }

    #[inline(always)]
    fn values(
        &self,
        rows: usize,
        probs: &[f32],
        values: &[f32],
        d: usize,
        visible: usize,
        out: &mut [f32],
    ) {
        let stride = probs.len() / rows;
        for (row, acc) in probs.chunks_exact(stride).zip(out.chunks_exact_mut(d)) {
            acc.fill(0.0);
            for (&p, value) in row[..visible].iter().zip(values.chunks_exact(d)) {
                for (a, &x) in acc.iter_mut().zip(value) {
                    *a = p.mul_add(x, *a);
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
    let padded = block.probs.len() / QUERY_BLOCK;
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
    ops.scores(
        QUERY_BLOCK,
        &block.queries,
        keys_t,
        d,
        chunks,
        &mut block.probs,
    );
    let mut sums = [0f32; QUERY_BLOCK];
    for (r, sum) in sums.iter_mut().enumerate() {
        let row = &mut block.probs[r * padded..(r + 1) * padded];
        if r >= rows {
            row.fill(0.0);
            continue;
        }
        *sum = softmax_numerators(row, shape.start + first + r + 1);
    }
    // Positions a row does not see have probability exactly zero, so the products below
    // add nothing for them: each row's sums are the ones `attend_row` forms.
    ops.values(
        QUERY_BLOCK,
        &block.probs,
        &values[..visible * d],
        d,
        visible,
        &mut block.acc,
    );
    for (out, &sum) in block.acc.chunks_exact_mut(d).zip(&sums).take(rows) {
        normalize(out, sum);
    }
}

/// One query row that sees `seen` positions, into `space.acc`.
#[inline(always)]
fn attend_row(
    ops: &impl AttentionOps,
    query: &[f32],
    keys_t: &[f32],
    values: &[f32],
    seen: usize,
    scale: f32,
    space: &mut Workspace,
) {
    let d = query.len();
    let width = seen.next_multiple_of(LANES);
    space.query.clear();
    space.query.extend(query.iter().map(|&x| x * scale));
    space.scores.resize(width, 0.0);
    ops.scores(1, &space.query, keys_t, d, width / LANES, &mut space.scores);
    let sum = softmax_numerators(&mut space.scores[..width], seen);
    space.acc.resize(d, 0.0);
    ops.values(1, &space.scores, values, d, seen, &mut space.acc);
    normalize(&mut space.acc, sum);
}

/// Turns a row's scores into unnormalized probabilities over its first `seen` positions,
/// and zeros after them, returning their sum. The exponentials run over the row's own
/// whole vectors of sixteen, whatever else was computed beside it.
#[inline(always)]
fn softmax_numerators(row: &mut [f32], seen: usize) -> f32 {
    let width = seen.next_multiple_of(LANES);
    // Masked positions join the vectorized exponentials at a score whose exponential
    // underflows next to the row's maximum, and are then set to exactly zero.
    row[seen..width].fill(f32::MIN);
    let sum = exp_in_place(&mut row[..width]);
    row[seen..].fill(0.0);
    sum
}

/// Divides a row's output by its probabilities' sum. The weights were left unnormalized:
/// dividing the few outputs replaces a pass over all the probabilities that would wait on
/// the sum.
#[inline(always)]
fn normalize(out: &mut [f32], sum: f32) {
    let inv = 1.0 / sum;
    out.iter_mut().for_each(|x| *x *= inv);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KernelKind, Serial};

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
                                    * k[(kv * d + x) * cap + j] as f64
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

    /// [`case_with_room`] with the least room the kernel takes.
    fn case(dims: (usize, usize, usize, usize, usize), seed: u32) -> Case {
        case_with_room(dims, 0, seed)
    }

    /// A case whose key and value heads have room for at least `spare` positions after
    /// their last one, filled with NaN so that reading one shows in the output.
    fn case_with_room(
        (heads, kv_heads, head_dim, rows, start): (usize, usize, usize, usize, usize),
        spare: usize,
        seed: u32,
    ) -> Case {
        let total = start + rows;
        let capacity = (total + spare).next_multiple_of(CAPACITY_MULTIPLE);
        let shape = AttentionShape {
            heads,
            kv_heads,
            head_dim,
            rows,
            start,
            capacity,
        };
        let q = data(heads * rows * head_dim, seed);
        let keys = data(kv_heads * total * head_dim, seed + 1);
        let values = data(kv_heads * total * head_dim, seed + 2);
        let (mut k, mut v) = (
            vec![f32::NAN; kv_heads * head_dim * capacity],
            vec![f32::NAN; kv_heads * capacity * head_dim],
        );
        for g in 0..kv_heads {
            for j in 0..total {
                let at = (g * total + j) * head_dim;
                for f in 0..head_dim {
                    k[(g * head_dim + f) * capacity + j] = keys[at + f];
                }
                v[(g * capacity + j) * head_dim..(g * capacity + j + 1) * head_dim]
                    .copy_from_slice(&values[at..at + head_dim]);
            }
        }
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

    /// Rows `rows` of the case's queries as an attention call of their own (the cache
    /// holding the positions before them), computed on `kind` or, when `None`, by
    /// `causal_attention`.
    fn attend_rows(c: &Case, rows: std::ops::Range<usize>, kind: Option<KernelKind>) -> Vec<f32> {
        let (s, d) = (c.shape, c.shape.head_dim);
        let shape = AttentionShape {
            rows: rows.len(),
            start: s.start + rows.start,
            ..s
        };
        let q: Vec<f32> = (0..s.heads)
            .flat_map(|h| &c.q[(h * s.rows + rows.start) * d..(h * s.rows + rows.end) * d])
            .copied()
            .collect();
        let mut got = vec![f32::NAN; rows.len() * s.heads * d];
        match kind {
            None => causal_attention(&q, &c.k, &c.v, shape, c.scale, &mut got, &Serial).unwrap(),
            Some(kind) => {
                let out = SharedOut::new(&mut got, s.heads * d);
                let call = Call {
                    q: &q,
                    k: &c.k,
                    v: &c.v,
                    shape,
                    scale: c.scale,
                    out: &out,
                };
                let mut space = Workspace::default();
                for h in 0..s.heads {
                    crate::attend_head_on(kind, &call, h, &mut space);
                }
            }
        }
        got
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
            // More than eight chunks of keys for a single row.
            (2, 1, 64, 1, 150),
        ] {
            assert_matches_on_one_and_two_threads(&case(dims, 1));
        }
    }

    /// A cache with room to grow: every head's spare positions (NaN) are skipped, on
    /// both the single-row and the blocked path.
    #[test]
    fn spare_room_after_each_head_is_never_read() {
        for (dims, spare) in [
            ((4, 2, 32, 1, 9), 7),
            ((4, 2, 64, 19, 0), 13),
            ((2, 1, 40, 8, 13), 40),
        ] {
            assert_matches_on_one_and_two_threads(&case_with_room(dims, spare, 7));
        }
    }

    /// Every kernel this CPU has, on the same shapes, and to the portable code's bits:
    /// a validator reproduces a miner's numbers whichever of them either one runs.
    #[test]
    fn every_kernel_matches_the_reference_and_the_portable_bits() {
        for (dims, spare) in [
            ((4, 2, 64, 19, 0), 0),
            ((2, 1, 40, 9, 13), 5),
            ((2, 2, 8, 2, 3), 0),
            ((2, 1, 64, 1, 150), 0),
            ((4, 2, 40, 12, 21), 3),
        ] {
            let c = case_with_room(dims, spare, 4);
            let portable = attend_rows(&c, 0..c.shape.rows, Some(KernelKind::Portable));
            assert_matches(&portable, &c);
            for kind in KernelKind::ALL.into_iter().filter(|k| k.supported()) {
                let got = attend_rows(&c, 0..c.shape.rows, Some(kind));
                for (i, (g, p)) in got.iter().zip(&portable).enumerate() {
                    assert_eq!(
                        g.to_bits(),
                        p.to_bits(),
                        "{dims:?} {kind:?} at {i}: {g} vs {p}"
                    );
                }
            }
        }
    }

    /// A row's output has the same bits whether it is computed alone (a decode step), at
    /// the start, middle or end of a block, or in a short run that takes the single-row
    /// path: what lets a validator's one scoring pass reproduce a miner's decoding.
    #[test]
    fn rows_have_the_same_bits_however_they_are_batched() {
        let kinds = KernelKind::ALL.into_iter().filter(|k| k.supported());
        for kind in std::iter::once(None).chain(kinds.map(Some)) {
            for dims in [(4, 2, 64, 37, 5), (2, 1, 40, 21, 0), (2, 2, 16, 12, 30)] {
                let c = case(dims, 11);
                let rows = c.shape.rows;
                let whole = attend_rows(&c, 0..rows, kind);
                let width = c.shape.heads * c.shape.head_dim;
                let splits: [&[usize]; 3] = [&[1; 64][..rows], &[3, 9, 2, 5], &[8, 1, 4]];
                for split in splits {
                    let mut at = 0;
                    for &n in split.iter().chain([&rows]) {
                        let run = at..(at + n).min(rows);
                        if run.is_empty() {
                            break;
                        }
                        let got = attend_rows(&c, run.clone(), kind);
                        let want = &whole[run.start * width..run.end * width];
                        for (i, (g, w)) in got.iter().zip(want).enumerate() {
                            assert_eq!(
                                g.to_bits(),
                                w.to_bits(),
                                "{dims:?}, rows {run:?} ({kind:?}): value {i}: {g} vs {w}"
                            );
                        }
                        at = run.end;
                    }
                }
            }
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
            capacity: 16,
        };
        let mut out = vec![0.0; 12];
        assert!(causal_attention(
            &[0.0; 12],
            &[0.0; 128],
            &[0.0; 128],
            s,
            1.0,
            &mut out,
            &Serial
        )
        .is_err());
        let s = AttentionShape {
            heads: 2,
            kv_heads: 1,
            head_dim: 4,
            rows: 2,
            start: 1,
            capacity: 16,
        };
        let mut out = vec![0.0; 16];
        let ok = causal_attention(
            &[0.0; 16], &[0.0; 64], &[0.0; 64], s, 1.0, &mut out, &Serial,
        );
        assert!(ok.is_ok());
        assert!(
            causal_attention(&[0.0; 16], &[0.0; 63], &[0.0; 64], s, 1.0, &mut out, &Serial)
                .is_err()
        );
        // Less room than positions to attend to, and room not in whole vectors.
        for capacity in [2, 3, 24] {
            let s = AttentionShape { capacity, ..s };
            let n = 4 * capacity;
            assert!(
                causal_attention(
                    &[0.0; 16],
                    &vec![0.0; n],
                    &vec![0.0; n],
                    s,
                    1.0,
                    &mut out,
                    &Serial
                )
                .is_err(),
                "capacity {capacity}"
            );
        }
    }
}
