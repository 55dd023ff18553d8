//! Private signing keys and compact JWS signing (RFC 7515 §7.1).

use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair, RsaPublicKeyComponents,
    ECDSA_P256_SHA256_FIXED_SIGNING, RSA_PKCS1_SHA256,
};
use serde_json::{Map, Value};

use crate::jwk::{PublicMaterial, VerifyingKey};
use crate::secret::SecretBytes;
use crate::util::b64e;
use crate::{Alg, KeyError};

/// RSA modulus size for generated keys.
const RSA_GENERATE_BITS: usize = 2048;

enum Pair {
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
    Rsa(RsaKeyPair),
}

/// A private signing key for one [`Alg`], with its `kid` (the RFC 7638 thumbprint of its
/// public JWK).
///
/// The PKCS#8 bytes it keeps are zeroized on drop; the parsed key inside `ring` is not
/// (ring offers no way to), so keep few copies alive. `Debug` prints only `alg` and `kid`.
/// Not `Clone` (share it in an `Arc`); `Send + Sync`.
pub struct SigningKey {
    alg: Alg,
    kid: String,
    pkcs8: SecretBytes,
    pair: Pair,
    public: PublicMaterial,
    rng: SystemRandom,
    /// The encoded protected headers of the common token types, rendered once.
    headers: Headers,
}

/// Base64url JOSE headers for `typ` none, `"JWT"` and `"at+jwt"`.
struct Headers {
    plain: String,
    jwt: String,
    at_jwt: String,
}

/// The base64url protected header `{"alg":..,"kid":..[,"typ":..]}`.
fn encode_header(alg: Alg, kid: &str, typ: Option<&str>) -> Result<String, KeyError> {
    let mut header = Map::new();
    header.insert("alg".into(), Value::String(alg.as_str().into()));
    header.insert("kid".into(), Value::String(kid.to_string()));
    if let Some(typ) = typ {
        header.insert("typ".into(), Value::String(typ.into()));
    }
    let header =
        serde_json::to_vec(&Value::Object(header)).map_err(|e| KeyError::Claims(e.to_string()))?;
    Ok(b64e(&header))
}

