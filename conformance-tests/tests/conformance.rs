//! Black-box conformance suite: starts the real `idp` binary and drives it over HTTP.
//! Test names follow the OpenID Foundation conformance modules (`-` -> `_`); see
//! `/work/shared/conformance-modules.md` for what each module checks.
//!
//! Every test runs on SQLite + in-process store, and also on Postgres + Redis when
//! `TEST_DATABASE_URL` and `TEST_REDIS_URL` are set. Build the server first:
//! `cargo build -p idp` (or point `IDP_BIN` at a binary).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "conformance/harness.rs"]
mod harness;

#[path = "conformance/browser.rs"]
mod browser;

#[path = "conformance/basic.rs"]
mod basic;

#[path = "conformance/config.rs"]
mod config;

#[path = "conformance/confirmation.rs"]
mod confirmation;

#[path = "conformance/logout.rs"]
mod logout;

#[path = "conformance/extra.rs"]
mod extra;

#[path = "conformance/negative.rs"]
mod negative;

#[path = "conformance/keys.rs"]
mod keys;

#[path = "conformance/signin.rs"]
mod signin;

#[path = "conformance/loadgen.rs"]
mod loadgen;

#[path = "conformance/webauthn.rs"]
mod webauthn;

#[path = "conformance/esia.rs"]
mod esia;

#[path = "conformance/otp.rs"]
mod otp;

#[path = "conformance/recovery.rs"]
mod recovery;

#[path = "conformance/identity.rs"]
mod identity;

#[path = "conformance/push.rs"]
mod push;
