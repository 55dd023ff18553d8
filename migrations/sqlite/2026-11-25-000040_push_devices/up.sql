-- A person's push devices (the citizen's mobile app), for one-time sign-in codes sent as
-- push notifications. token_sealed: the device token, sealed by the vault and bound to the
-- row id; token_index: its keyed blind index (a token is registered to one person at a
-- time). Removed devices keep their row (removed_at) as the history of factors.
CREATE TABLE push_devices (
    id TEXT PRIMARY KEY,
    subject_id TEXT NOT NULL REFERENCES subjects (id),
    platform TEXT NOT NULL,
    token_sealed BLOB NOT NULL,
    token_index TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP,
    removed_at TIMESTAMP
);
CREATE INDEX push_devices_subject_idx ON push_devices (subject_id, removed_at);
CREATE INDEX push_devices_token_idx ON push_devices (token_index);
