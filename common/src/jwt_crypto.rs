//! jsonwebtoken's cryptography on ring. Since version 10 jsonwebtoken needs a crypto backend;
//! its two built-in ones (`aws_lc_rs`, `rust_crypto`) would each bring a new cryptographic
//! library into the tree, while ring is already here for rustls (the gateway's TLS, its JWKS
//! client) and for the identity assertion. This provider maps jsonwebtoken's signer and
//! verifier traits onto ring, as jsonwebtoken 9 did internally.
//!
//! Every verifier checks that the key belongs to the algorithm's family before anything else,
//! so that, for example, an RSA public key can never be used as an HMAC secret.
//!
//! [`install`] must run before jsonwebtoken signs or verifies anything; it is idempotent and
//! cheap, so every caller that is about to use jsonwebtoken calls it.

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{Error, ErrorKind, Result};
use jsonwebtoken::jwk::{EllipticCurve, ThumbprintHash};
use jsonwebtoken::signature::{self, Signer, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind, EncodingKey};
use ring::rand::SystemRandom;
use ring::signature::{self as ring_sig, KeyPair as _};
use ring::{digest, hmac};
use std::sync::Once;

/// The provider, for `CryptoProvider::install_default`.
static RING_PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: new_signer,
    verifier_factory: new_verifier,
    key_utils: KeyUtils {
        rsa_pub_components_from_private_key: rsa_components_from_private_key,
        rsa_pub_components_from_public_key: rsa_components_from_public_key,
        ec_pub_components_from_private_key: ec_components_from_private_key,
        ed_pub_components_from_private_key: ed_components_from_private_key,
        compute_digest,
    },
};

/// Makes ring jsonwebtoken's process-wide crypto provider. Safe to call any number of times,
/// from any thread.
pub fn install() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // An error means a provider was installed before this ran; nothing in the workspace
        // installs another, and jsonwebtoken keeps whichever came first.
        let _ = RING_PROVIDER.install_default();
    });
}

fn hmac_algorithm(alg: Algorithm) -> Option<hmac::Algorithm> {
    match alg {
        Algorithm::HS256 => Some(hmac::HMAC_SHA256),
        Algorithm::HS384 => Some(hmac::HMAC_SHA384),
        Algorithm::HS512 => Some(hmac::HMAC_SHA512),
        _ => None,
    }
}

fn rsa_verification(alg: Algorithm) -> Option<&'static ring_sig::RsaParameters> {
    match alg {
        Algorithm::RS256 => Some(&ring_sig::RSA_PKCS1_2048_8192_SHA256),
        Algorithm::RS384 => Some(&ring_sig::RSA_PKCS1_2048_8192_SHA384),
        Algorithm::RS512 => Some(&ring_sig::RSA_PKCS1_2048_8192_SHA512),
        Algorithm::PS256 => Some(&ring_sig::RSA_PSS_2048_8192_SHA256),
        Algorithm::PS384 => Some(&ring_sig::RSA_PSS_2048_8192_SHA384),
        Algorithm::PS512 => Some(&ring_sig::RSA_PSS_2048_8192_SHA512),
        _ => None,
    }
}

fn rsa_encoding(alg: Algorithm) -> Option<&'static dyn ring_sig::RsaEncoding> {
    match alg {
        Algorithm::RS256 => Some(&ring_sig::RSA_PKCS1_SHA256),
        Algorithm::RS384 => Some(&ring_sig::RSA_PKCS1_SHA384),
        Algorithm::RS512 => Some(&ring_sig::RSA_PKCS1_SHA512),
        Algorithm::PS256 => Some(&ring_sig::RSA_PSS_SHA256),
        Algorithm::PS384 => Some(&ring_sig::RSA_PSS_SHA384),
        Algorithm::PS512 => Some(&ring_sig::RSA_PSS_SHA512),
        _ => None,
    }
}

