//! OAuth/OIDC JWTs from configured issuers, verified against the issuer's JWKS.
//!
//! The order of checks is the defence against algorithm confusion: the header's `alg` must be
//! on the issuer's allow-list (which never holds `none` or `HS*`), the key is chosen by `kid`,
//! and the key's `kty` (and `alg`, when the JWK names one) must belong to that algorithm's
//! family, so an RSA public key can never be used as an HMAC secret. Only then is the
//! signature verified, and `exp`, `nbf`, `iss` and `aud` are all required.
//!
//! Before any key is looked up, the header must name no critical extension (`crit`) and be
//! typed as an access token (`typ: at+jwt`, RFC 9068), so an ID token of the same issuer is
//! not an API credential; after the signature, `iat` may not lie in the future, the lifetime
//! is bounded per issuer, and a token for several audiences must name an accepted `azp`
//! ([`checks`]).

mod checks;
mod jwks;

use super::AuthnError;
use crate::config::{check_jwks_url, OidcIssuer};
use crate::ctx::{AuthMethod, Principal};
use crate::state::ControlState;
use arc_swap::ArcSwap;
use base64::Engine;
use http::Uri;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use jwks::JwksClient;
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Keys older than this are re-fetched on next use, so a key the issuer withdrew stops
/// working without waiting for an unknown `kid`.
const JWKS_MAX_AGE: Duration = Duration::from_secs(3600);
/// After a failed fetch, requests needing keys get 503 for this long without another try.
const FAILURE_BACKOFF: Duration = Duration::from_secs(2);

/// All configured issuers.
pub(crate) struct OidcVerifier {
    issuers: HashMap<String, Arc<Issuer>>,
}

struct Issuer {
    config: OidcIssuer,
    algorithms: Vec<Algorithm>,
    jwks_uri: Uri,
    client: JwksClient,
    keys: ArcSwap<KeySet>,
    /// Serializes fetches, and remembers when they happened for rate limiting.
    fetch: tokio::sync::Mutex<FetchTimes>,
}

#[derive(Default)]
struct FetchTimes {
    /// The last re-fetch caused by an unknown `kid`.
    unknown_kid: Option<Instant>,
    /// The last fetch that failed.
    failure: Option<Instant>,
}

#[derive(Default)]
struct KeySet {
    keys: Vec<Jwk>,
    fetched_at: Option<Instant>,
}

