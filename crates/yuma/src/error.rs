//! The one error type of the crate.

/// Why an epoch's inputs were rejected. The epoch never returns a partial or wrong answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum YumaError {
    /// A per-uid vector does not have one entry per uid.
    #[error("{field} has length {actual}, expected n = {expected}")]
    LengthMismatch {
        /// The input field.
        field: &'static str,
        /// `n`.
        expected: usize,
        /// The field's length.
        actual: usize,
    },
    /// A uid in a weight or bond row is not below `n`.
    #[error("{field} row {row} refers to uid {uid}, but n = {n}")]
    UidOutOfRange {
        /// The input field.
        field: &'static str,
        /// The row's uid.
        row: usize,
        /// The offending uid.
        uid: u16,
        /// `n`.
        n: u16,
    },
    /// A weight or bond row names the same uid twice.
    #[error("{field} row {row} names uid {uid} twice")]
    DuplicateUid {
        /// The input field.
        field: &'static str,
        /// The row's uid.
        row: usize,
        /// The repeated uid.
        uid: u16,
    },
    /// The owner uid is not below `n`.
    #[error("owner uid {owner} is not below n = {n}")]
    OwnerOutOfRange {
        /// The owner uid given.
        owner: u16,
        /// `n`.
        n: u16,
    },
    /// A uid's stake is negative.
    #[error("stake of uid {uid} is negative")]
    NegativeStake {
        /// The uid.
        uid: usize,
    },
}
