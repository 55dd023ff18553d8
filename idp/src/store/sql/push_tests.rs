//! Contract tests of push devices, on every backend.

use super::tests::{each, subject, t0};
use crate::audit::AuditEvent;
use crate::store::push::{
    PushAdded, PushDevice, PushDeviceStore, PushPlatform, PushToken, MAX_DEVICES,
};
use crate::store::{AuditStore, SubjectStore};

fn event(kind: &str) -> AuditEvent {
    AuditEvent {
        at: t0(),
        kind: kind.into(),
        subject_id: Some("sub-1".into()),
        client_id: None,
        ip: None,
        detail: serde_json::json!({}),
    }
}

fn device(id: &str, sub: &str, token: &str) -> PushDevice {
    PushDevice {
        id: id.into(),
        subject_id: sub.into(),
        platform: PushPlatform::Ios,
        token: PushToken::parse(token).unwrap(),
        name: format!("phone {id}"),
        created_at: t0(),
        last_used_at: None,
        removed_at: None,
    }
}

#[test]
fn push_devices_are_added_listed_touched_and_removed() {
    each(|s| {
        s.insert_subject(&subject("sub-1", "a@example.ru")).unwrap();
        s.insert_subject(&subject("sub-2", "b@example.ru")).unwrap();
        let added = s
            .add_push_device(
                &device("d1", "sub-1", "tok-1"),
                t0(),
                &event("push_device.added"),
            )
            .unwrap();
        assert_eq!(added, PushAdded::Added { replaced: 0 });
        let list = s.list_push_devices("sub-1").unwrap();
        assert_eq!(list, vec![device("d1", "sub-1", "tok-1")]);
        assert!(s.list_push_devices("sub-2").unwrap().is_empty());

        let later = t0() + chrono::Duration::seconds(30);
        s.touch_push_device("d1", later).unwrap();
        assert_eq!(
            s.list_push_devices("sub-1").unwrap()[0].last_used_at,
            Some(later)
        );

        // Someone else cannot remove it; the owner can, once.
        assert!(!s
            .remove_push_device("sub-2", "d1", later, &event("push_device.removed"))
            .unwrap());
        assert!(s
            .remove_push_device("sub-1", "d1", later, &event("push_device.removed"))
            .unwrap());
        assert!(!s
            .remove_push_device("sub-1", "d1", later, &event("push_device.removed"))
            .unwrap());
        assert!(s.list_push_devices("sub-1").unwrap().is_empty());
        let kinds: Vec<String> = s
            .list_audit(10)
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(
            kinds.iter().filter(|k| *k == "push_device.removed").count(),
            1,
            "{kinds:?}"
        );
        assert!(kinds.contains(&"push_device.added".to_string()));
    });
}

#[test]
fn a_token_belongs_to_one_registration_and_devices_are_bounded() {
    each(|s| {
        s.insert_subject(&subject("sub-1", "a@example.ru")).unwrap();
        s.insert_subject(&subject("sub-2", "b@example.ru")).unwrap();
        let ev = event("push_device.added");
        s.add_push_device(&device("d1", "sub-1", "shared"), t0(), &ev)
            .unwrap();
        // The phone changed hands: the new owner registers the same token.
        assert_eq!(
            s.add_push_device(&device("d2", "sub-2", "shared"), t0(), &ev)
                .unwrap(),
            PushAdded::Added { replaced: 1 }
        );
        assert!(s.list_push_devices("sub-1").unwrap().is_empty());
        assert_eq!(s.list_push_devices("sub-2").unwrap().len(), 1);

        for i in 0..MAX_DEVICES - 1 {
            let d = device(&format!("m{i}"), "sub-2", &format!("t{i}"));
            assert!(matches!(
                s.add_push_device(&d, t0(), &ev).unwrap(),
                PushAdded::Added { .. }
            ));
        }
        let one_more = device("x", "sub-2", "t-x");
        assert_eq!(
            s.add_push_device(&one_more, t0(), &ev).unwrap(),
            PushAdded::TooMany
        );
        assert_eq!(s.list_push_devices("sub-2").unwrap().len(), MAX_DEVICES);
        // Re-registering a token it already has frees its own slot.
        assert_eq!(
            s.add_push_device(&device("d3", "sub-2", "t0"), t0(), &ev)
                .unwrap(),
            PushAdded::Added { replaced: 1 }
        );
    });
}
