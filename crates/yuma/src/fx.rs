//! I32F32 arithmetic on raw bits (`value * 2^32` in an `i64`), bit-exact with substrate-fixed's
//! saturating operations and subtensor's `safe_div`, but cheap enough for the per-entry loops.

use agora_primitives::fixed::{I32F32Divisor, I32F32};

/// Raw I32F32 bits.
pub(crate) type Fx = i64;

/// 1.0
pub(crate) const ONE: Fx = 1 << 32;

/// `a * b`, floored (arithmetic shift), saturating: substrate-fixed's `saturating_mul`.
#[inline]
pub(crate) fn mul(a: Fx, b: Fx) -> Fx {
    // |a * b| <= 2^126, so the i128 product cannot overflow.
    let wide = i128::from(a).wrapping_mul(i128::from(b)) >> 32;
    narrow(wide)
}

/// `a * b` or `None` on overflow: substrate-fixed's `checked_mul`.
#[inline]
pub(crate) fn checked_mul(a: Fx, b: Fx) -> Option<Fx> {
    let wide = i128::from(a).wrapping_mul(i128::from(b)) >> 32;
    i64::try_from(wide).ok()
}

/// Clamps an i128 to the i64 range.
#[inline]
pub(crate) fn narrow(x: i128) -> i64 {
    i64::try_from(x).unwrap_or(if x < 0 { i64::MIN } else { i64::MAX })
}

/// A prepared divisor with subtensor's `safe_div` semantics (0 on division by zero or overflow).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Div(I32F32Divisor);

impl Div {
    #[inline]
    pub(crate) fn new(d: Fx) -> Self {
        Self(I32F32Divisor::new(I32F32::from_bits(d)))
    }

    #[inline]
    pub(crate) fn safe_div(&self, a: Fx) -> Fx {
        self.0.safe_div(I32F32::from_bits(a)).to_bits()
    }
}

/// subtensor's `safe_div` for one division.
#[inline]
pub(crate) fn safe_div(a: Fx, d: Fx) -> Fx {
    I32F32::from_bits(a)
        .checked_div(I32F32::from_bits(d))
        .map_or(0, I32F32::to_bits)
}

/// substrate-fixed's `saturating_div` for one division.
#[inline]
pub(crate) fn saturating_div(a: Fx, d: Fx) -> Fx {
    I32F32::from_bits(a)
        .saturating_div(I32F32::from_bits(d))
        .to_bits()
}

/// `x / 65535` for a stored u16 proportion: `u16_proportion_to_fixed`.
#[inline]
pub(crate) fn from_u16_proportion(x: u16) -> Fx {
    // (x << 32) << 32 / (65535 << 32) = floor(x * 2^32 / 65535); the dividend fits in a u64.
    let q = (u64::from(x) << 32) / 65535;
    // q <= 2^32, so it fits in an i64.
    i64::try_from(q).unwrap_or(i64::MAX)
}

/// `floor(x * 65535)` clamped to `0..=65535`: `fixed_proportion_to_u16`.
#[inline]
pub(crate) fn to_u16(x: Fx) -> u16 {
    // saturating_mul then saturating_to_num::<u16>; saturation only moves values that clamp
    // to the same bound.
    let scaled = i128::from(x).wrapping_mul(65535) >> 32;
    u16::try_from(scaled.clamp(0, 65535)).unwrap_or(u16::MAX)
}

/// `x` as I32F32 bits: an integer u16.
#[inline]
pub(crate) fn from_u16(x: u16) -> Fx {
    i64::from(x) << 32
}

/// Sum of a slice with saturating additions (subtensor's sums never reach the bounds).
#[inline]
pub(crate) fn sum(x: &[Fx]) -> Fx {
    x.iter().fold(0i64, |acc, &v| acc.saturating_add(v))
}

/// subtensor's `inplace_normalize`: divides by the sum unless it is zero.
pub(crate) fn inplace_normalize(x: &mut [Fx]) {
    let total = sum(x);
    if total == 0 {
        return;
    }
    let d = Div::new(total);
    x.iter_mut().for_each(|v| *v = d.safe_div(*v));
}

/// `exp_safe`: substrate-fixed's Taylor-series `exp` on an input clamped to [-20, 20].
pub(crate) fn exp_safe(x: Fx) -> Fx {
    let limit: Fx = 20 << 32;
    let input = I32F32::from_bits(x.clamp(-limit, limit));
    match substrate_fixed::transcendental::exp::<I32F32, I32F32>(input) {
        Ok(v) => v.to_bits(),
        Err(()) => {
            if input <= 0 {
                0
            } else {
                i64::MAX
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn mul_matches_substrate(a: i64, b: i64, sa in 0u32..64, sb in 0u32..64) {
            let (a, b) = (a >> sa, b >> sb);
            let expected = I32F32::from_bits(a).saturating_mul(I32F32::from_bits(b)).to_bits();
            proptest::prop_assert_eq!(mul(a, b), expected);
            let checked = I32F32::from_bits(a).checked_mul(I32F32::from_bits(b)).map(I32F32::to_bits);
            proptest::prop_assert_eq!(checked_mul(a, b), checked);
        }

        #[test]
        fn u16_conversions_match_primitives(x: u16, y: i64) {
            let p = agora_primitives::fixed::u16_proportion_to_fixed(x).to_bits();
            proptest::prop_assert_eq!(from_u16_proportion(x), p);
            let u = agora_primitives::fixed::fixed_proportion_to_u16(I32F32::from_bits(y));
            proptest::prop_assert_eq!(to_u16(y), u);
        }
    }
}
