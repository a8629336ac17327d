//! Calls and signed transactions.
//!
//! A transaction is `SCALE(SignedTx)`. The signer signs BLAKE2b-256 of the SCALE-encoded
//! [`TxPayload`] with sr25519 under Substrate's context, so any Bittensor key can sign.

use crate::types::Hyperparameter;
use agora_primitives::{
    codec::{Decode, DecodeLimit, Encode},
    crypto::{self, Pair, Signature},
    hashing::blake2_256,
    AccountId, BlockNumber, Hash, NetUid,
};
use serde::{Deserialize, Serialize};

/// What a transaction asks the ledger to do. The signer is the coldkey for balance, subnet,
/// registration and stake calls, and the hotkey for axon and weight calls.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Call {
    /// Moves free balance to `dest`.
    #[codec(index = 0)]
    Transfer {
        /// Recipient.
        dest: AccountId,
        /// Amount, rao.
        amount_rao: u64,
    },
    /// Creates a subnet owned by the signer, locking the current lock cost, and registers
    /// `hotkey` as its uid 0.
    #[codec(index = 1)]
    CreateSubnet {
        /// The owner's hotkey.
        hotkey: AccountId,
    },
    /// Changes one hyperparameter (owner only).
    #[codec(index = 2)]
    SetHyperparameter {
        /// Subnet.
        netuid: NetUid,
        /// Parameter and value.
        param: Hyperparameter,
    },
    /// Registers `hotkey` on the subnet by burning the current registration cost.
    #[codec(index = 3)]
    BurnedRegister {
        /// Subnet.
        netuid: NetUid,
        /// Hotkey to register; it becomes owned by the signer if it was unowned.
        hotkey: AccountId,
    },
    /// Publishes the signing hotkey's endpoint on a subnet.
    #[codec(index = 4)]
    ServeAxon {
        /// Subnet.
        netuid: NetUid,
        /// IPv4 or IPv6 address as text.
        ip: String,
        /// TCP port.
        port: u16,
        /// Wire protocol (0 = HTTP btauth/1).
        protocol: u8,
        /// Software version.
        version: u32,
        /// Digest of an attestation bundle (`agora_tee::AttestationBundle::digest`).
        attestation_digest: Option<[u8; 32]>,
    },
    /// Stakes free balance of the signer onto `hotkey`.
    #[codec(index = 5)]
    AddStake {
        /// Hotkey to stake on.
        hotkey: AccountId,
        /// Amount, rao.
        amount_rao: u64,
    },
    /// Unstakes from `hotkey` back to the signer's free balance.
    #[codec(index = 6)]
    RemoveStake {
        /// Hotkey to unstake from.
        hotkey: AccountId,
        /// Amount, rao.
        amount_rao: u64,
    },
    /// Sets the delegate take of a hotkey the signer owns.
    #[codec(index = 7)]
    SetTake {
        /// Hotkey.
        hotkey: AccountId,
        /// Take, u16 proportion.
        take: u16,
    },
    /// Sets the signing hotkey's weights.
    #[codec(index = 8)]
    SetWeights {
        /// Subnet.
        netuid: NetUid,
        /// Target uids.
        uids: Vec<u16>,
        /// Weight per uid (any scale; stored max-upscaled to 65535).
        values: Vec<u16>,
        /// Weights version key.
        version_key: u64,
    },
    /// Commits to weights revealed later.
    #[codec(index = 9)]
    CommitWeights {
        /// Subnet.
        netuid: NetUid,
        /// See [`commit_hash`].
        commit_hash: Hash,
    },
    /// Reveals committed weights.
    #[codec(index = 10)]
    RevealWeights {
        /// Subnet.
        netuid: NetUid,
        /// Target uids.
        uids: Vec<u16>,
        /// Weight per uid.
        values: Vec<u16>,
        /// The salt used in the commit.
        salt: Vec<u16>,
        /// Weights version key.
        version_key: u64,
    },
}

