//! The identity assertion: a short-lived JWT the gateway adds to every call it forwards, naming
//! the caller it authenticated. Upstreams (control, runtime) refuse any call without a valid one,
//! so a client that goes around the gateway gets nothing.
//!
//! Why HMAC (HS256) and not a public-key signature: the gateway signs one assertion per request,
//! and an Ed25519 signature costs tens of microseconds where HMAC costs well under one. To keep
//! the property a public key would give (one upstream cannot mint assertions for another), each
//! audience gets its own key, derived from the gateway's master secret with HMAC-SHA256; an
//! upstream is handed only the key of its own audience.

use base64::Engine as _;
use jsonwebtoken::Algorithm;
use rand::RngCore;
use secrecy::{ExposeSecret, ExposeSecretMut, SecretBox, SecretSlice, SecretString};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use zeroize::Zeroizing;

/// The request header that carries the assertion. The gateway strips any incoming copy.
pub const IDENTITY_HEADER: &str = "x-lakeward-identity";
/// The `iss` of every assertion.
pub const ISSUER: &str = "lakeward-gateway";
/// How long an assertion is valid. Long enough for a slow upstream, short enough that a
/// captured one is of little use.
pub const LIFETIME_SECS: u64 = 60;
/// Clock skew accepted when verifying.
pub const LEEWAY_SECS: u64 = 5;

/// Who an assertion is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Audience {
    Control,
    Runtime,
    /// The runtime calling the control plane's data-plane internal API (`crate::data`). A key of
    /// its own so that what the runtime holds cannot mint assertions the control plane's public
    /// API would accept.
    DataPlane,
}

impl Audience {
    pub fn as_str(self) -> &'static str {
        match self {
            Audience::Control => "lakeward-control",
            Audience::Runtime => "lakeward-runtime",
            Audience::DataPlane => "lakeward-control-data-plane",
        }
    }
}

/// What kind of principal an assertion names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    User,
    ServicePrincipal,
    /// The gateway itself, calling the control plane's internal API.
    Gateway,
    /// The runtime, calling the control plane's data-plane internal API.
    Runtime,
    /// No caller: routes that need no authentication (`/.well-known/databricks-config`).
    Anonymous,
}

/// The claims of an assertion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityClaims {
    pub iss: String,
    pub aud: String,
    pub iat: u64,
    pub exp: u64,
    /// The principal's id (a decimal string), or `gateway` / `anonymous`.
    pub sub: String,
    pub kind: PrincipalKind,
    /// `userName` for users, `applicationId` for service principals.
    pub user_name: String,
    /// Ids of the groups the principal belongs to.
    #[serde(default)]
    pub groups: Vec<String>,
    /// The workspace addressed; absent on account-level calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<i64>,
    pub account_id: String,
    /// The personal access token the caller used, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    /// `pat`, `oauth`, `internal` or `none`.
    pub auth_method: String,
    pub request_id: String,
    /// The client address the gateway saw (the one IP access lists were checked against).
    pub client_ip: String,
}

/// The JOSE header of every assertion, `{"typ":"JWT","alg":"HS256"}`, base64url-encoded once.
const SIGNED_HEADER: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9";
const BASE64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Errors from [`AssertionKey::verify`]. The message never includes the assertion itself.
#[derive(Debug, thiserror::Error)]
pub enum AssertionError {
    #[error("identity assertion missing")]
    Missing,
    /// The header is not visible ASCII, so it cannot be a JWT.
    #[error("identity assertion invalid")]
    Unreadable,
    #[error("identity assertion invalid: {0}")]
    Invalid(String),
    #[error("identity assertion could not be signed")]
    Signing,
}

/// A 32-byte secret from which the per-audience keys are derived. Kept by the gateway only.
///
/// Held in a [`SecretBox`]: wiped when dropped, `[REDACTED]` in `Debug`. Clones share that one
/// copy.
#[derive(Debug, Clone)]
pub struct MasterSecret(Arc<SecretBox<[u8; 32]>>);