impl SigningKey {
    /// Generates a fresh key: P-256 for ES256, Ed25519 for EdDSA, 2048-bit RSA for RS256.
    ///
    /// RSA generation uses the `rsa` crate and takes from tens of milliseconds to a few
    /// seconds (more in unoptimised builds); call it off the async runtime.
    pub fn generate(alg: Alg) -> Result<Self, KeyError> {
        let rng = SystemRandom::new();
        let der: Vec<u8> = match alg {
            Alg::ES256 => EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(|_| KeyError::Generate)?
                .as_ref()
                .to_vec(),
            Alg::EdDSA => Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|_| KeyError::Generate)?
                .as_ref()
                .to_vec(),
            Alg::RS256 => generate_rsa_pkcs8()?,
        };
        let der = SecretBytes::new(der);
        Self::from_pkcs8(alg, der.expose())
    }

    /// Loads a key from unencrypted PKCS#8 DER (as written by [`SigningKey::to_pkcs8`],
    /// `openssl genpkey`, etc.). The key type must match `alg`; RSA keys must have 2048 to
    /// 8192 bits. Ed25519 accepts PKCS#8 v1 (no public key) as well as v2.
    pub fn from_pkcs8(alg: Alg, der: &[u8]) -> Result<Self, KeyError> {
        let rng = SystemRandom::new();
        let (pair, public) = match alg {
            Alg::ES256 => {
                let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
                    .map_err(|_| KeyError::InvalidKey)?;
                let point = kp.public_key().as_ref();
                // Uncompressed SEC1 point: 0x04 || x || y.
                if point.len() != 65 || point[0] != 0x04 {
                    return Err(KeyError::InvalidKey);
                }
                let mut x = [0u8; 32];
                let mut y = [0u8; 32];
                x.copy_from_slice(&point[1..33]);
                y.copy_from_slice(&point[33..65]);
                (Pair::Ec(kp), PublicMaterial::Ec { x, y })
            }
            Alg::EdDSA => {
                let kp = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                    .map_err(|_| KeyError::InvalidKey)?;
                let x: [u8; 32] = kp
                    .public_key()
                    .as_ref()
                    .try_into()
                    .map_err(|_| KeyError::InvalidKey)?;
                (Pair::Ed(kp), PublicMaterial::Ed25519 { x })
            }
            Alg::RS256 => {
                let kp = RsaKeyPair::from_pkcs8(der).map_err(|_| KeyError::InvalidKey)?;
                let c: RsaPublicKeyComponents<Vec<u8>> = kp.public().into();
                (Pair::Rsa(kp), PublicMaterial::Rsa { n: c.n, e: c.e })
            }
        };
        let kid = public.thumbprint();
        let headers = Headers {
            plain: encode_header(alg, &kid, None)?,
            jwt: encode_header(alg, &kid, Some("JWT"))?,
            at_jwt: encode_header(alg, &kid, Some("at+jwt"))?,
        };
        Ok(SigningKey {
            alg,
            kid,
            headers,
            pkcs8: SecretBytes::new(der.to_vec()),
            pair,
            public,
            rng,
        })
    }

    /// The private key as PKCS#8 DER, for persistence. Seal it before storing it.
    pub fn to_pkcs8(&self) -> SecretBytes {
        SecretBytes::new(self.pkcs8.expose().to_vec())
    }

    /// The algorithm this key signs with.
    pub fn alg(&self) -> Alg {
        self.alg
    }

    /// The key id: the RFC 7638 JWK thumbprint (base64url SHA-256) of the public key.
    /// Stable across [`SigningKey::to_pkcs8`] / [`SigningKey::from_pkcs8`].
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public JWK: `kty`, `crv`+`x`(+`y`) or `n`+`e`, and `kid`, `alg`, `use: "sig"`.
    pub fn public_jwk(&self) -> Value {
        self.public.to_jwk(Some(&self.kid))
    }

    /// The public half, for verifying tokens this key signed.
    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey {
            alg: self.alg,
            kid: Some(self.kid.clone()),
            material: self.public.clone(),
        }
    }

    /// Signs `message` and returns the JWS signature bytes (ES256: fixed 64-byte `r || s`;
    /// EdDSA: 64 bytes; RS256: modulus-length PKCS#1 v1.5). For adapters such as
    /// `openidconnect::PrivateSigningKey`; prefer [`SigningKey::sign_jwt`].
    pub fn sign_bytes(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        match &self.pair {
            Pair::Ec(kp) => kp
                .sign(&self.rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| KeyError::Sign),
            Pair::Ed(kp) => Ok(kp.sign(message).as_ref().to_vec()),
            Pair::Rsa(kp) => {
                let mut sig = vec![0u8; kp.public().modulus_len()];
                kp.sign(&RSA_PKCS1_SHA256, &self.rng, message, &mut sig)
                    .map_err(|_| KeyError::Sign)?;
                Ok(sig)
            }
        }
    }

    /// Signs `claims` as a compact JWS (a JWT).
    ///
    /// The protected header is `{"alg":..,"kid":..}` plus `"typ"` when given (e.g. `"at+jwt"`
    /// for RFC 9068 access tokens, `"JWT"` or `None` for ID tokens). The claims are
    /// serialized with `serde_json`; they should serialize to a JSON object.
    pub fn sign_jwt<T: serde::Serialize>(
        &self,
        typ: Option<&str>,
        claims: &T,
    ) -> Result<String, KeyError> {
        let payload = serde_json::to_vec(claims).map_err(|e| KeyError::Claims(e.to_string()))?;
        let header = match typ {
            None => std::borrow::Cow::Borrowed(&self.headers.plain),
            Some("JWT") => std::borrow::Cow::Borrowed(&self.headers.jwt),
            Some("at+jwt") => std::borrow::Cow::Borrowed(&self.headers.at_jwt),
            Some(other) => {
                std::borrow::Cow::Owned(encode_header(self.alg, &self.kid, Some(other))?)
            }
        };
        // header . payload . signature (64 bytes for ES256/EdDSA, more for RS256).
        let mut out = String::with_capacity(header.len() + payload.len() * 4 / 3 + 400);
        out.push_str(&header);
        out.push('.');
        base64::Engine::encode_string(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            &payload,
            &mut out,
        );
        let sig = self.sign_bytes(out.as_bytes())?;
        out.push('.');
        base64::Engine::encode_string(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            &sig,
            &mut out,
        );
        Ok(out)
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// A fresh 2048-bit RSA key (e = 65537) as PKCS#8 DER, generated with the `rsa` crate.
fn generate_rsa_pkcs8() -> Result<Vec<u8>, KeyError> {
    use rsa::pkcs8::EncodePrivateKey as _;
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, RSA_GENERATE_BITS)
        .map_err(|_| KeyError::Generate)?;
    let doc = key.to_pkcs8_der().map_err(|_| KeyError::Generate)?;
    // `SecretDocument` zeroizes its own buffer on drop; this copy is wrapped by the caller.
    Ok(doc.as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::b64e;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn kid_is_stable_across_pkcs8() {
        assert_send_sync::<SigningKey>();
        for alg in [Alg::ES256, Alg::EdDSA] {
            let k = SigningKey::generate(alg).unwrap();
            let der = k.to_pkcs8();
            let k2 = SigningKey::from_pkcs8(alg, der.expose()).unwrap();
            assert_eq!(k.kid(), k2.kid());
            assert_eq!(k.public_jwk(), k2.public_jwk());
            assert_eq!(k.kid().len(), 43);
            assert_eq!(k2.alg(), alg);
        }
    }

    #[test]
    fn rsa_generate_and_reload() {
        let k = SigningKey::generate(Alg::RS256).unwrap();
        let k2 = SigningKey::from_pkcs8(Alg::RS256, k.to_pkcs8().expose()).unwrap();
        assert_eq!(k.kid(), k2.kid());
        let jwk = k.public_jwk();
        assert_eq!(jwk["kty"], "RSA");
        assert_eq!(jwk["e"], "AQAB");
        assert_eq!(jwk["alg"], "RS256");
        assert_eq!(jwk["use"], "sig");
        assert_eq!(jwk["kid"], k.kid());
    }

    #[test]
    fn wrong_alg_for_key_is_invalid() {
        let ec = SigningKey::generate(Alg::ES256).unwrap().to_pkcs8();
        assert_eq!(
            SigningKey::from_pkcs8(Alg::EdDSA, ec.expose()).unwrap_err(),
            KeyError::InvalidKey
        );
        assert_eq!(
            SigningKey::from_pkcs8(Alg::RS256, ec.expose()).unwrap_err(),
            KeyError::InvalidKey
        );
        assert_eq!(
            SigningKey::from_pkcs8(Alg::ES256, b"garbage").unwrap_err(),
            KeyError::InvalidKey
        );
    }

    #[test]
    fn public_jwk_shapes() {
        let ec = SigningKey::generate(Alg::ES256).unwrap().public_jwk();
        assert_eq!(ec["kty"], "EC");
        assert_eq!(ec["crv"], "P-256");
        assert_eq!(ec["x"].as_str().unwrap().len(), 43);
        assert_eq!(ec["y"].as_str().unwrap().len(), 43);
        assert_eq!(ec["alg"], "ES256");
        assert!(ec.get("d").is_none());
        let ed = SigningKey::generate(Alg::EdDSA).unwrap().public_jwk();
        assert_eq!(ed["kty"], "OKP");
        assert_eq!(ed["crv"], "Ed25519");
        assert_eq!(ed["alg"], "EdDSA");
        assert!(ed.get("y").is_none());
    }

    #[test]
    fn jwks_document_lists_public_keys() {
        let a = SigningKey::generate(Alg::ES256).unwrap();
        let b = SigningKey::generate(Alg::EdDSA).unwrap();
        let doc = crate::jwks_document(&[&a, &b]);
        let v: Value = serde_json::from_str(&doc).unwrap();
        let keys = crate::parse_jwks(&v).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].kid(), Some(a.kid()));
        assert_eq!(keys[1].kid(), Some(b.kid()));
        assert!(!doc.contains("\"d\""));
        assert_eq!(crate::jwks_document_public(&keys), doc);
    }

    #[test]
    fn debug_shows_only_alg_and_kid() {
        let k = SigningKey::generate(Alg::EdDSA).unwrap();
        let d = format!("{k:?}");
        assert_eq!(
            d,
            format!("SigningKey {{ alg: EdDSA, kid: {:?}, .. }}", k.kid())
        );
        let der = k.to_pkcs8();
        assert!(!d.contains(&b64e(der.expose())));
        assert_eq!(format!("{der:?}"), "[redacted]");
    }

    #[test]
    fn ed25519_pkcs8_v1_accepted() {
        // PKCS#8 v1 (no public key) wrapping the RFC 8037 Appendix A.1 private key.
        let mut der = vec![
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        der.extend(crate::util::b64d("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A").unwrap());
        let k = SigningKey::from_pkcs8(Alg::EdDSA, &der).unwrap();
        // RFC 8037 Appendix A.3 thumbprint of the same key pair.
        assert_eq!(k.kid(), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
    }
}
