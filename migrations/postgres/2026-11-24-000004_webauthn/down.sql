DROP TABLE webauthn_credentials;
DROP TABLE webauthn_handles;
