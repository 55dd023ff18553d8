//! ESIA dialect: the certificate each ESIA client signs its request parameters with.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::models::NewAuditEvent;
use super::schema::{audit_events, esia_clients};
use super::{from_db_time, to_db_time, SqlStore};
use crate::audit::AuditEvent;
use crate::domain::EsiaCertificate;
use crate::store::{EsiaClientStore, StoreResult};

#[derive(Insertable, Queryable, Selectable, AsChangeset)]
#[diesel(table_name = esia_clients)]
struct EsiaClientRow {
    client_id: String,
    certificate_pem: String,
    certificate_hash: String,
    created_at: NaiveDateTime,
}

impl From<&EsiaCertificate> for EsiaClientRow {
    fn from(c: &EsiaCertificate) -> Self {
        EsiaClientRow {
            client_id: c.client_id.clone(),
            certificate_pem: c.certificate_pem.clone(),
            certificate_hash: c.certificate_hash.clone(),
            created_at: to_db_time(c.created_at),
        }
    }
}

impl From<EsiaClientRow> for EsiaCertificate {
    fn from(r: EsiaClientRow) -> Self {
        EsiaCertificate {
            client_id: r.client_id,
            certificate_pem: r.certificate_pem,
            certificate_hash: r.certificate_hash,
            created_at: from_db_time(r.created_at),
        }
    }
}

impl EsiaClientStore for SqlStore {
    fn put_esia_certificate(&self, c: &EsiaCertificate, event: &AuditEvent) -> StoreResult<()> {
        let row = EsiaClientRow::from(c);
        let audit = NewAuditEvent::try_from(event)?;
        self.transaction(|conn| {
            diesel::delete(esia_clients::table.find(&row.client_id)).execute(conn)?;
            diesel::insert_into(esia_clients::table)
                .values(&row)
                .execute(conn)?;
            diesel::insert_into(audit_events::table)
                .values(&audit)
                .execute(conn)?;
            Ok(())
        })
    }

    fn find_esia_certificate(&self, client_id: &str) -> StoreResult<Option<EsiaCertificate>> {
        let mut conn = self.conn()?;
        let row = esia_clients::table
            .find(client_id)
            .select(EsiaClientRow::as_select())
            .first(&mut *conn)
            .optional()?;
        Ok(row.map(EsiaCertificate::from))
    }
}
