//! HPKE request / framed response channel: round trip, tampering, replay, frame order.

use agora_tee::channel::{
    open_request, seal_request, EnclaveKeypair, ReplayGuard, RequestMetadata, SealedRequest,
};
use agora_tee::TeeError;
use rand_chacha09::rand_core::SeedableRng;
use rand_chacha09::ChaCha20Rng;

const NOW: u64 = 1_750_000_000;

fn meta(id: u8) -> RequestMetadata {
    RequestMetadata {
        model: "llama-3.1-8b".into(),
        request_id: [id; 16],
        netuid: 7,
        uid: 42,
        issued_at: NOW,
    }
}

fn setup() -> (EnclaveKeypair, ChaCha20Rng) {
    (
        EnclaveKeypair::derive(b"enclave test key material 0123456789").expect("key"),
        ChaCha20Rng::seed_from_u64(7),
    )
}

#[test]
fn round_trip_with_framed_response() {
    let (kp, mut rng) = setup();
    let body = vec![0x5a; 4096];
    let (req, mut opener) = seal_request(&kp.public_key(), meta(1), &body, &mut rng).unwrap();
    let mut guard = ReplayGuard::new(300, 1000);
    let (got, mut sealer) = open_request(&kp, &req, NOW, &mut guard).unwrap();
    assert_eq!(got, body);
    let frames: Vec<Vec<u8>> = (0..5u8)
        .map(|i| sealer.seal_frame(&[i; 100], i == 4).unwrap())
        .collect();
    assert_eq!(
        sealer.seal_frame(b"late", false).unwrap_err(),
        TeeError::FrameAfterFinal
    );
    let mut out = Vec::new();
    for f in &frames {
        out.extend(opener.open_frame(f).unwrap().data);
    }
    opener.finish().unwrap();
    assert_eq!(out.len(), 500);
    // The request also serialises (JSON, hex bytes) and back.
    let json = serde_json::to_string(&req).unwrap();
    let back: SealedRequest = serde_json::from_str(&json).unwrap();
    assert_eq!(back, req);
}

#[test]
fn tampered_request_rejected_at_every_byte() {
    let (kp, mut rng) = setup();
    let (req, _) = seal_request(&kp.public_key(), meta(2), b"secret prompt", &mut rng).unwrap();
    for i in 0..req.enc.len() {
        let mut m = req.clone();
        m.enc[i] ^= 0x01;
        let mut g = ReplayGuard::new(300, 10);
        assert!(open_request(&kp, &m, NOW, &mut g).is_err(), "enc byte {i}");
        assert!(g.is_empty(), "a forged request must not be recorded");
    }
    for i in 0..req.ciphertext.len() {
        let mut m = req.clone();
        m.ciphertext[i] ^= 0x80;
        let mut g = ReplayGuard::new(300, 10);
        assert_eq!(
            open_request(&kp, &m, NOW, &mut g).unwrap_err(),
            TeeError::DecryptionFailed,
            "ciphertext byte {i}"
        );
    }
    // Associated data: every metadata field is authenticated.
    let edits: [fn(&mut RequestMetadata); 5] = [
        |m| m.model.push('x'),
        |m| m.request_id[15] ^= 1,
        |m| m.netuid += 1,
        |m| m.uid += 1,
        |m| m.issued_at += 1,
    ];
    for (i, edit) in edits.iter().enumerate() {
        let mut m = req.clone();
        edit(&mut m.metadata);
        let mut g = ReplayGuard::new(300, 10);
        assert_eq!(
            open_request(&kp, &m, NOW, &mut g).unwrap_err(),
            TeeError::DecryptionFailed,
            "metadata edit {i}"
        );
    }
    // Truncated ciphertext and a wrong key.
    let mut m = req.clone();
    m.ciphertext.truncate(5);
    assert!(open_request(&kp, &m, NOW, &mut ReplayGuard::new(300, 10)).is_err());
    let other = EnclaveKeypair::derive(b"another enclave key material 0000").expect("key");
    assert!(open_request(&other, &req, NOW, &mut ReplayGuard::new(300, 10)).is_err());
    // Still opens untouched.
    open_request(&kp, &req, NOW, &mut ReplayGuard::new(300, 10)).unwrap();
}

