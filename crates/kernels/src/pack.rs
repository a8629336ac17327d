//! GGUF `Q8_0`, `Q4_K` and `Q6_K` weights repacked into panels for the int8 GEMM, and the
//! product.
//!
//! A weight `W` has `n` rows (output features) of `k` values. Every format comes down to
//! blocks of 32 small integers `q_w` with, per block and weight row, a scale `d_w` and (for
//! `Q4_K`) a minimum `m_w`: the weight is `d_w · q_w − m_w`. `Q8_0` stores the block's
//! scale as f16 and signed bytes; `Q4_K` stores values 0..15 in nibbles, and derives each
//! block's scale and minimum from its 256-value super-block's f16 pair and 6-bit factors.
//! `Q6_K` stores 6-bit values (−32..31 once centred) with a signed 8-bit factor per half
//! block and an f16 per super-block: here signed bytes with an f32 scale per half block,
//! each half's integer sum scaled on its own.
//! The product of activation row `a` and weight row `c` is
//!
//! ```text
//! Σ_g d_a[g] · Σ_{b ∈ g} (d_w[b, c] · Σ_{i ∈ b} q_a[i] · q_w[c, i]  −  m_w[b, c] · Σ_{i ∈ b} q_a[i])
//! ```
//!
//! where `g` runs over the activation groups of eight blocks. The kernels hold `q_a + 128`
//! (unsigned), so each block's integer sum carries an extra `128 · Σ_i q_w[c, i]`; weighted
//! by `d_w` and summed over a group, that is a constant per (group, column), computed here
//! once and subtracted once per group. The minimum's term needs the activation's block
//! sums, which the product computes per call.
//!
//! Layout, per panel of [`PANEL`] columns and per block: the 32×32 values ordered
//! `[i / 4][column][i % 4]`, so one 64-byte load gives sixteen columns × four consecutive
//! values, the operand shape of the int8 dot-product instruction. `Q8_0` keeps those as
//! bytes, with the scales `d_w[b, 0..32]` as f32 (`Q6_K` likewise, two scales a block). `Q4_K` keeps them as nibbles (byte `j`
//! of 64-byte chunk `c` holds byte `j` of unpacked chunks `2c` in its low nibble and
//! `2c + 1` in its high one, so a kernel unpacks a chunk with a mask and a shift), and its
//! scales as GGUF does: per block the 6-bit factors as bytes, per group (which is the
//! 256-value super-block) `d` and `dmin` as f32. The matrix is then under a tenth larger
//! than the file's tensor, so a decode step, bound by memory, reads little more than it
//! must. Columns past `n` in the last panel are zero.

use half::f16;

use crate::rows::QuantizedRows;
use crate::{KernelError, KernelKind, Parallel, BLOCK, GROUP, PANEL, Q8_0_BLOCK_BYTES};

/// Bytes of one panel's block, unpacked: 32 columns × 32 values.
pub(crate) const PANEL_BLOCK_BYTES: usize = PANEL * BLOCK;

/// Values per `Q4_K` super-block.
pub const Q4_K_SUPER_BLOCK: usize = 256;
/// Bytes of one `Q4_K` super-block in a GGUF file: f16 `d` and `dmin`, twelve bytes of
/// 6-bit scales and minima, then 128 bytes of nibbles.
pub const Q4_K_BLOCK_BYTES: usize = 4 + 12 + Q4_K_SUPER_BLOCK / 2;

/// Values per `Q6_K` super-block.
pub const Q6_K_SUPER_BLOCK: usize = 256;
/// Bytes of one `Q6_K` super-block in a GGUF file: 128 bytes of low nibbles, 64 bytes of
/// high bit pairs, sixteen signed 8-bit scales (one per 16 values), then an f16 `d`.
pub const Q6_K_BLOCK_BYTES: usize = Q6_K_SUPER_BLOCK / 2 + Q6_K_SUPER_BLOCK / 4 + 16 + 2;

/// How a [`PackedMatrix`] stores its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackedFormat {
    /// Signed bytes and a scale per block, from GGUF `Q8_0`.
    Q8_0,
    /// Nibbles 0..15 with a scale and a minimum per block, from GGUF `Q4_K`.
    Q4K,
    /// Signed bytes -32..31 with a scale per half block (16 values), from GGUF `Q6_K`.
    Q6K,
}

