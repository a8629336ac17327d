//! The byte encodings of every consensus message, for the network, the WAL and sync.
//!
//! A small length-checked binary format: integers little-endian, byte strings and lists
//! prefixed by a `u32` length, enums by a one-byte tag. Decoding never panics: truncated
//! input, unknown tags, oversized lengths and trailing bytes are errors.

use super::context::{
    round_code, round_from, Address, AgoraContext, BlockValue, Height, Proposal, ProposalPart, Vote,
};
use agora_primitives::Hash;
use arc_malachitebft_app_channel::app::consensus::{
    LivenessMsg, ProposedValue, SignedConsensusMsg,
};
use arc_malachitebft_app_channel::app::streaming::{StreamContent, StreamId, StreamMessage};
use arc_malachitebft_app_channel::app::types::codec::{Codec, HasEncodedLen};
use arc_malachitebft_app_channel::app::types::core::{
    CommitCertificate, CommitSignature, ExtendedCommitCertificate, ExtendedCommitSignature,
    NilOrVal, PolkaCertificate, PolkaSignature, Round, RoundCertificate, RoundCertificateType,
    RoundSignature, SignedMessage, ValidatorProof, Validity, VoteType,
};
use arc_malachitebft_app_channel::app::types::sync::{RawDecidedValue, Request, Response, Status};
use arc_malachitebft_app_channel::app::types::PeerId;
use arc_malachitebft_signing_ed25519::Signature;
use bytes::Bytes;

/// Why bytes could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("malformed consensus message: {0}")]
pub struct CodecError(pub String);

fn bad(what: impl Into<String>) -> CodecError {
    CodecError(what.into())
}

/// Longest list or byte string accepted: far above any real message, low enough that a
/// forged length cannot make the decoder reserve much memory (it reads before allocating).
const MAX_LEN: usize = 256 * 1024 * 1024;

#[derive(Default)]
struct W(Vec<u8>);

impl W {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn len(&mut self, n: usize) {
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }
    fn bytes(&mut self, b: &[u8]) {
        self.len(b.len());
        self.0.extend_from_slice(b);
    }
    fn hash(&mut self, h: &Hash) {
        self.0.extend_from_slice(&h.0);
    }
    fn addr(&mut self, a: &Address) {
        self.0.extend_from_slice(&a.0);
    }
    fn round(&mut self, r: Round) {
        self.u64(round_code(r) as u64);
    }
    fn height(&mut self, h: Height) {
        self.u64(h.0);
    }
    fn sig(&mut self, s: &Signature) {
        self.0.extend_from_slice(&s.to_bytes());
    }
    fn nil_or_hash(&mut self, v: &NilOrVal<Hash>) {
        match v {
            NilOrVal::Nil => self.u8(0),
            NilOrVal::Val(h) => {
                self.u8(1);
                self.hash(h);
            }
        }
    }
    fn vote_type(&mut self, t: VoteType) {
        self.u8(match t {
            VoteType::Prevote => 0,
            VoteType::Precommit => 1,
        });
    }
    fn done(self) -> Bytes {
        Bytes::from(self.0)
    }
}

struct R<'a>(&'a [u8]);

