//! Domain types: identifiers, clients, subjects, sessions, grants. No I/O here.

pub mod client;
pub mod credential;
pub mod identifier;
pub mod person;
pub mod subject;
pub mod token;

pub use client::{Client, ClientAuthMethod, EsiaCertificate, GrantType};
pub use credential::{Credential, CredentialKind};
pub use subject::{Profile, Subject};
pub use token::{Grant, RefreshToken, SsoSession};
