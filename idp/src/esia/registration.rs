//! `idp clients add --esia-certificate cert.pem`: registering the certificate an ESIA client
//! signs its request parameters with.

use std::path::Path;

use crate::audit::AuditEvent;
use crate::domain::{Client, EsiaCertificate};
use crate::store::{ClientStore, EsiaClientStore, SqlStore, StoreError};

use super::signature::RegisteredCertificate;

/// Reads and checks a PEM certificate (RSA >= 2048 bits or ECDSA P-256).
pub fn read_certificate(path: &Path) -> Result<RegisteredCertificate, String> {
    let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    RegisteredCertificate::from_pem(&pem).map_err(|e| format!("{}: {e}", path.display()))
}

/// Stores the certificate of a client just inserted, with an audit event; if that fails the
/// client is removed again, so no ESIA client exists without its certificate. Returns the
/// `client_certificate_hash` (hex SHA-256 of the DER certificate).
pub fn register(
    store: &SqlStore,
    client: &Client,
    cert: &RegisteredCertificate,
) -> Result<String, StoreError> {
    let now = chrono::Utc::now();
    let row = EsiaCertificate {
        client_id: client.id.clone(),
        certificate_pem: cert.to_pem(),
        certificate_hash: cert.hash_hex(),
        created_at: now,
    };
    let event = AuditEvent {
        at: now,
        kind: "esia.certificate_registered".into(),
        subject_id: None,
        client_id: Some(client.id.clone()),
        ip: None,
        detail: serde_json::json!({ "client_certificate_hash": row.certificate_hash }),
    };
    if let Err(e) = store.put_esia_certificate(&row, &event) {
        let _ = store.remove_client(&client.id);
        return Err(e);
    }
    Ok(row.certificate_hash)
}