impl OidcVerifier {
    /// Builds the issuers of a validated config.
    pub(crate) fn new(issuers: &[OidcIssuer]) -> anyhow::Result<Self> {
        lakeward_common::jwt_crypto::install();
        let mut map = HashMap::new();
        for config in issuers {
            let jwks_uri = check_jwks_url(&config.jwks_url).map_err(|e| anyhow::anyhow!(e))?;
            let algorithms = config
                .algorithms
                .iter()
                .map(|a| {
                    Algorithm::from_str(a).map_err(|_| anyhow::anyhow!("unknown algorithm `{a}`"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let needs_tls = jwks_uri.scheme_str() == Some("https");
            let client = JwksClient::new(config.jwks_ca_file.as_deref(), needs_tls)?;
            map.insert(
                config.issuer.clone(),
                Arc::new(Issuer {
                    config: config.clone(),
                    algorithms,
                    jwks_uri,
                    client,
                    keys: ArcSwap::from_pointee(KeySet::default()),
                    fetch: tokio::sync::Mutex::new(FetchTimes::default()),
                }),
            );
        }
        Ok(OidcVerifier { issuers: map })
    }

    /// Verifies `token` and resolves the principal its user claim names.
    pub(crate) async fn authenticate(
        &self,
        token: &str,
        state: &ControlState,
    ) -> Result<Principal, AuthnError> {
        let (header, claims) = unverified_parts(token)?;
        if header.contains_key("crit") {
            // Refused whatever the issuer: the gateway understands no extension.
            return Err(AuthnError::CriticalHeader);
        }
        let alg_name = header
            .get("alg")
            .and_then(|v| v.as_str())
            .ok_or(AuthnError::Malformed)?;
        let issuer = claims
            .get("iss")
            .and_then(|v| v.as_str())
            .and_then(|iss| self.issuers.get(iss))
            .ok_or(AuthnError::UnknownIssuer)?;
        let alg = issuer
            .algorithms
            .iter()
            .copied()
            .find(|a| format!("{a:?}") == alg_name)
            .ok_or_else(|| AuthnError::Algorithm(alg_name.to_owned()))?;
        checks::check_header(&header, issuer.config.require_at_jwt_typ)?;
        let kid = header.get("kid").and_then(|v| v.as_str());
        let key = issuer.key(kid, alg).await?;
        lakeward_common::jwt_crypto::install();
        let claims = jsonwebtoken::decode::<JsonObject>(token, &key, &issuer.validation(alg))
            .map_err(map_jwt_error)?
            .claims;
        checks::check_claims(
            &claims,
            &issuer.config,
            jsonwebtoken::get_current_timestamp(),
        )?;
        let user = claims
            .get(&issuer.config.user_claim)
            .and_then(|v| v.as_str())
            .filter(|u| !u.is_empty())
            .ok_or_else(|| {
                AuthnError::Claims(format!("no `{}` claim", issuer.config.user_claim))
            })?;
        let record = state
            .resolve_principal(user)
            .await?
            .ok_or_else(|| AuthnError::UnknownPrincipal(user.to_owned()))?;
        Ok(Principal {
            record,
            auth_method: AuthMethod::Oauth,
            token_id: None,
        })
    }
}

impl Issuer {
    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.algorithms = vec![alg];
        v.leeway = self.config.clock_skew_secs;
        v.validate_exp = true;
        v.validate_nbf = true;
        v.validate_aud = true;
        v.set_required_spec_claims(&["exp", "nbf", "iss", "aud"]);
        v.set_audience(&self.config.audiences);
        v.set_issuer(&[self.config.issuer.as_str()]);
        v
    }

    /// The verification key for `kid`, fetching the JWKS when it was never fetched or is old,
    /// and re-fetching (at most once per configured interval) when `kid` is unknown.
    async fn key(&self, kid: Option<&str>, alg: Algorithm) -> Result<DecodingKey, AuthnError> {
        let stale = |keys: &KeySet| keys.fetched_at.is_none_or(|t| t.elapsed() > JWKS_MAX_AGE);
        if stale(&self.keys.load()) {
            let mut times = self.fetch.lock().await;
            // Another request may have fetched while this one waited.
            if stale(&self.keys.load()) {
                let result = if times.failure.is_some_and(|t| t.elapsed() < FAILURE_BACKOFF) {
                    Err(AuthnError::JwksUnavailable("recent fetch failed".into()))
                } else {
                    self.fetch_keys(&mut times).await
                };
                // Old keys keep working while the issuer is unreachable; no keys at all is a
                // 503, never an open door.
                if let Err(e) = result {
                    if self.keys.load().keys.is_empty() {
                        return Err(e);
                    }
                    tracing::warn!(issuer = %self.config.issuer, error = %e, "using old JWKS");
                }
            }
        }
        if let Some(jwk) = select(&self.keys.load().keys, kid, alg)? {
            return decoding_key(jwk, alg);
        }
        let mut times = self.fetch.lock().await;
        if let Some(jwk) = select(&self.keys.load().keys, kid, alg)? {
            return decoding_key(jwk, alg);
        }
        let interval = Duration::from_secs(self.config.jwks_refetch_interval_secs);
        if times.unknown_kid.is_some_and(|t| t.elapsed() < interval) {
            return Err(AuthnError::UnknownKey);
        }
        // Counted even when the fetch fails, so a down issuer is not hammered either.
        times.unknown_kid = Some(Instant::now());
        self.fetch_keys(&mut times).await?;
        match select(&self.keys.load().keys, kid, alg)? {
            Some(jwk) => decoding_key(jwk, alg),
            None => Err(AuthnError::UnknownKey),
        }
    }

    /// Fetches the JWKS; the caller holds the fetch lock.
    async fn fetch_keys(&self, times: &mut FetchTimes) -> Result<(), AuthnError> {
        tracing::info!(issuer = %self.config.issuer, "fetching JWKS");
        match self.client.fetch(&self.jwks_uri).await {
            Ok(keys) => {
                self.keys.store(Arc::new(KeySet {
                    keys,
                    fetched_at: Some(Instant::now()),
                }));
                times.failure = None;
                Ok(())
            }
            Err(e) => {
                times.failure = Some(Instant::now());
                Err(AuthnError::JwksUnavailable(e))
            }
        }
    }
}

/// The key named by `kid`, or, without a `kid`, the only key of the algorithm's family.
/// A key whose type or declared algorithm does not match `alg` is an error, not a miss.
fn select<'a>(
    keys: &'a [Jwk],
    kid: Option<&str>,
    alg: Algorithm,
) -> Result<Option<&'a Jwk>, AuthnError> {
    let Some(kid) = kid else {
        let mut family = keys.iter().filter(|k| key_fits(k, alg));
        return Ok(match (family.next(), family.next()) {
            (Some(only), None) => Some(only),
            _ => None,
        });
    };
    match keys
        .iter()
        .find(|k| k.common.key_id.as_deref() == Some(kid))
    {
        None => Ok(None),
        Some(k) if key_fits(k, alg) => Ok(Some(k)),
        Some(_) => Err(AuthnError::Algorithm(format!(
            "key `{kid}` does not fit algorithm {alg:?}"
        ))),
    }
}

/// Whether a JWK may verify `alg`: its `kty` (and curve) matches the algorithm, its `alg`, if
/// declared, is `alg`, and its `use` and `key_ops`, if declared, allow verifying signatures
/// (RFC 7517 sections 4.2 and 4.3). Symmetric (`oct`) keys and unknown key types never fit.
fn key_fits(jwk: &Jwk, alg: Algorithm) -> bool {
    use Algorithm::*;
    let family_ok = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
        AlgorithmParameters::EllipticCurve(ec) => matches!(
            (alg, &ec.curve),
            (ES256, EllipticCurve::P256) | (ES384, EllipticCurve::P384)
        ),
        AlgorithmParameters::OctetKeyPair(okp) => {
            alg == EdDSA && okp.curve == EllipticCurve::Ed25519
        }
        // `oct`, unknown key types, and whatever later versions add: never.
        _ => false,
    };
    let declared_ok = jwk
        .common
        .key_algorithm
        .is_none_or(|declared| declared.to_string() == format!("{alg:?}"));
    let use_ok = jwk
        .common
        .public_key_use
        .as_ref()
        .is_none_or(|u| *u == PublicKeyUse::Signature);
    let ops_ok = jwk
        .common
        .key_operations
        .as_ref()
        .is_none_or(|ops| ops.contains(&KeyOperations::Verify));
    family_ok && declared_ok && use_ok && ops_ok
}

