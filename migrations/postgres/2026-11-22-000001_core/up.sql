-- Core tables. Times are UTC `TIMESTAMP` (no zone); lists and documents are JSON text so the
-- same diesel schema serves Postgres and SQLite.

CREATE TABLE clients (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    secret_hash TEXT,
    auth_method TEXT NOT NULL,
    redirect_uris TEXT NOT NULL,
    post_logout_redirect_uris TEXT NOT NULL,
    grant_types TEXT NOT NULL,
    scopes TEXT NOT NULL,
    jwks TEXT,
    id_token_alg TEXT,
    created_at TIMESTAMP NOT NULL
);

-- Next oid to hand out; one row, incremented inside the subject insert transaction.
CREATE TABLE oid_counter (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    next_oid BIGINT NOT NULL
);
INSERT INTO oid_counter (id, next_oid) VALUES (1, 1000000001);

CREATE TABLE subjects (
    id TEXT PRIMARY KEY,
    oid BIGINT NOT NULL UNIQUE,
    -- Keyed HMAC of the normalised login (e-mail or phone): lookups without the value in clear.
    login_index TEXT NOT NULL UNIQUE,
    -- The login and the profile (JSON), sealed with a data key (AES-256-GCM).
    login_sealed BYTEA NOT NULL,
    password_hash TEXT NOT NULL,
    profile_sealed BYTEA NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY,
    sid TEXT NOT NULL UNIQUE,
    subject_id TEXT NOT NULL REFERENCES subjects (id),
    auth_time TIMESTAMP NOT NULL,
    acr TEXT NOT NULL,
    amr TEXT NOT NULL,
    remember BOOLEAN NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    ended_at TIMESTAMP
);
CREATE INDEX sessions_subject_idx ON sessions (subject_id);

CREATE TABLE grants (
    subject_id TEXT NOT NULL REFERENCES subjects (id),
    client_id TEXT NOT NULL REFERENCES clients (id),
    scopes TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (subject_id, client_id)
);
CREATE INDEX grants_client_idx ON grants (client_id);

CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    family_id TEXT NOT NULL,
    client_id TEXT NOT NULL REFERENCES clients (id),
    subject_id TEXT NOT NULL REFERENCES subjects (id),
    scopes TEXT NOT NULL,
    sid TEXT,
    auth_time TIMESTAMP NOT NULL,
    acr TEXT NOT NULL,
    amr TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP,
    revoked_at TIMESTAMP
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_subject_client_idx ON refresh_tokens (subject_id, client_id);
CREATE INDEX refresh_tokens_client_idx ON refresh_tokens (client_id);

CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    alg TEXT NOT NULL,
    state TEXT NOT NULL,
    -- PKCS#8 sealed under the master key; emptied when the key is removed.
    private_sealed BYTEA NOT NULL,
    public_jwk TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    activated_at TIMESTAMP,
    retired_at TIMESTAMP,
    removed_at TIMESTAMP
);

-- Data keys of the envelope encryption, each sealed ("wrapped") under the master key, which
-- is never stored. purpose: data (seals personal data) | index (keys the blind indexes).
CREATE TABLE data_keys (
    id TEXT PRIMARY KEY,
    purpose TEXT NOT NULL,
    wrapped BYTEA NOT NULL,
    created_at TIMESTAMP NOT NULL
);

-- Rows updated first in a transaction to serialise a job across nodes (key rotation,
-- data-key creation): a row lock on Postgres, the write lock on SQLite.
CREATE TABLE locks (
    name TEXT PRIMARY KEY,
    n BIGINT NOT NULL
);
INSERT INTO locks (name, n) VALUES ('signing_keys', 0), ('data_keys', 0);

CREATE TABLE audit_events (
    id BIGSERIAL PRIMARY KEY,
    at TIMESTAMP NOT NULL,
    kind TEXT NOT NULL,
    subject_id TEXT,
    client_id TEXT,
    ip TEXT,
    detail TEXT NOT NULL
);
CREATE INDEX audit_events_at_idx ON audit_events (at);
