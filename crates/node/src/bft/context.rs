//! The consensus types Malachite is generic over: heights are block numbers, a value is a
//! block hash (the block itself travels as proposal parts and in sync responses), votes
//! and proposals are signed with ed25519 consensus keys.

use agora_primitives::codec::{Decode, Encode};
use agora_primitives::Hash;
use arc_malachitebft_app_channel::app::types::core::{
    self as mc, LinearTimeouts, NilOrVal, Round, SignedExtension, SignedMessage, ValidatorProof,
    VoteExtensionScope, VoteType, VotingPower,
};
use arc_malachitebft_app_channel::{Signer, Verifier};
use arc_malachitebft_signing_ed25519::{Ed25519, PrivateKey, PublicKey, Signature};
use async_trait::async_trait;
use std::fmt;

/// A consensus height: the number of the block being decided (block 0 is genesis).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
pub struct Height(pub u64);

impl fmt::Display for Height {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl mc::Height for Height {
    const ZERO: Self = Height(0);
    const INITIAL: Self = Height(1);

    fn increment_by(&self, n: u64) -> Self {
        Height(self.0.saturating_add(n))
    }

    fn decrement_by(&self, n: u64) -> Option<Self> {
        self.0.checked_sub(n).map(Height)
    }

    fn as_u64(&self) -> u64 {
        self.0
    }
}

/// A validator's address: its ed25519 consensus public key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
pub struct Address(pub [u8; 32]);

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl mc::Address for Address {}

impl Address {
    /// The address of a public key.
    pub fn of(key: &PublicKey) -> Self {
        Address(*key.as_bytes())
    }
}

/// A validator: consensus key and voting power.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validator {
    /// Its address (the public key's bytes).
    pub address: Address,
    /// Its consensus key.
    pub public_key: PublicKey,
    /// Its weight in votes.
    pub voting_power: VotingPower,
}

impl mc::Validator<AgoraContext> for Validator {
    fn address(&self) -> &Address {
        &self.address
    }

    fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    fn voting_power(&self) -> VotingPower {
        self.voting_power
    }
}

/// The validators of a height, sorted by address so that every node indexes them alike.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatorSet {
    validators: Vec<Validator>,
}

impl ValidatorSet {
    /// A set from validators in any order; duplicates (same key) and zero powers are
    /// refused.
    pub fn new(mut validators: Vec<Validator>) -> Result<Self, String> {
        if validators.is_empty() {
            return Err("the validator set is empty".into());
        }
        validators.sort_by_key(|v| v.address);
        for w in validators.windows(2) {
            if w[0].address == w[1].address {
                return Err(format!("validator {} is listed twice", w[0].address));
            }
        }
        if let Some(v) = validators.iter().find(|v| v.voting_power == 0) {
            return Err(format!("validator {} has no voting power", v.address));
        }
        let total = validators
            .iter()
            .try_fold(0u64, |acc, v| acc.checked_add(v.voting_power));
        if total.is_none() {
            return Err("total voting power overflows".into());
        }
        Ok(ValidatorSet { validators })
    }

    /// The validators, by address.
    pub fn validators(&self) -> &[Validator] {
        &self.validators
    }
}

impl mc::ValidatorSet<AgoraContext> for ValidatorSet {
    fn count(&self) -> usize {
        self.validators.len()
    }

    fn total_voting_power(&self) -> VotingPower {
        self.validators.iter().map(|v| v.voting_power).sum()
    }

    fn get_by_address(&self, address: &Address) -> Option<&Validator> {
        self.validators
            .binary_search_by_key(address, |v| v.address)
            .ok()
            .and_then(|i| self.validators.get(i))
    }

    fn get_by_index(&self, index: usize) -> Option<&Validator> {
        self.validators.get(index)
    }
}

/// The value consensus decides: the hash of a block header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
pub struct BlockValue(pub Hash);

impl mc::Value for BlockValue {
    type Id = Hash;

    fn id(&self) -> Hash {
        self.0
    }
}

/// A proposal for a height and round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    /// Height.
    pub height: Height,
    /// Round.
    pub round: Round,
    /// The proposed block's hash.
    pub value: BlockValue,
    /// The round in which the value was locked, or nil.
    pub pol_round: Round,
    /// The proposer.
    pub proposer: Address,
}

impl mc::Proposal<AgoraContext> for Proposal {
    fn height(&self) -> Height {
        self.height
    }

    fn round(&self) -> Round {
        self.round
    }

