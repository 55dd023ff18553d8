//! PEM forms of signing keys: the public key (SPKI) and a self-signed X.509 certificate for
//! relying parties that verify tokens with a certificate handed to them out of band (legacy
//! ESIA clients), and import of PKCS#8 private keys.

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SerialNumber};

use crate::secret::SecretBytes;
use crate::signing::SigningKey;
use crate::{Alg, KeyError};

fn rcgen_pair(key: &SigningKey) -> Result<KeyPair, KeyError> {
    KeyPair::try_from(key.to_pkcs8().expose()).map_err(|_| KeyError::InvalidKey)
}

impl SigningKey {
    /// The public key as a PEM `PUBLIC KEY` (SubjectPublicKeyInfo).
    pub fn public_key_pem(&self) -> Result<String, KeyError> {
        Ok(rcgen_pair(self)?.public_key_pem())
    }

    /// A self-signed X.509 certificate of this key, PEM, with subject `CN=<common_name>`,
    /// valid from `not_before` to `not_after` (Unix seconds). Its serial number is derived
    /// from the `kid`, so the same key and dates give the same certificate subject and serial.
    pub fn self_signed_certificate_pem(
        &self,
        common_name: &str,
        not_before: i64,
        not_after: i64,
    ) -> Result<String, KeyError> {
        let time = |t: i64| {
            time::OffsetDateTime::from_unix_timestamp(t)
                .map_err(|_| KeyError::Certificate("validity out of range"))
        };
        if not_after <= not_before {
            return Err(KeyError::Certificate("not_after must be after not_before"));
        }
        let mut params = CertificateParams::default();
        params.not_before = time(not_before)?;
        params.not_after = time(not_after)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        let mut serial = ring::digest::digest(&ring::digest::SHA256, self.kid().as_bytes())
            .as_ref()[..16]
            .to_vec();
        serial[0] &= 0x7f; // a positive INTEGER
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        let pair = rcgen_pair(self)?;
        params
            .self_signed(&pair)
            .map(|c| c.pem())
            .map_err(|_| KeyError::Certificate("the certificate could not be signed"))
    }

    /// Reads a PEM `PRIVATE KEY` (PKCS#8, as `openssl genpkey` writes it) of a P-256,
    /// Ed25519 or RSA key; the algorithm follows from the key.
    pub fn from_pkcs8_pem(pem: &str) -> Result<SigningKey, KeyError> {
        let pair = KeyPair::from_pem(pem).map_err(|_| KeyError::InvalidKey)?;
        let alg = if pair.algorithm() == &rcgen::PKCS_ECDSA_P256_SHA256 {
            Alg::ES256
        } else if pair.algorithm() == &rcgen::PKCS_ED25519 {
            Alg::EdDSA
        } else if pair.algorithm() == &rcgen::PKCS_RSA_SHA256 {
            Alg::RS256
        } else {
            return Err(KeyError::UnsupportedAlg);
        };
        let der = SecretBytes::new(pair.serialize_der());
        SigningKey::from_pkcs8(alg, der.expose())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_pem_and_certificate_for_each_alg() {
        for alg in Alg::ALL {
            let key = SigningKey::generate(alg).unwrap();
            let pem = key.public_key_pem().unwrap();
            assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"), "{alg}");
            let cert = key
                .self_signed_certificate_pem("Propusk", 1_700_000_000, 1_800_000_000)
                .unwrap();
            assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"), "{alg}");
            assert!(
                key.self_signed_certificate_pem("x", 10, 10).is_err(),
                "empty validity"
            );
        }
    }

    #[test]
    fn pkcs8_pem_import_keeps_the_kid() {
        for alg in Alg::ALL {
            let key = SigningKey::generate(alg).unwrap();
            let pem = format!(
                "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
                base64_wrap(key.to_pkcs8().expose())
            );
            let back = SigningKey::from_pkcs8_pem(&pem).unwrap();
            assert_eq!((back.alg(), back.kid()), (alg, key.kid()));
        }
        assert_eq!(
            SigningKey::from_pkcs8_pem(
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
            )
            .err(),
            Some(KeyError::InvalidKey)
        );
        assert!(SigningKey::from_pkcs8_pem("not pem").is_err());
    }

    fn base64_wrap(der: &[u8]) -> String {
        use base64::Engine;
        let b = base64::engine::general_purpose::STANDARD.encode(der);
        b.as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join("\n")
    }
}
