DROP TABLE audit_events;
DROP TABLE signing_keys;
DROP TABLE refresh_tokens;
DROP TABLE grants;
DROP TABLE sessions;
DROP TABLE subjects;
DROP TABLE oid_counter;
DROP TABLE clients;