    fn value(&self) -> &BlockValue {
        &self.value
    }

    fn take_value(self) -> BlockValue {
        self.value
    }

    fn pol_round(&self) -> Round {
        self.pol_round
    }

    fn validator_address(&self) -> &Address {
        &self.proposer
    }
}

/// A prevote or precommit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vote {
    /// Prevote or precommit.
    pub vote_type: VoteType,
    /// Height.
    pub height: Height,
    /// Round.
    pub round: Round,
    /// The block hash voted for, or nil.
    pub value: NilOrVal<Hash>,
    /// The voter.
    pub validator: Address,
    /// A signed vote extension (unused: extensions are disabled).
    pub extension: Option<SignedExtension<AgoraContext>>,
}

impl mc::Vote<AgoraContext> for Vote {
    fn height(&self) -> Height {
        self.height
    }

    fn round(&self) -> Round {
        self.round
    }

    fn value(&self) -> &NilOrVal<Hash> {
        &self.value
    }

    fn take_value(self) -> NilOrVal<Hash> {
        self.value
    }

    fn vote_type(&self) -> VoteType {
        self.vote_type
    }

    fn validator_address(&self) -> &Address {
        &self.validator
    }

    fn extension(&self) -> Option<&SignedExtension<AgoraContext>> {
        self.extension.as_ref()
    }

    fn take_extension(&mut self) -> Option<SignedExtension<AgoraContext>> {
        self.extension.take()
    }

    fn extend(self, extension: SignedExtension<AgoraContext>) -> Self {
        Vote {
            extension: Some(extension),
            ..self
        }
    }
}

/// One piece of a streamed block proposal: a header naming the height, round and
/// proposer, chunks of the SCALE-encoded block, and a trailer with the block's hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProposalPart {
    /// First part.
    Init {
        /// Height.
        height: Height,
        /// Round.
        round: Round,
        /// The proposer.
        proposer: Address,
        /// The round the value was locked in, or nil.
        valid_round: Round,
    },
    /// A chunk of the encoded block.
    Data(Vec<u8>),
    /// Last part: the hash the assembled block must have.
    Fin(Hash),
}

impl mc::ProposalPart<AgoraContext> for ProposalPart {
    fn is_first(&self) -> bool {
        matches!(self, ProposalPart::Init { .. })
    }

    fn is_last(&self) -> bool {
        matches!(self, ProposalPart::Fin(_))
    }
}

/// Agora's consensus context.
#[derive(Clone, Copy, Debug, Default)]
pub struct AgoraContext;

impl mc::Context for AgoraContext {
    type Address = Address;
    type Height = Height;
    type ProposalPart = ProposalPart;
    type Proposal = Proposal;
    type Validator = Validator;
    type ValidatorSet = ValidatorSet;
    type Timeouts = LinearTimeouts;
    type Value = BlockValue;
    type Vote = Vote;
    type Extension = Vec<u8>;
    type SigningScheme = Ed25519;

    fn select_proposer<'a>(
        &self,
        validator_set: &'a ValidatorSet,
        height: Height,
        round: Round,
    ) -> &'a Validator {
        proposer_of(validator_set, height, round)
    }

    fn new_proposal(
        &self,
        height: Height,
        round: Round,
        value: BlockValue,
        pol_round: Round,
        address: Address,
    ) -> Proposal {
        Proposal {
            height,
            round,
            value,
            pol_round,
            proposer: address,
        }
    }

    fn new_prevote(
        &self,
        height: Height,
        round: Round,
        value_id: NilOrVal<Hash>,
        address: Address,
    ) -> Vote {
        Vote {
            vote_type: VoteType::Prevote,
            height,
            round,
            value: value_id,
            validator: address,
            extension: None,
        }
    }

    fn new_precommit(
        &self,
        height: Height,
        round: Round,
        value_id: NilOrVal<Hash>,
        address: Address,
    ) -> Vote {
        Vote {
            vote_type: VoteType::Precommit,
            height,
            round,
            value: value_id,
            validator: address,
            extension: None,
        }
    }
}

/// Round-robin over the validators sorted by address, shifted by height and round, so that
/// every validator proposes in turn and a failed round passes the turn on.
pub fn proposer_of(set: &ValidatorSet, height: Height, round: Round) -> &Validator {
    let n = set.validators.len().max(1) as u64;
    let r = round.as_u32().map_or(0, u64::from);
    let i = height.0.wrapping_add(r) % n;
    // The set is never empty (`ValidatorSet::new`); index 0 covers the impossible case.
    let i = usize::try_from(i).unwrap_or(0);
    &set.validators[i.min(set.validators.len().saturating_sub(1))]
}