impl<'a> R<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if self.0.len() < n {
            return Err(bad("truncated"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn arr<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.arr::<1>()?[0])
    }
    fn u32(&mut self) -> Result<u32, CodecError> {
        Ok(u32::from_le_bytes(self.arr()?))
    }
    fn u64(&mut self) -> Result<u64, CodecError> {
        Ok(u64::from_le_bytes(self.arr()?))
    }
    fn len(&mut self) -> Result<usize, CodecError> {
        let n = usize::try_from(self.u32()?).map_err(|_| bad("length"))?;
        if n > MAX_LEN || n > self.0.len() {
            return Err(bad("length beyond the message"));
        }
        Ok(n)
    }
    /// A list length, where each element takes at least `min` bytes.
    fn count(&mut self, min: usize) -> Result<usize, CodecError> {
        let n = usize::try_from(self.u32()?).map_err(|_| bad("count"))?;
        if n.saturating_mul(min.max(1)) > self.0.len() {
            return Err(bad("list longer than the message"));
        }
        Ok(n)
    }
    fn bytes(&mut self) -> Result<&'a [u8], CodecError> {
        let n = self.len()?;
        self.take(n)
    }
    fn hash(&mut self) -> Result<Hash, CodecError> {
        Ok(Hash(self.arr()?))
    }
    fn addr(&mut self) -> Result<Address, CodecError> {
        Ok(Address(self.arr()?))
    }
    fn round(&mut self) -> Result<Round, CodecError> {
        Ok(round_from(self.u64()? as i64))
    }
    fn height(&mut self) -> Result<Height, CodecError> {
        Ok(Height(self.u64()?))
    }
    fn sig(&mut self) -> Result<Signature, CodecError> {
        Ok(Signature::from_bytes(self.arr()?))
    }
    fn nil_or_hash(&mut self) -> Result<NilOrVal<Hash>, CodecError> {
        match self.u8()? {
            0 => Ok(NilOrVal::Nil),
            1 => Ok(NilOrVal::Val(self.hash()?)),
            t => Err(bad(format!("value tag {t}"))),
        }
    }
    fn vote_type(&mut self) -> Result<VoteType, CodecError> {
        match self.u8()? {
            0 => Ok(VoteType::Prevote),
            1 => Ok(VoteType::Precommit),
            t => Err(bad(format!("vote type {t}"))),
        }
    }
    fn end(self) -> Result<(), CodecError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(bad("trailing bytes"))
        }
    }
}