#[test]
fn replayed_and_stale_requests_rejected() {
    let (kp, mut rng) = setup();
    let mut guard = ReplayGuard::new(300, 2);
    let (req, _) = seal_request(&kp.public_key(), meta(3), b"a", &mut rng).unwrap();
    open_request(&kp, &req, NOW, &mut guard).unwrap();
    assert_eq!(
        open_request(&kp, &req, NOW + 10, &mut guard).unwrap_err(),
        TeeError::Replay
    );
    // Same request id under a fresh encapsulation is a replay too.
    let (again, _) = seal_request(&kp.public_key(), meta(3), b"a", &mut rng).unwrap();
    assert_eq!(
        open_request(&kp, &again, NOW, &mut guard).unwrap_err(),
        TeeError::Replay
    );
    // After the window the old request is stale, not silently accepted.
    assert!(matches!(
        open_request(&kp, &req, NOW + 301, &mut guard).unwrap_err(),
        TeeError::StaleRequest { .. }
    ));
    // Capacity: a second request fits, a third is refused while both are live.
    let (r4, _) = seal_request(&kp.public_key(), meta(4), b"b", &mut rng).unwrap();
    open_request(&kp, &r4, NOW, &mut guard).unwrap();
    let (r5, _) = seal_request(&kp.public_key(), meta(5), b"c", &mut rng).unwrap();
    assert_eq!(
        open_request(&kp, &r5, NOW, &mut guard).unwrap_err(),
        TeeError::ReplayGuardFull { capacity: 2 }
    );
    // Once the old ones expire there is room again.
    let mut late = meta(5);
    late.issued_at = NOW + 400;
    let (r5, _) = seal_request(&kp.public_key(), late, b"c", &mut rng).unwrap();
    open_request(&kp, &r5, NOW + 400, &mut guard).unwrap();
    assert_eq!(guard.len(), 1);
}

fn response(n: u8) -> (agora_tee::channel::ResponseOpener, Vec<Vec<u8>>) {
    let (kp, mut rng) = setup();
    let (req, opener) = seal_request(&kp.public_key(), meta(9), b"q", &mut rng).unwrap();
    let (_, mut sealer) = open_request(&kp, &req, NOW, &mut ReplayGuard::new(60, 4)).unwrap();
    let frames = (0..n)
        .map(|i| sealer.seal_frame(&[i; 32], i + 1 == n).unwrap())
        .collect();
    (opener, frames)
}

#[test]
fn reordered_dropped_duplicated_truncated_frames_rejected() {
    // Reordered.
    let (mut o, f) = response(3);
    assert_eq!(
        o.open_frame(&f[1]).unwrap_err(),
        TeeError::FrameOutOfOrder {
            expected: 0,
            got: 1
        }
    );
    // Dropped middle frame.
    let (mut o, f) = response(3);
    o.open_frame(&f[0]).unwrap();
    assert!(matches!(
        o.open_frame(&f[2]).unwrap_err(),
        TeeError::FrameOutOfOrder { .. }
    ));
    // Duplicated.
    let (mut o, f) = response(3);
    o.open_frame(&f[0]).unwrap();
    assert!(o.open_frame(&f[0]).is_err());
    // Truncated: stream ends before the final frame.
    let (mut o, f) = response(3);
    o.open_frame(&f[0]).unwrap();
    o.open_frame(&f[1]).unwrap();
    assert_eq!(o.finish().unwrap_err(), TeeError::Truncated);
    // Forged "final" flag on a middle frame (truncation attempt) fails authentication.
    let (mut o, f) = response(3);
    o.open_frame(&f[0]).unwrap();
    let mut forged = f[1].clone();
    forged[8] = 1;
    assert_eq!(
        o.open_frame(&forged).unwrap_err(),
        TeeError::DecryptionFailed
    );
    // Rewriting the counter to the expected one fails too (nonce and AAD differ).
    let (mut o, f) = response(3);
    let mut moved = f[1].clone();
    moved[..8].copy_from_slice(&0u64.to_be_bytes());
    assert_eq!(
        o.open_frame(&moved).unwrap_err(),
        TeeError::DecryptionFailed
    );
    // Nothing after the final frame.
    let (mut o, f) = response(2);
    o.open_frame(&f[0]).unwrap();
    o.open_frame(&f[1]).unwrap();
    assert_eq!(o.open_frame(&f[1]).unwrap_err(), TeeError::FrameAfterFinal);
    o.finish().unwrap();
}