/// A round as a signed integer for encodings (-1 is nil).
pub fn round_code(r: Round) -> i64 {
    r.as_i64()
}

/// The round a code stands for; anything below zero is nil.
pub fn round_from(code: i64) -> Round {
    match u32::try_from(code) {
        Ok(r) => Round::new(r),
        Err(_) => Round::Nil,
    }
}

fn value_code(v: &NilOrVal<Hash>) -> Option<Hash> {
    match v {
        NilOrVal::Nil => None,
        NilOrVal::Val(h) => Some(*h),
    }
}

/// The bytes a vote's signature covers.
pub fn vote_sign_bytes(v: &Vote) -> Vec<u8> {
    let kind: u8 = match v.vote_type {
        VoteType::Prevote => 0,
        VoteType::Precommit => 1,
    };
    let mut out = b"agora/bft/vote/v1".to_vec();
    (
        kind,
        v.height.0,
        round_code(v.round),
        value_code(&v.value),
        v.validator,
    )
        .encode_to(&mut out);
    out
}

/// The bytes a proposal's signature covers.
pub fn proposal_sign_bytes(p: &Proposal) -> Vec<u8> {
    let mut out = b"agora/bft/proposal/v1".to_vec();
    (
        p.height.0,
        round_code(p.round),
        p.value.0,
        round_code(p.pol_round),
        p.proposer,
    )
        .encode_to(&mut out);
    out
}

fn extension_sign_bytes(scope: &VoteExtensionScope<AgoraContext>, ext: &[u8]) -> Vec<u8> {
    let mut out = b"agora/bft/extension/v1".to_vec();
    (
        scope.height.0,
        round_code(scope.round),
        scope.value_id,
        scope.validator_address,
        ext,
    )
        .encode_to(&mut out);
    out
}

/// Signs votes, proposals and proofs with this node's consensus key.
#[derive(Clone, Debug)]
pub struct KeySigner {
    key: PrivateKey,
}

impl KeySigner {
    /// A signer for `key`.
    pub fn new(key: PrivateKey) -> Self {
        KeySigner { key }
    }

    /// Its public key.
    pub fn public_key(&self) -> PublicKey {
        self.key.public_key()
    }
}

type SignResult<T> = Result<T, arc_malachitebft_signing::Error>;

#[async_trait]
impl Signer<AgoraContext> for KeySigner {
    async fn sign_vote(&self, vote: Vote) -> SignResult<SignedMessage<AgoraContext, Vote>> {
        let signature = self.key.sign(&vote_sign_bytes(&vote));
        Ok(SignedMessage::new(vote, signature))
    }

    async fn sign_proposal(
        &self,
        proposal: Proposal,
    ) -> SignResult<SignedMessage<AgoraContext, Proposal>> {
        let signature = self.key.sign(&proposal_sign_bytes(&proposal));
        Ok(SignedMessage::new(proposal, signature))
    }

    async fn sign_vote_extension(
        &self,
        scope: VoteExtensionScope<AgoraContext>,
        extension: Vec<u8>,
    ) -> SignResult<SignedMessage<AgoraContext, Vec<u8>>> {
        let signature = self.key.sign(&extension_sign_bytes(&scope, &extension));
        Ok(SignedMessage::new(extension, signature))
    }

    async fn sign_validator_proof(
        &self,
        public_key: Vec<u8>,
        peer_id: Vec<u8>,
    ) -> SignResult<ValidatorProof<AgoraContext>> {
        let signature = self
            .key
            .sign(&ValidatorProof::<AgoraContext>::signing_bytes(
                &public_key,
                &peer_id,
            ));
        Ok(ValidatorProof::new(public_key, peer_id, signature))
    }
}

/// Checks signatures against public keys; holds no secrets.
#[derive(Clone, Copy, Debug, Default)]
pub struct KeyVerifier;

fn verdict(
    key: &PublicKey,
    msg: &[u8],
    sig: &Signature,
) -> arc_malachitebft_signing::VerificationResult {
    arc_malachitebft_signing::VerificationResult::from_bool(key.verify(msg, sig).is_ok())
}

type VerifyResult = SignResult<arc_malachitebft_signing::VerificationResult>;

#[async_trait]
impl Verifier<AgoraContext> for KeyVerifier {
    async fn verify_signed_vote(
        &self,
        vote: &Vote,
        signature: &Signature,
        public_key: &PublicKey,
    ) -> VerifyResult {
        Ok(verdict(public_key, &vote_sign_bytes(vote), signature))
    }

