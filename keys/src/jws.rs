//! Compact JWS parsing and verification (RFC 7515 §7.1, §5.2; RFC 8725 §3.1-3.2).

use serde_json::{Map, Value};

use crate::jwk::VerifyingKey;
use crate::util::b64d;
use crate::{Alg, KeyError};

/// The parsed, **unverified** protected header of a compact JWS. Use it to choose keys or
/// reject early; trust it only after [`verify_jws`] succeeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwsHeader {
    /// The `alg` member as written (may be `"none"` or anything else).
    pub alg: String,
    /// The `kid` member, if present.
    pub kid: Option<String>,
    /// The `typ` member, if present (e.g. `"at+jwt"`, `"JWT"`).
    pub typ: Option<String>,
}

/// The three parts of a compact JWS, base64url text as received.
struct Parts<'a> {
    header: &'a str,
    payload: &'a str,
    signature: &'a str,
    /// `header.payload`, the JWS signing input (RFC 7515 §5.2 step 8).
    signing_input: &'a str,
}

fn split(jws: &str) -> Result<Parts<'_>, KeyError> {
    let mut it = jws.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (it.next(), it.next(), it.next(), it.next())
    else {
        return Err(KeyError::BadJws("not three dot-separated parts"));
    };
    let signing_input = &jws[..header.len() + 1 + payload.len()];
    Ok(Parts {
        header,
        payload,
        signature,
        signing_input,
    })
}

fn parse_header(b64: &str) -> Result<JwsHeader, KeyError> {
    let bytes = b64d(b64).ok_or(KeyError::BadJws("header is not base64url"))?;
    let obj: Map<String, Value> = serde_json::from_slice(&bytes)
        .map_err(|_| KeyError::BadJws("header is not a JSON object"))?;
    let string = |name: &'static str, err: &'static str| -> Result<Option<String>, KeyError> {
        match obj.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(KeyError::BadJws(err)),
        }
    };
    let alg = string("alg", "alg is not a string")?.ok_or(KeyError::BadJws("missing alg"))?;
    let kid = string("kid", "kid is not a string")?;
    let typ = string("typ", "typ is not a string")?;
    // RFC 7515 §4.1.11: we understand no extensions, so any `crit` must be rejected.
    if obj.contains_key("crit") {
        return Err(KeyError::BadJws("crit header not supported"));
    }
    Ok(JwsHeader { alg, kid, typ })
}

/// Parses the protected header of a compact JWS without verifying anything.
///
/// Fails with [`KeyError::BadJws`] unless the token has exactly three parts and a base64url
/// JSON-object header with a string `alg`.
pub fn decode_header(jws: &str) -> Result<JwsHeader, KeyError> {
    parse_header(split(jws)?.header)
}

/// Verifies a compact JWS against `keys` and returns its payload as a JSON object (the JWT
/// claims). Does **not** check `exp`, `nbf`, `iat`, `iss`, `aud` or `typ`: the caller does.
///
/// Key selection (RFC 8725 §3.1: the key, not the token, decides the algorithm):
/// * `alg` `"none"` and every unsupported `alg` fail with [`KeyError::UnsupportedAlg`];
/// * with a `kid`, the keys with that `kid` are used; none gives [`KeyError::UnknownKid`],
///   and a header `alg` that differs from theirs gives [`KeyError::AlgMismatch`];
/// * without a `kid`, every key whose algorithm equals the header `alg` is tried (normally
///   there is one); none gives [`KeyError::UnknownKid`].
///
/// A signature that verifies with no candidate gives [`KeyError::BadSignature`].
pub fn verify_jws(jws: &str, keys: &[VerifyingKey]) -> Result<Value, KeyError> {
    verify_jws_with_header(jws, keys).map(|(_, claims)| claims)
}

