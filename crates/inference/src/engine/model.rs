//! The Llama-family transformer: weights and a forward pass over several sequences at once.
//!
//! One forward call takes any mix of prompt chunks and single decode tokens from different
//! sequences. Every projection runs once over all their rows together (so a decode step for
//! eight sequences reads each weight matrix once, not eight times); attention runs per
//! sequence against that sequence's own key/value cache. Logits come back for whichever
//! rows a caller asks for, which is how one prefill scores every position of a text.

use std::cell::RefCell;

use agora_kernels::{KernelKind, PackedMatrix, QuantizedRows};
use candle_core::quantized::{GgmlDType, QMatMul};
use candle_core::{DType, Device, Module, Tensor};

use super::config::ModelConfig;
use super::error::{EngineError, Result};

/// How the rotary embedding pairs the features of a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RopeStyle {
    /// Adjacent features `(2i, 2i+1)` rotate together: Llama weights as llama.cpp stores them.
    Interleaved,
    /// Feature `i` rotates with `i + d/2`: Hugging Face checkpoints and Qwen GGUFs.
    Halves,
}

/// A projection `y = x Wᵀ (+ b)`; the weight is quantized (GGUF) or dense f32.
#[derive(Debug)]
pub(crate) struct Linear {
    weight: Weight,
    bias: Option<Tensor>,
}

/// Where a projection's weight lives and which kernel multiplies by it.
#[derive(Debug)]
enum Weight {
    /// `Q8_0`, `Q4_K` or `Q6_K` repacked for the int8 GEMM (on CPUs with AVX-512 VNNI or
    /// AVX2): two to three times candle's speed for the many rows of a prefill, which is
    /// what a validator's scoring pass runs, and as fast or faster for a decode step. Its
    /// results have the same bits on every such CPU.
    Packed(Box<PackedMatrix>),
    /// Everything else: candle's quantized or dense matmul.
    Candle(QMatMul),
    /// Matrices of different storage types stacked by rows (a `Q4_K_M` file keeps a
    /// layer's query and key in `Q4_K` and its value in `Q6_K`): each multiplies the same
    /// input and their outputs lie side by side.
    Parts(Vec<Weight>),
}

impl Weight {
    fn new(weight: QMatMul) -> Result<Self> {
        Ok(match weight {
            QMatMul::QTensor(t)
                if matches!(t.dtype(), GgmlDType::Q8_0 | GgmlDType::Q4K | GgmlDType::Q6K)
                    && t.device().is_cpu()
                    && KernelKind::detect() != KernelKind::Portable =>
            {
                let (n, k) = t.shape().dims2()?;
                let bytes = t.data()?;
                let packed = match t.dtype() {
                    GgmlDType::Q8_0 => PackedMatrix::from_q8_0(&bytes, n, k),
                    GgmlDType::Q4K => PackedMatrix::from_q4_k(&bytes, n, k),
                    _ => PackedMatrix::from_q6_k(&bytes, n, k),
                }
                .map_err(|e| {
                    EngineError::invalid_model(format!("a {:?} weight: {e}", t.dtype()))
                })?;
                Weight::Packed(Box::new(packed))
            }
            other => Weight::Candle(other),
        })
    }

    /// `x Wᵀ`, or `rms_norm(x) Wᵀ` when `norm` gives the weight and eps (on the int8 GEMM
    /// the norm is applied while the rows are quantized).
    fn forward(&self, x: &Tensor, norm: Option<(&Tensor, f32)>) -> Result<Tensor> {
        match self {
            Weight::Packed(w) => packed_forward(&[w], x, norm),
            Weight::Candle(w) => Ok(match norm {
                Some((weight, eps)) => w.forward(&candle_nn::ops::rms_norm(x, weight, eps)?)?,
                None => w.forward(x)?,
            }),
            Weight::Parts(parts) => {
                let packed: Option<Vec<&PackedMatrix>> = parts
                    .iter()
                    .map(|p| match p {
                        Weight::Packed(w) => Some(&**w),
                        _ => None,
                    })
                    .collect();
                if let Some(packed) = packed {
                    // The input is quantized once for every part.
                    return packed_forward(&packed, x, norm);
                }
                let normed;
                let x = match norm {
                    Some((weight, eps)) => {
                        normed = candle_nn::ops::rms_norm(x, weight, eps)?;
                        &normed
                    }
                    None => x,
                };
                let outs = parts
                    .iter()
                    .map(|p| p.forward(x, None))
                    .collect::<Result<Vec<_>>>()?;
                Ok(Tensor::cat(&outs, 1)?)
            }
        }
    }
}

