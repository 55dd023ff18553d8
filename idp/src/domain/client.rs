use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How a client authenticates at the token, introspection and revocation endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    PrivateKeyJwt,
    None,
    /// ESIA dialect: a signature of the request parameters, verified with the client's
    /// registered certificate ([`EsiaCertificate`]); only on the `/aas/oauth2/*` paths.
    EsiaSignature,
}

impl ClientAuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::PrivateKeyJwt => "private_key_jwt",
            Self::None => "none",
            Self::EsiaSignature => "esia_signature",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "client_secret_basic" => Self::ClientSecretBasic,
            "client_secret_post" => Self::ClientSecretPost,
            "private_key_jwt" => Self::PrivateKeyJwt,
            "none" => Self::None,
            "esia_signature" => Self::EsiaSignature,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    AuthorizationCode,
    RefreshToken,
    ClientCredentials,
}

impl GrantType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::RefreshToken => "refresh_token",
            Self::ClientCredentials => "client_credentials",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "authorization_code" => Self::AuthorizationCode,
            "refresh_token" => Self::RefreshToken,
            "client_credentials" => Self::ClientCredentials,
            _ => return None,
        })
    }
}

/// A registered relying portal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Client {
    pub id: String,
    pub name: String,
    /// SHA-256 of the secret, base64url; `None` for public and private_key_jwt clients.
    pub secret_hash: Option<String>,
    pub auth_method: ClientAuthMethod,
    /// Registered redirect URIs, compared exactly.
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<GrantType>,
    /// Scopes an operator approved for this client.
    pub scopes: Vec<String>,
    /// Public keys (a JWK Set document) for private_key_jwt.
    pub jwks: Option<serde_json::Value>,
    /// `id_token_signed_response_alg`; `None` means the server default.
    pub id_token_alg: Option<String>,
    pub created_at: DateTime<Utc>,
    /// The weakest sign-in this client accepts (an acr of `acr_values_supported`); a request
    /// that asks for less is treated as asking for this, so the person steps up.
    #[serde(default)]
    pub min_acr: Option<String>,
}

impl Client {
    pub fn allows_grant(&self, g: GrantType) -> bool {
        self.grant_types.contains(&g)
    }
    pub fn is_public(&self) -> bool {
        self.auth_method == ClientAuthMethod::None
    }
}

/// ESIA dialect: the certificate a client signs its request parameters with
/// (`idp clients add --esia-certificate`). A client with one authenticates with
/// [`ClientAuthMethod::EsiaSignature`] on the `/aas/oauth2/*` paths only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EsiaCertificate {
    pub client_id: String,
    /// The X.509 certificate, PEM.
    pub certificate_pem: String,
    /// Hex SHA-256 of the DER certificate: the expected `client_certificate_hash`.
    pub certificate_hash: String,
    pub created_at: DateTime<Utc>,
}