impl MasterSecret {
    pub fn generate() -> Self {
        let mut secret = SecretBox::new(Box::new([0u8; 32]));
        rand::rngs::OsRng.fill_bytes(secret.expose_secret_mut());
        MasterSecret(Arc::new(secret))
    }

    /// Parses the hex form written by [`MasterSecret::to_hex`].
    pub fn from_hex(text: &str) -> Result<Self, AssertionError> {
        let text = text.trim();
        if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(AssertionError::Invalid("master secret is not hex".into()));
        }
        // Decoded straight into the box: no other copy of the bytes is made.
        let mut secret = SecretBox::new(Box::new([0u8; 32]));
        hex::decode_to_slice(text, secret.expose_secret_mut())
            .map_err(|_| AssertionError::Invalid("master secret must be 32 bytes".into()))?;
        Ok(MasterSecret(Arc::new(secret)))
    }

    /// The hex form, as kept in the data directory; wiped when dropped.
    pub fn to_hex(&self) -> SecretString {
        secret_hex(self.0.expose_secret())
    }

    /// The key for one audience: HMAC-SHA256(master, "lakeward-assertion/" + audience).
    pub fn key_for(&self, audience: Audience) -> AssertionKey {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, self.0.expose_secret());
        let tag = ring::hmac::sign(
            &key,
            format!("lakeward-assertion/{}", audience.as_str()).as_bytes(),
        );
        AssertionKey::new(audience, tag.as_ref())
    }
}

/// The key of one audience: the gateway signs with it, that audience's upstream verifies.
///
/// The key's bytes are held in a [`SecretBox`] (wiped when the last clone is dropped,
/// `[REDACTED]` in `Debug`); what else holds them is ring's prepared HMAC key, which cannot be
/// wiped but is never printed either.
#[derive(Debug, Clone)]
pub struct AssertionKey {
    audience: Audience,
    /// Signing and verifying run once per forwarded request, so the HMAC key is prepared once
    /// here rather than by `jsonwebtoken` on every call (which would also keep a plain copy
    /// of the key). The claims are typed ([`IdentityClaims`]), so a claim of the wrong JSON
    /// type fails to parse rather than being skipped by a check.
    hmac: ring::hmac::Key,
    secret: Arc<SecretSlice<u8>>,
}

