-- Sign-in state of a person (issue 4): a temporary password that must be changed at the next
-- sign-in, and the second factor used last (offered first next time). No row = defaults.
CREATE TABLE signin_state (
    subject_id TEXT PRIMARY KEY REFERENCES subjects (id),
    password_must_change BOOLEAN NOT NULL DEFAULT FALSE,
    last_factor TEXT,
    updated_at TIMESTAMP NOT NULL
);

-- Confirmed contacts (phone, e-mail) of each person by keyed HMAC (blind index), so that
-- "forgot password / login" finds an account by a contact that is not its login, without
-- the contact in clear. Several accounts may share a contact.
CREATE TABLE contact_index (
    index_hash TEXT NOT NULL,
    subject_id TEXT NOT NULL REFERENCES subjects (id),
    PRIMARY KEY (index_hash, subject_id)
);
CREATE INDEX contact_index_subject_idx ON contact_index (subject_id);