#[test]
fn tampered_frame_rejected_at_every_byte() {
    let (_, f) = response(1);
    for i in 0..f[0].len() {
        let (mut o, _) = response(1);
        let mut m = f[0].clone();
        m[i] ^= 0x04;
        assert!(o.open_frame(&m).is_err(), "frame byte {i}");
        // The genuine frame still opens after a forgery was dropped.
        o.open_frame(&f[0]).unwrap();
    }
    // A frame from another request's context does not open.
    let (kp, _) = setup();
    let mut rng = ChaCha20Rng::seed_from_u64(8);
    let (_, mut other) = seal_request(&kp.public_key(), meta(9), b"q", &mut rng).unwrap();
    assert_eq!(
        other.open_frame(&f[0]).unwrap_err(),
        TeeError::DecryptionFailed
    );
}

fn framed_exchange() -> (agora_tee::channel::ResponseOpener, Vec<u8>) {
    use agora_tee::channel::{ResponseHead, ResponseWriter};
    let kp = EnclaveKeypair::derive(b"framed exchange test key material").expect("key");
    let mut rng = rand_chacha09::ChaCha20Rng::seed_from_u64(5);
    let meta = RequestMetadata {
        model: "m".into(),
        request_id: [3; 16],
        netuid: 1,
        uid: 2,
        issued_at: 100,
    };
    let (req, opener) = seal_request(&kp.public_key(), meta, b"{}", &mut rng).unwrap();
    let (_, sealer) = open_request(&kp, &req, 100, &mut ReplayGuard::new(60, 8)).unwrap();
    let head = ResponseHead {
        status: 200,
        content_type: "application/json".into(),
    };
    let (mut w, mut events) = ResponseWriter::start(sealer, &head).unwrap();
    events.extend(w.chunk(b"{\"answer\":").unwrap());
    events.extend(w.chunk(b"\"rivers\"}").unwrap());
    events.extend(w.finish().unwrap());
    (opener, events)
}

#[test]
fn framed_answers_open_and_fail_closed() {
    use agora_tee::channel::open_events;
    let (opener, events) = framed_exchange();
    let text = String::from_utf8(events.clone()).unwrap();
    assert!(text.starts_with("data: "));
    assert!(!text.contains("rivers"), "frames are ciphertext");
    let (head, body) = open_events(opener, &events, 1024).unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(body, b"{\"answer\":\"rivers\"}");

    let parts: Vec<&str> = text.split_terminator("\n\n").collect();
    assert_eq!(parts.len(), 4);
    let join = |keep: &[usize]| -> Vec<u8> {
        keep.iter()
            .map(|i| format!("{}\n\n", parts[*i]))
            .collect::<String>()
            .into_bytes()
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("dropped body frame", join(&[0, 2, 3])),
        ("reordered", join(&[0, 2, 1, 3])),
        ("duplicated", join(&[0, 1, 1, 2, 3])),
        ("no final frame", join(&[0, 1, 2])),
        ("appended after final", join(&[0, 1, 2, 3, 3])),
        ("no head", join(&[1, 2, 3])),
        ("cut mid-event", events[..events.len() - 5].to_vec()),
        ("not an event", b"hello\n\n".to_vec()),
        ("empty", Vec::new()),
    ];
    for (what, bytes) in cases {
        let (opener, _) = framed_exchange();
        assert!(
            open_events(opener, &bytes, 1024).is_err(),
            "{what} accepted"
        );
    }
    // Every single flipped hex digit is caught.
    for at in (6..parts[0].len()).step_by(7) {
        let (opener, _) = framed_exchange();
        let mut b = events.clone();
        b[at] = if b[at] == b'0' { b'1' } else { b'0' };
        assert!(
            open_events(opener, &b, 1024).is_err(),
            "flip at {at} accepted"
        );
    }
    // The body limit holds.
    let (opener, _) = framed_exchange();
    assert!(open_events(opener, &events, 4).is_err());
}