impl AssertionKey {
    pub fn new(audience: Audience, secret: &[u8]) -> Self {
        AssertionKey {
            audience,
            hmac: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret),
            secret: Arc::new(SecretSlice::from(secret.to_vec())),
        }
    }

    /// Parses the hex form written by [`AssertionKey::to_hex`].
    pub fn from_hex(audience: Audience, text: &str) -> Result<Self, AssertionError> {
        let raw = Zeroizing::new(
            hex::decode(text.trim())
                .map_err(|_| AssertionError::Invalid("assertion key is not hex".into()))?,
        );
        if raw.len() < 32 {
            return Err(AssertionError::Invalid(
                "assertion key must be at least 32 bytes".into(),
            ));
        }
        Ok(AssertionKey::new(audience, &raw))
    }

    /// The hex form of the key; wiped when dropped.
    pub fn to_hex(&self) -> SecretString {
        secret_hex(self.secret.expose_secret())
    }

    pub fn audience(&self) -> Audience {
        self.audience
    }

    /// Signs `claims`, setting `iss`, `aud`, `iat` and `exp`.
    pub fn sign(&self, mut claims: IdentityClaims) -> Result<String, AssertionError> {
        let now = unix_now();
        claims.iss = ISSUER.to_owned();
        claims.aud = self.audience.as_str().to_owned();
        claims.iat = now;
        claims.exp = now + LIFETIME_SECS;
        let payload = serde_json::to_vec(&claims).map_err(|_| AssertionError::Signing)?;
        let mut token = String::with_capacity(SIGNED_HEADER.len() + payload.len() * 4 / 3 + 48);
        token.push_str(SIGNED_HEADER);
        token.push('.');
        BASE64URL.encode_string(&payload, &mut token);
        let tag = ring::hmac::sign(&self.hmac, token.as_bytes());
        token.push('.');
        BASE64URL.encode_string(tag.as_ref(), &mut token);
        Ok(token)
    }

    /// Verifies an assertion: algorithm and signature (HS256 with this key, in constant time),
    /// then issuer, audience, subject and expiry.
    pub fn verify(&self, token: &str) -> Result<IdentityClaims, AssertionError> {
        let invalid = |why: &str| AssertionError::Invalid(why.to_owned());
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid("malformed"));
        };
        let alg = jsonwebtoken::decode_header(token)
            .map_err(|e| AssertionError::Invalid(e.kind_description()))?
            .alg;
        if alg != Algorithm::HS256 {
            return Err(invalid("algorithm not allowed"));
        }
        let tag = BASE64URL
            .decode(signature)
            .map_err(|_| invalid("bad signature"))?;
        // The signed text is the header and payload exactly as received.
        let signed = &token[..header.len() + 1 + payload.len()];
        ring::hmac::verify(&self.hmac, signed.as_bytes(), &tag)
            .map_err(|_| invalid("bad signature"))?;
        let claims: IdentityClaims = BASE64URL
            .decode(payload)
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .ok_or_else(|| invalid("malformed"))?;
        self.check_claims(&claims, unix_now())?;
        Ok(claims)
    }

    /// What jsonwebtoken's validation checked before: issuer, audience, a subject, and expiry
    /// with [`LEEWAY_SECS`] of clock skew. `iat` and `exp` are required by the type.
    fn check_claims(&self, claims: &IdentityClaims, now: u64) -> Result<(), AssertionError> {
        let invalid = |why: &str| Err(AssertionError::Invalid(why.to_owned()));
        if claims.iss != ISSUER {
            return invalid("wrong issuer");
        }
        if claims.aud != self.audience.as_str() {
            return invalid("wrong audience");
        }
        if claims.sub.is_empty() {
            return invalid("missing claim `sub`");
        }
        if claims.exp.saturating_add(LEEWAY_SECS) < now {
            return invalid("expired");
        }
        Ok(())
    }
}

/// `bytes` in lowercase hex, built in place in a secret string: the buffer is allocated at its
/// final size, so no reallocation leaves a copy behind.
fn secret_hex(bytes: &[u8]) -> SecretString {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    SecretString::from(text)
}

trait KindDescription {
    fn kind_description(&self) -> String;
}