impl PackedFormat {
    /// Scales per block and column: `Q6_K` scales each half of a block on its own.
    pub(crate) fn scales_per_block(self) -> usize {
        match self {
            PackedFormat::Q6K => 2,
            PackedFormat::Q8_0 | PackedFormat::Q4K => 1,
        }
    }
}

/// A quantized weight matrix repacked for [`PackedMatrix::matmul`].
#[derive(Clone)]
pub struct PackedMatrix {
    pub(crate) n: usize,
    pub(crate) k: usize,
    pub(crate) blocks: usize,
    pub(crate) panels: usize,
    pub(crate) format: PackedFormat,
    /// `[panel][block][i / 4][column][i % 4]`: signed bytes (`Q8_0`, `Q6_K`), or
    /// nibble-packed (`Q4_K`, half as many bytes).
    pub(crate) qs: Vec<u8>,
    /// `Q8_0`: `[panel][block][column]`; `Q6_K`: `[panel][block][half][column]`; empty
    /// for `Q4_K`.
    pub(crate) scales: Vec<f32>,
    /// `Q4_K`: `[panel][block][scale factor, then minimum factor][column]`, 6-bit values.
    pub(crate) factors: Vec<u8>,
    /// `Q4_K`: `[panel][group][d, then dmin][column]`.
    pub(crate) super_scales: Vec<f32>,
    /// `[panel][group][column]`: `128 · Σ_{b ∈ group} d_w[b, c] · Σ_i q_w[c, i]`.
    pub(crate) offsets: Vec<f32>,
}

impl std::fmt::Debug for PackedMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedMatrix")
            .field("format", &self.format)
            .field("n", &self.n)
            .field("k", &self.k)
            .finish_non_exhaustive()
    }
}

/// Where value `i` of a block, in column `col` of its panel, sits among the block's
/// unpacked bytes.
pub(crate) fn unpacked_index(col: usize, i: usize) -> usize {
    (i / 4) * PANEL * 4 + col * 4 + i % 4
}

/// Where unpacked byte `u` of a block sits among its nibbles: the byte, and whether it is
/// the high nibble.
pub(crate) fn nibble_index(u: usize) -> (usize, bool) {
    let (chunk, within) = (u / 64, u % 64);
    ((chunk / 2) * 64 + within, chunk % 2 == 1)
}

/// Scale and minimum factors `j` (0..8) of a `Q4_K` super-block's twelve packed bytes:
/// the first four of each are six bits of their own byte; the last four are split between
/// a low nibble and the top two bits of the earlier bytes.
fn q4_k_factors(j: usize, packed: &[u8]) -> (u8, u8) {
    if j < 4 {
        (packed[j] & 63, packed[j + 4] & 63)
    } else {
        (
            (packed[j + 4] & 0x0F) | ((packed[j - 4] >> 6) << 4),
            (packed[j + 4] >> 4) | ((packed[j] >> 6) << 4),
        )
    }
}

impl PackedMatrix {
    /// An empty matrix of the given shape and format, to be filled by a constructor.
    fn zeroed(n: usize, k: usize, format: PackedFormat) -> Self {
        let (blocks, panels) = (k / BLOCK, n.div_ceil(PANEL));
        let block_bytes = match format {
            PackedFormat::Q8_0 | PackedFormat::Q6K => PANEL_BLOCK_BYTES,
            PackedFormat::Q4K => PANEL_BLOCK_BYTES / 2,
        };
        PackedMatrix {
            n,
            k,
            blocks,
            panels,
            format,
            qs: vec![0; panels * blocks * block_bytes],
            scales: match format {
                PackedFormat::Q8_0 | PackedFormat::Q6K => {
                    vec![0.0; panels * blocks * format.scales_per_block() * PANEL]
                }
                PackedFormat::Q4K => Vec::new(),
            },
            factors: match format {
                PackedFormat::Q8_0 | PackedFormat::Q6K => Vec::new(),
                PackedFormat::Q4K => vec![0; panels * blocks * 2 * PANEL],
            },
            super_scales: match format {
                PackedFormat::Q8_0 | PackedFormat::Q6K => Vec::new(),
                PackedFormat::Q4K => vec![0.0; panels * k.div_ceil(GROUP) * 2 * PANEL],
            },
            offsets: vec![0.0; panels * k.div_ceil(GROUP) * PANEL],
        }
    }

