//! Cost of the key operations on the token path and of sealing personal data.
//!
//! ```sh
//! cargo bench -p keys --bench keys
//! ```
//!
//! * `sign/jwt/{alg}` — a typical ID token (`SigningKey::sign_jwt`: header + claims JSON,
//!   base64url, signature).
//! * `sign/raw/{alg}` — the signature alone through `SigningKey::sign_bytes`, and
//!   `sign/ring/ES256` — ring's `EcdsaKeyPair::sign` directly on the same signing input, the
//!   primitive the ES256 figure is compared with (target: within 1.5x).
//! * `verify/{alg}` — `verify_jws` of that token against a three-key JWKS.
//! * `seal/256B`, `open/256B` — AES-256-GCM of a 256-byte value (a profile) with `Vault`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use keys::{Alg, DataKey, SigningKey, Vault, VerifyingKey};
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

fn claims() -> serde_json::Value {
    serde_json::json!({
        "iss": "https://id.example.ru", "sub": "8d7c1f9e-2b6a-4c1e-9a7e-3f5b2d1c0e9a",
        "aud": "portal-tax", "azp": "portal-tax", "exp": 1_800_000_600_i64,
        "iat": 1_800_000_000_i64, "auth_time": 1_799_999_990_i64,
        "acr": "urn:propusk:acr:2", "amr": ["pwd", "otp"], "sid": "b2f0c1d3e4a5",
        "nonce": "n-0S6_WzA2Mj",
    })
}

fn bench(c: &mut Criterion) {
    let keys: Vec<SigningKey> = Alg::ALL
        .iter()
        .map(|a| SigningKey::generate(*a).unwrap())
        .collect();
    let verifying: Vec<VerifyingKey> = keys.iter().map(SigningKey::verifying_key).collect();
    let claims = claims();
    let input = {
        let jwt = keys[0].sign_jwt(Some("JWT"), &claims).unwrap();
        jwt.rsplit_once('.').unwrap().0.to_string()
    };

    let mut g = c.benchmark_group("sign");
    for k in &keys {
        g.bench_function(format!("jwt/{}", k.alg()), |b| {
            b.iter(|| k.sign_jwt(Some("JWT"), black_box(&claims)).unwrap())
        });
        g.bench_function(format!("raw/{}", k.alg()), |b| {
            b.iter(|| k.sign_bytes(black_box(input.as_bytes())).unwrap())
        });
    }
    let rng = ring::rand::SystemRandom::new();
    let raw = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        keys[0].to_pkcs8().expose(),
        &rng,
    )
    .unwrap();
    g.bench_function("ring/ES256", |b| {
        b.iter(|| raw.sign(&rng, black_box(input.as_bytes())).unwrap())
    });
    g.finish();

    let mut g = c.benchmark_group("verify");
    for k in &keys {
        let jwt = k.sign_jwt(Some("JWT"), &claims).unwrap();
        g.bench_function(k.alg().as_str(), |b| {
            b.iter(|| keys::verify_jws(black_box(&jwt), &verifying).unwrap())
        });
    }
    g.finish();

    let vault = Vault::new(
        DataKey::generate().unwrap(),
        vec![],
        DataKey::generate().unwrap(),
    );
    let plain = vec![0x5a_u8; 256];
    let sealed = vault.seal(&plain, b"subjects.profile:1").unwrap();
    c.bench_function("seal/256B", |b| {
        b.iter(|| {
            vault
                .seal(black_box(&plain), b"subjects.profile:1")
                .unwrap()
        })
    });
    c.bench_function("open/256B", |b| {
        b.iter(|| {
            vault
                .open(black_box(&sealed), b"subjects.profile:1")
                .unwrap()
        })
    });
    c.bench_function("blind_index", |b| {
        b.iter(|| vault.blind_index(black_box("login:+79123456789")))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    targets = bench
}
criterion_main!(benches);
