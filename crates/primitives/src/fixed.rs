//! The fixed-point types subtensor computes Yuma Consensus with, and its conversions between
//! them and the `u16` proportions stored on chain (65535 = 1.0).
//!
//! Everything here saturates instead of overflowing, like subtensor's `saturating_*` calls.

pub use substrate_fixed::types::{I32F32, I64F64, I96F32, U64F64};

/// `x / 65535` as I32F32: a stored u16 proportion read back as a fraction (truncating).
pub fn u16_proportion_to_fixed(x: u16) -> I32F32 {
    I32F32::from_num(x).saturating_div(I32F32::from_num(u16::MAX))
}

/// `floor(x * 65535)` clamped to `0..=65535`: a fraction stored as a u16 proportion.
pub fn fixed_proportion_to_u16(x: I32F32) -> u16 {
    fixed_to_u16(x.saturating_mul(I32F32::from_num(u16::MAX)))
}

/// The integer part of `x` (floored), clamped to `0..=65535`.
pub fn fixed_to_u16(x: I32F32) -> u16 {
    x.saturating_to_num::<u16>()
}

/// A u16 as I32F32, exactly.
pub fn u16_to_fixed(x: u16) -> I32F32 {
    I32F32::from_num(x)
}

/// A u64 as I64F64, exactly.
pub fn u64_to_fixed64(x: u64) -> I64F64 {
    I64F64::saturating_from_num(x)
}

/// A fixed I32F32 divisor prepared for many divisions, each bit-exact with substrate-fixed's
/// `checked_div` (truncating toward zero) and `saturating_div`.
///
/// Dividing by an invariant divisor this way costs two 64-bit multiplications instead of a
/// 128-bit division (Möller and Granlund, "Improved division by invariant integers", 2011,
/// algorithm 4). The quotient `(|a| << 32) / |d|` is computed exactly whenever it fits in 64
/// bits; a larger quotient overflows I32F32 anyway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct I32F32Divisor {
    /// `|d| << shift`, with its top bit set; 0 when dividing by zero.
    normalized: u64,
    /// The Möller–Granlund reciprocal `floor((2^128 - 1) / normalized) - 2^64`.
    reciprocal: u64,
    /// Leading zeros of `|d|`.
    shift: u32,
    /// Whether `d < 0`.
    negative: bool,
}

impl I32F32Divisor {
    /// Prepares division by `d`.
    pub fn new(d: I32F32) -> Self {
        let bits = d.to_bits();
        let magnitude = bits.unsigned_abs();
        if magnitude == 0 {
            return Self {
                normalized: 0,
                reciprocal: 0,
                shift: 0,
                negative: false,
            };
        }
        let shift = magnitude.leading_zeros();
        let normalized = magnitude.checked_shl(shift).unwrap_or(0);
        // normalized >= 2^63, so the quotient lies in [2^64, 2^65) and fits after the subtraction.
        let quotient = u128::MAX.checked_div(u128::from(normalized)).unwrap_or(0);
        let reciprocal = (quotient.wrapping_sub(1u128 << 64)) as u64;
        Self {
            normalized,
            reciprocal,
            shift,
            negative: bits < 0,
        }
    }

    /// Whether the divisor is zero.
    pub fn is_zero(&self) -> bool {
        self.normalized == 0
    }

    /// `(|a| << 32) / |d|` if it fits in 64 bits, else `None` (also when `d == 0`).
    #[inline]
    fn magnitude_quotient(&self, a_magnitude: u64) -> Option<u64> {
        if self.normalized == 0 {
            return None;
        }
        // The quotient fits in 64 bits exactly when |a| < |d| << 32; then
        // |a| << (32 + shift) < normalized << 64 fits in 128 bits with its high word below
        // `normalized`, the precondition of the 2-by-1 division.
        let d_magnitude = u128::from(self.normalized.checked_shr(self.shift).unwrap_or(0));
        let wide = u128::from(a_magnitude);
        if wide >= d_magnitude << 32 {
            return None;
        }
        let shifted = wide
            .checked_shl(32u32.wrapping_add(self.shift))
            .unwrap_or(0);
        let u1 = (shifted >> 64) as u64;
        let u0 = shifted as u64;
        // Algorithm 4 of Möller–Granlund: all arithmetic modulo 2^64.
        let product = u128::from(self.reciprocal).wrapping_mul(u128::from(u1));
        let sum = product.wrapping_add(shifted);
        let mut q1 = ((sum >> 64) as u64).wrapping_add(1);
        let q0 = sum as u64;
        let mut r = u0.wrapping_sub(q1.wrapping_mul(self.normalized));
        if r > q0 {
            q1 = q1.wrapping_sub(1);
            r = r.wrapping_add(self.normalized);
        }
        if r >= self.normalized {
            q1 = q1.wrapping_add(1);
        }
        Some(q1)
    }

    /// The signed quotient `a / d`, or `None` when `d == 0` or it overflows I32F32.
    #[inline]
    pub fn checked_div(&self, a: I32F32) -> Option<I32F32> {
        let bits = a.to_bits();
        let q = self.magnitude_quotient(bits.unsigned_abs())?;
        let negative = (bits < 0) != self.negative;
        let signed = if negative {
            0i64.checked_sub_unsigned(q)?
        } else {
            i64::try_from(q).ok()?
        };
        Some(I32F32::from_bits(signed))
    }

    /// subtensor's `safe_div`: `a / d`, or 0 when `d == 0` or the quotient overflows.
    #[inline]
    pub fn safe_div(&self, a: I32F32) -> I32F32 {
        self.checked_div(a).unwrap_or(I32F32::from_bits(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proportions_match_subtensor() {
        assert_eq!(fixed_proportion_to_u16(I32F32::from_num(1)), u16::MAX);
        assert_eq!(fixed_proportion_to_u16(I32F32::from_num(2)), u16::MAX);
        assert_eq!(fixed_proportion_to_u16(I32F32::from_num(-1)), 0);
        assert_eq!(fixed_proportion_to_u16(I32F32::from_num(0.5)), 32767);
        assert_eq!(u16_proportion_to_fixed(u16::MAX), I32F32::from_num(1));
        assert_eq!(u16_proportion_to_fixed(0), I32F32::from_num(0));
    }

    fn check_divisor(a: i64, d: i64) {
        let (a, d) = (I32F32::from_bits(a), I32F32::from_bits(d));
        let divisor = I32F32Divisor::new(d);
        assert_eq!(divisor.checked_div(a), a.checked_div(d), "{a:?} / {d:?}");
    }

    #[test]
    fn divisor_edge_cases() {
        let edges = [
            0,
            1,
            -1,
            2,
            3,
            65535,
            1 << 31,
            1 << 32,
            (1 << 32) + 1,
            1 << 48,
            i64::MAX,
            i64::MIN,
            i64::MIN + 1,
            4294967295,
            281470681743360,
        ];
        for &a in &edges {
            for &d in &edges {
                check_divisor(a, d);
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn divisor_matches_checked_div(a: i64, d: i64, sa in 0u32..64, sd in 0u32..64) {
            check_divisor(a >> sa, d >> sd);
        }

        #[test]
        fn u16_round_trip_loses_at_most_one(x: u16) {
            let back = fixed_proportion_to_u16(u16_proportion_to_fixed(x));
            proptest::prop_assert!(back == x || back + 1 == x);
        }
    }
}
