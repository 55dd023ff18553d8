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