/// Runs the kernels' work ranges on candle's thread pool, so that the int8 GEMM and the
/// rest of the forward pass share the same threads.
struct CandlePool;

impl agora_kernels::Parallel for CandlePool {
    fn run(&self, items: usize, f: &(dyn Fn(std::ops::Range<usize>) + Sync)) {
        candle_core::utils::barrier_pool().execute_chunked(items, f)
    }
}

impl Linear {
    /// A projection from matrices stacked by rows (one, or several of different storage
    /// types), with an optional bias over all of their outputs.
    pub(crate) fn new(mut weights: Vec<QMatMul>, bias: Option<Tensor>) -> Result<Self> {
        let weight = match weights.len() {
            0 => {
                return Err(EngineError::Execution(
                    "a projection without a weight".into(),
                ))
            }
            1 => Weight::new(weights.remove(0))?,
            _ => Weight::Parts(
                weights
                    .into_iter()
                    .map(Weight::new)
                    .collect::<Result<_>>()?,
            ),
        };
        Ok(Linear { weight, bias })
    }

    /// `rms_norm(x) Wᵀ (+ b)`.
    fn forward_normed(&self, x: &Tensor, norm: &Tensor, eps: f32) -> Result<Tensor> {
        self.add_bias(self.weight.forward(x, Some((norm, eps)))?)
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.add_bias(self.weight.forward(x, None)?)
    }

    fn add_bias(&self, y: Tensor) -> Result<Tensor> {
        Ok(match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }
}

/// Buffers the int8 GEMM path reuses from call to call on a thread: fresh buffers of
/// several megabytes would be page-faulted in again by every projection.
#[derive(Default)]
struct Scratch {
    rows: QuantizedRows,
    hidden: Vec<f32>,
    hidden_rows: QuantizedRows,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::default();
}

/// `x Wᵀ` on the int8 GEMM for `x` of shape `(rows, k)`, RMS-normalised first when `norm`
/// gives the weight and eps; `W` is `parts` stacked by rows.
fn packed_forward(
    parts: &[&PackedMatrix],
    x: &Tensor,
    norm: Option<(&Tensor, f32)>,
) -> Result<Tensor> {
    let (m, _) = x.dims2()?;
    let width: usize = parts.iter().map(|w| w.rows()).sum();
    let out = SCRATCH.with_borrow_mut(|s| {
        quantize_rows(x, norm, &mut s.rows)?;
        if let [only] = parts {
            return packed_matmul(only, &s.rows);
        }
        let mut out = vec![0f32; m * width];
        let mut col = 0;
        for w in parts {
            let n = w.rows();
            let part = packed_matmul(w, &s.rows)?;
            for (dst, src) in out.chunks_exact_mut(width).zip(part.chunks_exact(n)) {
                dst[col..col + n].copy_from_slice(src);
            }
            col += n;
        }
        Ok(out)
    })?;
    Ok(Tensor::from_vec(out, (m, width), x.device())?)
}

/// A SwiGLU MLP on the int8 GEMM: the activation is applied while the down projection's
/// input is quantized, with no tensor in between.
fn packed_swiglu(
    gate_up: &PackedMatrix,
    down: &PackedMatrix,
    x: &Tensor,
    norm: Option<(&Tensor, f32)>,
) -> Result<Tensor> {
    let (m, _) = x.dims2()?;
    let out = SCRATCH.with_borrow_mut(|s| {
        quantize_rows(x, norm, &mut s.rows)?;
        s.hidden.resize(m * gate_up.rows(), 0.0);
        gate_up
            .matmul(&s.rows, &mut s.hidden, KernelKind::detect(), &CandlePool)
            .map_err(kernel_error)?;
        s.hidden_rows
            .requantize_swiglu(&s.hidden, m, gate_up.rows() / 2, &CandlePool)
            .map_err(kernel_error)?;
        packed_matmul(down, &s.hidden_rows)
    })?;
    Ok(Tensor::from_vec(out, (m, down.rows()), x.device())?)
}

/// Quantizes the rows of `x` into `rows`, RMS-normalised first when `norm` gives the
/// weight and eps.
fn quantize_rows(x: &Tensor, norm: Option<(&Tensor, f32)>, rows: &mut QuantizedRows) -> Result<()> {
    let (m, k) = x.dims2()?;
    let x = x.to_dtype(DType::F32)?.contiguous()?;
    let (storage, layout) = x.storage_and_layout();
    let values = cpu_f32(&storage, layout, m * k)?;
    match norm {
        Some((weight, eps)) => {
            let weight = weight.to_dtype(DType::F32)?.to_vec1::<f32>()?;
            rows.requantize_rms_norm(values, &weight, eps, m, k, &CandlePool)
        }
        None => rows.requantize_parallel(values, m, k, &CandlePool),
    }
    .map_err(kernel_error)
}

fn packed_matmul(w: &PackedMatrix, rows: &QuantizedRows) -> Result<Vec<f32>> {
    let mut out = vec![0f32; rows.rows() * w.rows()];
    w.matmul(rows, &mut out, KernelKind::detect(), &CandlePool)
        .map_err(kernel_error)?;
    Ok(out)
}

fn kernel_error(e: agora_kernels::KernelError) -> EngineError {
    EngineError::Execution(e.to_string())
}

/// One transformer block's weights.
#[derive(Debug)]
pub(crate) struct Block {
    pub(crate) attn_norm: Tensor,
    /// The query, key and value projections stacked into one matrix, so a step reads
    /// the normalised input once and runs one matrix product instead of three.
    pub(crate) qkv: Linear,
    pub(crate) o: Linear,
    pub(crate) q_norm: Option<Tensor>,
    pub(crate) k_norm: Option<Tensor>,
    pub(crate) ffn_norm: Tensor,
    pub(crate) ffn: Ffn,
}

/// One SwiGLU MLP: `down(silu(gate x) * up x)`.
#[derive(Debug)]
pub(crate) struct Expert {
    /// The gate and up projections stacked, so the input is read once.
    pub(crate) gate_up: Linear,
    pub(crate) down: Linear,
}

impl Expert {
    /// The MLP of `rms_norm(x)`, the norm fused into the quantization on the int8 GEMM.
    fn forward_normed(&self, x: &Tensor, norm: &Tensor, eps: f32) -> Result<Tensor> {
        match self.packed() {
            Some((gate_up, down)) => packed_swiglu(gate_up, down, x, Some((norm, eps))),
            None => self.forward(&candle_nn::ops::rms_norm(x, norm, eps)?),
        }
    }

