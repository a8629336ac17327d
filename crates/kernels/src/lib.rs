//! Quantized matrix kernels for Agora's inference engine.
//!
//! A validator checks a miner's answer by scoring it: one forward pass over the prompt and
//! every generated token at once (a prefill), so its cost is dominated by matrix products
//! of a few dozen to a few hundred activation rows against the model's quantized weights.
//! This crate runs those products for GGUF `Q8_0`, `Q4_K` and `Q6_K` weights as an int8
//! GEMM:
//!
//! * [`PackedMatrix`] repacks a weight once, at load, into panels of [`PANEL`] output
//!   columns whose bytes line up with the vector unit's int8 dot-product instruction
//!   (`Q4_K` stays 4-bit in memory and is unpacked a slice at a time);
//! * [`QuantizedRows`] quantizes the activations to int8 with one scale per
//!   [`GROUP`] values (the granularity llama.cpp's and candle's `Q8_K` use);
//! * [`PackedMatrix::matmul`] multiplies them, with an AVX-512 VNNI kernel when the CPU has it
//!   and a portable kernel with the same arithmetic otherwise.
//!
//! Around the products, the rest of a scoring pass: fused RMS-norm and SwiGLU
//! quantization, the rotary head split, causal attention, and the log-softmax with the
//! entropy a validator's statistical checks need.
//!
//! Everything is checked: shapes and byte lengths are validated and a bad weight is refused
//! with a [`KernelError`], never a panic.
//!
//! On one CPU every row's results have the same bits however rows are batched, so a
//! validator's one-pass scoring reproduces a miner's token-by-token decoding exactly. The
//! vector and portable kernels round differently; `AGORA_KERNELS=portable` turns the
//! vector kernels off, to see on one machine what a CPU without them computes.

mod attention;
mod out;
mod pack;
mod portable;
mod rope;
mod rows;
mod softmax;
#[cfg(target_arch = "x86_64")]
mod x86;

use std::ops::Range;

pub use attention::{causal_attention, AttentionShape, CAPACITY_MULTIPLE};
pub use pack::{
    PackedFormat, PackedMatrix, Q4_K_BLOCK_BYTES, Q4_K_SUPER_BLOCK, Q6_K_BLOCK_BYTES,
    Q6_K_SUPER_BLOCK,
};
pub use rope::{split_heads, HeadSplit, RopePairs};
pub use rows::QuantizedRows;
pub use softmax::{log_softmax, Distribution};

/// Values per `Q8_0` block: one scale covers this many weights.
pub const BLOCK: usize = 32;
/// Bytes of one `Q8_0` block in a GGUF file: an f16 scale, then 32 signed bytes.
pub const Q8_0_BLOCK_BYTES: usize = 2 + BLOCK;
/// Output columns per packed weight panel (two 16-lane vectors).
pub const PANEL: usize = 32;
/// Activation values that share one quantization scale (eight weight blocks).
pub const GROUP: usize = 8 * BLOCK;

/// Why a weight or an input was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KernelError {
    /// The shapes do not fit the kernel or each other.
    #[error("shape: {0}")]
    Shape(String),
    /// The weight bytes are not a well-formed `Q8_0` matrix.
    #[error("weight data: {0}")]
    Data(String),
}

/// Which kernel a product runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelKind {
    /// AVX-512 with VNNI int8 dot products.
    Avx512Vnni,
    /// Plain Rust, any CPU; the reference the vector kernel is tested against.
    Portable,
}

impl KernelKind {
    /// The fastest kernel this CPU runs.
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        if x86::available() {
            return KernelKind::Avx512Vnni;
        }
        KernelKind::Portable
    }
}

/// Runs work items in parallel: `run(items, f)` must call `f` on disjoint ranges that
/// together cover `0..items`, and return only once every call has returned.
///
/// The engine passes its own thread pool, so the kernels share threads with the rest of
/// the forward pass instead of starting a second pool that would compete for the cores.
pub trait Parallel: Sync {
    /// Runs `f` over a split of `0..items`.
    fn run(&self, items: usize, f: &(dyn Fn(Range<usize>) + Sync));
}

/// Runs everything on the calling thread.
#[derive(Debug, Clone, Copy, Default)]
pub struct Serial;

impl Parallel for Serial {
    fn run(&self, items: usize, f: &(dyn Fn(Range<usize>) + Sync)) {
        f(0..items)
    }
}

/// Computes and quantizes rows `rows` of `source` into `q` and `d` (those rows' slices) on
/// the widest vector unit this CPU has. Returns whether every value was finite.
pub(crate) fn process_rows(
    source: rows::Source<'_>,
    rows: Range<usize>,
    k: usize,
    q: &mut [u8],
    d: &mut [f32],
) -> bool {
    let groups = k.div_ceil(GROUP);
    let mut scratch = Vec::new();
    let mut finite = true;
    #[cfg(target_arch = "x86_64")]
    let avx512 = x86::Avx512Ops::new();
    for (i, r) in rows.enumerate() {
        let (q, d) = (
            &mut q[i * k..(i + 1) * k],
            &mut d[i * groups..(i + 1) * groups],
        );
        #[cfg(target_arch = "x86_64")]
        if let Some(ops) = &avx512 {
            finite &= rows::process_row(ops, source, r, k, &mut scratch, q, d);
            continue;
        }
        finite &= rows::process_row(&rows::PortableOps, source, r, k, &mut scratch, q, d);
    }
    finite
}

/// One attention head on the widest vector unit this CPU has.
pub(crate) fn attend_head(call: &attention::Call<'_>, h: usize, space: &mut attention::Workspace) {
    #[cfg(target_arch = "x86_64")]
    if x86::available() {
        return x86::attend_head(call, h, space);
    }
    attention::attend_head(&rows::PortableOps, call, h, space)
}

#[cfg(test)]
mod tests {
    /// Two threads over `std::thread::scope`, so splits across work ranges are exercised.
    pub(crate) struct TwoThreads;

    impl crate::Parallel for TwoThreads {
        fn run(&self, items: usize, f: &(dyn Fn(std::ops::Range<usize>) + Sync)) {
            let mid = items / 2;
            std::thread::scope(|s| {
                s.spawn(|| f(0..mid));
                f(mid..items);
            });
        }
    }
}
