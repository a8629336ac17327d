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
//! * [`PackedMatrix::matmul`] multiplies them, with an AVX-512 VNNI kernel or an AVX2 one
//!   when the CPU has it, and a portable kernel otherwise.
//!
//! Around the products, the rest of a scoring pass: fused RMS-norm and SwiGLU
//! quantization, the rotary head split, causal attention, and the log-softmax with the
//! entropy a validator's statistical checks need.
//!
//! Everything is checked: shapes and byte lengths are validated and a bad weight is refused
//! with a [`KernelError`], never a panic.
//!
//! Every row's results have the same bits however rows are batched, and on every kernel:
//! each is a spelling of one arithmetic (exact integer block sums, then the same float
//! operations per output in the same order, with fused multiply-adds). So a validator's
//! one-pass scoring reproduces a miner's token-by-token decoding exactly, whichever of
//! these kernels either machine runs. `AGORA_KERNELS` (`avxvnni`, `avx2`, `portable`) caps
//! the kernel this process picks, to run on one machine what another CPU runs.

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
/// Activation groups per slice of the GEMM: a product sums its groups a slice at a time,
/// from zero, and adds the slices' sums in order. That is part of the arithmetic every
/// kernel follows: the vector kernels keep a panel's slice of weights (1,024 values) in L1
/// while every row tile passes over it.
pub(crate) const SLICE_GROUPS: usize = 4;

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

/// Which kernel a product runs on. Every kernel computes the same bits: the vector ones
/// are faster spellings of the portable arithmetic (integer block sums, then the same
/// float operations per output, fused multiply-adds included, in the same order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelKind {
    /// AVX-512 with VNNI int8 dot products.
    Avx512Vnni,
    /// AVX2 with FMA and the 256-bit VNNI int8 dot products of recent desktops
    /// (Intel from Alder Lake).
    AvxVnni,
    /// AVX2 with FMA: the vector unit of nearly every x86 desktop since 2013 (AMD up to
    /// Zen 3 included).
    Avx2,
    /// Plain Rust, any CPU; the reference the vector kernels are tested against.
    Portable,
}

impl KernelKind {
    /// Every kind, fastest first.
    pub const ALL: [KernelKind; 4] = [
        KernelKind::Avx512Vnni,
        KernelKind::AvxVnni,
        KernelKind::Avx2,
        KernelKind::Portable,
    ];

    /// Whether this CPU has the instructions the kernel needs.
    pub fn supported(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            KernelKind::Avx512Vnni => x86::avx512_supported(),
            #[cfg(target_arch = "x86_64")]
            KernelKind::AvxVnni => x86::avx_vnni_supported(),
            #[cfg(target_arch = "x86_64")]
            KernelKind::Avx2 => x86::avx2_supported(),
            KernelKind::Portable => true,
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The kernel this process runs: the fastest this CPU supports, unless the
    /// environment variable `AGORA_KERNELS` names a slower one (`avxvnni`, `avx2` or
    /// `portable`; `avx512` is the default), so that one machine can run what another CPU
    /// runs.
    pub fn detect() -> Self {
        static KIND: std::sync::OnceLock<KernelKind> = std::sync::OnceLock::new();
        *KIND.get_or_init(|| {
            let ceiling = match std::env::var("AGORA_KERNELS").as_deref() {
                Ok("portable") => KernelKind::Portable,
                Ok("avx2") => KernelKind::Avx2,
                Ok("avxvnni") => KernelKind::AvxVnni,
                Ok("avx512") | Err(_) => KernelKind::Avx512Vnni,
                Ok(other) => {
                    // A knob read once, before any logging is set up: a typo must not
                    // pass silently for the kernel it meant to choose.
                    eprintln!(
                        "AGORA_KERNELS={other:?} is not one of avx512, avxvnni, avx2, \
                         portable: using the fastest kernel this CPU has"
                    );
                    KernelKind::Avx512Vnni
                }
            };
            KernelKind::ALL
                .into_iter()
                .skip_while(|&k| k != ceiling)
                .find(|k| k.supported())
                .unwrap_or(KernelKind::Portable)
        })
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
/// the kernel this process runs. Returns whether every value was finite.
pub(crate) fn process_rows(
    source: rows::Source<'_>,
    rows: Range<usize>,
    k: usize,
    q: &mut [u8],
    d: &mut [f32],
) -> bool {
    process_rows_on(KernelKind::detect(), source, rows, k, q, d)
}

/// [`process_rows`] on `kind` (the portable code where this CPU lacks it).
pub(crate) fn process_rows_on(
    kind: KernelKind,
    source: rows::Source<'_>,
    rows: Range<usize>,
    k: usize,
    q: &mut [u8],
    d: &mut [f32],
) -> bool {
    let groups = k.div_ceil(GROUP);
    let mut scratch = Vec::new();
    let mut finite = true;
    for (i, r) in rows.enumerate() {
        let (q, d) = (
            &mut q[i * k..(i + 1) * k],
            &mut d[i * groups..(i + 1) * groups],
        );
        finite &= match kind {
            #[cfg(target_arch = "x86_64")]
            KernelKind::Avx512Vnni | KernelKind::AvxVnni | KernelKind::Avx2 if kind.supported() => {
                x86::process_row(kind, source, r, k, &mut scratch, q, d)
            }
            _ => rows::process_row(&rows::PortableOps, source, r, k, &mut scratch, q, d),
        };
    }
    finite
}

/// One attention head on the kernel this process runs.
pub(crate) fn attend_head(call: &attention::Call<'_>, h: usize, space: &mut attention::Workspace) {
    attend_head_on(KernelKind::detect(), call, h, space)
}

/// [`attend_head`] on `kind` (the portable code where this CPU lacks it).
pub(crate) fn attend_head_on(
    kind: KernelKind,
    call: &attention::Call<'_>,
    h: usize,
    space: &mut attention::Workspace,
) {
    match kind {
        #[cfg(target_arch = "x86_64")]
        KernelKind::Avx512Vnni | KernelKind::AvxVnni | KernelKind::Avx2 if kind.supported() => {
            x86::attend_head(kind, call, h, space)
        }
        _ => attention::attend_head(&rows::PortableOps, call, h, space),
    }
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