    /// Both weights when the whole MLP runs on the int8 GEMM.
    fn packed(&self) -> Option<(&PackedMatrix, &PackedMatrix)> {
        match (
            &self.gate_up.weight,
            &self.down.weight,
            &self.gate_up.bias,
            &self.down.bias,
        ) {
            (Weight::Packed(gate_up), Weight::Packed(down), None, None) => Some((gate_up, down)),
            _ => None,
        }
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if let Some((gate_up, down)) = self.packed() {
            return packed_swiglu(gate_up, down, x, None);
        }
        let gate_up = self.gate_up.forward(x)?;
        let width = gate_up.dim(1)? / 2;
        let gate = candle_nn::ops::silu(&gate_up.narrow(1, 0, width)?)?;
        let up = gate_up.narrow(1, width, width)?;
        self.down.forward(&(gate * up)?)
    }
}

/// A block's feed-forward part.
#[derive(Debug)]
pub(crate) enum Ffn {
    /// One MLP for every token.
    Dense(Expert),
    /// Mixtral's sparse mixture: a router scores the experts per token; the token goes to
    /// its `per_token` best, whose outputs are summed, weighted by their router
    /// probabilities renormalised over the chosen ones.
    Routed {
        /// `(experts, hidden)`, f32.
        router: Tensor,
        experts: Vec<Expert>,
        per_token: usize,
    },
}

impl Ffn {
    /// The feed-forward part of `rms_norm(x)`.
    fn forward_normed(&self, x: &Tensor, norm: &Tensor, eps: f32) -> Result<Tensor> {
        match self {
            Ffn::Dense(mlp) => mlp.forward_normed(x, norm, eps),
            // The router reads the normalised rows too, so they are built once.
            Ffn::Routed { .. } => self.forward(&candle_nn::ops::rms_norm(x, norm, eps)?),
        }
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (router, experts, per_token) = match self {
            Ffn::Dense(mlp) => return mlp.forward(x),
            Ffn::Routed {
                router,
                experts,
                per_token,
            } => (router, experts, *per_token),
        };
        // The same softmax and the same choice (most likely first, ties to the lower
        // index) as the trainer, so that a served checkpoint routes as it was trained.
        let probs = candle_nn::ops::softmax(&x.matmul(&router.t()?)?, candle_core::D::Minus1)?
            .to_vec2::<f32>()?;
        let mut rows_of: Vec<Vec<u32>> = vec![Vec::new(); experts.len()];
        let mut weights_of: Vec<Vec<f32>> = vec![Vec::new(); experts.len()];
        let mut order: Vec<usize> = (0..experts.len()).collect();
        for (row, p) in probs.iter().enumerate() {
            order.sort_by(|&a, &b| p[b].total_cmp(&p[a]).then(a.cmp(&b)));
            let chosen = &order[..per_token.min(order.len())];
            let total: f32 = chosen.iter().map(|&e| p[e]).sum();
            for &e in chosen {
                rows_of[e].push(row as u32);
                weights_of[e].push(if total > 0.0 { p[e] / total } else { 0.0 });
            }
        }
        let mut out = x.zeros_like()?;
        for ((expert, rows), weights) in experts.iter().zip(rows_of).zip(weights_of) {
            if rows.is_empty() {
                continue;
            }
            let n = rows.len();
            let idx = Tensor::from_vec(rows, n, &Device::Cpu)?;
            let weights = Tensor::from_vec(weights, (n, 1), &Device::Cpu)?;
            let y = expert
                .forward(&x.index_select(&idx, 0)?)?
                .broadcast_mul(&weights)?;
            out = out.index_add(&idx, &y, 0)?;
        }
        Ok(out)
    }
}

/// A loaded model. Immutable after loading, so one copy serves every thread.
#[derive(Debug)]
pub(crate) struct Model {
    pub(crate) cfg: ModelConfig,
    /// `(vocab, hidden)` in f32: rows are looked up, never multiplied.
    embed: Tensor,
    blocks: Vec<Block>,
    norm: Tensor,
    lm_head: Linear,
    rope: RopeStyle,
    /// `(context, head_dim / 2)` tables of the rotation angles' cosines and sines.
    cos: Tensor,
    sin: Tensor,
    /// The same tables as plain values, for the kernels.
    cos_table: Vec<f32>,
    sin_table: Vec<f32>,
}

/// The keys and values a sequence has computed so far, per layer.
#[derive(Debug, Default)]
pub(crate) struct KvCache {
    layers: Vec<LayerCache>,
    len: usize,
}

/// One layer's keys, `(kv_heads, head_dim, capacity)` (each head transposed, as
/// [`agora_kernels::causal_attention`] reads them), and values, `(kv_heads, capacity,
/// head_dim)`: a head's first `len` positions are filled and the rest is room to grow.
///
/// A decode step appends one position. Growing by doubling copies each position a
/// bounded number of times over a whole generation; rebuilding the cache at every step
/// would copy all of it per token, which at a few thousand positions costs as much
/// memory traffic as reading the weights.
#[derive(Debug, Default)]
struct LayerCache {
    keys: Vec<f32>,
    values: Vec<f32>,
    capacity: usize,
    len: usize,
}

impl LayerCache {
    /// The fewest positions a layer makes room for: small appends do not regrow at once.
    const MIN_CAPACITY: usize = 64;