    /// Checks the shape and the byte count of `n` rows of `k` values stored in blocks of
    /// `per_block` values and `block_bytes` bytes.
    fn check_bytes(
        bytes: &[u8],
        n: usize,
        k: usize,
        per_block: usize,
        block_bytes: usize,
        name: &str,
    ) -> Result<(), KernelError> {
        if n == 0 || k == 0 || !k.is_multiple_of(per_block) {
            return Err(KernelError::Shape(format!(
                "a {name} matrix needs n > 0 rows and a positive multiple of {per_block} columns, not {n}×{k}"
            )));
        }
        let expected = n
            .checked_mul(k / per_block)
            .and_then(|b| b.checked_mul(block_bytes))
            .ok_or_else(|| KernelError::Shape(format!("{n}×{k} is too large")))?;
        if bytes.len() != expected {
            return Err(KernelError::Data(format!(
                "{} bytes, but {n}×{k} {name} takes {expected}",
                bytes.len()
            )));
        }
        Ok(())
    }

    /// Records block `b` of weight row `c`: its 32 values, and the scales of its two
    /// halves (equal but for `Q6_K`; the caller stores them in the format's own way) for
    /// the offset.
    fn set_block(
        &mut self,
        c: usize,
        b: usize,
        scales: [f32; 2],
        values: impl Iterator<Item = i8>,
    ) {
        let (p, col) = (c / PANEL, c % PANEL);
        let at = p * self.blocks + b;
        let mut sums = [0i32; 2];
        for (i, q) in values.enumerate() {
            sums[i / (BLOCK / 2)] += i32::from(q);
            let u = unpacked_index(col, i);
            match self.format {
                PackedFormat::Q8_0 | PackedFormat::Q6K => {
                    self.qs[at * PANEL_BLOCK_BYTES + u] = q as u8
                }
                PackedFormat::Q4K => {
                    let (byte, high) = nibble_index(u);
                    let nibble = (q as u8 & 0x0F) << if high { 4 } else { 0 };
                    self.qs[at * PANEL_BLOCK_BYTES / 2 + byte] |= nibble;
                }
            }
        }
        let groups = self.groups();
        let weighted = scales[0] * sums[0] as f32 + scales[1] * sums[1] as f32;
        self.offsets[(p * groups + b * BLOCK / GROUP) * PANEL + col] += 128.0 * weighted;
    }

    /// Repacks `n` rows of `k` values given as GGUF `Q8_0` bytes (row-major blocks).
    pub fn from_q8_0(bytes: &[u8], n: usize, k: usize) -> Result<Self, KernelError> {
        Self::check_bytes(bytes, n, k, BLOCK, Q8_0_BLOCK_BYTES, "Q8_0")?;
        let mut w = Self::zeroed(n, k, PackedFormat::Q8_0);
        let blocks = k / BLOCK;
        for c in 0..n {
            let row = &bytes[c * blocks * Q8_0_BLOCK_BYTES..(c + 1) * blocks * Q8_0_BLOCK_BYTES];
            for (b, block) in row.chunks_exact(Q8_0_BLOCK_BYTES).enumerate() {
                let d = f16::from_le_bytes([block[0], block[1]]).to_f32();
                if !d.is_finite() {
                    return Err(KernelError::Data(format!(
                        "row {c}, block {b}: the scale is not finite"
                    )));
                }
                w.scales[((c / PANEL) * blocks + b) * PANEL + c % PANEL] = d;
                w.set_block(c, b, [d; 2], block[2..].iter().map(|&q| q as i8));
            }
        }
        Ok(w)
    }