impl Call {
    /// Weight and axon calls are free, as in subtensor: they are rate-limited instead, and
    /// one that would fail is refused before it reaches a block.
    pub fn is_free(&self) -> bool {
        matches!(
            self,
            Call::ServeAxon { .. }
                | Call::SetWeights { .. }
                | Call::CommitWeights { .. }
                | Call::RevealWeights { .. }
        )
    }

    /// A short name for logs and events.
    pub fn name(&self) -> &'static str {
        match self {
            Call::Transfer { .. } => "transfer",
            Call::CreateSubnet { .. } => "create_subnet",
            Call::SetHyperparameter { .. } => "set_hyperparameter",
            Call::BurnedRegister { .. } => "burned_register",
            Call::ServeAxon { .. } => "serve_axon",
            Call::AddStake { .. } => "add_stake",
            Call::RemoveStake { .. } => "remove_stake",
            Call::SetTake { .. } => "set_take",
            Call::SetWeights { .. } => "set_weights",
            Call::CommitWeights { .. } => "commit_weights",
            Call::RevealWeights { .. } => "reveal_weights",
        }
    }
}

/// The hash a weight commit carries: BLAKE2b-256 of SCALE(hotkey, netuid, uids, values,
/// salt, version_key), the tuple subtensor hashes.
pub fn commit_hash(
    hotkey: &AccountId,
    netuid: NetUid,
    uids: &[u16],
    values: &[u16],
    salt: &[u16],
    version_key: u64,
) -> Hash {
    Hash(blake2_256(
        &(hotkey, netuid, uids, values, salt, version_key).encode(),
    ))
}

/// What the signer signs.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct TxPayload {
    /// The chain's genesis hash: a transaction cannot be replayed on another chain.
    pub genesis_hash: Hash,
    /// The signer's nonce.
    pub nonce: u64,
    /// First block it may be included in.
    pub valid_from: BlockNumber,
    /// Last block it may be included in.
    pub valid_until: BlockNumber,
    /// Extra rao paid (burned) to be ordered first.
    pub tip_rao: u64,
    /// The call.
    pub call: Call,
}

impl TxPayload {
    /// The 32 bytes that are signed.
    pub fn signing_hash(&self) -> [u8; 32] {
        blake2_256(&self.encode())
    }

    /// Signs the payload.
    pub fn sign(self, pair: &Pair) -> SignedTx {
        let signature = pair.sign(&self.signing_hash());
        SignedTx {
            signer: pair.account(),
            signature,
            payload: self,
        }
    }
}

/// A signed transaction.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct SignedTx {
    /// The signing account.
    pub signer: AccountId,
    /// sr25519 signature of [`TxPayload::signing_hash`].
    pub signature: Signature,
    /// The signed content.
    pub payload: TxPayload,
}

/// Deepest nesting a decoded transaction may have; calls are flat, so this only guards
/// against hostile input.
const DECODE_DEPTH_LIMIT: u32 = 16;

impl SignedTx {
    /// The transaction's identity: BLAKE2b-256 of its encoding.
    pub fn hash(&self) -> Hash {
        Hash(blake2_256(&self.encode()))
    }

    /// True when the signature verifies.
    pub fn verify_signature(&self) -> bool {
        crypto::verify(&self.signer, &self.payload.signing_hash(), &self.signature)
    }

    /// Decodes a transaction, refusing trailing bytes.
    pub fn decode_exact(bytes: &[u8]) -> Result<Self, crate::TxError> {
        let mut input = bytes;
        let tx = SignedTx::decode_with_depth_limit(DECODE_DEPTH_LIMIT, &mut input)
            .map_err(|e| crate::TxError::Malformed(e.to_string()))?;
        if !input.is_empty() {
            return Err(crate::TxError::Malformed(format!(
                "{} trailing bytes",
                input.len()
            )));
        }
        Ok(tx)
    }
}
