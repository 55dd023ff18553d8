-- Notification outbox: messages written with the change that caused them and sent by a
-- background dispatcher on any node (see docs/design/notify.md).
--
-- The recipient (phone, e-mail, device token) and the body (subject + text, which may hold a
-- one-time code) are sealed with a data key, bound to the row id. last_error holds only an
-- error class or status code, never the recipient, the body or a server's reply text.
CREATE TABLE outbox (
    id TEXT PRIMARY KEY,
    -- email | sms | voice | push
    channel TEXT NOT NULL,
    recipient_sealed BYTEA NOT NULL,
    body_sealed BYTEA NOT NULL,
    -- What the message is (otp, password_changed, ...); for metrics and support, not content.
    kind TEXT NOT NULL,
    locale TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    -- Claims so far; a claim increments it, and only the claimer whose conditional UPDATE
    -- saw the previous value wins (no double send across nodes).
    attempts INTEGER NOT NULL,
    -- When the message is due; a claim moves it to the end of the lease.
    next_attempt_at TIMESTAMP NOT NULL,
    sent_at TIMESTAMP,
    -- Set when the dispatcher gave up (permanent error or too many attempts).
    failed_at TIMESTAMP,
    last_error TEXT
);
-- The dispatcher's pick query: pending messages by due time.
CREATE INDEX outbox_due_idx ON outbox (next_attempt_at) WHERE sent_at IS NULL AND failed_at IS NULL;
-- The janitor's purge of finished messages.
CREATE INDEX outbox_sent_idx ON outbox (sent_at) WHERE sent_at IS NOT NULL;
CREATE INDEX outbox_failed_idx ON outbox (failed_at) WHERE failed_at IS NOT NULL;
