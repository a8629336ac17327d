//! New BIP39 mnemonics (English word list), as `btcli wallet create --n-words` makes them.

use crate::WalletError;
use rand::RngCore;
use std::fmt;
use std::str::FromStr;
use zeroize::Zeroizing;

/// How many words a new mnemonic has. Each step of three words adds 32 bits of entropy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WordCount {
    /// 128 bits of entropy, bittensor's default.
    #[default]
    Twelve,
    /// 160 bits.
    Fifteen,
    /// 192 bits.
    Eighteen,
    /// 224 bits.
    TwentyOne,
    /// 256 bits.
    TwentyFour,
}

impl WordCount {
    /// Every allowed count, smallest first.
    pub const ALL: [WordCount; 5] = [
        WordCount::Twelve,
        WordCount::Fifteen,
        WordCount::Eighteen,
        WordCount::TwentyOne,
        WordCount::TwentyFour,
    ];

    /// The number of words.
    pub fn words(self) -> usize {
        match self {
            WordCount::Twelve => 12,
            WordCount::Fifteen => 15,
            WordCount::Eighteen => 18,
            WordCount::TwentyOne => 21,
            WordCount::TwentyFour => 24,
        }
    }

    /// The count for `n` words, if BIP39 allows it.
    pub fn from_words(n: usize) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.words() == n)
    }

    fn entropy_bytes(self) -> usize {
        // 32 bits of entropy for every 3 words (BIP39: ENT = 32 * words / 3 bits).
        self.words() * 4 / 3
    }
}

impl fmt::Display for WordCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.words())
    }
}

impl FromStr for WordCount {
    type Err = WalletError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim()
            .parse::<usize>()
            .ok()
            .and_then(Self::from_words)
            .ok_or_else(|| {
                WalletError::InvalidInput(format!(
                    "'{s}' words: a mnemonic has 12, 15, 18, 21 or 24 words"
                ))
            })
    }
}

/// A fresh mnemonic from the operating system's random generator.
pub fn generate_mnemonic(count: WordCount) -> Zeroizing<String> {
    let mut entropy = Zeroizing::new([0u8; 32]);
    let entropy = &mut entropy[..count.entropy_bytes()];
    rand::rngs::OsRng.fill_bytes(entropy);
    match bip39::Mnemonic::from_entropy(entropy) {
        Ok(m) => Zeroizing::new(m.to_string()),
        // 16 to 32 bytes in steps of 4 is exactly what BIP39 accepts.
        Err(e) => unreachable!("BIP39 rejected {} bytes of entropy: {e}", entropy.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Keypair;

    #[test]
    fn every_count_makes_a_valid_phrase_of_that_length() {
        for count in WordCount::ALL {
            let phrase = generate_mnemonic(count);
            assert_eq!(phrase.split(' ').count(), count.words());
            Keypair::from_phrase(&phrase).unwrap();
        }
        assert_ne!(
            generate_mnemonic(WordCount::Twelve),
            generate_mnemonic(WordCount::Twelve)
        );
    }

    #[test]
    fn parses_counts() {
        assert_eq!("24".parse::<WordCount>().unwrap(), WordCount::TwentyFour);
        assert_eq!(WordCount::default().words(), 12);
        assert!("13".parse::<WordCount>().is_err());
        assert!("x".parse::<WordCount>().is_err());
    }
}