/// The verification algorithm for a public key given as raw bytes (SEC1 point, Ed25519 key).
fn point_verification(alg: Algorithm) -> Option<&'static dyn ring_sig::VerificationAlgorithm> {
    match alg {
        Algorithm::ES256 => Some(&ring_sig::ECDSA_P256_SHA256_FIXED),
        Algorithm::ES384 => Some(&ring_sig::ECDSA_P384_SHA384_FIXED),
        Algorithm::EdDSA => Some(&ring_sig::ED25519),
        _ => None,
    }
}

fn ecdsa_signing(alg: Algorithm) -> Option<&'static ring_sig::EcdsaSigningAlgorithm> {
    match alg {
        Algorithm::ES256 => Some(&ring_sig::ECDSA_P256_SHA256_FIXED_SIGNING),
        Algorithm::ES384 => Some(&ring_sig::ECDSA_P384_SHA384_FIXED_SIGNING),
        _ => None,
    }
}

fn key_rejected() -> Error {
    ErrorKind::InvalidKeyFormat.into()
}

/// Verifies one algorithm with one key, both fixed when it is made.
struct RingVerifier {
    alg: Algorithm,
    key: DecodingKey,
}

fn new_verifier(alg: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    let alg = *alg;
    if key.family() != alg.family() {
        return Err(key_rejected());
    }
    let supported = hmac_algorithm(alg).is_some()
        || rsa_verification(alg).is_some()
        || point_verification(alg).is_some();
    if !supported {
        return Err(ErrorKind::UnsupportedAlgorithm.into());
    }
    Ok(Box::new(RingVerifier {
        alg,
        key: key.clone(),
    }))
}

impl RingVerifier {
    fn check(&self, msg: &[u8], signature: &[u8]) -> bool {
        match self.key.kind() {
            DecodingKeyKind::SecretOrDer(bytes) => {
                if let Some(alg) = hmac_algorithm(self.alg) {
                    // Constant-time comparison of the tags.
                    hmac::verify(&hmac::Key::new(alg, bytes), msg, signature).is_ok()
                } else if let Some(params) = rsa_verification(self.alg) {
                    // A PKCS#1 `RSAPublicKey`, as jsonwebtoken's PEM and DER loaders give it.
                    ring_sig::UnparsedPublicKey::new(params, bytes)
                        .verify(msg, signature)
                        .is_ok()
                } else if let Some(alg) = point_verification(self.alg) {
                    ring_sig::UnparsedPublicKey::new(alg, bytes)
                        .verify(msg, signature)
                        .is_ok()
                } else {
                    false
                }
            }
            DecodingKeyKind::RsaModulusExponent { n, e } => match rsa_verification(self.alg) {
                Some(params) => ring_sig::RsaPublicKeyComponents { n, e }
                    .verify(params, msg, signature)
                    .is_ok(),
                None => false,
            },
        }
    }
}

impl Verifier<Vec<u8>> for RingVerifier {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> std::result::Result<(), signature::Error> {
        if self.check(msg, signature) {
            Ok(())
        } else {
            Err(signature::Error::new())
        }
    }
}

