//! Why a transaction or a block is rejected. Every [`TxError`] has a stable numeric code
//! (never reused or renumbered) and a message a user can act on.

use crate::kv::KvError;

/// A transaction's failure. A transaction that fails changes nothing, except where
/// [`TxError::charges_fee`] says the fee was kept (the call ran and failed after the checks
/// that guard the fee, as in Substrate).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    // --- 1xx: the envelope ---
    /// The bytes are not a SCALE-encoded signed transaction.
    #[error("malformed transaction: {0}")]
    Malformed(String),
    /// The signature does not verify for the signer over the payload.
    #[error("bad signature")]
    BadSignature,
    /// Signed for a different chain (genesis hash mismatch).
    #[error("transaction is for another chain (genesis {expected} expected)")]
    WrongChain {
        /// This chain's genesis hash, hex.
        expected: String,
    },
    /// The nonce was already used.
    #[error("stale nonce {got}: the account's next nonce is {expected}")]
    StaleNonce {
        /// The nonce in the transaction.
        got: u64,
        /// The account's next nonce.
        expected: u64,
    },
    /// The nonce is ahead of the account's next nonce (it may become valid later).
    #[error("future nonce {got}: the account's next nonce is {expected}")]
    FutureNonce {
        /// The nonce in the transaction.
        got: u64,
        /// The account's next nonce.
        expected: u64,
    },
    /// The block is outside the transaction's validity window.
    #[error("transaction valid for blocks {from}..={until}, current block is {block}")]
    OutsideWindow {
        /// First valid block.
        from: u64,
        /// Last valid block.
        until: u64,
        /// The block it would be included in.
        block: u64,
    },
    /// The signer cannot pay the fee and tip.
    #[error("cannot pay fee of {fee} rao (free balance {free} rao)")]
    CannotPayFee {
        /// Fee plus tip, rao.
        fee: u64,
        /// Free balance, rao.
        free: u64,
    },
    /// The transaction is larger than the chain accepts.
    #[error("transaction of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Encoded size.
        size: usize,
        /// Limit.
        max: usize,
    },

    // --- 2xx: balances ---
    /// Not enough free balance for the operation.
    #[error("insufficient balance: need {need} rao, have {have} rao")]
    InsufficientBalance {
        /// Needed, rao.
        need: u64,
        /// Available, rao.
        have: u64,
    },
    /// The operation would overflow an amount.
    #[error("amount overflow")]
    Overflow,
    /// Zero amounts are refused (they would only burn a fee).
    #[error("amount must be greater than zero")]
    ZeroAmount,
    /// Transfers to oneself are refused.
    #[error("cannot transfer to yourself")]
    SelfTransfer,

    // --- 3xx: subnets ---
    /// No subnet with this netuid.
    #[error("subnet {0} does not exist")]
    UnknownSubnet(u16),
    /// The signer is not the subnet's owner.
    #[error("only the owner of subnet {0} may do this")]
    NotSubnetOwner(u16),
    /// A hyperparameter value outside its allowed range.
    #[error("invalid value for {name}: {reason}")]
    InvalidHyperparameter {
        /// The parameter's name.
        name: &'static str,
        /// Why the value is refused.
        reason: String,
    },
    /// Every netuid is taken.
    #[error("the maximum number of subnets is reached")]
    TooManySubnets,

    // --- 4xx: neurons ---
    /// The hotkey is already registered on this subnet.
    #[error("hotkey already registered on subnet {0}")]
    AlreadyRegistered(u16),
    /// The hotkey belongs to another coldkey.
    #[error("hotkey is owned by another coldkey")]
    HotkeyOwnedByOther,
    /// The subnet is full and every neuron is immune.
    #[error("subnet {0} is full and every neuron is still immune")]
    SubnetFull(u16),
    /// Too many registrations this interval.
    #[error("too many registrations on subnet {0} this interval, try later")]
    TooManyRegistrations(u16),
    /// The hotkey is not registered on the subnet.
    #[error("hotkey not registered on subnet {0}")]
    NotRegistered(u16),
    /// A uid that does not exist on the subnet.
    #[error("uid {uid} does not exist on subnet {netuid}")]
    UnknownUid {
        /// Subnet.
        netuid: u16,
        /// The uid.
        uid: u16,
    },
    /// An axon endpoint that cannot be served (bad port, unroutable address).
    #[error("invalid axon: {0}")]
    InvalidAxon(String),

    // --- 5xx: stake ---
    /// The hotkey has never been registered, so it has no owner to stake to.
    #[error("hotkey is not registered anywhere")]
    UnknownHotkey,
    /// Not enough stake from this coldkey on this hotkey.
    #[error("insufficient stake: need {need} rao, have {have} rao")]
    InsufficientStake {
        /// Needed, rao.
        need: u64,
        /// Staked, rao.
        have: u64,
    },
    /// Only the hotkey's owner may set its take.
    #[error("only the hotkey's owner coldkey may do this")]
    NotHotkeyOwner,
    /// A take above the chain's maximum.
    #[error("take {got} exceeds the maximum {max} (u16 proportion)")]
    TakeTooHigh {
        /// Requested.
        got: u16,
        /// Maximum.
        max: u16,
    },

    // --- 6xx: weights ---
    /// `uids` and `values` differ in length.
    #[error("uids and values have different lengths")]
    WeightLengthMismatch,
    /// A uid appears twice.
    #[error("duplicate uid {0} in weights")]
    DuplicateUid(u16),
    /// Fewer weights than the subnet requires.
    #[error("at least {min} non-zero weights required, got {got}")]
    TooFewWeights {
        /// Required.
        min: u16,
        /// Given.
        got: usize,
    },
    /// The weights version key is older than the subnet requires.
    #[error("weights version {got} is older than the required {required}")]
    IncorrectWeightVersion {
        /// Given.
        got: u64,
        /// Required.
        required: u64,
    },
    /// Setting weights again too soon.
    #[error("weights set too soon: wait until block {next}")]
    WeightsRateLimited {
        /// The first block at which weights may be set again.
        next: u64,
    },
    /// Setting weights requires a validator permit.
    #[error("no validator permit on subnet {0}")]
    NoValidatorPermit(u16),
    /// Direct `set_weights` on a commit-reveal subnet, or commit-reveal on one without.
    #[error("commit-reveal is {state} on subnet {netuid}")]
    CommitRevealMismatch {
        /// Subnet.
        netuid: u16,
        /// "enabled" or "disabled".
        state: &'static str,
    },
    /// No pending commit matches the reveal.
    #[error("no commit matches this reveal")]
    NoMatchingCommit,
    /// The matching commit cannot be revealed yet.
    #[error("reveal too early: wait until block {from}")]
    RevealTooEarly {
        /// First block of the reveal window.
        from: u64,
    },
    /// The matching commit's reveal window has passed.
    #[error("commit expired: its reveal window ended at block {until}")]
    RevealExpired {
        /// Last block of the reveal window.
        until: u64,
    },
    /// Too many unrevealed commits.
    #[error("too many pending commits (at most {0})")]
    TooManyCommits(usize),
}

