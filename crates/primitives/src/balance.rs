use parity_scale_codec::{Decode, Encode, MaxEncodedLen};
use serde::{Deserialize, Serialize};
use std::{fmt, str::FromStr};

/// Rao in one token (Bittensor's 1 TAO = 10^9 rao).
pub const RAO_PER_TOKEN: u64 = 1_000_000_000;

/// An amount in rao. Only checked and saturating arithmetic is offered: an amount never wraps.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Encode,
    Decode,
    MaxEncodedLen,
    Serialize,
    Deserialize,
)]
#[serde(transparent)]
pub struct Balance(pub u64);

impl Balance {
    /// Zero rao.
    pub const ZERO: Balance = Balance(0);

    /// An amount of rao.
    pub const fn from_rao(rao: u64) -> Self {
        Self(rao)
    }

    /// Whole tokens, or `None` if that overflows `u64` rao.
    pub const fn from_tokens(tokens: u64) -> Option<Self> {
        match tokens.checked_mul(RAO_PER_TOKEN) {
            Some(rao) => Some(Self(rao)),
            None => None,
        }
    }

    /// The amount in rao.
    pub const fn rao(self) -> u64 {
        self.0
    }

    /// `self + rhs`, or `None` on overflow.
    pub fn checked_add(self, rhs: Balance) -> Option<Balance> {
        self.0.checked_add(rhs.0).map(Balance)
    }

    /// `self - rhs`, or `None` if `rhs` is larger.
    pub fn checked_sub(self, rhs: Balance) -> Option<Balance> {
        self.0.checked_sub(rhs.0).map(Balance)
    }

    /// `self + rhs`, capped at `u64::MAX` rao.
    pub fn saturating_add(self, rhs: Balance) -> Balance {
        Balance(self.0.saturating_add(rhs.0))
    }

    /// `self - rhs`, floored at zero.
    pub fn saturating_sub(self, rhs: Balance) -> Balance {
        Balance(self.0.saturating_sub(rhs.0))
    }

    /// True for zero rao.
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }
}

/// Shown as tokens with all nine decimals, e.g. `1.500000000`.
impl fmt::Display for Balance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / RAO_PER_TOKEN;
        let frac = self.0 % RAO_PER_TOKEN;
        write!(f, "{whole}.{frac:09}")
    }
}

/// Why a token amount could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BalanceParseError {
    /// Not of the form `123`, `123.45` or `.5`.
    #[error("'{0}' is not an amount: expected tokens such as 12 or 0.25")]
    Malformed(String),
    /// More than nine decimals: smaller than one rao.
    #[error("'{0}' has more than 9 decimals (1 rao = 0.000000001)")]
    TooPrecise(String),
    /// Larger than `u64::MAX` rao.
    #[error("'{0}' is larger than the largest amount (18446744073.709551615)")]
    Overflow(String),
}

/// Parses an amount in tokens (`"1.5"` is 1_500_000_000 rao), exactly, without floats.
impl FromStr for Balance {
    type Err = BalanceParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let (whole, frac) = match t.split_once('.') {
            Some((w, f)) => (w, f),
            None => (t, ""),
        };
        let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        if (whole.is_empty() && frac.is_empty()) || !digits(whole) || !digits(frac) {
            return Err(BalanceParseError::Malformed(s.to_owned()));
        }
        if frac.len() > 9 {
            return Err(BalanceParseError::TooPrecise(s.to_owned()));
        }
        let overflow = || BalanceParseError::Overflow(s.to_owned());
        let whole_rao = if whole.is_empty() {
            0
        } else {
            whole
                .parse::<u64>()
                .map_err(|_| overflow())?
                .checked_mul(RAO_PER_TOKEN)
                .ok_or_else(overflow)?
        };
        let frac_rao = if frac.is_empty() {
            0
        } else {
            // At most 9 digits, so this fits and the scale below does not overflow.
            let v: u64 = frac.parse().map_err(|_| overflow())?;
            let scale = 10u64.pow(9 - frac.len() as u32);
            v * scale
        };
        whole_rao
            .checked_add(frac_rao)
            .map(Balance)
            .ok_or_else(overflow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tokens_exactly() {
        assert_eq!("1.5".parse::<Balance>(), Ok(Balance(1_500_000_000)));
        assert_eq!("0.000000001".parse::<Balance>(), Ok(Balance(1)));
        assert_eq!(".25".parse::<Balance>(), Ok(Balance(250_000_000)));
        assert_eq!("7".parse::<Balance>(), Ok(Balance(7_000_000_000)));
        assert_eq!(
            "18446744073.709551615".parse::<Balance>(),
            Ok(Balance(u64::MAX))
        );
    }

    #[test]
    fn rejects_bad_amounts() {
        for bad in ["", ".", "-1", "1e9", "1.2.3", "abc", " 1 2"] {
            assert!(
                matches!(bad.parse::<Balance>(), Err(BalanceParseError::Malformed(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            "0.0000000001".parse::<Balance>(),
            Err(BalanceParseError::TooPrecise(_))
        ));
        assert!(matches!(
            "18446744073.709551616".parse::<Balance>(),
            Err(BalanceParseError::Overflow(_))
        ));
    }

    proptest::proptest! {
        #[test]
        fn display_round_trips(rao: u64) {
            let b = Balance(rao);
            proptest::prop_assert_eq!(b.to_string().parse::<Balance>(), Ok(b));
        }
    }
}