    /// Repacks `n` rows of `k` values given as GGUF `Q4_K` bytes (row-major super-blocks).
    /// Block `j` of a super-block has scale `d · sc_j` and minimum `dmin · m_j`; the
    /// kernels compute both in f32 as the GGUF reference dequantization does.
    pub fn from_q4_k(bytes: &[u8], n: usize, k: usize) -> Result<Self, KernelError> {
        Self::check_bytes(bytes, n, k, Q4_K_SUPER_BLOCK, Q4_K_BLOCK_BYTES, "Q4_K")?;
        let mut w = Self::zeroed(n, k, PackedFormat::Q4K);
        let supers = k / Q4_K_SUPER_BLOCK;
        let blocks = k / BLOCK;
        for c in 0..n {
            let (p, col) = (c / PANEL, c % PANEL);
            let row = &bytes[c * supers * Q4_K_BLOCK_BYTES..(c + 1) * supers * Q4_K_BLOCK_BYTES];
            for (s, sb) in row.chunks_exact(Q4_K_BLOCK_BYTES).enumerate() {
                let d = f16::from_le_bytes([sb[0], sb[1]]).to_f32();
                let dmin = f16::from_le_bytes([sb[2], sb[3]]).to_f32();
                if !(d.is_finite() && dmin.is_finite()) {
                    return Err(KernelError::Data(format!(
                        "row {c}, super-block {s}: a scale is not finite"
                    )));
                }
                // A super-block is a group: the activations' scale covers the same values.
                let at = (p * supers + s) * 2 * PANEL + col;
                w.super_scales[at] = d;
                w.super_scales[at + PANEL] = dmin;
                let (factors, nibbles) = (&sb[4..16], &sb[16..]);
                for j in 0..Q4_K_SUPER_BLOCK / BLOCK {
                    let (sc, m) = q4_k_factors(j, factors);
                    // Blocks 2h and 2h + 1 share 32 bytes: low nibbles, then high ones.
                    let bytes = &nibbles[(j / 2) * 32..(j / 2) * 32 + 32];
                    let shift = 4 * (j % 2);
                    let values = bytes.iter().map(move |&x| ((x >> shift) & 0x0F) as i8);
                    let b = s * (Q4_K_SUPER_BLOCK / BLOCK) + j;
                    let at = (p * blocks + b) * 2 * PANEL + col;
                    w.factors[at] = sc;
                    w.factors[at + PANEL] = m;
                    w.set_block(c, b, [d * f32::from(sc); 2], values);
                }
            }
        }
        Ok(w)
    }

    /// Repacks `n` rows of `k` values given as GGUF `Q6_K` bytes (row-major super-blocks).
    /// Value `i` of a super-block is `d · sc[i / 16] · (q_i − 32)` with a 6-bit `q_i`; the
    /// kernels hold `q_i − 32` as a signed byte and `d · sc` in f32, the product GGUF's
    /// reference dequantization computes first.
    pub fn from_q6_k(bytes: &[u8], n: usize, k: usize) -> Result<Self, KernelError> {
        Self::check_bytes(bytes, n, k, Q6_K_SUPER_BLOCK, Q6_K_BLOCK_BYTES, "Q6_K")?;
        let mut w = Self::zeroed(n, k, PackedFormat::Q6K);
        let supers = k / Q6_K_SUPER_BLOCK;
        let blocks = k / BLOCK;
        for c in 0..n {
            let (p, col) = (c / PANEL, c % PANEL);
            let row = &bytes[c * supers * Q6_K_BLOCK_BYTES..(c + 1) * supers * Q6_K_BLOCK_BYTES];
            for (s, sb) in row.chunks_exact(Q6_K_BLOCK_BYTES).enumerate() {
                let (low, rest) = sb.split_at(Q6_K_SUPER_BLOCK / 2);
                let (high, rest) = rest.split_at(Q6_K_SUPER_BLOCK / 4);
                let (factors, d) = rest.split_at(16);
                let d = f16::from_le_bytes([d[0], d[1]]).to_f32();
                if !d.is_finite() {
                    return Err(KernelError::Data(format!(
                        "row {c}, super-block {s}: the scale is not finite"
                    )));
                }
                // Each half of a super-block (128 values) takes 64 bytes of low nibbles and
                // 32 of high bit pairs; its block `j` (0..4) reads nibble `j / 2` of bytes
                // `32 · (j % 2)..` and bit pair `j` of the 32 high bytes.
                for j in 0..Q6_K_SUPER_BLOCK / BLOCK {
                    let (half, jj) = (j / 4, j % 4);
                    let low = &low[half * 64 + (jj % 2) * 32..][..32];
                    let high = &high[half * 32..][..32];
                    let values = low.iter().zip(high).map(move |(&l, &h)| {
                        let nibble = (l >> (4 * (jj / 2))) & 0x0F;
                        let pair = (h >> (2 * jj)) & 3;
                        ((nibble | pair << 4) as i8) - 32
                    });
                    let scale = |i: usize| d * f32::from(factors[half * 8 + 2 * jj + i] as i8);
                    let scales = [scale(0), scale(1)];
                    let b = s * (Q6_K_SUPER_BLOCK / BLOCK) + j;
                    let at = ((p * blocks + b) * 2) * PANEL + col;
                    w.scales[at] = scales[0];
                    w.scales[at + PANEL] = scales[1];
                    w.set_block(c, b, scales, values);
                }
            }
        }
        Ok(w)
    }

