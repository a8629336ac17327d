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

/// `a * b` as [`mul`], on a fast path for the usual operands in `[0, 1)` (normalised weights,
/// stakes and their clipped or interpolated forms): there the product is below 2^64 and its
/// floor below 1, so a 64-bit multiplication is exact and nothing saturates.
#[inline]
pub(crate) fn mul_unit(a: Fx, b: Fx) -> Fx {
    let (ua, ub) = (a as u64, b as u64);
    // Both below 2^32 (a negative operand reads as a u64 of at least 2^63).
    if (ua | ub) >> 32 == 0 {
        (ua.wrapping_mul(ub) >> 32) as i64
    } else {
        mul(a, b)
    }
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
    let low = x as i64;
    if i128::from(low) == x {
        low
    } else if x < 0 {
        i64::MIN
    } else {
        i64::MAX
    }
}

/// Exact `floor(x / d)` for any u64 `x` and a fixed `d >= 1`, by one multiplication with a
/// truncated reciprocal and one correction step.
///
/// With `r = min(floor(2^64 / d), 2^64 - 1)`, `r > 2^64 / d - 1`, so the estimate
/// `floor(x r / 2^64)` is below `x / d` by less than `x / 2^64 < 1`: it is the quotient or one
/// less, and the remainder decides.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Recip {
    d: u64,
    r: u64,
}

impl Recip {
    /// Division by 1.
    pub(crate) const ONE: Self = Self { d: 1, r: u64::MAX };

    /// `None` when `d == 0`.
    pub(crate) fn new(d: u64) -> Option<Self> {
        let r = (1u128 << 64).checked_div(u128::from(d))?;
        Some(Self {
            d,
            r: u64::try_from(r).unwrap_or(u64::MAX),
        })
    }

    #[inline]
    pub(crate) fn div(&self, x: u64) -> u64 {
        let q = (u128::from(x).wrapping_mul(u128::from(self.r)) >> 64) as u64;
        let rem = x.wrapping_sub(q.wrapping_mul(self.d));
        q.wrapping_add(u64::from(rem >= self.d))
    }
}

/// A prepared divisor with subtensor's `safe_div` semantics (0 on division by zero or overflow).
/// Dividends in `[0, 1)` with a positive divisor take the one-multiplication path.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Div {
    general: I32F32Divisor,
    fast: Option<Recip>,
}

impl Div {
    #[inline]
    pub(crate) fn new(d: Fx) -> Self {
        let fast = if d > 0 {
            Recip::new(d.unsigned_abs())
        } else {
            None
        };
        Self {
            general: I32F32Divisor::new(I32F32::from_bits(d)),
            fast,
        }
    }

    #[inline]
    pub(crate) fn safe_div(&self, a: Fx) -> Fx {
        if let Some(fast) = &self.fast {
            if (0..ONE).contains(&a) {
                // floor((a << 32) / d) with a < 2^32: the dividend fits in a u64.
                let q = fast.div(a.unsigned_abs() << 32);
                // A quotient beyond i64 overflows I32F32: `safe_div` gives 0.
                return if q > i64::MAX.unsigned_abs() {
                    0
                } else {
                    q as i64
                };
            }
        }
        self.general.safe_div(I32F32::from_bits(a)).to_bits()
    }
}

/// Divides u16 integers (as I32F32) by the saturating I32F32 sum of such integers: the row and
/// column normalisations of stored weights and classic bonds. Compact (16 bytes), as one is
/// read per entry.
#[derive(Clone, Copy, Debug)]
pub(crate) struct IntNormaliser {
    /// `floor(x * 2^32 / sum)` for an integer sum below 2^31 (a zero sum divides by 1: every
    /// value summed into it is 0 and stays 0, as `safe_div` leaves it). A sum that saturated
    /// I32F32 is marked by `d == 0` (never a valid divisor here).
    exact: Recip,
}

impl IntNormaliser {
    pub(crate) fn new(sum: u64) -> Self {
        match Recip::new(sum) {
            Some(exact) if sum < (1 << 31) => Self { exact },
            Some(_) => Self {
                exact: Recip { d: 0, r: 0 },
            },
            None => Self { exact: Recip::ONE },
        }
    }

    /// `safe_div(x, sum)` in I32F32, for `x <= sum`.
    #[inline]
    pub(crate) fn apply(&self, x: u16) -> Fx {
        if self.exact.d == 0 {
            // The sum saturated to the largest I32F32.
            return safe_div(from_u16(x), i64::MAX);
        }
        // (x << 32) << 32 / (sum << 32) = floor(x * 2^32 / sum) <= 2^32: the cast is exact.
        self.exact.div(u64::from(x) << 32) as i64
    }
}

