//! The argon2id bound: what one password check costs at the parameters the server uses.
//!
//! A fresh sign-in verifies exactly one argon2id hash, so on this machine no login flow can
//! beat `cores / cost_of_one_hash`; `docs/performance.md` reports the fresh-flow throughput
//! as a percentage of that bound.
//!
//! ```sh
//! cargo bench -p idp --bench password
//! ```
//!
//! * `argon2id/hash` — `PasswordHasher::hash_blocking` at `PasswordConfig::default()` (OWASP:
//!   m=19456 KiB, t=2, p=1), the same parameters `idp users add` and a sign-in use.
//! * `argon2id/verify` — the check a sign-in performs (argon2 crate, same parameters, on a
//!   PHC string produced by the server's hasher).
//! * `argon2id/verify_x{N}` — N checks at once on N threads (N = cores): the machine's
//!   bound is `N / time`, which includes memory-bandwidth contention between cores.
//! * `argon2id/verify_reused_memory` and `argon2id/verify_fresh_memory` — one check into a
//!   buffer kept from the previous one (and wiped after, as a password worker does) against
//!   one into a newly mapped buffer (what the first check after `release_idle_secs` pays);
//!   `argon2id/wipe_memory` is the wipe alone.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use criterion::{criterion_group, criterion_main, Criterion};
use idp::authn::password::PasswordHasher;
use idp::config::PasswordConfig;

const PASSWORD: &str = "Correct-Horse-7!";

fn server_argon(cfg: &PasswordConfig) -> Argon2<'static> {
    let params = Params::new(cfg.memory_kib, cfg.iterations, cfg.parallelism, None).unwrap();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn bench(c: &mut Criterion) {
    let cfg = PasswordConfig::default();
    eprintln!(
        "argon2id parameters (PasswordConfig::default): m={} KiB, t={}, p={}",
        cfg.memory_kib, cfg.iterations, cfg.parallelism
    );
    let hasher = PasswordHasher::new(&cfg).unwrap();
    let phc = hasher.hash_blocking(PASSWORD).unwrap();
    let argon = server_argon(&cfg);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);

    let mut g = c.benchmark_group("argon2id");
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    g.bench_function("hash", |b| {
        b.iter(|| black_box(hasher.hash_blocking(black_box(PASSWORD)).unwrap()))
    });
    g.bench_function("verify", |b| {
        b.iter(|| {
            let parsed = PasswordHash::new(&phc).unwrap();
            assert!(argon
                .verify_password(black_box(PASSWORD.as_bytes()), &parsed)
                .is_ok());
        })
    });
    g.bench_function(format!("verify_x{cores}"), |b| {
        b.iter(|| {
            std::thread::scope(|s| {
                for _ in 0..cores {
                    s.spawn(|| {
                        let parsed = PasswordHash::new(&phc).unwrap();
                        assert!(argon
                            .verify_password(black_box(PASSWORD.as_bytes()), &parsed)
                            .is_ok());
                    });
                }
            })
        })
    });
    let blocks = argon.params().block_count();
    let (salt, expected) = {
        let parsed = PasswordHash::new(&phc).unwrap();
        let mut buf = [0u8; 64];
        let salt = parsed.salt.unwrap().decode_b64(&mut buf).unwrap().to_vec();
        (salt, parsed.hash.unwrap().as_bytes().to_vec())
    };
    let check = |memory: &mut [Block]| {
        let mut out = vec![0u8; expected.len()];
        argon
            .hash_password_into_with_memory(PASSWORD.as_bytes(), &salt, &mut out, memory)
            .unwrap();
        assert_eq!(out, expected);
    };
    let mut kept = vec![Block::default(); blocks];
    g.bench_function("verify_reused_memory", |b| {
        b.iter(|| {
            check(&mut kept);
            kept.iter_mut().for_each(|b| *b = Block::default());
        })
    });
    g.bench_function("wipe_memory", |b| {
        b.iter(|| {
            kept.iter_mut().for_each(|b| *b = Block::default());
            black_box(&mut kept);
        })
    });
    g.bench_function("verify_fresh_memory", |b| {
        b.iter(|| {
            // Reserved above glibc's mmap ceiling, as the workers do: a mapping of its own.
            let mut fresh: Vec<Block> = Vec::with_capacity(blocks.max(32 * 1024 + 1));
            fresh.resize(blocks, Block::default());
            check(&mut fresh);
            fresh.iter_mut().for_each(|b| *b = Block::default());
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
