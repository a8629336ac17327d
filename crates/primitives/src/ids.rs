use parity_scale_codec::{Decode, Encode, MaxEncodedLen};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Height of a block; genesis is block 0.
pub type BlockNumber = u64;

/// Identifies a subnet (Bittensor's `netuid`).
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
pub struct NetUid(pub u16);

/// A neuron's slot within one subnet (Bittensor's `uid`).
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
pub struct Uid(pub u16);

impl fmt::Display for NetUid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<u16> for NetUid {
    fn from(v: u16) -> Self {
        Self(v)
    }
}

impl From<u16> for Uid {
    fn from(v: u16) -> Self {
        Self(v)
    }
}

impl Uid {
    /// The uid as an index into per-uid vectors.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}