impl TxError {
    /// The stable numeric code of this error.
    pub fn code(&self) -> u16 {
        use TxError::*;
        match self {
            Malformed(_) => 100,
            BadSignature => 101,
            WrongChain { .. } => 102,
            StaleNonce { .. } => 103,
            FutureNonce { .. } => 104,
            OutsideWindow { .. } => 105,
            CannotPayFee { .. } => 106,
            TooLarge { .. } => 107,
            InsufficientBalance { .. } => 200,
            Overflow => 201,
            ZeroAmount => 202,
            SelfTransfer => 203,
            UnknownSubnet(_) => 300,
            NotSubnetOwner(_) => 301,
            InvalidHyperparameter { .. } => 302,
            TooManySubnets => 303,
            AlreadyRegistered(_) => 400,
            HotkeyOwnedByOther => 401,
            SubnetFull(_) => 402,
            TooManyRegistrations(_) => 403,
            NotRegistered(_) => 404,
            UnknownUid { .. } => 405,
            InvalidAxon(_) => 406,
            UnknownHotkey => 500,
            InsufficientStake { .. } => 501,
            NotHotkeyOwner => 502,
            TakeTooHigh { .. } => 503,
            WeightLengthMismatch => 600,
            DuplicateUid(_) => 601,
            TooFewWeights { .. } => 602,
            IncorrectWeightVersion { .. } => 603,
            WeightsRateLimited { .. } => 604,
            NoValidatorPermit(_) => 605,
            CommitRevealMismatch { .. } => 606,
            NoMatchingCommit => 607,
            RevealTooEarly { .. } => 608,
            RevealExpired { .. } => 609,
            TooManyCommits(_) => 610,
        }
    }