    /// How the values are stored.
    pub fn format(&self) -> PackedFormat {
        self.format
    }

    /// Output features (rows of the weight).
    pub fn rows(&self) -> usize {
        self.n
    }

    /// Input features (columns of the weight).
    pub fn cols(&self) -> usize {
        self.k
    }

    /// Bytes this matrix holds.
    pub fn size_bytes(&self) -> usize {
        self.qs.len()
            + self.factors.len()
            + 4 * (self.scales.len() + self.super_scales.len() + self.offsets.len())
    }

    pub(crate) fn groups(&self) -> usize {
        self.k.div_ceil(GROUP)
    }

    /// `out = x Wᵀ` for quantized rows `x` (`m × k`) into `out` (`m × n`, row-major),
    /// on `kernel` (the portable one where this CPU lacks it), splitting the output panels
    /// over `parallel`.
    pub fn matmul(
        &self,
        x: &QuantizedRows,
        out: &mut [f32],
        kernel: KernelKind,
        parallel: &dyn Parallel,
    ) -> Result<(), KernelError> {
        if x.k != self.k {
            return Err(KernelError::Shape(format!(
                "rows of {} values against a weight of {} columns",
                x.k, self.k
            )));
        }
        if out.len() != x.m * self.n {
            return Err(KernelError::Shape(format!(
                "output of {} values for {}×{}",
                out.len(),
                x.m,
                self.n
            )));
        }
        if x.m == 0 {
            return Ok(());
        }
        let kernel = if kernel.supported() {
            kernel
        } else {
            KernelKind::Portable
        };
        let out = crate::out::SharedOut::new(out, self.n);
        let sums = match self.format {
            PackedFormat::Q8_0 | PackedFormat::Q6K => Vec::new(),
            PackedFormat::Q4K => x.block_sums(),
        };
        parallel.run(self.panels, &|panels| match kernel {
            #[cfg(target_arch = "x86_64")]
            KernelKind::Avx512Vnni | KernelKind::AvxVnni | KernelKind::Avx2 => {
                crate::x86::panels(kernel, self, x, &sums, panels, &out)
            }
            _ => crate::portable::panels(self, x, &sums, panels, &out),
        });
        Ok(())
    }

    /// Quantizes `x` (`m × k`) and multiplies, on the fastest kernel: a convenience for
    /// callers that do not reuse quantized rows.
    pub fn matmul_f32(
        &self,
        x: &[f32],
        m: usize,
        out: &mut [f32],
        parallel: &dyn Parallel,
    ) -> Result<(), KernelError> {
        let rows = QuantizedRows::quantize(x, m, self.k)?;
        self.matmul(&rows, out, KernelKind::detect(), parallel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_malformed_weights() {
        assert!(matches!(
            PackedMatrix::from_q8_0(&[0; 34], 1, 33),
            Err(KernelError::Shape(_))
        ));
        assert!(matches!(
            PackedMatrix::from_q8_0(&[0; 33], 1, 32),
            Err(KernelError::Data(_))
        ));
        let mut inf = vec![0u8; 34];
        inf[..2].copy_from_slice(&f16::INFINITY.to_le_bytes());
        assert!(matches!(
            PackedMatrix::from_q8_0(&inf, 1, 32),
            Err(KernelError::Data(_))
        ));
    }
}