fn decoding_key(jwk: &Jwk, alg: Algorithm) -> Result<DecodingKey, AuthnError> {
    DecodingKey::from_jwk(jwk)
        .map_err(|_| AuthnError::Algorithm(format!("key unusable for {alg:?}")))
}

type JsonObject = serde_json::Map<String, serde_json::Value>;

/// The header and claims, decoded but NOT verified: used only to pick the issuer and key.
fn unverified_parts(token: &str) -> Result<(JsonObject, JsonObject), AuthnError> {
    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthnError::Malformed);
    };
    let decode = |part: &str| -> Result<JsonObject, AuthnError> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part.trim_end_matches('='))
            .map_err(|_| AuthnError::Malformed)?;
        serde_json::from_slice(&bytes).map_err(|_| AuthnError::Malformed)
    };
    Ok((decode(header)?, decode(claims)?))
}

fn map_jwt_error(e: jsonwebtoken::errors::Error) -> AuthnError {
    use jsonwebtoken::errors::ErrorKind;
    match e.kind() {
        ErrorKind::ExpiredSignature => AuthnError::Expired,
        ErrorKind::InvalidSignature => AuthnError::BadSignature,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            AuthnError::Algorithm("rejected by the verifier".to_owned())
        }
        ErrorKind::ImmatureSignature => AuthnError::Claims("not yet valid".to_owned()),
        ErrorKind::InvalidAudience => AuthnError::Claims("wrong audience".to_owned()),
        ErrorKind::InvalidIssuer => AuthnError::Claims("wrong issuer".to_owned()),
        ErrorKind::MissingRequiredClaim(c) => AuthnError::Claims(format!("missing `{c}`")),
        ErrorKind::InvalidClaimFormat(c) => AuthnError::Claims(format!("`{c}` of the wrong type")),
        _ => AuthnError::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwk(json: &str) -> Jwk {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn key_type_must_match_the_algorithm_family() {
        let rsa = jwk(r#"{"kty":"RSA","kid":"r","n":"AQAB","e":"AQAB"}"#);
        let rsa_ps = jwk(r#"{"kty":"RSA","kid":"p","n":"AQAB","e":"AQAB","alg":"PS256"}"#);
        let oct = jwk(r#"{"kty":"oct","kid":"o","k":"c2VjcmV0"}"#);
        assert!(key_fits(&rsa, Algorithm::RS256));
        assert!(!key_fits(&rsa, Algorithm::ES256));
        assert!(!key_fits(&rsa, Algorithm::HS256));
        assert!(
            !key_fits(&rsa_ps, Algorithm::RS256),
            "declared alg must match"
        );
        assert!(
            !key_fits(&oct, Algorithm::HS256),
            "symmetric keys never fit"
        );
        let keys = vec![rsa, oct];
        assert!(matches!(
            select(&keys, Some("o"), Algorithm::RS256),
            Err(AuthnError::Algorithm(_))
        ));
        assert!(select(&keys, Some("r"), Algorithm::RS256)
            .unwrap()
            .is_some());
        assert!(select(&keys, Some("zzz"), Algorithm::RS256)
            .unwrap()
            .is_none());
        assert!(select(&keys, None, Algorithm::RS256).unwrap().is_some());
    }

    #[test]
    fn curve_use_and_operations_must_allow_verifying() {
        let p256 = jwk(r#"{"kty":"EC","crv":"P-256","x":"AQAB","y":"AQAB"}"#);
        let p384 = jwk(r#"{"kty":"EC","crv":"P-384","x":"AQAB","y":"AQAB"}"#);
        assert!(key_fits(&p256, Algorithm::ES256));
        assert!(!key_fits(&p256, Algorithm::ES384));
        assert!(key_fits(&p384, Algorithm::ES384));
        assert!(!key_fits(&p384, Algorithm::ES256));
        let ed = jwk(r#"{"kty":"OKP","crv":"Ed25519","x":"AQAB"}"#);
        assert!(key_fits(&ed, Algorithm::EdDSA));
        let for_signing = jwk(r#"{"kty":"RSA","n":"AQAB","e":"AQAB","use":"sig"}"#);
        let for_encryption = jwk(r#"{"kty":"RSA","n":"AQAB","e":"AQAB","use":"enc"}"#);
        let verify_op = jwk(r#"{"kty":"RSA","n":"AQAB","e":"AQAB","key_ops":["verify"]}"#);
        let encrypt_op = jwk(r#"{"kty":"RSA","n":"AQAB","e":"AQAB","key_ops":["encrypt"]}"#);
        assert!(key_fits(&for_signing, Algorithm::RS256));
        assert!(!key_fits(&for_encryption, Algorithm::RS256));
        assert!(key_fits(&verify_op, Algorithm::RS256));
        assert!(!key_fits(&encrypt_op, Algorithm::RS256));
    }

    #[test]
    fn unverified_parts_needs_three_json_parts() {
        assert!(unverified_parts("a.b").is_err());
        assert!(unverified_parts("a.b.c.d").is_err());
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let t = format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64(r#"{"iss":"x"}"#));
        let (h, c) = unverified_parts(&t).unwrap();
        assert_eq!(h["alg"], "none");
        assert_eq!(c["iss"], "x");
    }
}
