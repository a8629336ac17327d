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

    proptest::proptest! {
        #[test]
        fn u16_round_trip_loses_at_most_one(x: u16) {
            let back = fixed_proportion_to_u16(u16_proportion_to_fixed(x));
            proptest::prop_assert!(back == x || back + 1 == x);
        }
    }
}
