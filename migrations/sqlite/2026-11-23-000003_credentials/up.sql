-- Second factors of a subject. kind: totp (secret sealed with a data key, last_used_step
-- refuses a replayed code) | recovery (one-time code, keyed hash, used_at once spent).
CREATE TABLE credentials (
    id TEXT PRIMARY KEY,
    subject_id TEXT NOT NULL REFERENCES subjects (id),
    kind TEXT NOT NULL,
    secret_sealed BLOB,
    secret_hash TEXT,
    last_used_step BIGINT,
    created_at TIMESTAMP NOT NULL,
    confirmed_at TIMESTAMP,
    used_at TIMESTAMP
);
CREATE INDEX credentials_subject_idx ON credentials (subject_id, kind);
CREATE UNIQUE INDEX credentials_hash_idx ON credentials (secret_hash);
