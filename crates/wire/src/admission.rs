//! Admission by metagraph: who may call this server, and how urgently they are served.

use crate::error::WireError;
use agora_primitives::{AccountId, Uid};
use std::{collections::HashMap, sync::Arc};

/// What the metagraph says about one hotkey on this server's subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeuronRole {
    /// The hotkey's uid.
    pub uid: Uid,
    /// Stake behind the hotkey, in rao.
    pub stake_rao: u64,
    /// Whether the hotkey holds a validator permit.
    pub validator_permit: bool,
}

/// A read-only view of one subnet's metagraph. The client crate implements it from its
/// metagraph cache; [`StaticMetagraph`] serves tests and fixed deployments.
///
/// Contract: `neuron` is called once per request on the hot path, so it must not block on I/O;
/// it answers from memory (a lock-free snapshot or a short read lock).
pub trait MetagraphView: Send + Sync + std::fmt::Debug {
    /// The hotkey's role on this subnet, or `None` if it has no uid.
    fn neuron(&self, hotkey: &AccountId) -> Option<NeuronRole>;
}

impl<T: MetagraphView + ?Sized> MetagraphView for Arc<T> {
    fn neuron(&self, hotkey: &AccountId) -> Option<NeuronRole> {
        (**self).neuron(hotkey)
    }
}

/// A fixed metagraph held in a map.
#[derive(Debug, Clone, Default)]
pub struct StaticMetagraph(pub HashMap<AccountId, NeuronRole>);

impl MetagraphView for StaticMetagraph {
    fn neuron(&self, hotkey: &AccountId) -> Option<NeuronRole> {
        self.0.get(hotkey).copied()
    }
}

/// Which callers a server admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionPolicy {
    /// Refuse hotkeys with no uid on the subnet.
    pub require_registered: bool,
    /// Refuse hotkeys without a validator permit (implies registered).
    pub require_validator_permit: bool,
    /// Refuse hotkeys with less stake than this, in rao (above zero implies registered).
    pub min_stake_rao: u64,
}

impl AdmissionPolicy {
    /// Anyone who signs correctly (gateways facing the public, tests).
    pub const fn open() -> Self {
        AdmissionPolicy {
            require_registered: false,
            require_validator_permit: false,
            min_stake_rao: 0,
        }
    }

    /// Any hotkey registered on the subnet.
    pub const fn registered() -> Self {
        AdmissionPolicy {
            require_registered: true,
            require_validator_permit: false,
            min_stake_rao: 0,
        }
    }

    /// Permitted validators with at least `min_stake_rao` stake: what a miner's axon admits.
    pub const fn validators(min_stake_rao: u64) -> Self {
        AdmissionPolicy {
            require_registered: true,
            require_validator_permit: true,
            min_stake_rao,
        }
    }

    /// Applies the policy to `hotkey`: its role if admitted (`None` for an unregistered hotkey
    /// under an open policy).
    pub fn admit(
        &self,
        metagraph: &dyn MetagraphView,
        hotkey: &AccountId,
    ) -> Result<Option<NeuronRole>, WireError> {
        let needs_uid =
            self.require_registered || self.require_validator_permit || self.min_stake_rao > 0;
        let role = metagraph.neuron(hotkey);
        let Some(r) = role else {
            return if needs_uid {
                Err(WireError::NotRegistered)
            } else {
                Ok(None)
            };
        };
        if self.require_validator_permit && !r.validator_permit {
            return Err(WireError::NoValidatorPermit);
        }
        if r.stake_rao < self.min_stake_rao {
            return Err(WireError::InsufficientStake {
                stake_rao: r.stake_rao,
                min_stake_rao: self.min_stake_rao,
            });
        }
        Ok(role)
    }
}

impl Default for AdmissionPolicy {
    /// [`AdmissionPolicy::registered`].
    fn default() -> Self {
        AdmissionPolicy::registered()
    }
}

/// Computes a caller's priority (higher is served first under load) from its hotkey and role.
pub type PriorityFn = Arc<dyn Fn(&AccountId, Option<&NeuronRole>) -> u64 + Send + Sync>;

/// The default priority: the caller's stake in rao, 0 when unregistered.
pub fn stake_priority(_hotkey: &AccountId, role: Option<&NeuronRole>) -> u64 {
    role.map_or(0, |r| r.stake_rao)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph() -> StaticMetagraph {
        let mut m = HashMap::new();
        let role = |uid, stake_rao, validator_permit| NeuronRole {
            uid: Uid(uid),
            stake_rao,
            validator_permit,
        };
        m.insert(AccountId([1; 32]), role(0, 1_000, true));
        m.insert(AccountId([2; 32]), role(1, 5_000, false));
        m.insert(AccountId([3; 32]), role(2, 10, true));
        StaticMetagraph(m)
    }

    #[test]
    fn policies() {
        let g = graph();
        let v = AdmissionPolicy::validators(100);
        assert!(v.admit(&g, &AccountId([1; 32])).unwrap().is_some());
        assert!(matches!(
            v.admit(&g, &AccountId([2; 32])),
            Err(WireError::NoValidatorPermit)
        ));
        assert!(matches!(
            v.admit(&g, &AccountId([3; 32])),
            Err(WireError::InsufficientStake {
                stake_rao: 10,
                min_stake_rao: 100
            })
        ));
        assert!(matches!(
            v.admit(&g, &AccountId([9; 32])),
            Err(WireError::NotRegistered)
        ));
        assert!(AdmissionPolicy::registered()
            .admit(&g, &AccountId([2; 32]))
            .is_ok());
        assert_eq!(
            AdmissionPolicy::open()
                .admit(&g, &AccountId([9; 32]))
                .unwrap(),
            None
        );
    }
}