    /// True for envelope failures (codes 1xx): the transaction cannot enter a block at all.
    pub fn is_envelope(&self) -> bool {
        self.code() < 200
    }
}

/// Why a whole block is refused or could not be executed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// The storage underneath failed.
    #[error(transparent)]
    Storage(#[from] KvError),
    /// The state is missing or corrupt (e.g. no genesis).
    #[error("corrupt state: {0}")]
    CorruptState(String),
    /// The block does not extend the current head.
    #[error("block {got} does not extend head {head}")]
    NotNextBlock {
        /// The block's number.
        got: u64,
        /// The current head.
        head: u64,
    },
    /// The parent hash does not match the head.
    #[error("parent hash mismatch")]
    WrongParent,
    /// A transaction in the block fails envelope checks.
    #[error("transaction {index} is invalid: {error}")]
    InvalidTx {
        /// Position in the block.
        index: usize,
        /// Why.
        error: TxError,
    },
    /// Re-execution produced a different state root than the header commits to.
    #[error("state root mismatch at block {number}: header {header}, computed {computed}")]
    StateRootMismatch {
        /// Block number.
        number: u64,
        /// Root in the header.
        header: String,
        /// Root computed.
        computed: String,
    },
    /// The header's transaction root or timestamp is inconsistent.
    #[error("invalid header: {0}")]
    InvalidHeader(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique() {
        let all = [
            TxError::Malformed(String::new()),
            TxError::BadSignature,
            TxError::WrongChain {
                expected: String::new(),
            },
            TxError::StaleNonce {
                got: 0,
                expected: 0,
            },
            TxError::FutureNonce {
                got: 0,
                expected: 0,
            },
            TxError::OutsideWindow {
                from: 0,
                until: 0,
                block: 0,
            },
            TxError::CannotPayFee { fee: 0, free: 0 },
            TxError::TooLarge { size: 0, max: 0 },
            TxError::InsufficientBalance { need: 0, have: 0 },
            TxError::Overflow,
            TxError::ZeroAmount,
            TxError::SelfTransfer,
            TxError::UnknownSubnet(0),
            TxError::NotSubnetOwner(0),
            TxError::InvalidHyperparameter {
                name: "",
                reason: String::new(),
            },
            TxError::TooManySubnets,
            TxError::AlreadyRegistered(0),
            TxError::HotkeyOwnedByOther,
            TxError::SubnetFull(0),
            TxError::TooManyRegistrations(0),
            TxError::NotRegistered(0),
            TxError::UnknownUid { netuid: 0, uid: 0 },
            TxError::InvalidAxon(String::new()),
            TxError::UnknownHotkey,
            TxError::InsufficientStake { need: 0, have: 0 },
            TxError::NotHotkeyOwner,
            TxError::TakeTooHigh { got: 0, max: 0 },
            TxError::WeightLengthMismatch,
            TxError::DuplicateUid(0),
            TxError::TooFewWeights { min: 0, got: 0 },
            TxError::IncorrectWeightVersion {
                got: 0,
                required: 0,
            },
            TxError::WeightsRateLimited { next: 0 },
            TxError::NoValidatorPermit(0),
            TxError::CommitRevealMismatch {
                netuid: 0,
                state: "",
            },
            TxError::NoMatchingCommit,
            TxError::RevealTooEarly { from: 0 },
            TxError::RevealExpired { until: 0 },
            TxError::TooManyCommits(0),
        ];
        let mut codes: Vec<u16> = all.iter().map(TxError::code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
    }
}