    /// Appends `t` positions of `(kv_heads, t, head_dim)` keys and values, growing to at
    /// most `limit` positions (more only when the positions themselves need it), rounded
    /// up to what the attention kernel takes.
    fn append(
        &mut self,
        keys: &[f32],
        values: &[f32],
        (t, kv_heads, d): (usize, usize, usize),
        limit: usize,
    ) {
        let needed = self.len + t;
        if needed > self.capacity {
            let capacity = (2 * self.capacity)
                .max(Self::MIN_CAPACITY)
                .min(limit)
                .max(needed)
                .next_multiple_of(agora_kernels::CAPACITY_MULTIPLE);
            let (old, len) = (self.capacity, self.len);
            let mut grown = vec![0f32; kv_heads * d * capacity];
            for (head_feature, row) in grown.chunks_exact_mut(capacity).enumerate() {
                row[..len].copy_from_slice(&self.keys[head_feature * old..][..len]);
            }
            self.keys = grown;
            let mut grown = vec![0f32; kv_heads * capacity * d];
            for g in 0..kv_heads {
                grown[g * capacity * d..(g * capacity + len) * d]
                    .copy_from_slice(&self.values[g * old * d..(g * old + len) * d]);
            }
            self.values = grown;
            self.capacity = capacity;
        }
        let (capacity, len) = (self.capacity, self.len);
        for g in 0..kv_heads {
            let new_keys = &keys[g * t * d..(g + 1) * t * d];
            for f in 0..d {
                let row = &mut self.keys[(g * d + f) * capacity + len..][..t];
                for (dst, key) in row.iter_mut().zip(new_keys.chunks_exact(d)) {
                    *dst = key[f];
                }
            }
            let at = (g * capacity + len) * d;
            self.values[at..at + t * d].copy_from_slice(&values[g * t * d..(g + 1) * t * d]);
        }
        self.len = needed;
    }
}

/// One sequence's share of a forward call.
#[derive(Debug)]
pub(crate) struct Segment<'a> {
    /// The new tokens, at positions `cache.len()..`.
    pub(crate) tokens: &'a [u32],
    pub(crate) cache: &'a mut KvCache,
    /// Logits are returned for the new tokens at indices `logits_from..tokens.len()`.
    pub(crate) logits_from: usize,
}