    async fn verify_signed_proposal(
        &self,
        proposal: &Proposal,
        signature: &Signature,
        public_key: &PublicKey,
    ) -> VerifyResult {
        Ok(verdict(
            public_key,
            &proposal_sign_bytes(proposal),
            signature,
        ))
    }

    async fn verify_signed_vote_extension(
        &self,
        scope: &VoteExtensionScope<AgoraContext>,
        extension: &Vec<u8>,
        signature: &Signature,
        public_key: &PublicKey,
    ) -> VerifyResult {
        Ok(verdict(
            public_key,
            &extension_sign_bytes(scope, extension),
            signature,
        ))
    }

    async fn verify_validator_proof(&self, proof: &ValidatorProof<AgoraContext>) -> VerifyResult {
        let Ok(bytes) = <[u8; 32]>::try_from(proof.public_key.as_slice()) else {
            return Ok(arc_malachitebft_signing::VerificationResult::Invalid);
        };
        let Ok(key) = PublicKey::from_bytes(bytes) else {
            return Ok(arc_malachitebft_signing::VerificationResult::Invalid);
        };
        Ok(verdict(&key, &proof.preimage(), &proof.signature))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arc_malachitebft_app_channel::app::types::core::ValidatorSet as _;

    fn validator(n: u8, power: u64) -> Validator {
        let key = PrivateKey::from([n; 32]).public_key();
        Validator {
            address: Address::of(&key),
            public_key: key,
            voting_power: power,
        }
    }

    #[test]
    fn validator_sets_are_checked_and_ordered() {
        let set =
            ValidatorSet::new(vec![validator(3, 1), validator(1, 2), validator(2, 1)]).unwrap();
        let addrs: Vec<Address> = set.validators().iter().map(|v| v.address).collect();
        let mut sorted = addrs.clone();
        sorted.sort();
        assert_eq!(addrs, sorted);
        assert_eq!(set.total_voting_power(), 4);
        assert!(set.get_by_address(&validator(2, 1).address).is_some());
        assert!(ValidatorSet::new(vec![]).is_err());
        assert!(ValidatorSet::new(vec![validator(1, 1), validator(1, 1)]).is_err());
        assert!(ValidatorSet::new(vec![validator(1, 0)]).is_err());
        assert!(ValidatorSet::new(vec![validator(1, u64::MAX), validator(2, 1)]).is_err());
    }

    #[test]
    fn proposers_rotate_by_height_and_round() {
        let set = ValidatorSet::new((1..=4).map(|n| validator(n, 1)).collect()).unwrap();
        let at = |h: u64, r: u32| proposer_of(&set, Height(h), Round::new(r)).address;
        let mut seen: Vec<Address> = (1..=4).map(|h| at(h, 0)).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(
            seen.len(),
            4,
            "each validator proposes once in four heights"
        );
        assert_ne!(at(5, 0), at(5, 1), "a failed round passes the turn on");
        assert_eq!(at(5, 1), at(6, 0));
    }

    #[tokio::test]
    async fn signatures_bind_every_field() {
        let key = PrivateKey::from([7; 32]);
        let signer = KeySigner::new(key.clone());
        let me = Address::of(&key.public_key());
        let vote = AgoraContext.new_precommit_for_test(me);
        let signed = signer.sign_vote(vote.clone()).await.unwrap();
        let pk = key.public_key();
        let ok = KeyVerifier
            .verify_signed_vote(&vote, &signed.signature, &pk)
            .await
            .unwrap();
        assert!(ok.is_valid());
        let other = Vote {
            height: Height(vote.height.0 + 1),
            ..vote.clone()
        };
        let bad = KeyVerifier
            .verify_signed_vote(&other, &signed.signature, &pk)
            .await
            .unwrap();
        assert!(bad.is_invalid());
        let prevote = Vote {
            vote_type: VoteType::Prevote,
            ..vote
        };
        let bad = KeyVerifier
            .verify_signed_vote(&prevote, &signed.signature, &pk)
            .await
            .unwrap();
        assert!(bad.is_invalid());
    }

    impl AgoraContext {
        fn new_precommit_for_test(&self, me: Address) -> Vote {
            mc::Context::new_precommit(
                self,
                Height(9),
                Round::new(1),
                NilOrVal::Val(Hash([1; 32])),
                me,
            )
        }
    }
}
