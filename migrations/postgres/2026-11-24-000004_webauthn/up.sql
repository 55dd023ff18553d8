-- WebAuthn user handle of a subject: random (a UUID), neither the OIDC sub nor the login,
-- created when the first passkey or security key is enrolled.
CREATE TABLE webauthn_handles (
    subject_id TEXT PRIMARY KEY REFERENCES subjects (id),
    handle TEXT NOT NULL UNIQUE
);
-- Passkeys (first factor) and security keys (second factor). data: the webauthn-rs
-- credential (public key only) as versioned JSON; sign_count only moves forward.
CREATE TABLE webauthn_credentials (
    id TEXT PRIMARY KEY,
    subject_id TEXT NOT NULL REFERENCES subjects (id),
    kind TEXT NOT NULL,
    cred_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    data TEXT NOT NULL,
    sign_count BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP
);
CREATE INDEX webauthn_credentials_subject_idx ON webauthn_credentials (subject_id, kind);
