//! Public keys as JWKs (RFC 7517, RFC 7518 §6, RFC 8037 §2), RFC 7638 thumbprints, JWKS.

use ring::signature::{
    RsaPublicKeyComponents, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED, ED25519,
    RSA_PKCS1_2048_8192_SHA256,
};
use serde_json::{json, Map, Value};

use crate::signing::SigningKey;
use crate::util::{b64d, b64e, sha256_b64url};
use crate::{Alg, KeyError};

/// Smallest RSA modulus accepted, in bytes (2048 bits; RFC 7518 §3.3).
const RSA_MIN_BYTES: usize = 256;
/// Largest RSA modulus accepted, in bytes (8192 bits; ring's limit).
const RSA_MAX_BYTES: usize = 1024;

/// The public half of a key, in the form JOSE uses.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum PublicMaterial {
    /// P-256 affine coordinates, 32 bytes each, big-endian.
    Ec { x: [u8; 32], y: [u8; 32] },
    /// Ed25519 public key.
    Ed25519 { x: [u8; 32] },
    /// RSA modulus and exponent, big-endian without leading zeros.
    Rsa { n: Vec<u8>, e: Vec<u8> },
}

impl PublicMaterial {
    /// The algorithm this key is used with.
    pub(crate) fn alg(&self) -> Alg {
        match self {
            PublicMaterial::Ec { .. } => Alg::ES256,
            PublicMaterial::Ed25519 { .. } => Alg::EdDSA,
            PublicMaterial::Rsa { .. } => Alg::RS256,
        }
    }

    /// RFC 7638 thumbprint: SHA-256 over the required members in lexicographic order, no
    /// whitespace, base64url. (Base64url text needs no JSON escaping, so it is written as is.)
    pub(crate) fn thumbprint(&self) -> String {
        let canonical = match self {
            PublicMaterial::Ec { x, y } => format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                b64e(x),
                b64e(y)
            ),
            PublicMaterial::Ed25519 { x } => {
                format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, b64e(x))
            }
            PublicMaterial::Rsa { n, e } => {
                format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, b64e(e), b64e(n))
            }
        };
        sha256_b64url(canonical.as_bytes())
    }

    /// The public JWK with `kid`, `alg` and `use: "sig"`.
    pub(crate) fn to_jwk(&self, kid: Option<&str>) -> Value {
        let mut m = match self {
            PublicMaterial::Ec { x, y } => json!({
                "kty": "EC", "crv": "P-256", "x": b64e(x), "y": b64e(y),
            }),
            PublicMaterial::Ed25519 { x } => json!({
                "kty": "OKP", "crv": "Ed25519", "x": b64e(x),
            }),
            PublicMaterial::Rsa { n, e } => json!({
                "kty": "RSA", "n": b64e(n), "e": b64e(e),
            }),
        };
        if let Value::Object(obj) = &mut m {
            if let Some(kid) = kid {
                obj.insert("kid".into(), Value::String(kid.to_owned()));
            }
            obj.insert("alg".into(), Value::String(self.alg().as_str().into()));
            obj.insert("use".into(), Value::String("sig".into()));
        }
        m
    }

    /// Verifies a JWS signature (`signature` as carried in the JWS) over `message`.
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), KeyError> {
        let ok = match self {
            PublicMaterial::Ec { x, y } => {
                let mut point = [0u8; 65];
                point[0] = 0x04;
                point[1..33].copy_from_slice(x);
                point[33..].copy_from_slice(y);
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point[..])
                    .verify(message, signature)
            }
            PublicMaterial::Ed25519 { x } => {
                UnparsedPublicKey::new(&ED25519, &x[..]).verify(message, signature)
            }
            PublicMaterial::Rsa { n, e } => RsaPublicKeyComponents { n, e }.verify(
                &RSA_PKCS1_2048_8192_SHA256,
                message,
                signature,
            ),
        };
        ok.map_err(|_| KeyError::BadSignature)
    }

    /// Parses the key members of a JWK object.
    fn from_jwk(obj: &Map<String, Value>) -> Result<Self, KeyError> {
        let kty = str_member(obj, "kty")?.ok_or(KeyError::BadJwk("missing kty"))?;
        match kty {
            "EC" => {
                if str_member(obj, "crv")? != Some("P-256") {
                    return Err(KeyError::BadJwk("unsupported EC curve (only P-256)"));
                }
                let x = fixed32(obj, "x")?;
                let y = fixed32(obj, "y")?;
                Ok(PublicMaterial::Ec { x, y })
            }
            "OKP" => {
                if str_member(obj, "crv")? != Some("Ed25519") {
                    return Err(KeyError::BadJwk("unsupported OKP curve (only Ed25519)"));
                }
                Ok(PublicMaterial::Ed25519 {
                    x: fixed32(obj, "x")?,
                })
            }
            "RSA" => {
                let n = strip_leading_zeros(b64_member(obj, "n")?);
                let e = strip_leading_zeros(b64_member(obj, "e")?);
                if n.len() < RSA_MIN_BYTES || n.len() > RSA_MAX_BYTES {
                    return Err(KeyError::BadJwk("RSA modulus must be 2048 to 8192 bits"));
                }
                if e.is_empty() || e.len() > 8 {
                    return Err(KeyError::BadJwk("bad RSA exponent"));
                }
                Ok(PublicMaterial::Rsa { n, e })
            }
            _ => Err(KeyError::BadJwk("unsupported kty")),
        }
    }
}

