//! Property tests: the verifier never panics on arbitrary headers, and what is signed verifies.

use crate::common::*;
use agora_wire::{
    protocol::{
        sign_request, HEADER_CRYPTO, HEADER_HOTKEY, HEADER_NONCE, HEADER_RECEIVER,
        HEADER_SIGNATURE, HEADER_VERSION,
    },
    Verifier,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;
use std::sync::Arc;

fn header_name() -> impl Strategy<Value = HeaderName> {
    prop_oneof![
        Just(HEADER_VERSION),
        Just(HEADER_HOTKEY),
        Just(HEADER_RECEIVER),
        Just(HEADER_NONCE),
        Just(HEADER_CRYPTO),
        Just(HEADER_SIGNATURE),
        Just(HeaderName::from_static("content-length")),
        Just(HeaderName::from_static("x-other")),
    ]
}

/// Mostly near-valid values, so the checks past the first are reached too.
fn header_value() -> impl Strategy<Value = Vec<u8>> {
    let alice = validator().account().to_ss58();
    let bob = server().account().to_ss58();
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..160),
        "[0-9]{0,24}".prop_map(String::into_bytes),
        "(0x)?[0-9a-fA-F]{0,140}".prop_map(String::into_bytes),
        "[1-9A-HJ-NP-Za-km-z]{0,60}".prop_map(String::into_bytes),
        Just(b"1".to_vec()),
        Just(b"sr25519".to_vec()),
        Just(alice.into_bytes()),
        Just(bob.into_bytes()),
        (T0 - 20 * SEC..T0 + 20 * SEC).prop_map(|n| n.to_string().into_bytes()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn verification_never_panics(
        pairs in prop::collection::vec((header_name(), header_value()), 0..12),
        method in "[A-Za-z]{0,8}",
        path in "/[ -~]{0,40}",
        body in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            if let Ok(v) = HeaderValue::from_bytes(&value) {
                headers.append(name, v);
            }
        }
        let (guard, _) = manual_guard(config());
        let _ = guard.check(&method, &path, &headers, &body, T0);
        let v = Verifier::new(server().account()).with_require_receiver(false);
        if let Ok(auth) = v.check_headers(&headers, T0) {
            let _ = v.check_signature(&auth, &method, &path, &body);
        }
    }

    #[test]
    fn signed_requests_verify_and_any_change_fails(
        method in "(GET|POST|PUT|DELETE|patch)",
        path in "/[!-~]{0,40}",
        body in prop::collection::vec(any::<u8>(), 0..256),
        skew in 0u64..2 * SEC,
        flip in any::<usize>(),
    ) {
        let (alice, bob) = (validator(), server().account());
        let auth = sign_request(&alice, &method, &path, &body, Some(&bob), T0 + skew);
        let mut headers = HeaderMap::new();
        auth.write_to(&mut headers);
        let v = Verifier::new(bob);
        let parsed = v.check_headers(&headers, T0).expect("fresh, well-formed");
        prop_assert!(v.check_signature(&parsed, &method, &path, &body).is_ok());
        if !body.is_empty() {
            let mut other = body.clone();
            let i = flip % other.len();
            other[i] ^= 1;
            prop_assert!(v.check_signature(&parsed, &method, &path, &other).is_err());
        }
        let guard = guard_with(config(), Arc::new(agora_wire::ManualClock::new(T0)));
        // The guard (validators only, 1 KiB bodies) agrees with the bare verifier.
        let r = guard.check(&method, &path, &headers, &body, T0);
        prop_assert!(r.is_ok(), "{:?}", r);
    }
}