impl Model {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        cfg: ModelConfig,
        embed: Tensor,
        blocks: Vec<Block>,
        norm: Tensor,
        lm_head: Linear,
        rope: RopeStyle,
    ) -> Result<Self> {
        let (cos, sin) = rope_tables(&cfg)?;
        let (cos_table, sin_table) = (
            cos.flatten_all()?.to_vec1::<f32>()?,
            sin.flatten_all()?.to_vec1::<f32>()?,
        );
        Ok(Model {
            cfg,
            embed,
            blocks,
            norm,
            lm_head,
            rope,
            cos,
            sin,
            cos_table,
            sin_table,
        })
    }

    /// Runs the new tokens of every segment through the model, appends their keys and
    /// values to the segments' caches, and returns per segment the logits rows asked for.
    ///
    /// Callers guarantee that tokens are in the vocabulary and that every cache stays within
    /// the context length; on error the caches may hold a partial step and must be dropped.
    pub(crate) fn forward(&self, segments: &mut [Segment<'_>]) -> Result<Vec<Vec<Vec<f32>>>> {
        let cfg = &self.cfg;
        let ids: Vec<u32> = segments
            .iter()
            .flat_map(|s| s.tokens.iter().copied())
            .collect();
        if ids.is_empty() {
            return Ok(segments.iter().map(|_| Vec::new()).collect());
        }
        let dev = Device::Cpu;
        let n_rows = ids.len();
        let ids = Tensor::from_vec(ids, n_rows, &dev)?;
        let mut x = self.embed.index_select(&ids, 0)?;
        let eps = cfg.rms_norm_eps as f32;
        let starts: Vec<usize> = segments.iter().map(|s| s.cache.len).collect();
        for (layer, block) in self.blocks.iter().enumerate() {
            let qkv = block.qkv.forward_normed(&x, &block.attn_norm, eps)?;
            let mut outs = Vec::with_capacity(segments.len());
            let mut row = 0;
            for (seg, &start) in segments.iter_mut().zip(&starts) {
                let t = seg.tokens.len();
                if t == 0 {
                    continue;
                }
                let rows = qkv.narrow(0, row, t)?;
                outs.push(self.attend(block, layer, seg.cache, start, &rows)?);
                row += t;
            }
            // One segment (a prefill, a lone decode) needs no copy.
            let attn = match outs.as_slice() {
                [only] => only.clone(),
                _ => Tensor::cat(&outs, 0)?,
            };
            x = residual(&x, &block.o.forward(&attn)?)?;
            x = residual(&x, &block.ffn.forward_normed(&x, &block.ffn_norm, eps)?)?;
        }
        // Only the rows asked for go through the final norm and the (large) output matrix.
        let mut wanted = Vec::new();
        let mut row = 0u32;
        for seg in segments.iter_mut() {
            let t = seg.tokens.len();
            for i in seg.logits_from.min(t)..t {
                wanted.push(row + i as u32);
            }
            row += t as u32;
            seg.cache.len += t;
        }
        let mut result: Vec<Vec<Vec<f32>>> = Vec::with_capacity(segments.len());
        let mut rows = if wanted.is_empty() {
            Vec::new()
        } else {
            let n_wanted = wanted.len();
            let idx = Tensor::from_vec(wanted, n_wanted, &dev)?;
            let h = x.index_select(&idx, 0)?;
            let h = candle_nn::ops::rms_norm(&h, &self.norm, eps)?;
            self.lm_head
                .forward(&h)?
                .to_dtype(DType::F32)?
                .to_vec2::<f32>()?
        }
        .into_iter();
        for seg in segments.iter() {
            let t = seg.tokens.len();
            let n = t - seg.logits_from.min(t);
            result.push(rows.by_ref().take(n).collect());
        }
        Ok(result)
    }

    /// Splits one sequence's `(t, q | k | v)` rows into head-major queries, keys and values
    /// with the rotary embedding applied, in one pass.
    fn split_heads(&self, qkv: &Tensor, start: usize) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
        let cfg = &self.cfg;
        let (hd, nh, nkv) = (cfg.head_dim, cfg.num_heads, cfg.num_kv_heads);
        let t = qkv.dim(0)?;
        let qkv = qkv.contiguous()?;
        let (mut q, mut k, mut v) = (
            vec![0f32; nh * t * hd],
            vec![0f32; nkv * t * hd],
            vec![0f32; nkv * t * hd],
        );
        {
            let (storage, layout) = qkv.storage_and_layout();
            let shape = agora_kernels::HeadSplit {
                heads: nh,
                kv_heads: nkv,
                head_dim: hd,
                rows: t,
                start,
                pairs: match self.rope {
                    RopeStyle::Interleaved => agora_kernels::RopePairs::Interleaved,
                    RopeStyle::Halves => agora_kernels::RopePairs::Halves,
                },
            };
            let rows = cpu_f32(&storage, layout, t * (nh + 2 * nkv) * hd)?;
            agora_kernels::split_heads(
                rows,
                shape,
                &self.cos_table,
                &self.sin_table,
                &mut q,
                &mut k,
                &mut v,
            )
            .map_err(kernel_error)?;
        }
        Ok((q, k, v))
    }

    /// [`Model::split_heads`] for models that RMS-normalise each query and key head before
    /// the rotation (Qwen3), on candle's operations.
    fn split_heads_normed(
        &self,
        block: &Block,
        qkv: &Tensor,
        start: usize,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let cfg = &self.cfg;
        let (hd, nh, nkv) = (cfg.head_dim, cfg.num_heads, cfg.num_kv_heads);
        let t = qkv.dim(0)?;
        let eps = cfg.rms_norm_eps as f32;
        let q = qkv.narrow(1, 0, nh * hd)?;
        let k = qkv.narrow(1, nh * hd, nkv * hd)?;
        let v = qkv.narrow(1, (nh + nkv) * hd, nkv * hd)?;
        // (t, heads * hd) -> (1, heads, t, hd), the layout the rotary kernels expect.
        let mut q = q.reshape((t, nh, hd))?.transpose(0, 1)?.contiguous()?;
        let mut k = k.reshape((t, nkv, hd))?.transpose(0, 1)?.contiguous()?;
        let v = v.reshape((t, nkv, hd))?.transpose(0, 1)?.contiguous()?;
        if let Some(w) = &block.q_norm {
            q = candle_nn::ops::rms_norm(&q, w, eps)?;
        }
        if let Some(w) = &block.k_norm {
            k = candle_nn::ops::rms_norm(&k, w, eps)?;
        }
        let cos = self.cos.narrow(0, start, t)?;
        let sin = self.sin.narrow(0, start, t)?;
        let rotate = |x: &Tensor| -> Result<Tensor> {
            let x = x.unsqueeze(0)?;
            let y = match self.rope {
                RopeStyle::Interleaved => candle_nn::rotary_emb::rope_i(&x, &cos, &sin)?,
                RopeStyle::Halves => candle_nn::rotary_emb::rope(&x, &cos, &sin)?,
            };
            Ok(y.squeeze(0)?)
        };
        Ok((rotate(&q)?, rotate(&k)?, v))
    }

    /// Causal attention of `t` new rows of one sequence, whose cache holds `start` positions.
    #[allow(clippy::too_many_arguments)]
    fn attend(
        &self,
        block: &Block,
        layer: usize,
        cache: &mut KvCache,
        start: usize,
        qkv: &Tensor,
    ) -> Result<Tensor> {
        let cfg = &self.cfg;
        let (hd, nh, nkv) = (cfg.head_dim, cfg.num_heads, cfg.num_kv_heads);
        let t = qkv.dim(0)?;
        let (q, k, v) = if block.q_norm.is_none() && block.k_norm.is_none() {
            self.split_heads(qkv, start)?
        } else {
            let (q, k, v) = self.split_heads_normed(block, qkv, start)?;
            let flat = |x: Tensor| -> Result<Vec<f32>> { Ok(x.flatten_all()?.to_vec1::<f32>()?) };
            (flat(q)?, flat(k)?, flat(v)?)
        };
        if cache.layers.len() <= layer {
            cache.layers.resize_with(layer + 1, LayerCache::default);
        }
        let layer_cache = &mut cache.layers[layer];
        if layer_cache.len != start {
            return Err(EngineError::Execution(format!(
                "layer {layer}: cache holds {} positions, expected {start}",
                layer_cache.len
            )));
        }
        layer_cache.append(&k, &v, (t, nkv, hd), cfg.context_length);
        let mut out = vec![0f32; t * nh * hd];
        agora_kernels::causal_attention(
            &q,
            &layer_cache.keys,
            &layer_cache.values,
            agora_kernels::AttentionShape {
                heads: nh,
                kv_heads: nkv,
                head_dim: hd,
                rows: t,
                start,
                capacity: layer_cache.capacity,
            },
            1.0 / (hd as f32).sqrt(),
            &mut out,
            &CandlePool,
        )
        .map_err(kernel_error)?;
        Ok(Tensor::from_vec(out, (t, nh * hd), &Device::Cpu)?)
    }
}