fn str_member<'a>(
    obj: &'a Map<String, Value>,
    name: &'static str,
) -> Result<Option<&'a str>, KeyError> {
    match obj.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(KeyError::BadJwk("member is not a string")),
    }
}

fn b64_member(obj: &Map<String, Value>, name: &'static str) -> Result<Vec<u8>, KeyError> {
    let s = str_member(obj, name)?.ok_or(KeyError::BadJwk("missing key member"))?;
    b64d(s).ok_or(KeyError::BadJwk("key member is not base64url"))
}

fn fixed32(obj: &Map<String, Value>, name: &'static str) -> Result<[u8; 32], KeyError> {
    b64_member(obj, name)?
        .try_into()
        .map_err(|_| KeyError::BadJwk("key member has the wrong length"))
}

fn strip_leading_zeros(mut v: Vec<u8>) -> Vec<u8> {
    let zeros = v.iter().take_while(|b| **b == 0).count();
    v.drain(..zeros);
    v
}

/// A public key for verifying JWS signatures, parsed from a JWK (EC P-256, OKP Ed25519,
/// RSA 2048-8192 bits) or taken from a [`SigningKey`].
#[derive(Clone, PartialEq, Eq)]
pub struct VerifyingKey {
    pub(crate) alg: Alg,
    pub(crate) kid: Option<String>,
    pub(crate) material: PublicMaterial,
}

impl VerifyingKey {
    /// Parses a public JWK.
    ///
    /// The algorithm follows from `kty`/`crv`; a present `alg` must agree with it. A present
    /// `use` must be `"sig"`. JWKs carrying private members (`d`, `p`, `q`, ...) or symmetric
    /// keys (`kty: "oct"`) are rejected, as are RSA moduli under 2048 bits.
    pub fn from_jwk(jwk: &Value) -> Result<Self, KeyError> {
        let obj = jwk
            .as_object()
            .ok_or(KeyError::BadJwk("not a JSON object"))?;
        for private in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
            if obj.contains_key(private) {
                return Err(KeyError::BadJwk("contains private key material"));
            }
        }
        let material = PublicMaterial::from_jwk(obj)?;
        let alg = material.alg();
        if let Some(a) = str_member(obj, "alg")? {
            if Alg::parse(a) != Some(alg) {
                return Err(KeyError::BadJwk("alg does not match the key type"));
            }
        }
        if let Some(u) = str_member(obj, "use")? {
            if u != "sig" {
                return Err(KeyError::BadJwk("use is not sig"));
            }
        }
        let kid = str_member(obj, "kid")?.map(str::to_owned);
        Ok(VerifyingKey { alg, kid, material })
    }

    /// The `kid` of the JWK, if it had one (always present for keys from a [`SigningKey`]).
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The only algorithm this key verifies.
    pub fn alg(&self) -> Alg {
        self.alg
    }

    /// The RFC 7638 thumbprint (base64url SHA-256), whatever `kid` the JWK carried.
    pub fn thumbprint(&self) -> String {
        self.material.thumbprint()
    }

    /// The public JWK: key members plus `kid` (if any), `alg`, `use: "sig"`.
    pub fn public_jwk(&self) -> Value {
        self.material.to_jwk(self.kid.as_deref())
    }

    /// Verifies a raw JWS signature over `message` (for JWS-adjacent formats; prefer
    /// [`crate::verify_jws`] for compact tokens).
    pub fn verify_bytes(&self, message: &[u8], signature: &[u8]) -> Result<(), KeyError> {
        self.material.verify(message, signature)
    }
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish()
    }
}

