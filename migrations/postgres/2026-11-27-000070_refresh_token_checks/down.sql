-- Tokens whose client or subject is gone could never be used; they go before the keys return.
DELETE FROM refresh_tokens t
WHERE NOT EXISTS (SELECT 1 FROM clients c WHERE c.id = t.client_id)
   OR NOT EXISTS (SELECT 1 FROM subjects s WHERE s.id = t.subject_id);
ALTER TABLE refresh_tokens
    ADD CONSTRAINT refresh_tokens_client_id_fkey FOREIGN KEY (client_id) REFERENCES clients (id),
    ADD CONSTRAINT refresh_tokens_subject_id_fkey FOREIGN KEY (subject_id) REFERENCES subjects (id);