impl Default for IntNormaliser {
    fn default() -> Self {
        Self::new(0)
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
    let ux = x as u64;
    if ux <= ONE as u64 {
        // A proportion in [0, 1]: x * 65535 < 2^49, and its floor / 2^32 is at most 65535.
        return (ux.wrapping_mul(65535) >> 32) as u16;
    }
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
///
/// The series is `1 + x + sum_{i=2}^{31} t_i` with `t_i = floor(t_{i-1} x) / i` (truncating),
/// on `|x|`, then `1 / result` for negative inputs; 0 and 1 are exact special cases. Within
/// [-20, 20] no step overflows, so the library's error branch is never taken. Terms that reach
/// 0 stay 0, so the loop stops there. The divisions by `i` use prepared reciprocals.
#[derive(Clone, Debug)]
pub(crate) struct Exp {
    /// Reciprocals of 2..=31.
    by: Vec<Recip>,
}

impl Exp {
    pub(crate) fn new() -> Self {
        Self {
            by: (2u64..32).filter_map(Recip::new).collect(),
        }
    }

    pub(crate) fn exp_safe(&self, x: Fx) -> Fx {
        let limit: Fx = 20 << 32;
        let x = x.clamp(limit.wrapping_neg(), limit);
        if x == 0 {
            return ONE;
        }
        if x == ONE {
            return I32F32::from_num(substrate_fixed::transcendental::E).to_bits();
        }
        let operand = x.unsigned_abs();
        let mut result = operand.saturating_add(ONE.unsigned_abs());
        let mut term = operand;
        for by_i in &self.by {
            // term * operand <= 8.6e8 * 2^32 < 2^63, then an exact truncating division by i.
            let product = (u128::from(term).wrapping_mul(u128::from(operand)) >> 32) as u64;
            term = by_i.div(product);
            if term == 0 {
                break;
            }
            result = result.saturating_add(term);
        }
        let result = i64::try_from(result).unwrap_or(i64::MAX);
        if x < 0 {
            safe_div(ONE, result)
        } else {
            result
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_special_points_match_substrate() {
        for v in [
            0,
            1,
            -1,
            ONE,
            -ONE,
            2 * ONE,
            ONE / 2,
            20 * ONE,
            -20 * ONE,
            21 * ONE,
            -(21 * ONE),
        ] {
            let clamped = I32F32::from_bits(v.clamp(-(20 << 32), 20 << 32));
            let expected = substrate_fixed::transcendental::exp::<I32F32, I32F32>(clamped)
                .map(I32F32::to_bits)
                .unwrap();
            assert_eq!(Exp::new().exp_safe(v), expected, "exp({clamped})");
        }
    }

    proptest::proptest! {
        #[test]
        fn div_matches_substrate(a: i64, d: i64, sa in 0u32..64, sd in 0u32..64) {
            let (a, d) = (a >> sa, d >> sd);
            let expected = I32F32::from_bits(a).checked_div(I32F32::from_bits(d)).map_or(0, I32F32::to_bits);
            proptest::prop_assert_eq!(Div::new(d).safe_div(a), expected);
            proptest::prop_assert_eq!(Div::new(d).safe_div(a & 0xFFFF_FFFF), safe_div(a & 0xFFFF_FFFF, d));
        }

        #[test]
        fn exp_matches_substrate(x in -(25i64 << 32)..(25i64 << 32), small in -(1i64 << 33)..(1i64 << 33)) {
            for v in [x, small] {
                let clamped = I32F32::from_bits(v.clamp(-(20 << 32), 20 << 32));
                let expected = substrate_fixed::transcendental::exp::<I32F32, I32F32>(clamped)
                    .map(I32F32::to_bits)
                    .unwrap();
                proptest::prop_assert_eq!(Exp::new().exp_safe(v), expected, "exp({})", clamped);
            }
        }

        #[test]
        fn recip_is_exact(x: u64, d: u64, sd in 0u32..64) {
            let d = (d >> sd).max(1);
            let r = Recip::new(d).unwrap();
            proptest::prop_assert_eq!(r.div(x), x / d);
            proptest::prop_assert_eq!(r.div(u64::MAX), u64::MAX / d);
        }

        #[test]
        fn mul_matches_substrate(a: i64, b: i64, sa in 0u32..64, sb in 0u32..64) {
            let (a, b) = (a >> sa, b >> sb);
            let expected = I32F32::from_bits(a).saturating_mul(I32F32::from_bits(b)).to_bits();
            proptest::prop_assert_eq!(mul(a, b), expected);
            proptest::prop_assert_eq!(mul_unit(a, b), expected);
            let (ua, ub) = (a.rem_euclid(ONE + 1), b.rem_euclid(ONE + 1));
            let unit = I32F32::from_bits(ua).saturating_mul(I32F32::from_bits(ub)).to_bits();
            proptest::prop_assert_eq!(mul_unit(ua, ub), unit);
            proptest::prop_assert_eq!(mul_unit(ONE, ONE), ONE);
            let checked = I32F32::from_bits(a).checked_mul(I32F32::from_bits(b)).map(I32F32::to_bits);
            proptest::prop_assert_eq!(checked_mul(a, b), checked);
        }

        #[test]
        fn u16_conversions_match_primitives(x: u16, y: i64) {
            let p = agora_primitives::fixed::u16_proportion_to_fixed(x).to_bits();
            proptest::prop_assert_eq!(from_u16_proportion(x), p);
            let u = agora_primitives::fixed::fixed_proportion_to_u16(I32F32::from_bits(y));
            proptest::prop_assert_eq!(to_u16(y), u);
            let unit = y.rem_euclid(ONE + 1);
            let u = agora_primitives::fixed::fixed_proportion_to_u16(I32F32::from_bits(unit));
            proptest::prop_assert_eq!(to_u16(unit), u);
        }
    }
}