fn decode_all<T>(
    bytes: &[u8],
    f: impl FnOnce(&mut R<'_>) -> Result<T, CodecError>,
) -> Result<T, CodecError> {
    let mut r = R(bytes);
    let v = f(&mut r)?;
    r.end()?;
    Ok(v)
}

fn put_signed_ext(w: &mut W, e: &Option<SignedMessage<AgoraContext, Vec<u8>>>) {
    match e {
        None => w.u8(0),
        Some(s) => {
            w.u8(1);
            w.bytes(&s.message);
            w.sig(&s.signature);
        }
    }
}

fn get_signed_ext(
    r: &mut R<'_>,
) -> Result<Option<SignedMessage<AgoraContext, Vec<u8>>>, CodecError> {
    match r.u8()? {
        0 => Ok(None),
        1 => {
            let m = r.bytes()?.to_vec();
            Ok(Some(SignedMessage::new(m, r.sig()?)))
        }
        t => Err(bad(format!("extension tag {t}"))),
    }
}

fn put_vote(w: &mut W, v: &Vote) {
    w.vote_type(v.vote_type);
    w.height(v.height);
    w.round(v.round);
    w.nil_or_hash(&v.value);
    w.addr(&v.validator);
    put_signed_ext(w, &v.extension);
}

fn get_vote(r: &mut R<'_>) -> Result<Vote, CodecError> {
    Ok(Vote {
        vote_type: r.vote_type()?,
        height: r.height()?,
        round: r.round()?,
        value: r.nil_or_hash()?,
        validator: r.addr()?,
        extension: get_signed_ext(r)?,
    })
}

fn put_proposal(w: &mut W, p: &Proposal) {
    w.height(p.height);
    w.round(p.round);
    w.hash(&p.value.0);
    w.round(p.pol_round);
    w.addr(&p.proposer);
}

fn get_proposal(r: &mut R<'_>) -> Result<Proposal, CodecError> {
    Ok(Proposal {
        height: r.height()?,
        round: r.round()?,
        value: BlockValue(r.hash()?),
        pol_round: r.round()?,
        proposer: r.addr()?,
    })
}

fn put_part(w: &mut W, p: &ProposalPart) {
    match p {
        ProposalPart::Init {
            height,
            round,
            proposer,
            valid_round,
        } => {
            w.u8(0);
            w.height(*height);
            w.round(*round);
            w.addr(proposer);
            w.round(*valid_round);
        }
        ProposalPart::Data(d) => {
            w.u8(1);
            w.bytes(d);
        }
        ProposalPart::Fin(h) => {
            w.u8(2);
            w.hash(h);
        }
    }
}

fn get_part(r: &mut R<'_>) -> Result<ProposalPart, CodecError> {
    match r.u8()? {
        0 => Ok(ProposalPart::Init {
            height: r.height()?,
            round: r.round()?,
            proposer: r.addr()?,
            valid_round: r.round()?,
        }),
        1 => Ok(ProposalPart::Data(r.bytes()?.to_vec())),
        2 => Ok(ProposalPart::Fin(r.hash()?)),
        t => Err(bad(format!("proposal part tag {t}"))),
    }
}

fn put_polka(w: &mut W, c: &PolkaCertificate<AgoraContext>) {
    w.height(c.height);
    w.round(c.round);
    w.hash(&c.value_id);
    w.len(c.polka_signatures.len());
    for s in &c.polka_signatures {
        w.addr(&s.address);
        w.sig(&s.signature);
    }
}

fn get_polka(r: &mut R<'_>) -> Result<PolkaCertificate<AgoraContext>, CodecError> {
    let height = r.height()?;
    let round = r.round()?;
    let value_id = r.hash()?;
    let n = r.count(96)?;
    let mut polka_signatures = Vec::with_capacity(n);
    for _ in 0..n {
        polka_signatures.push(PolkaSignature::new(r.addr()?, r.sig()?));
    }
    Ok(PolkaCertificate {
        height,
        round,
        value_id,
        polka_signatures,
    })
}

fn put_round_cert(w: &mut W, c: &RoundCertificate<AgoraContext>) {
    w.height(c.height);
    w.round(c.round);
    w.u8(match c.cert_type {
        RoundCertificateType::Skip => 0,
        RoundCertificateType::Precommit => 1,
    });
    w.len(c.round_signatures.len());
    for s in &c.round_signatures {
        w.vote_type(s.vote_type);
        w.nil_or_hash(&s.value_id);
        w.addr(&s.address);
        w.sig(&s.signature);
    }
}

fn get_round_cert(r: &mut R<'_>) -> Result<RoundCertificate<AgoraContext>, CodecError> {
    let height = r.height()?;
    let round = r.round()?;
    let cert_type = match r.u8()? {
        0 => RoundCertificateType::Skip,
        1 => RoundCertificateType::Precommit,
        t => return Err(bad(format!("round certificate type {t}"))),
    };
    let n = r.count(98)?;
    let mut round_signatures = Vec::with_capacity(n);
    for _ in 0..n {
        round_signatures.push(RoundSignature {
            vote_type: r.vote_type()?,
            value_id: r.nil_or_hash()?,
            address: r.addr()?,
            signature: r.sig()?,
        });
    }
    Ok(RoundCertificate {
        height,
        round,
        cert_type,
        round_signatures,
    })
}

fn put_ext_cert(w: &mut W, c: &ExtendedCommitCertificate<AgoraContext>) {
    w.height(c.height);
    w.round(c.round);
    w.hash(&c.value_id);
    w.len(c.commit_signatures.len());
    for s in &c.commit_signatures {
        w.addr(&s.address);
        w.sig(&s.signature);
        put_signed_ext(w, &s.extension);
    }
}

fn get_ext_cert(r: &mut R<'_>) -> Result<ExtendedCommitCertificate<AgoraContext>, CodecError> {
    let height = r.height()?;
    let round = r.round()?;
    let value_id = r.hash()?;
    let n = r.count(97)?;
    let mut commit_signatures = Vec::with_capacity(n);
    for _ in 0..n {
        commit_signatures.push(ExtendedCommitSignature::new(
            r.addr()?,
            r.sig()?,
            get_signed_ext(r)?,
        ));
    }
    Ok(ExtendedCommitCertificate {
        height,
        round,
        value_id,
        commit_signatures,
    })
}

/// Encodes a commit certificate for the certificate table.
pub fn encode_commit_cert(c: &CommitCertificate<AgoraContext>) -> Vec<u8> {
    let mut w = W::default();
    w.height(c.height);
    w.round(c.round);
    w.hash(&c.value_id);
    w.len(c.commit_signatures.len());
    for s in &c.commit_signatures {
        w.addr(&s.address);
        w.sig(&s.signature);
    }
    w.0
}

/// Decodes what [`encode_commit_cert`] wrote.
pub fn decode_commit_cert(bytes: &[u8]) -> Result<CommitCertificate<AgoraContext>, CodecError> {
    decode_all(bytes, |r| {
        let height = r.height()?;
        let round = r.round()?;
        let value_id = r.hash()?;
        let n = r.count(96)?;
        let mut commit_signatures = Vec::with_capacity(n);
        for _ in 0..n {
            commit_signatures.push(CommitSignature::new(r.addr()?, r.sig()?));
        }
        Ok(CommitCertificate {
            height,
            round,
            value_id,
            commit_signatures,
        })
    })
}

/// The codec handed to Malachite for the network, the WAL and sync.
#[derive(Clone, Copy, Debug, Default)]
pub struct WireCodec;

impl Codec<ProposalPart> for WireCodec {
    type Error = CodecError;

    fn decode(&self, bytes: Bytes) -> Result<ProposalPart, CodecError> {
        decode_all(&bytes, get_part)
    }

    fn encode(&self, msg: &ProposalPart) -> Result<Bytes, CodecError> {
        let mut w = W::default();
        put_part(&mut w, msg);
        Ok(w.done())
    }
}

impl Codec<SignedConsensusMsg<AgoraContext>> for WireCodec {
    type Error = CodecError;

    fn decode(&self, bytes: Bytes) -> Result<SignedConsensusMsg<AgoraContext>, CodecError> {
        decode_all(&bytes, |r| match r.u8()? {
            0 => {
                let v = get_vote(r)?;
                Ok(SignedConsensusMsg::Vote(SignedMessage::new(v, r.sig()?)))
            }
            1 => {
                let p = get_proposal(r)?;
                Ok(SignedConsensusMsg::Proposal(SignedMessage::new(
                    p,
                    r.sig()?,
                )))
            }
            t => Err(bad(format!("consensus message tag {t}"))),
        })
    }

    fn encode(&self, msg: &SignedConsensusMsg<AgoraContext>) -> Result<Bytes, CodecError> {
        let mut w = W::default();
        match msg {
            SignedConsensusMsg::Vote(v) => {
                w.u8(0);
                put_vote(&mut w, &v.message);
                w.sig(&v.signature);
            }
            SignedConsensusMsg::Proposal(p) => {
                w.u8(1);
                put_proposal(&mut w, &p.message);
                w.sig(&p.signature);
            }
        }
        Ok(w.done())
    }
}

impl Codec<LivenessMsg<AgoraContext>> for WireCodec {
    type Error = CodecError;

    fn decode(&self, bytes: Bytes) -> Result<LivenessMsg<AgoraContext>, CodecError> {
        decode_all(&bytes, |r| match r.u8()? {
            0 => {
                let v = get_vote(r)?;
                Ok(LivenessMsg::Vote(SignedMessage::new(v, r.sig()?)))
            }
            1 => Ok(LivenessMsg::PolkaCertificate(get_polka(r)?)),
            2 => Ok(LivenessMsg::SkipRoundCertificate(get_round_cert(r)?)),
            t => Err(bad(format!("liveness message tag {t}"))),
        })
    }

    fn encode(&self, msg: &LivenessMsg<AgoraContext>) -> Result<Bytes, CodecError> {
        let mut w = W::default();
        match msg {
            LivenessMsg::Vote(v) => {
                w.u8(0);
                put_vote(&mut w, &v.message);
                w.sig(&v.signature);
            }
            LivenessMsg::PolkaCertificate(c) => {
                w.u8(1);
                put_polka(&mut w, c);
            }
            LivenessMsg::SkipRoundCertificate(c) => {
                w.u8(2);
                put_round_cert(&mut w, c);
            }
        }
        Ok(w.done())
    }
}

impl Codec<StreamMessage<ProposalPart>> for WireCodec {
    type Error = CodecError;

    fn decode(&self, bytes: Bytes) -> Result<StreamMessage<ProposalPart>, CodecError> {
        decode_all(&bytes, |r| {
            let id = StreamId::new(Bytes::copy_from_slice(r.bytes()?));
            let sequence = r.u64()?;
            let content = match r.u8()? {
                0 => StreamContent::Data(get_part(r)?),
                1 => StreamContent::Fin,
                t => return Err(bad(format!("stream content tag {t}"))),
            };
            Ok(StreamMessage::new(id, sequence, content))
        })
    }

    fn encode(&self, msg: &StreamMessage<ProposalPart>) -> Result<Bytes, CodecError> {
        let mut w = W::default();
        w.bytes(&msg.stream_id.to_bytes());
        w.u64(msg.sequence);
        match &msg.content {
            StreamContent::Data(p) => {
                w.u8(0);
                put_part(&mut w, p);
            }
            StreamContent::Fin => w.u8(1),
        }
        Ok(w.done())
    }
}

impl Codec<ValidatorProof<AgoraContext>> for WireCodec {
    type Error = CodecError;

    fn decode(&self, bytes: Bytes) -> Result<ValidatorProof<AgoraContext>, CodecError> {
        decode_all(&bytes, |r| {
            let pk = r.bytes()?.to_vec();
            let peer = r.bytes()?.to_vec();
            Ok(ValidatorProof::new(pk, peer, r.sig()?))
        })
    }

    fn encode(&self, msg: &ValidatorProof<AgoraContext>) -> Result<Bytes, CodecError> {
        let mut w = W::default();
        w.bytes(&msg.public_key);
        w.bytes(&msg.peer_id);
        w.sig(&msg.signature);
        Ok(w.done())
    }
}

impl Codec<Status<AgoraContext>> for WireCodec {
    type Error = CodecError;

    fn decode(&self, bytes: Bytes) -> Result<Status<AgoraContext>, CodecError> {
        decode_all(&bytes, |r| {
            let peer_id =
                PeerId::from_bytes(r.bytes()?).map_err(|e| bad(format!("peer id: {e}")))?;
            Ok(Status {
                peer_id,
                tip_height: r.height()?,
                history_min_height: r.height()?,
            })
        })
    }

    fn encode(&self, msg: &Status<AgoraContext>) -> Result<Bytes, CodecError> {
        let mut w = W::default();
        w.bytes(&msg.peer_id.to_bytes());
        w.height(msg.tip_height);
        w.height(msg.history_min_height);
        Ok(w.done())
    }
}

impl Codec<Request<AgoraContext>> for WireCodec {
    type Error = CodecError;

    fn decode(&self, bytes: Bytes) -> Result<Request<AgoraContext>, CodecError> {
        decode_all(&bytes, |r| {
            let from = r.height()?;
            let to = r.height()?;
            Ok(Request::ValueRequest(
                arc_malachitebft_sync::ValueRequest::new(from..=to),
            ))
        })
    }

    fn encode(&self, msg: &Request<AgoraContext>) -> Result<Bytes, CodecError> {
        let Request::ValueRequest(v) = msg;
        let mut w = W::default();
        w.height(*v.range.start());
        w.height(*v.range.end());
        Ok(w.done())
    }
}

impl Codec<Response<AgoraContext>> for WireCodec {
    type Error = CodecError;

    fn decode(&self, bytes: Bytes) -> Result<Response<AgoraContext>, CodecError> {
        decode_all(&bytes, |r| {
            let start = r.height()?;
            let n = r.count(8)?;
            let mut values = Vec::with_capacity(n);
            for _ in 0..n {
                let value_bytes = Bytes::copy_from_slice(r.bytes()?);
                let certificate = get_ext_cert(r)?;
                values.push(RawDecidedValue::new(value_bytes, certificate));
            }
            Ok(Response::ValueResponse(
                arc_malachitebft_sync::ValueResponse::new(start, values),
            ))
        })
    }

    fn encode(&self, msg: &Response<AgoraContext>) -> Result<Bytes, CodecError> {
        let Response::ValueResponse(v) = msg;
        let mut w = W::default();
        w.height(v.start_height);
        w.len(v.values.len());
        for d in &v.values {
            w.bytes(&d.value_bytes);
            put_ext_cert(&mut w, &d.certificate);
        }
        Ok(w.done())
    }
}

impl HasEncodedLen<Response<AgoraContext>> for WireCodec {
    fn encoded_len(&self, msg: &Response<AgoraContext>) -> Result<usize, CodecError> {
        Codec::<Response<AgoraContext>>::encode(self, msg).map(|b| b.len())
    }
}

impl Codec<ProposedValue<AgoraContext>> for WireCodec {
    type Error = CodecError;

    fn decode(&self, bytes: Bytes) -> Result<ProposedValue<AgoraContext>, CodecError> {
        decode_all(&bytes, |r| {
            Ok(ProposedValue {
                height: r.height()?,
                round: r.round()?,
                valid_round: r.round()?,
                proposer: r.addr()?,
                value: BlockValue(r.hash()?),
                validity: match r.u8()? {
                    0 => Validity::Invalid,
                    1 => Validity::Valid,
                    t => return Err(bad(format!("validity {t}"))),
                },
            })
        })
    }

    fn encode(&self, msg: &ProposedValue<AgoraContext>) -> Result<Bytes, CodecError> {
        let mut w = W::default();
        w.height(msg.height);
        w.round(msg.round);
        w.round(msg.valid_round);
        w.addr(&msg.proposer);
        w.hash(&msg.value.0);
        w.u8(u8::from(msg.validity.is_valid()));
        Ok(w.done())
    }
}

impl Codec<PolkaCertificate<AgoraContext>> for WireCodec {
    type Error = CodecError;

    fn decode(&self, bytes: Bytes) -> Result<PolkaCertificate<AgoraContext>, CodecError> {
        decode_all(&bytes, get_polka)
    }

    fn encode(&self, msg: &PolkaCertificate<AgoraContext>) -> Result<Bytes, CodecError> {
        let mut w = W::default();
        put_polka(&mut w, msg);
        Ok(w.done())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arc_malachitebft_signing_ed25519::PrivateKey;

    fn key(n: u8) -> PrivateKey {
        PrivateKey::from([n; 32])
    }

    #[test]
    fn consensus_messages_round_trip() {
        let k = key(1);
        let addr = Address::of(&k.public_key());
        let vote = Vote {
            vote_type: VoteType::Precommit,
            height: Height(7),
            round: Round::new(2),
            value: NilOrVal::Val(Hash([9; 32])),
            validator: addr,
            extension: None,
        };
        let msg = SignedConsensusMsg::Vote(SignedMessage::new(vote, k.sign(b"x")));
        let c = WireCodec;
        let bytes = c.encode(&msg).unwrap();
        let back: SignedConsensusMsg<AgoraContext> = c.decode(bytes.clone()).unwrap();
        assert_eq!(back, msg);
        // Every strict prefix is refused, never a panic.
        for n in 0..bytes.len() {
            assert!(
                Codec::<SignedConsensusMsg<AgoraContext>>::decode(&c, bytes.slice(..n)).is_err()
            );
        }
        let prop = Proposal {
            height: Height(3),
            round: Round::Nil,
            value: BlockValue(Hash([4; 32])),
            pol_round: Round::Nil,
            proposer: addr,
        };
        let msg = SignedConsensusMsg::Proposal(SignedMessage::new(prop, k.sign(b"y")));
        let back: SignedConsensusMsg<AgoraContext> = c.decode(c.encode(&msg).unwrap()).unwrap();
        assert_eq!(back, msg);
    }

    #[test]
    fn commit_certificates_round_trip() {
        let k = key(2);
        let cert = CommitCertificate {
            height: Height(11),
            round: Round::new(0),
            value_id: Hash([5; 32]),
            commit_signatures: vec![CommitSignature::new(
                Address::of(&k.public_key()),
                k.sign(b"z"),
            )],
        };
        let back = decode_commit_cert(&encode_commit_cert(&cert)).unwrap();
        assert_eq!(back, cert);
        let mut long = encode_commit_cert(&cert);
        long.push(0);
        assert!(decode_commit_cert(&long).is_err());
    }

    #[test]
    fn forged_lengths_are_refused() {
        let c = WireCodec;
        // A Data part claiming four gigabytes in a five-byte message.
        let bytes = Bytes::from(vec![1u8, 0xff, 0xff, 0xff, 0xff]);
        assert!(Codec::<ProposalPart>::decode(&c, bytes).is_err());
        assert!(Codec::<ProposalPart>::decode(&c, Bytes::from(vec![9u8])).is_err());
    }
}