impl KindDescription for jsonwebtoken::errors::Error {
    fn kind_description(&self) -> String {
        use jsonwebtoken::errors::ErrorKind;
        match self.kind() {
            ErrorKind::ExpiredSignature => "expired".into(),
            ErrorKind::InvalidAudience => "wrong audience".into(),
            ErrorKind::InvalidIssuer => "wrong issuer".into(),
            ErrorKind::InvalidSignature => "bad signature".into(),
            ErrorKind::InvalidAlgorithm => "algorithm not allowed".into(),
            ErrorKind::ImmatureSignature => "not yet valid".into(),
            ErrorKind::MissingRequiredClaim(claim) => format!("missing claim `{claim}`"),
            _ => "malformed".into(),
        }
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl IdentityClaims {
    /// Claims for the gateway's own calls to the control plane's internal API.
    pub fn gateway(account_id: &str, request_id: &str) -> Self {
        IdentityClaims {
            iss: String::new(),
            aud: String::new(),
            iat: 0,
            exp: 0,
            sub: "gateway".into(),
            kind: PrincipalKind::Gateway,
            user_name: "gateway".into(),
            groups: Vec::new(),
            workspace_id: None,
            account_id: account_id.to_owned(),
            token_id: None,
            auth_method: "internal".into(),
            request_id: request_id.to_owned(),
            client_ip: "127.0.0.1".into(),
        }
    }
}

impl IdentityClaims {
    /// Claims for the runtime's own calls to the control plane's data-plane internal API,
    /// carrying the request id of the statement that caused them.
    pub fn runtime(account_id: &str, request_id: &str) -> Self {
        IdentityClaims {
            sub: "runtime".into(),
            kind: PrincipalKind::Runtime,
            user_name: "runtime".into(),
            ..IdentityClaims::gateway(account_id, request_id)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> IdentityClaims {
        crate::jwt_crypto::install();
        IdentityClaims {
            sub: "42".into(),
            kind: PrincipalKind::User,
            user_name: "a@example.com".into(),
            groups: vec!["7".into()],
            workspace_id: Some(1234),
            token_id: Some("t1".into()),
            auth_method: "pat".into(),
            client_ip: "127.0.0.2".into(),
            ..IdentityClaims::gateway("acct", "req-1")
        }
    }

    #[test]
    fn round_trip_for_its_own_audience_only() {
        let master = MasterSecret::generate();
        let control = master.key_for(Audience::Control);
        let runtime = master.key_for(Audience::Runtime);
        let token = control.sign(claims()).unwrap();
        let back = control.verify(&token).unwrap();
        assert_eq!(back.sub, "42");
        assert_eq!(back.aud, "lakeward-control");
        assert!(
            runtime.verify(&token).is_err(),
            "runtime key must not accept control's"
        );
    }

    #[test]
    fn other_master_is_refused() {
        let token = MasterSecret::generate()
            .key_for(Audience::Control)
            .sign(claims())
            .unwrap();
        let other = MasterSecret::generate().key_for(Audience::Control);
        assert!(other.verify(&token).is_err());
    }

    #[test]
    fn expired_and_unsigned_are_refused() {
        let key = MasterSecret::generate().key_for(Audience::Control);
        let mut c = claims();
        c.iss = ISSUER.into();
        c.aud = "lakeward-control".into();
        c.iat = unix_now() - 600;
        c.exp = unix_now() - 300;
        let expired = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &c,
            &jsonwebtoken::EncodingKey::from_secret(
                &hex::decode(key.to_hex().expose_secret()).unwrap(),
            )
            .unwrap(),
        )
        .unwrap();
        assert!(key.verify(&expired).is_err());
        // alg=none: header {"alg":"none"} with an empty signature.
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        c.exp = unix_now() + 60;
        let none = format!(
            "{}.{}.",
            b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
            b64.encode(serde_json::to_vec(&c).unwrap())
        );
        assert!(key.verify(&none).is_err());
    }

    #[test]
    fn the_precomputed_header_is_hs256() {
        let header = BASE64URL.decode(SIGNED_HEADER).unwrap();
        let header: serde_json::Value = serde_json::from_slice(&header).unwrap();
        assert_eq!(header, serde_json::json!({"typ": "JWT", "alg": "HS256"}));
        // And what we sign, jsonwebtoken verifies.
        let key = MasterSecret::generate().key_for(Audience::Runtime);
        assert_eq!(key.verify(&key.sign(claims()).unwrap()).unwrap().sub, "42");
    }

    #[test]
    fn master_hex_round_trip() {
        let m = MasterSecret::generate();
        let back = MasterSecret::from_hex(m.to_hex().expose_secret()).unwrap();
        assert_eq!(
            m.key_for(Audience::Runtime).to_hex().expose_secret(),
            back.key_for(Audience::Runtime).to_hex().expose_secret()
        );
        assert_eq!(m.to_hex().expose_secret().len(), 64);
        let key = m.key_for(Audience::Control);
        let again =
            AssertionKey::from_hex(Audience::Control, key.to_hex().expose_secret()).unwrap();
        assert_eq!(
            again.verify(&key.sign(claims()).unwrap()).unwrap().sub,
            "42"
        );
    }

    #[test]
    fn bad_hex_is_refused_with_a_reason() {
        let message = |text: &str| MasterSecret::from_hex(text).unwrap_err().to_string();
        assert!(message("zz").ends_with("master secret is not hex"));
        assert!(message("abc").ends_with("master secret is not hex"));
        assert!(message(&"ab".repeat(31)).ends_with("master secret must be 32 bytes"));
        assert!(message(&"ab".repeat(33)).ends_with("master secret must be 32 bytes"));
        assert!(MasterSecret::from_hex(&format!(" {}\n", "ab".repeat(32))).is_ok());
        assert!(AssertionKey::from_hex(Audience::Control, &"ab".repeat(31)).is_err());
    }

    #[test]
    fn debug_never_shows_key_material() {
        let master = MasterSecret::generate();
        let key = master.key_for(Audience::Control);
        for shown in [
            format!("{master:?}"),
            format!("{key:?}"),
            format!("{key:#?}"),
        ] {
            assert!(shown.contains("REDACTED"), "{shown}");
            for secret in [master.to_hex(), key.to_hex()] {
                let hex = secret.expose_secret();
                assert!(!shown.contains(hex), "{shown}");
                assert!(!shown.contains(&hex[..16]), "{shown}");
            }
        }
        assert!(!format!("{:?}", master.to_hex()).contains(master.to_hex().expose_secret()));
    }

    #[test]
    fn other_algorithms_are_refused_even_with_the_right_key() {
        let key = MasterSecret::generate().key_for(Audience::Control);
        let raw = hex::decode(key.to_hex().expose_secret()).unwrap();
        let mut c = claims();
        c.iss = ISSUER.into();
        c.aud = Audience::Control.as_str().into();
        c.iat = unix_now();
        c.exp = unix_now() + 60;
        for alg in [Algorithm::HS384, Algorithm::HS512] {
            let token = jsonwebtoken::encode(
                &jsonwebtoken::Header::new(alg),
                &c,
                &jsonwebtoken::EncodingKey::from_secret(&raw).unwrap(),
            )
            .unwrap();
            let err = key.verify(&token).unwrap_err();
            assert_eq!(
                err.to_string(),
                "identity assertion invalid: algorithm not allowed"
            );
        }
        // The same claims as HS256 with that key: accepted, so only the algorithm differed.
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &c,
            &jsonwebtoken::EncodingKey::from_secret(&raw).unwrap(),
        )
        .unwrap();
        assert_eq!(key.verify(&token).unwrap().sub, "42");
    }

    #[test]
    fn issuer_audience_subject_and_expiry_are_checked() {
        let key = MasterSecret::generate().key_for(Audience::Control);
        let now = 1_700_000_000;
        let good = IdentityClaims {
            iss: ISSUER.into(),
            aud: Audience::Control.as_str().into(),
            iat: now - 10,
            exp: now - LEEWAY_SECS,
            ..claims()
        };
        assert!(key.check_claims(&good, now).is_ok(), "inside the leeway");
        let refused = |c: IdentityClaims| key.check_claims(&c, now).unwrap_err().to_string();
        for (claims, why) in [
            (
                IdentityClaims {
                    iss: "other".into(),
                    ..good.clone()
                },
                "wrong issuer",
            ),
            (
                IdentityClaims {
                    aud: Audience::Runtime.as_str().into(),
                    ..good.clone()
                },
                "wrong audience",
            ),
            (
                IdentityClaims {
                    sub: String::new(),
                    ..good.clone()
                },
                "missing claim `sub`",
            ),
            (
                IdentityClaims {
                    exp: now - LEEWAY_SECS - 1,
                    ..good.clone()
                },
                "expired",
            ),
        ] {
            assert!(refused(claims).ends_with(why), "{why}");
        }
    }

    #[test]
    fn tampered_claims_and_signatures_are_refused() {
        let key = MasterSecret::generate().key_for(Audience::Control);
        let token = key.sign(claims()).unwrap();
        let (head, signature) = token.rsplit_once('.').unwrap();
        let (header, _) = head.split_once('.').unwrap();
        let mut forged = claims();
        forged.sub = "1".into();
        forged.iss = ISSUER.into();
        forged.aud = Audience::Control.as_str().into();
        forged.iat = unix_now();
        forged.exp = unix_now() + 60;
        let payload = BASE64URL.encode(serde_json::to_vec(&forged).unwrap());
        let swapped = format!("{header}.{payload}.{signature}");
        assert!(
            key.verify(&swapped).is_err(),
            "claims not covered by the signature"
        );
        for bad in [
            format!("{head}.{}", &signature[1..]),
            format!("{head}."),
            format!("{head}.!!!"),
            format!("{token}.extra"),
            head.to_owned(),
        ] {
            assert!(key.verify(&bad).is_err(), "{bad}");
        }
    }
}
