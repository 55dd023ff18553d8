//! `idp users add-push-device`: an operator (or a demo) registers a person's push device,
//! as the mobile app does through `POST /account/push-devices`. The token is given on the
//! command line, so use it for demos and support, not as the app's path.

use idp::audit::AuditEvent;
use idp::clock::{Clock, SystemClock};
use idp::domain::identifier::normalize_login;
use idp::startup::BoxError;
use idp::store::push::{clean_name, PushAdded};
use idp::store::{PushDevice, PushDeviceStore, PushPlatform, PushToken, SqlStore, SubjectStore};

pub fn add_push_device(
    store: &SqlStore,
    login: &str,
    platform: &str,
    token: &str,
    name: Option<&str>,
    json: bool,
) -> Result<(), BoxError> {
    let s = store
        .find_subject_by_login(&normalize_login(login))?
        .ok_or_else(|| format!("no account with login `{login}`"))?;
    let platform =
        PushPlatform::parse(platform).ok_or("--platform must be android, ios or huawei")?;
    let token = PushToken::parse(token)
        .ok_or("--token must be 1 to 4096 printable ASCII characters without spaces")?;
    let now = SystemClock.now();
    let device = PushDevice {
        id: uuid::Uuid::new_v4().to_string(),
        subject_id: s.id.clone(),
        platform,
        token,
        name: name
            .and_then(clean_name)
            .unwrap_or_else(|| platform.as_str().into()),
        created_at: now,
        last_used_at: None,
        removed_at: None,
    };
    let event = AuditEvent {
        at: now,
        kind: "push_device.added".into(),
        subject_id: Some(s.id.clone()),
        client_id: None,
        ip: None,
        detail: serde_json::json!({
            "actor": "operator:cli",
            "id": device.id,
            "platform": platform.as_str(),
            "name": device.name,
        }),
    };
    match store.add_push_device(&device, now, &event)? {
        PushAdded::Added { .. } => {}
        PushAdded::TooMany => {
            return Err("the account already has the most devices allowed; remove one first".into())
        }
    }
    if json {
        println!(
            "{}",
            serde_json::json!({
                "id": device.id,
                "platform": platform.as_str(),
                "name": device.name,
                "created_at": device.created_at.timestamp(),
            })
        );
    } else {
        println!(
            "push device {} ({}) added for {login}",
            device.id, device.name
        );
    }
    Ok(())
}