/// Like [`verify_jws`], and also returns the (now verified) protected header, e.g. to check
/// `typ` (`"at+jwt"`, RFC 9068 §4) or to log the `kid`.
pub fn verify_jws_with_header(
    jws: &str,
    keys: &[VerifyingKey],
) -> Result<(JwsHeader, Value), KeyError> {
    let parts = split(jws)?;
    let header = parse_header(parts.header)?;
    let alg = Alg::parse(&header.alg).ok_or(KeyError::UnsupportedAlg)?;
    let signature = b64d(parts.signature).ok_or(KeyError::BadJws("signature is not base64url"))?;

    let candidates: Vec<&VerifyingKey> = match &header.kid {
        Some(kid) => {
            let by_kid: Vec<&VerifyingKey> = keys
                .iter()
                .filter(|k| k.kid() == Some(kid.as_str()))
                .collect();
            if by_kid.is_empty() {
                return Err(KeyError::UnknownKid);
            }
            let same_alg: Vec<&VerifyingKey> =
                by_kid.into_iter().filter(|k| k.alg() == alg).collect();
            if same_alg.is_empty() {
                return Err(KeyError::AlgMismatch);
            }
            same_alg
        }
        None => keys.iter().filter(|k| k.alg() == alg).collect(),
    };
    if candidates.is_empty() {
        return Err(KeyError::UnknownKid);
    }
    let verified = candidates.iter().any(|k| {
        k.verify_bytes(parts.signing_input.as_bytes(), &signature)
            .is_ok()
    });
    if !verified {
        return Err(KeyError::BadSignature);
    }

    let payload = b64d(parts.payload).ok_or(KeyError::BadJws("payload is not base64url"))?;
    let claims: Value =
        serde_json::from_slice(&payload).map_err(|_| KeyError::BadJws("payload is not JSON"))?;
    if !claims.is_object() {
        return Err(KeyError::BadJws("payload is not a JSON object"));
    }
    Ok((header, claims))
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use serde_json::json;

    use super::*;
    use crate::util::{b64d, b64e};
    use crate::SigningKey;

    /// RSA generation is slow in debug builds; share one immutable key among tests.
    fn rsa_key() -> &'static SigningKey {
        static KEY: OnceLock<SigningKey> = OnceLock::new();
        KEY.get_or_init(|| SigningKey::generate(Alg::RS256).unwrap())
    }

    fn key(alg: Alg) -> SigningKey {
        match alg {
            Alg::RS256 => SigningKey::from_pkcs8(alg, rsa_key().to_pkcs8().expose()).unwrap(),
            _ => SigningKey::generate(alg).unwrap(),
        }
    }

    fn claims() -> Value {
        json!({"iss":"https://idp.example","sub":"u1","aud":"c1","exp":2000000000})
    }

    /// Replaces the header of `jws` with `header`, keeping payload and signature.
    fn with_header(jws: &str, header: &Value) -> String {
        let (_, rest) = jws.split_once('.').unwrap();
        format!("{}.{rest}", b64e(header.to_string().as_bytes()))
    }

    #[test]
    fn round_trip_each_alg() {
        for alg in Alg::ALL {
            let k = key(alg);
            let jws = k.sign_jwt(Some("at+jwt"), &claims()).unwrap();
            let h = decode_header(&jws).unwrap();
            assert_eq!(h.alg, alg.as_str());
            assert_eq!(h.kid.as_deref(), Some(k.kid()));
            assert_eq!(h.typ.as_deref(), Some("at+jwt"));
            let (vh, got) = verify_jws_with_header(&jws, &[k.verifying_key()]).unwrap();
            assert_eq!(got, claims());
            assert_eq!(vh, h);

            // Also through the published JWK.
            let vk = VerifyingKey::from_jwk(&k.public_jwk()).unwrap();
            assert_eq!(vk.alg(), alg);
            assert_eq!(vk.kid(), Some(k.kid()));
            assert_eq!(vk.thumbprint(), k.kid());
            assert_eq!(verify_jws(&jws, &[vk]).unwrap(), claims());

            // Without typ, header has only alg and kid.
            let jws = k.sign_jwt(None, &claims()).unwrap();
            assert_eq!(decode_header(&jws).unwrap().typ, None);
            let header = b64d(jws.split('.').next().unwrap()).unwrap();
            assert_eq!(
                serde_json::from_slice::<Value>(&header).unwrap(),
                json!({"alg": alg.as_str(), "kid": k.kid()})
            );
            // The rendered-once headers and one rendered on demand verify alike.
            for typ in ["JWT", "at+jwt", "logout+jwt"] {
                let jws = k.sign_jwt(Some(typ), &claims()).unwrap();
                let (h, got) = verify_jws_with_header(&jws, &[k.verifying_key()]).unwrap();
                assert_eq!(
                    (h.typ.as_deref(), h.kid.as_deref()),
                    (Some(typ), Some(k.kid()))
                );
                assert_eq!(got, claims());
            }
        }
    }

    #[test]
    fn signature_sizes() {
        let msg = b"m";
        assert_eq!(key(Alg::ES256).sign_bytes(msg).unwrap().len(), 64);
        assert_eq!(key(Alg::EdDSA).sign_bytes(msg).unwrap().len(), 64);
        assert_eq!(key(Alg::RS256).sign_bytes(msg).unwrap().len(), 256);
    }

    #[test]
    fn tampered_payload_and_signature_rejected() {
        for alg in Alg::ALL {
            let k = key(alg);
            let keys = [k.verifying_key()];
            let jws = k.sign_jwt(None, &claims()).unwrap();
            let parts: Vec<&str> = jws.split('.').collect();

            let evil = b64e(br#"{"sub":"admin"}"#);
            let forged = format!("{}.{evil}.{}", parts[0], parts[2]);
            assert_eq!(verify_jws(&forged, &keys), Err(KeyError::BadSignature));

            let mut sig = b64d(parts[2]).unwrap();
            sig[10] ^= 1;
            let forged = format!("{}.{}.{}", parts[0], parts[1], b64e(&sig));
            assert_eq!(verify_jws(&forged, &keys), Err(KeyError::BadSignature));

            let forged = format!("{}.{}.", parts[0], parts[1]);
            assert_eq!(verify_jws(&forged, &keys), Err(KeyError::BadSignature));

            // Another key with the same kid does not verify.
            let other = SigningKey::generate(alg).unwrap();
            let mut stolen_kid = other.public_jwk();
            stolen_kid["kid"] = json!(k.kid());
            let other_vk = VerifyingKey::from_jwk(&stolen_kid).unwrap();
            assert_eq!(verify_jws(&jws, &[other_vk]), Err(KeyError::BadSignature));
        }
    }

    #[test]
    fn alg_none_and_unknown_algs_rejected() {
        let k = key(Alg::ES256);
        let keys = [k.verifying_key()];
        let jws = k.sign_jwt(None, &claims()).unwrap();
        for alg in ["none", "None", "NONE", "HS256", "ES384", "es256", ""] {
            let forged = with_header(&jws, &json!({"alg": alg, "kid": k.kid()}));
            assert_eq!(
                verify_jws(&forged, &keys),
                Err(KeyError::UnsupportedAlg),
                "{alg}"
            );
            let forged = with_header(&jws, &json!({"alg": alg}));
            assert_eq!(
                verify_jws(&forged, &keys),
                Err(KeyError::UnsupportedAlg),
                "{alg}"
            );
        }
        // Classic unsigned token: header.payload. with alg none.
        let payload = b64e(claims().to_string().as_bytes());
        let none = format!("{}.{payload}.", b64e(br#"{"alg":"none"}"#));
        assert_eq!(verify_jws(&none, &keys), Err(KeyError::UnsupportedAlg));
    }

    #[test]
    fn alg_must_match_the_key() {
        let k = key(Alg::ES256);
        let keys = [k.verifying_key()];
        let jws = k.sign_jwt(None, &claims()).unwrap();
        for alg in ["EdDSA", "RS256"] {
            let forged = with_header(&jws, &json!({"alg": alg, "kid": k.kid()}));
            assert_eq!(verify_jws(&forged, &keys), Err(KeyError::AlgMismatch));
            let forged = with_header(&jws, &json!({"alg": alg}));
            assert_eq!(verify_jws(&forged, &keys), Err(KeyError::UnknownKid));
        }
    }

    #[test]
    fn kid_selection() {
        let a = key(Alg::ES256);
        let b = key(Alg::ES256);
        let e = key(Alg::EdDSA);
        let keys = [a.verifying_key(), b.verifying_key(), e.verifying_key()];
        for k in [&a, &b, &e] {
            let jws = k.sign_jwt(None, &claims()).unwrap();
            assert!(verify_jws(&jws, &keys).is_ok());
        }
        // Unknown kid.
        let jws = a.sign_jwt(None, &claims()).unwrap();
        let forged = with_header(&jws, &json!({"alg":"ES256","kid":"nope"}));
        assert_eq!(verify_jws(&forged, &keys), Err(KeyError::UnknownKid));
        // No kid: keys of the header's alg are tried.
        let no_kid = with_header(&jws, &json!({"alg":"ES256"}));
        // The signature no longer matches the changed header, so it is BadSignature.
        assert_eq!(verify_jws(&no_kid, &keys), Err(KeyError::BadSignature));
        assert_eq!(verify_jws(&jws, &[]), Err(KeyError::UnknownKid));
    }

    #[test]
    fn verifies_token_without_kid() {
        // Build a kid-less token by hand, as a client might for private_key_jwt.
        let k = key(Alg::EdDSA);
        let input = format!(
            "{}.{}",
            b64e(br#"{"alg":"EdDSA"}"#),
            b64e(claims().to_string().as_bytes())
        );
        let sig = k.sign_bytes(input.as_bytes()).unwrap();
        let jws = format!("{input}.{}", b64e(&sig));
        let other = key(Alg::EdDSA);
        let keys = [other.verifying_key(), k.verifying_key()];
        assert_eq!(verify_jws(&jws, &keys).unwrap(), claims());
        assert_eq!(decode_header(&jws).unwrap().kid, None);
    }

    #[test]
    fn malformed_tokens() {
        let k = key(Alg::ES256);
        let keys = [k.verifying_key()];
        let jws = k.sign_jwt(None, &claims()).unwrap();
        let parts: Vec<&str> = jws.split('.').collect();
        let bad = |s: &str| matches!(verify_jws(s, &keys), Err(KeyError::BadJws(_)));
        assert!(bad(""));
        assert!(bad("a.b"));
        assert!(bad(&format!("{jws}.x")));
        assert!(bad(&format!("{}.{}", parts[0], parts[1])));
        assert!(bad(&format!("!!.{}.{}", parts[1], parts[2])));
        assert!(bad(&format!("{}=.{}.{}", parts[0], parts[1], parts[2])));
        assert!(bad(&format!("{}.{}.{}==", parts[0], parts[1], parts[2])));
        assert!(bad(&with_header(&jws, &json!("ES256"))));
        assert!(bad(&with_header(&jws, &json!({"kid": k.kid()}))));
        assert!(bad(&with_header(&jws, &json!({"alg": 1}))));
        assert!(bad(&with_header(&jws, &json!({"alg":"ES256","kid": 5}))));
        assert!(bad(&with_header(
            &jws,
            &json!({"alg":"ES256","kid":k.kid(),"crit":["exp"]})
        )));
        let not_json = format!("{}.{}", b64e(b"{not json"), "x.y");
        assert!(bad(&not_json));
        assert!(matches!(decode_header("a.b"), Err(KeyError::BadJws(_))));

        // A validly signed non-object payload is rejected.
        let jws = k.sign_jwt(None, &json!([1, 2])).unwrap();
        assert_eq!(
            verify_jws(&jws, &keys),
            Err(KeyError::BadJws("payload is not a JSON object"))
        );
    }
}
