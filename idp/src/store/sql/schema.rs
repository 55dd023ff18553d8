//! Diesel table definitions, shared by Postgres and SQLite (see `migrations/*/`).

diesel::table! {
    clients (id) {
        id -> Text,
        name -> Text,
        secret_hash -> Nullable<Text>,
        auth_method -> Text,
        redirect_uris -> Text,
        post_logout_redirect_uris -> Text,
        grant_types -> Text,
        scopes -> Text,
        jwks -> Nullable<Text>,
        id_token_alg -> Nullable<Text>,
        created_at -> Timestamp,
        min_acr -> Nullable<Text>,
    }
}

diesel::table! {
    oid_counter (id) {
        id -> Integer,
        next_oid -> BigInt,
    }
}

diesel::table! {
    subjects (id) {
        id -> Text,
        oid -> BigInt,
        login_index -> Text,
        login_sealed -> Binary,
        password_hash -> Text,
        profile_sealed -> Binary,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    sessions (id_hash) {
        id_hash -> Text,
        sid -> Text,
        subject_id -> Text,
        auth_time -> Timestamp,
        acr -> Text,
        amr -> Text,
        remember -> Bool,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        ended_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    grants (subject_id, client_id) {
        subject_id -> Text,
        client_id -> Text,
        scopes -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    refresh_tokens (token_hash) {
        token_hash -> Text,
        family_id -> Text,
        client_id -> Text,
        subject_id -> Text,
        scopes -> Text,
        sid -> Nullable<Text>,
        auth_time -> Timestamp,
        acr -> Text,
        amr -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    signing_keys (kid) {
        kid -> Text,
        alg -> Text,
        state -> Text,
        private_sealed -> Binary,
        public_jwk -> Text,
        created_at -> Timestamp,
        activated_at -> Nullable<Timestamp>,
        retired_at -> Nullable<Timestamp>,
        removed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    data_keys (id) {
        id -> Text,
        purpose -> Text,
        wrapped -> Binary,
        created_at -> Timestamp,
    }
}

diesel::table! {
    locks (name) {
        name -> Text,
        n -> BigInt,
    }
}

diesel::table! {
    audit_events (id) {
        id -> BigInt,
        at -> Timestamp,
        kind -> Text,
        subject_id -> Nullable<Text>,
        client_id -> Nullable<Text>,
        ip -> Nullable<Text>,
        detail -> Text,
    }
}

diesel::table! {
    credentials (id) {
        id -> Text,
        subject_id -> Text,
        kind -> Text,
        secret_sealed -> Nullable<Binary>,
        secret_hash -> Nullable<Text>,
        last_used_step -> Nullable<BigInt>,
        created_at -> Timestamp,
        confirmed_at -> Nullable<Timestamp>,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    signin_state (subject_id) {
        subject_id -> Text,
        password_must_change -> Bool,
        last_factor -> Nullable<Text>,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    webauthn_handles (subject_id) {
        subject_id -> Text,
        handle -> Text,
    }
}

diesel::table! {
    webauthn_credentials (id) {
        id -> Text,
        subject_id -> Text,
        kind -> Text,
        cred_id -> Text,
        name -> Text,
        data -> Text,
        sign_count -> BigInt,
        created_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    esia_clients (client_id) {
        client_id -> Text,
        certificate_pem -> Text,
        certificate_hash -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    persons (subject_id) {
        subject_id -> Text,
        account_level -> Text,
        status -> Text,
        snils_index -> Nullable<Text>,
        inn_index -> Nullable<Text>,
        data_sealed -> Binary,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    person_items (id) {
        id -> Text,
        subject_id -> Text,
        collection -> Text,
        kind -> Text,
        data_sealed -> Binary,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    person_history (id) {
        id -> BigInt,
        subject_id -> Text,
        at -> Timestamp,
        collection -> Text,
        action -> Text,
        item_id -> Nullable<Text>,
        change_sealed -> Binary,
    }
}

diesel::table! {
    organizations (oid) {
        oid -> BigInt,
        ogrn -> Text,
        name -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    org_members (subject_id, org_oid) {
        subject_id -> Text,
        org_oid -> BigInt,
        role -> Text,
        since -> Timestamp,
    }
}

diesel::table! {
    verifications (id) {
        id -> Text,
        subject_id -> Text,
        state -> Text,
        reason -> Nullable<Text>,
        claim_sealed -> Binary,
        registry_ref -> Nullable<Text>,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    client_levels (client_id) {
        client_id -> Text,
        min_account_level -> Text,
    }
}

diesel::table! {
    contact_index (index_hash, subject_id) {
        index_hash -> Text,
        subject_id -> Text,
    }
}

diesel::table! {
    push_devices (id) {
        id -> Text,
        subject_id -> Text,
        platform -> Text,
        token_sealed -> Binary,
        token_index -> Text,
        name -> Text,
        created_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
        removed_at -> Nullable<Timestamp>,
    }
}

// For correlated subqueries (`rotation.rs`: grants whose subject exists) and the joined
// reads of a session at the authorization endpoint and of a sign-in (`queries.rs`:
// find_live_session_at, find_signin_at).
diesel::allow_tables_to_appear_in_same_query!(
    sessions,
    grants,
    persons,
    subjects,
    client_levels,
    signin_state,
    credentials,
    webauthn_credentials,
);