impl JwtVerifier for RingVerifier {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

/// A key prepared for signing.
enum SigningKey {
    Hmac(hmac::Key),
    Rsa(ring_sig::RsaKeyPair, &'static dyn ring_sig::RsaEncoding),
    Ecdsa(ring_sig::EcdsaKeyPair),
    Ed25519(ring_sig::Ed25519KeyPair),
}

struct RingSigner {
    alg: Algorithm,
    key: SigningKey,
}

fn new_signer(alg: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    let alg = *alg;
    if key.family() != alg.family() {
        return Err(key_rejected());
    }
    let bytes = key.as_bytes();
    let prepared = match alg.family() {
        AlgorithmFamily::Hmac => {
            let hmac_alg = hmac_algorithm(alg).ok_or_else(key_rejected)?;
            SigningKey::Hmac(hmac::Key::new(hmac_alg, bytes))
        }
        AlgorithmFamily::Rsa => {
            let encoding = rsa_encoding(alg).ok_or_else(key_rejected)?;
            let pair = ring_sig::RsaKeyPair::from_der(bytes)
                .map_err(|e| ErrorKind::InvalidRsaKey(e.to_string()))?;
            SigningKey::Rsa(pair, encoding)
        }
        AlgorithmFamily::Ec => {
            let signing = ecdsa_signing(alg).ok_or_else(key_rejected)?;
            let pair = ring_sig::EcdsaKeyPair::from_pkcs8(signing, bytes, &SystemRandom::new())
                .map_err(|_| ErrorKind::InvalidEcdsaKey)?;
            SigningKey::Ecdsa(pair)
        }
        AlgorithmFamily::Ed => SigningKey::Ed25519(
            ring_sig::Ed25519KeyPair::from_pkcs8(bytes).map_err(|_| ErrorKind::InvalidEddsaKey)?,
        ),
    };
    Ok(Box::new(RingSigner { alg, key: prepared }))
}

impl Signer<Vec<u8>> for RingSigner {
    fn try_sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, signature::Error> {
        match &self.key {
            SigningKey::Hmac(key) => Ok(hmac::sign(key, msg).as_ref().to_vec()),
            SigningKey::Rsa(pair, encoding) => {
                let mut signature = vec![0; pair.public().modulus_len()];
                pair.sign(*encoding, &SystemRandom::new(), msg, &mut signature)
                    .map_err(|_| signature::Error::new())?;
                Ok(signature)
            }
            SigningKey::Ecdsa(pair) => pair
                .sign(&SystemRandom::new(), msg)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| signature::Error::new()),
            SigningKey::Ed25519(pair) => Ok(pair.sign(msg).as_ref().to_vec()),
        }
    }
}

impl JwtSigner for RingSigner {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

fn rsa_components_from_private_key(der: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    let pair =
        ring_sig::RsaKeyPair::from_der(der).map_err(|e| ErrorKind::InvalidRsaKey(e.to_string()))?;
    let public = ring_sig::RsaPublicKeyComponents::<Vec<u8>>::from(pair.public());
    Ok((public.n, public.e))
}

/// Needed only to build a JWK from an RSA public key in DER, which nothing here does; ring
/// has no parser for a bare `RSAPublicKey`, so this says so rather than guess.
fn rsa_components_from_public_key(_der: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    Err(ErrorKind::Provider("RSA public key components from DER are not supported".into()).into())
}

fn ec_components_from_private_key(
    der: &[u8],
    alg: Algorithm,
) -> Result<(EllipticCurve, Vec<u8>, Vec<u8>)> {
    let (signing, curve, coordinate_len) = match alg {
        Algorithm::ES256 => (
            &ring_sig::ECDSA_P256_SHA256_FIXED_SIGNING,
            EllipticCurve::P256,
            32,
        ),
        Algorithm::ES384 => (
            &ring_sig::ECDSA_P384_SHA384_FIXED_SIGNING,
            EllipticCurve::P384,
            48,
        ),
        _ => return Err(ErrorKind::InvalidEcdsaKey.into()),
    };
    let pair = ring_sig::EcdsaKeyPair::from_pkcs8(signing, der, &SystemRandom::new())
        .map_err(|_| ErrorKind::InvalidEcdsaKey)?;
    // An uncompressed SEC1 point: 0x04, x, y.
    match pair.public_key().as_ref().split_first() {
        Some((4, xy)) if xy.len() == 2 * coordinate_len => {
            let (x, y) = xy.split_at(coordinate_len);
            Ok((curve, x.to_vec(), y.to_vec()))
        }
        _ => Err(ErrorKind::InvalidEcdsaKey.into()),
    }
}

fn ed_components_from_private_key(der: &[u8], curve: &EllipticCurve) -> Result<Vec<u8>> {
    match curve {
        EllipticCurve::Ed25519 => Ok(ring_sig::Ed25519KeyPair::from_pkcs8(der)
            .map_err(|_| ErrorKind::InvalidEddsaKey)?
            .public_key()
            .as_ref()
            .to_vec()),
        _ => Err(ErrorKind::InvalidAlgorithm.into()),
    }
}

fn compute_digest(data: &[u8], hash: ThumbprintHash) -> Result<Vec<u8>> {
    let algorithm = match hash {
        ThumbprintHash::SHA256 => &digest::SHA256,
        ThumbprintHash::SHA384 => &digest::SHA384,
        ThumbprintHash::SHA512 => &digest::SHA512,
        _ => return Err(ErrorKind::UnsupportedAlgorithm.into()),
    };
    Ok(digest::digest(algorithm, data).as_ref().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{decode, encode, Header, Validation};
    use serde_json::{json, Value};

    fn claims() -> Value {
        json!({"sub": "x", "exp": crate::assertion::unix_now() + 60})
    }

    fn validation(alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.validate_aud = false;
        v.required_spec_claims.clear();
        v
    }

    /// Signs with `signing`, then checks that `verifying` accepts it and that a changed
    /// signature is refused.
    fn round_trip(alg: Algorithm, signing: &EncodingKey, verifying: &DecodingKey) {
        install();
        let token = encode(&Header::new(alg), &claims(), signing).unwrap();
        let back = decode::<Value>(&token, verifying, &validation(alg)).unwrap();
        assert_eq!(back.claims["sub"], "x", "{alg:?}");
        let (signed, signature) = token.rsplit_once('.').unwrap();
        let flipped = if signature.starts_with('A') { 'B' } else { 'A' };
        let forged = format!("{signed}.{flipped}{}", &signature[1..]);
        assert!(
            decode::<Value>(&forged, verifying, &validation(alg)).is_err(),
            "{alg:?}"
        );
    }

    fn ec_pkcs8(alg: &'static ring_sig::EcdsaSigningAlgorithm) -> Vec<u8> {
        ring_sig::EcdsaKeyPair::generate_pkcs8(alg, &SystemRandom::new())
            .unwrap()
            .as_ref()
            .to_vec()
    }

    #[test]
    fn every_family_signs_and_verifies() {
        let secret = EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef").unwrap();
        let secret_dec = DecodingKey::from_secret(b"0123456789abcdef0123456789abcdef").unwrap();
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            round_trip(alg, &secret, &secret_dec);
        }
        for (alg, ring_alg) in [
            (Algorithm::ES256, &ring_sig::ECDSA_P256_SHA256_FIXED_SIGNING),
            (Algorithm::ES384, &ring_sig::ECDSA_P384_SHA384_FIXED_SIGNING),
        ] {
            let pkcs8 = ec_pkcs8(ring_alg);
            let (_, x, y) = ec_components_from_private_key(&pkcs8, alg).unwrap();
            let b64 = |b: &[u8]| {
                use base64::Engine;
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
            };
            let public = DecodingKey::from_ec_components(&b64(&x), &b64(&y)).unwrap();
            round_trip(alg, &EncodingKey::from_ec_der(&pkcs8), &public);
        }
        let ed = ring_sig::Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let x = ed_components_from_private_key(ed.as_ref(), &EllipticCurve::Ed25519).unwrap();
        round_trip(
            Algorithm::EdDSA,
            &EncodingKey::from_ed_der(ed.as_ref()),
            &DecodingKey::from_ed_der(&x),
        );
    }

    #[test]
    fn a_key_of_another_family_is_refused() {
        install();
        let hmac_key = DecodingKey::from_secret(b"0123456789abcdef0123456789abcdef").unwrap();
        for alg in [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA] {
            assert!(new_verifier(&alg, &hmac_key).is_err(), "{alg:?}");
        }
        let ec = DecodingKey::from_ec_der(&[4; 65]);
        assert!(new_verifier(&Algorithm::HS256, &ec).is_err());
        assert!(new_verifier(&Algorithm::RS256, &ec).is_err());
    }

    #[test]
    fn digests_are_sha2() {
        let d = compute_digest(b"abc", ThumbprintHash::SHA256).unwrap();
        assert_eq!(
            hex::encode(d),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