/// `x + y` for the residual stream. A few hundred thousand additions take less time on
/// one thread than waking the pool for them, as candle's parallel add does.
fn residual(x: &Tensor, y: &Tensor) -> Result<Tensor> {
    let (dims, n) = (x.dims(), x.elem_count());
    if x.dtype() != DType::F32 || y.dtype() != DType::F32 || dims != y.dims() {
        return Ok((x + y)?);
    }
    let ((xs, xl), (ys, yl)) = (x.storage_and_layout(), y.storage_and_layout());
    let (a, b) = match (cpu_f32(&xs, xl, n), cpu_f32(&ys, yl, n)) {
        (Ok(a), Ok(b)) => (a, b),
        _ => return Ok((x + y)?),
    };
    let sum: Vec<f32> = a.iter().zip(b).map(|(a, b)| a + b).collect();
    Ok(Tensor::from_vec(sum, dims, x.device())?)
}

/// The `len` f32 values of a contiguous CPU tensor, for the kernels.
fn cpu_f32<'a>(
    storage: &'a candle_core::Storage,
    layout: &candle_core::Layout,
    len: usize,
) -> Result<&'a [f32]> {
    let values = match storage {
        candle_core::Storage::Cpu(cpu) => cpu.as_slice::<f32>()?,
        _ => return Err(EngineError::Execution("the kernels run on the CPU".into())),
    };
    let start = layout.start_offset();
    if !layout.is_contiguous() || values.len() < start + len {
        return Err(EngineError::Execution(
            "the kernels expect contiguous f32 tensors".into(),
        ));
    }
    Ok(&values[start..start + len])
}

fn rope_tables(cfg: &ModelConfig) -> Result<(Tensor, Tensor)> {
    let half = cfg.head_dim / 2;
    let inv_freq: Vec<f64> = (0..half)
        .map(|i| 1.0 / cfg.rope_theta.powf(2.0 * i as f64 / cfg.head_dim as f64))
        .collect();
    let mut cos = Vec::with_capacity(cfg.context_length * half);
    let mut sin = Vec::with_capacity(cfg.context_length * half);
    for pos in 0..cfg.context_length {
        for f in &inv_freq {
            let angle = pos as f64 * f;
            cos.push(angle.cos() as f32);
            sin.push(angle.sin() as f32);
        }
    }
    let shape = (cfg.context_length, half);
    Ok((
        Tensor::from_vec(cos, shape, &Device::Cpu)?,
        Tensor::from_vec(sin, shape, &Device::Cpu)?,
    ))
}

/// Checks a weight's shape against what the configuration implies.
pub(crate) fn expect_shape(name: &str, got: &[usize], want: &[usize]) -> Result<()> {
    if got != want {
        return Err(EngineError::invalid_model(format!(
            "tensor {name} has shape {got:?}, the configuration implies {want:?}"
        )));
    }
    Ok(())
}