/// The RFC 7638 thumbprint of a public JWK (as parsed by [`VerifyingKey::from_jwk`]).
pub fn jwk_thumbprint(jwk: &Value) -> Result<String, KeyError> {
    Ok(VerifyingKey::from_jwk(jwk)?.thumbprint())
}

/// The JWKS document `{"keys":[...]}` (RFC 7517 §5) for the public halves of `keys`,
/// serialized compactly. Publish every key whose tokens may still be valid.
pub fn jwks_document(keys: &[&SigningKey]) -> String {
    let keys: Vec<Value> = keys.iter().map(|k| k.public_jwk()).collect();
    json!({ "keys": keys }).to_string()
}

/// The JWKS document `{"keys":[...]}` for public keys (e.g. retired keys kept only in public
/// form until their last token expires).
pub fn jwks_document_public(keys: &[VerifyingKey]) -> String {
    let keys: Vec<Value> = keys.iter().map(VerifyingKey::public_jwk).collect();
    json!({ "keys": keys }).to_string()
}

/// Parses a JWKS document (e.g. a client's `jwks` for `private_key_jwt`) into the keys usable
/// for signature verification.
///
/// Keys that are not usable here (encryption keys, unsupported `kty`/`crv`, malformed members)
/// are skipped, as RFC 7517 §5 asks of JWKS consumers. Fails only if `doc` has no `keys`
/// array.
pub fn parse_jwks(doc: &Value) -> Result<Vec<VerifyingKey>, KeyError> {
    let keys = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or(KeyError::BadJwk("JWKS has no keys array"))?;
    Ok(keys
        .iter()
        .filter_map(|k| VerifyingKey::from_jwk(k).ok())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7638 §3.1.
    #[test]
    fn rfc7638_example_thumbprint() {
        let jwk = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        assert_eq!(
            jwk_thumbprint(&jwk).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
        let vk = VerifyingKey::from_jwk(&jwk).unwrap();
        assert_eq!(vk.kid(), Some("2011-04-29"));
        assert_eq!(vk.alg(), Alg::RS256);
    }

    #[test]
    fn rejects_bad_jwks() {
        let ok_ec = json!({"kty":"EC","crv":"P-256",
            "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"});
        assert_eq!(VerifyingKey::from_jwk(&ok_ec).unwrap().alg(), Alg::ES256);

        let mut with_d = ok_ec.clone();
        with_d["d"] = json!("jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI");
        assert!(VerifyingKey::from_jwk(&with_d).is_err());

        let mut wrong_alg = ok_ec.clone();
        wrong_alg["alg"] = json!("RS256");
        assert_eq!(
            VerifyingKey::from_jwk(&wrong_alg),
            Err(KeyError::BadJwk("alg does not match the key type"))
        );

        let mut enc = ok_ec.clone();
        enc["use"] = json!("enc");
        assert!(VerifyingKey::from_jwk(&enc).is_err());

        let mut p384 = ok_ec.clone();
        p384["crv"] = json!("P-384");
        assert!(VerifyingKey::from_jwk(&p384).is_err());

        let short_x = json!({"kty":"OKP","crv":"Ed25519","x":"AQAB"});
        assert!(VerifyingKey::from_jwk(&short_x).is_err());

        let small_rsa = json!({"kty":"RSA","n":"AQAB","e":"AQAB"});
        assert!(VerifyingKey::from_jwk(&small_rsa).is_err());

        assert!(VerifyingKey::from_jwk(&json!({"kty":"oct","k":"AAAA"})).is_err());
        assert!(VerifyingKey::from_jwk(&json!("EC")).is_err());

        let doc = json!({"keys":[ok_ec, enc, {"kty":"oct","k":"AAAA"}]});
        assert_eq!(parse_jwks(&doc).unwrap().len(), 1);
        assert!(parse_jwks(&json!({})).is_err());
    }
}
