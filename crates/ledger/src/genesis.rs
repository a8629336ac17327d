//! The genesis block: chain parameters and endowed accounts.
//!
//! The chain's identity (the `genesis_hash` every transaction signs) is the hash of block 0's
//! header, which commits to the genesis state root; so two chains with different names,
//! parameters, endowments or BFT validators never accept each other's transactions.

use crate::block::{tx_root, Block, ExecutedBlock, Header};
use crate::events::BlockEvents;
use crate::kv::StateDiff;
use crate::root::LtHash;
use crate::state::keys;
use crate::types::{
    check_consensus_validators, AccountInfo, ChainParams, ConsensusValidator, Totals,
};
use crate::BlockError;
use agora_primitives::{codec::Encode, crypto::Pair, AccountId, Hash, RAO_PER_TOKEN};
use serde::{Deserialize, Serialize};

/// What block 0 holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisConfig {
    /// A name that makes this chain distinct from others with the same parameters.
    pub chain_name: String,
    /// Block 0's timestamp, ms since the Unix epoch.
    pub timestamp_ms: u64,
    /// Chain parameters.
    pub params: ChainParams,
    /// Accounts funded at genesis, with their free balance in rao.
    pub endowed: Vec<(AccountId, u64)>,
    /// The BFT validators (consensus keys and voting power) that decide the blocks after
    /// genesis. Empty for a chain run by the solo engine, and then not in the state at all,
    /// so that such a chain's genesis is the same as before BFT existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consensus_validators: Vec<ConsensusValidator>,
}

/// The development accounts endowed by [`GenesisConfig::dev`]: Substrate's well-known
/// `//Alice` ... `//Ferdie`, derived from the public development phrase. For local networks
/// only: anyone can derive their secret keys.
pub const DEV_ACCOUNTS: [&str; 6] = [
    "//Alice",
    "//Bob",
    "//Charlie",
    "//Dave",
    "//Eve",
    "//Ferdie",
];

/// Tokens each development account starts with.
pub const DEV_ENDOWMENT_TOKENS: u64 = 1_000_000;

impl GenesisConfig {
    /// A local development chain: the dev accounts funded, short tempos so that epochs come
    /// every few blocks, fast registration.
    pub fn dev() -> Self {
        let mut params = ChainParams::default();
        params.default_hyperparams.tempo = 10;
        params.default_hyperparams.immunity_period = 50;
        params.default_hyperparams.weights_rate_limit = 0;
        params.default_hyperparams.activity_cutoff = 500;
        params.default_hyperparams.max_registrations_per_block = 16;
        params.default_hyperparams.target_registrations_per_interval = 16;
        params.default_hyperparams.min_burn_rao = RAO_PER_TOKEN / 10;
        params.min_lock_cost_rao = 10 * RAO_PER_TOKEN;
        let endowed = DEV_ACCOUNTS
            .iter()
            .filter_map(|uri| Pair::from_uri(uri).ok())
            .map(|p| {
                (
                    p.account(),
                    DEV_ENDOWMENT_TOKENS.saturating_mul(RAO_PER_TOKEN),
                )
            })
            .collect();
        GenesisConfig {
            chain_name: "agora-dev".into(),
            timestamp_ms: 0,
            params,
            endowed,
            consensus_validators: Vec::new(),
        }
    }

    /// Builds block 0 and its state.
    pub fn build(&self) -> Result<ExecutedBlock, BlockError> {
        let mut diff = StateDiff::new();
        let mut issuance = 0u64;
        for (account, rao) in &self.endowed {
            if diff.contains_key(&keys::account(account)) {
                return Err(BlockError::CorruptState(format!(
                    "account {account} endowed twice"
                )));
            }
            issuance = issuance
                .checked_add(*rao)
                .filter(|&i| i <= self.params.supply_cap_rao)
                .ok_or_else(|| {
                    BlockError::CorruptState("endowments exceed the supply cap".into())
                })?;
            diff.insert(
                keys::account(account),
                Some(
                    AccountInfo {
                        nonce: 0,
                        free_rao: *rao,
                    }
                    .encode(),
                ),
            );
        }
        diff.insert(keys::PARAMS.to_vec(), Some(self.params.encode()));
        if !self.consensus_validators.is_empty() {
            check_consensus_validators(&self.consensus_validators)
                .map_err(BlockError::CorruptState)?;
            diff.insert(
                keys::CONSENSUS_VALIDATORS.to_vec(),
                Some(self.consensus_validators.encode()),
            );
        }
        diff.insert(keys::CHAIN_NAME.to_vec(), Some(self.chain_name.encode()));
        diff.insert(
            keys::TOTALS.to_vec(),
            Some(
                Totals {
                    issuance_rao: issuance,
                    ..Totals::default()
                }
                .encode(),
            ),
        );
        let mut acc = LtHash::default();
        acc.apply_diff(&diff, |_| Ok(None))?;
        let header = Header {
            parent_hash: Hash::ZERO,
            number: 0,
            timestamp_ms: self.timestamp_ms,
            tx_root: tx_root(&[]),
            state_root: acc.root(),
        };
        diff.insert(keys::LTHASH.to_vec(), Some(acc.to_bytes()));
        diff.insert(keys::GENESIS.to_vec(), Some(header.hash().encode()));
        Ok(ExecutedBlock {
            block: Block {
                header,
                txs: Vec::new(),
            },
            diff,
            events: BlockEvents::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::{KvStore, MemKv};
    use crate::types::ConsensusKey;

    fn validator(n: u8, power: u64) -> ConsensusValidator {
        ConsensusValidator {
            public_key: ConsensusKey([n; 32]),
            power,
        }
    }

    fn state_of(g: &GenesisConfig) -> MemKv {
        let mut kv = MemKv::default();
        kv.apply(&g.build().unwrap().diff);
        kv
    }

    #[test]
    fn consensus_validators_are_part_of_the_genesis_state() {
        let dev = GenesisConfig::dev();
        let dev_block = dev.build().unwrap();
        assert!(
            !dev_block.diff.contains_key(keys::CONSENSUS_VALIDATORS),
            "a chain without BFT validators stores no set"
        );
        let mut bft = dev.clone();
        bft.consensus_validators = vec![validator(2, 1), validator(1, 3)];
        let bft_block = bft.build().unwrap();
        assert_ne!(
            bft_block.block.header.state_root, dev_block.block.header.state_root,
            "the set is hashed into the state root"
        );
        let kv = state_of(&bft);
        assert_eq!(
            crate::query::consensus_validators(&kv).unwrap(),
            bft.consensus_validators
        );
        assert!(crate::query::consensus_validators(&state_of(&dev))
            .unwrap()
            .is_empty());
        // A different set is a different chain.
        let mut other = bft.clone();
        other.consensus_validators[0].power = 2;
        assert_ne!(
            other.build().unwrap().block.header.hash(),
            bft_block.block.header.hash()
        );
        // JSON round trip, keys as hex.
        let json = serde_json::to_string(&bft).unwrap();
        assert!(json.contains("0x0202"));
        assert_eq!(serde_json::from_str::<GenesisConfig>(&json).unwrap(), bft);
        let _ = kv.get(keys::PARAMS).unwrap();
    }

    #[test]
    fn invalid_consensus_validator_sets_are_refused() {
        for set in [
            vec![validator(1, 1), validator(1, 2)],
            vec![validator(1, 0)],
            vec![validator(1, u64::MAX), validator(2, 1)],
        ] {
            let mut g = GenesisConfig::dev();
            g.consensus_validators = set;
            assert!(g.build().is_err());
        }
    }
}
