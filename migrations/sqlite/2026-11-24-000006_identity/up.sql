-- The person (issue 5): account level and status, sealed SNILS/INN/birthplace with blind
-- indexes for sign-in, documents/contacts/addresses as sealed rows with a change history,
-- organisations, registry verification requests, and the minimum level a client requires.
-- No `persons` row = a simplified, active account with nothing else recorded.

CREATE TABLE persons (
    subject_id TEXT PRIMARY KEY REFERENCES subjects (id),
    account_level TEXT NOT NULL,
    status TEXT NOT NULL,
    -- Keyed HMACs of `login:<digits>` (the same index as subjects.login_index), so sign-in by
    -- SNILS or INN finds the person without the number in clear.
    snils_index TEXT UNIQUE,
    inn_index TEXT UNIQUE,
    -- SNILS, INN, birthplace, citizenship, confirmation (JSON), sealed.
    data_sealed BLOB NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

-- Documents, contacts and addresses: one row per item, the item (JSON) sealed.
CREATE TABLE person_items (
    id TEXT PRIMARY KEY,
    subject_id TEXT NOT NULL REFERENCES subjects (id),
    collection TEXT NOT NULL,
    kind TEXT NOT NULL,
    data_sealed BLOB NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX person_items_subject_idx ON person_items (subject_id, collection);

-- Every change of a person's collections and identifiers, with its date; before/after sealed.
CREATE TABLE person_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    subject_id TEXT NOT NULL,
    at TIMESTAMP NOT NULL,
    collection TEXT NOT NULL,
    action TEXT NOT NULL,
    item_id TEXT,
    change_sealed BLOB NOT NULL
);
CREATE INDEX person_history_subject_idx ON person_history (subject_id, id);

CREATE TABLE organizations (
    oid BIGINT PRIMARY KEY,
    ogrn TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE org_members (
    subject_id TEXT NOT NULL REFERENCES subjects (id),
    org_oid BIGINT NOT NULL REFERENCES organizations (oid),
    role TEXT NOT NULL,
    since TIMESTAMP NOT NULL,
    PRIMARY KEY (subject_id, org_oid)
);

-- A request to the registry: submitted -> pending (retried with backoff) -> final.
CREATE TABLE verifications (
    id TEXT PRIMARY KEY,
    subject_id TEXT NOT NULL REFERENCES subjects (id),
    state TEXT NOT NULL,
    reason TEXT,
    claim_sealed BLOB NOT NULL,
    registry_ref TEXT,
    attempts INTEGER NOT NULL,
    next_attempt_at TIMESTAMP NOT NULL,
    last_error TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX verifications_due_idx ON verifications (state, next_attempt_at);
CREATE INDEX verifications_subject_idx ON verifications (subject_id, created_at);

-- The minimum account level a client requires (`clients add --min-account-level`).
CREATE TABLE client_levels (
    client_id TEXT PRIMARY KEY REFERENCES clients (id) ON DELETE CASCADE,
    min_account_level TEXT NOT NULL
);
