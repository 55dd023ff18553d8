-- ESIA dialect: the certificate a client signs its request parameters with (one per client).
CREATE TABLE esia_clients (
    client_id TEXT PRIMARY KEY REFERENCES clients (id) ON DELETE CASCADE,
    -- The registered X.509 certificate, PEM.
    certificate_pem TEXT NOT NULL,
    -- Hex SHA-256 of the DER certificate: what `client_certificate_hash` must equal.
    certificate_hash TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
