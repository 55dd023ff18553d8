-- A refresh token's subject and client are checked by the statements that write tokens, not
-- by foreign keys: a rotation spends a token only while its subject and grant exist, and
-- stores the successor from the spent row; a family's first token is stored only where its
-- subject and client exist (store/sql/rotation_pg.rs, rotation.rs); removing a client
-- removes its tokens in the same transaction. The foreign keys checked the same again on
-- every insert, a lookup and a row lock per key and token, about a tenth of a refresh's
-- time (docs/design/core-decisions.md, "Refresh tokens without foreign keys").
ALTER TABLE refresh_tokens
    DROP CONSTRAINT IF EXISTS refresh_tokens_client_id_fkey,
    DROP CONSTRAINT IF EXISTS refresh_tokens_subject_id_fkey;
