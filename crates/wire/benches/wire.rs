//! Per-request cost of btauth/1 on the server: signature verification, admission, and the
//! whole guard check (headers, admission, signature, replay store, rate limit). Target: under
//! 100 µs per request. Run: `cargo bench -p agora-wire --bench wire`.
//!
//! Recorded 2026-11-25 on a shared 2-core AMD EPYC VM under load average ~5 (so every number is
//! inflated by contention; compare rows with each other), `--warm-up-time 1 --measurement-time 4`,
//! medians:
//!
//! | bench | median |
//! |---|---|
//! | `sr25519_verify_only` (the floor: one bare verification) | 65.9 µs |
//! | `verify_signature` (parse headers + rebuild payload + verify) | 77.5 µs |
//! | `admission` (policy over a 256-neuron map) | 0.07 µs |
//! | `verify_signature_and_admission` | 80.9 µs |
//! | `guard_check_full` (+ replay store + rate limit) | 87.7 µs |
//! | `sign_request` (client side) | 43.8 µs |
//!
//! The sr25519 verification is ~80% of the cost; everything the crate adds is ~20 µs here.

use agora_primitives::{crypto::Pair, AccountId, Uid};
use agora_wire::{
    protocol::sign_request, AdmissionPolicy, Guard, GuardConfig, NeuronRole, RateLimit,
    StaticMetagraph, Verifier,
};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use http::HeaderMap;
use std::{collections::HashMap, hint::black_box, sync::Arc};

const T0: u64 = 1_752_076_800_000_000_000;
const BODY: &[u8] =
    br#"{"model":"llama","messages":[{"role":"user","content":"hello there"}],"max_tokens":64}"#;

/// A 256-neuron metagraph with the caller in it.
fn metagraph(caller: &AccountId) -> StaticMetagraph {
    let mut m = HashMap::new();
    for i in 0u16..255 {
        let mut key = [0u8; 32];
        key[..2].copy_from_slice(&i.to_le_bytes());
        let role = NeuronRole {
            uid: Uid(i),
            stake_rao: u64::from(i) * 1_000_000_000,
            validator_permit: i < 64,
        };
        m.insert(AccountId(key), role);
    }
    let role = NeuronRole {
        uid: Uid(255),
        stake_rao: 1_000_000_000_000,
        validator_permit: true,
    };
    m.insert(*caller, role);
    StaticMetagraph(m)
}

fn headers(pair: &Pair, receiver: &AccountId, nonce_ns: u64) -> HeaderMap {
    let mut h = HeaderMap::new();
    sign_request(
        pair,
        "POST",
        "/v1/chat/completions",
        BODY,
        Some(receiver),
        nonce_ns,
    )
    .write_to(&mut h);
    h
}

fn bench(c: &mut Criterion) {
    let client = Pair::from_seed(&[1; 32]);
    let server = Pair::from_seed(&[2; 32]);
    let to = server.account();
    let graph = metagraph(&client.account());
    let signed = headers(&client, &to, T0);
    let verifier = Verifier::new(to);
    let policy = AdmissionPolicy::validators(1_000);

    c.bench_function("sign_request", |b| {
        b.iter(|| {
            sign_request(
                black_box(&client),
                "POST",
                "/v1/chat/completions",
                BODY,
                Some(&to),
                T0,
            )
        })
    });

    // The floor: one bare sr25519 verification of a payload-sized message.
    let msg = agora_wire::protocol::request_payload(
        "POST",
        "/v1/chat/completions",
        BODY,
        T0,
        &client.account().to_ss58(),
        Some(&to.to_ss58()),
    );
    let sig = client.sign(&msg);
    let who = client.account();
    c.bench_function("sr25519_verify_only", |b| {
        b.iter(|| {
            assert!(agora_primitives::crypto::verify(
                &who,
                black_box(&msg),
                &sig
            ))
        })
    });

    c.bench_function("verify_signature", |b| {
        b.iter(|| {
            let auth = verifier.check_headers(black_box(&signed), T0).unwrap();
            verifier
                .check_signature(&auth, "POST", "/v1/chat/completions", BODY)
                .unwrap();
        })
    });

    c.bench_function("admission", |b| {
        let who = client.account();
        b.iter(|| policy.admit(&graph, black_box(&who)).unwrap())
    });

    c.bench_function("verify_signature_and_admission", |b| {
        b.iter(|| {
            let auth = verifier.check_headers(black_box(&signed), T0).unwrap();
            policy.admit(&graph, &auth.hotkey).unwrap();
            verifier
                .check_signature(&auth, "POST", "/v1/chat/completions", BODY)
                .unwrap();
        })
    });

    // The whole guard check on distinct, pre-signed requests (signing is setup, not timed),
    // with the replay store and a rate limit that never trips.
    let guard = Guard::new(
        server.clone(),
        Arc::new(graph.clone()),
        GuardConfig {
            admission: policy,
            rate_limit: Some(RateLimit {
                per_second: u32::MAX,
                burst: u32::MAX,
            }),
            nonce_capacity: usize::MAX,
            ..GuardConfig::default()
        },
    );
    let mut nonce = T0;
    c.bench_function("guard_check_full", |b| {
        b.iter_batched(
            || {
                nonce += 1;
                headers(&client, &to, nonce)
            },
            |h| {
                guard
                    .check("POST", "/v1/chat/completions", &h, BODY, T0)
                    .unwrap()
            },
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
