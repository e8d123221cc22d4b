//! The checks on a JWT that jsonwebtoken's validation does not make: explicit typing and
//! critical header parameters (on the header, before any key is fetched), and the bounds on
//! `iat` and the lifetime and the authorized party (on the verified claims). Pure functions of
//! the token, the issuer's settings and the time, so each rule is tested on its own.

use super::super::AuthnError;
use crate::config::OidcIssuer;

type JsonObject = serde_json::Map<String, serde_json::Value>;

/// The media type of an OAuth 2.0 access token in JWT form (RFC 9068 section 2.1).
const ACCESS_TOKEN_TYPE: &str = "at+jwt";

/// Refuses a header naming critical extensions, and, when `require_at_jwt` is set, one not
/// typed `at+jwt`.
///
/// RFC 7515 section 4.1.11: a recipient that does not understand every parameter `crit`
/// lists must reject the token. The gateway understands none (not even `b64`, RFC 7797), so
/// any `crit`, well-formed or not, is refused.
pub(super) fn check_header(header: &JsonObject, require_at_jwt: bool) -> Result<(), AuthnError> {
    if header.contains_key("crit") {
        return Err(AuthnError::CriticalHeader);
    }
    if require_at_jwt && !header.get("typ").is_some_and(is_access_token_type) {
        return Err(AuthnError::TokenType);
    }
    Ok(())
}

/// `at+jwt` or its full form `application/at+jwt`, compared without regard to case (RFC 7515
/// section 4.1.9 allows the `application/` prefix to be left out; media types are
/// case-insensitive).
fn is_access_token_type(typ: &serde_json::Value) -> bool {
    let Some(typ) = typ.as_str() else {
        return false;
    };
    let bare = match typ.get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &typ[12..],
        _ => typ,
    };
    bare.eq_ignore_ascii_case(ACCESS_TOKEN_TYPE)
}

/// The checks on verified claims: `iat` not after now (give or take the clock skew), the
/// lifetime within the issuer's maximum, and the authorized party. `exp` was required and
/// checked by the signature verification's validation; it is read again here for the
/// lifetime, with the same strictness about its type.
pub(super) fn check_claims(
    claims: &JsonObject,
    issuer: &OidcIssuer,
    now: u64,
) -> Result<(), AuthnError> {
    let exp = numeric_date(claims, "exp")?.ok_or(AuthnError::Claims("missing `exp`".into()))?;
    let iat = numeric_date(claims, "iat")?;
    if iat.is_some_and(|iat| iat > now.saturating_add(issuer.clock_skew_secs)) {
        return Err(AuthnError::Lifetime("issued in the future"));
    }
    // From issue to expiry; a token that does not say when it was issued is judged by what is
    // left of it.
    let lifetime = exp.saturating_sub(iat.unwrap_or(now));
    if lifetime > issuer.max_token_lifetime_secs {
        return Err(AuthnError::Lifetime("longer than the issuer's maximum"));
    }
    check_authorized_party(claims, issuer)
}

/// A NumericDate claim (RFC 7519 section 2): a non-negative JSON number, fractions allowed and
/// dropped. Absent is `None`; any other type is an error, never a claim skipped.
fn numeric_date(claims: &JsonObject, name: &str) -> Result<Option<u64>, AuthnError> {
    let Some(value) = claims.get(name) else {
        return Ok(None);
    };
    if let Some(seconds) = value.as_u64() {
        return Ok(Some(seconds));
    }
    match value.as_f64() {
        // Finite, non-negative and below u64::MAX, so the cast only drops the fraction:
        // NumericDate counts whole seconds.
        Some(seconds) if seconds.is_finite() && (0.0..1.8e19).contains(&seconds) => {
            Ok(Some(seconds as u64))
        }
        _ => Err(AuthnError::Claims(format!("`{name}` is not a NumericDate"))),
    }
}

/// OpenID Connect Core 3.1.3.7: with several audiences the token must name the client it was
/// issued to (`azp`), and that client must be one we accept. Configured `authorized_parties`
/// also bind a single-audience token that names one.
fn check_authorized_party(claims: &JsonObject, issuer: &OidcIssuer) -> Result<(), AuthnError> {
    let several_audiences = claims
        .get("aud")
        .and_then(|aud| aud.as_array())
        .is_some_and(|list| list.len() > 1);
    let azp = match claims.get("azp") {
        None if several_audiences => {
            return Err(AuthnError::AuthorizedParty(
                "several audiences and no `azp`",
            ))
        }
        None => return Ok(()),
        Some(azp) => azp
            .as_str()
            .ok_or(AuthnError::AuthorizedParty("`azp` is not a string"))?,
    };
    let accepted = if issuer.authorized_parties.is_empty() {
        if !several_audiences {
            return Ok(());
        }
        &issuer.audiences
    } else {
        &issuer.authorized_parties
    };
    if accepted.iter().any(|party| party == azp) {
        Ok(())
    } else {
        Err(AuthnError::AuthorizedParty(
            "`azp` is not an accepted client",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: u64 = 1_800_000_000;

    fn object(value: serde_json::Value) -> JsonObject {
        match value {
            serde_json::Value::Object(map) => map,
            _ => JsonObject::new(),
        }
    }

    fn issuer() -> OidcIssuer {
        OidcIssuer {
            issuer: "https://idp".into(),
            audiences: vec!["lakeward".into()],
            clock_skew_secs: 30,
            ..OidcIssuer::default()
        }
    }

    #[test]
    fn only_access_tokens_pass_explicit_typing() {
        for typ in [
            "at+jwt",
            "AT+JWT",
            "application/at+jwt",
            "Application/At+JWT",
        ] {
            let header = object(json!({"alg": "RS256", "typ": typ}));
            assert!(check_header(&header, true).is_ok(), "{typ}");
        }
        for typ in [
            json!("JWT"),
            json!("jwt"),
            json!("application/jwt"),
            json!("id_token+jwt"),
            json!("at+jwt "),
            json!("application/"),
            json!("xapplication/at+jwt"),
            json!(["at+jwt"]),
            json!(null),
        ] {
            let header = object(json!({"alg": "RS256", "typ": typ}));
            assert!(
                matches!(check_header(&header, true), Err(AuthnError::TokenType)),
                "{typ}"
            );
        }
        let untyped = object(json!({"alg": "RS256"}));
        assert!(matches!(
            check_header(&untyped, true),
            Err(AuthnError::TokenType)
        ));
        // An issuer that cannot type its tokens may turn the requirement off.
        let id_token = object(json!({"alg": "RS256", "typ": "JWT"}));
        assert!(check_header(&id_token, false).is_ok());
        assert!(check_header(&untyped, false).is_ok());
    }

    #[test]
    fn any_critical_header_is_refused() {
        for crit in [
            json!(["exp"]),
            json!(["b64"]),
            json!([]),
            json!("x"),
            json!(null),
        ] {
            let header = object(json!({"alg": "RS256", "typ": "at+jwt", "crit": crit}));
            for require in [true, false] {
                assert!(
                    matches!(
                        check_header(&header, require),
                        Err(AuthnError::CriticalHeader)
                    ),
                    "{header:?}"
                );
            }
        }
    }

    #[test]
    fn iat_is_bounded_by_the_clock_skew() {
        let claims = |iat: serde_json::Value| {
            object(json!({"aud": "lakeward", "iat": iat, "exp": NOW + 300}))
        };
        assert!(check_claims(&claims(json!(NOW)), &issuer(), NOW).is_ok());
        assert!(check_claims(&claims(json!(NOW + 30)), &issuer(), NOW).is_ok());
        assert!(check_claims(&claims(json!(NOW as f64 + 0.5)), &issuer(), NOW).is_ok());
        for iat in [json!(NOW + 31), json!(NOW + 86_400)] {
            assert!(
                matches!(
                    check_claims(&claims(iat.clone()), &issuer(), NOW),
                    Err(AuthnError::Lifetime(_))
                ),
                "{iat}"
            );
        }
        for iat in [json!("1800000000"), json!(-1), json!(true), json!(1e30)] {
            assert!(
                matches!(
                    check_claims(&claims(iat.clone()), &issuer(), NOW),
                    Err(AuthnError::Claims(_))
                ),
                "{iat}"
            );
        }
    }

    #[test]
    fn the_lifetime_is_bounded_per_issuer() {
        let day = 86_400;
        let with = |iat: Option<u64>, exp: u64| {
            let mut c = object(json!({"aud": "lakeward", "exp": exp}));
            if let Some(iat) = iat {
                c.insert("iat".into(), json!(iat));
            }
            c
        };
        let ok = |c: &JsonObject, i: &OidcIssuer| check_claims(c, i, NOW).is_ok();
        assert!(ok(&with(Some(NOW), NOW + day), &issuer()));
        assert!(!ok(&with(Some(NOW), NOW + day + 1), &issuer()));
        // Issued long ago and still valid: the lifetime counts from `iat`.
        assert!(!ok(&with(Some(NOW - day), NOW + 60), &issuer()));
        assert!(!ok(&with(Some(0), NOW + 60), &issuer()));
        // No `iat`: what is left of it.
        assert!(ok(&with(None, NOW + day), &issuer()));
        assert!(!ok(&with(None, NOW + 10_000_000_000), &issuer()));
        let strict = OidcIssuer {
            max_token_lifetime_secs: 3600,
            ..issuer()
        };
        assert!(ok(&with(Some(NOW), NOW + 3600), &strict));
        assert!(!ok(&with(Some(NOW), NOW + 3601), &strict));
        assert!(matches!(
            check_claims(&with(None, NOW + day + 1), &issuer(), NOW),
            Err(AuthnError::Lifetime(_))
        ));
    }

    #[test]
    fn several_audiences_need_an_accepted_azp() {
        let claims = |aud: serde_json::Value, azp: Option<&str>| {
            let mut c = object(json!({"aud": aud, "iat": NOW, "exp": NOW + 300}));
            if let Some(azp) = azp {
                c.insert("azp".into(), json!(azp));
            }
            c
        };
        let check = |c: &JsonObject, i: &OidcIssuer| check_claims(c, i, NOW);
        let two = json!(["lakeward", "other-api"]);
        assert!(matches!(
            check(&claims(two.clone(), None), &issuer()),
            Err(AuthnError::AuthorizedParty(_))
        ));
        assert!(check(&claims(two.clone(), Some("lakeward")), &issuer()).is_ok());
        assert!(matches!(
            check(&claims(two.clone(), Some("some-client")), &issuer()),
            Err(AuthnError::AuthorizedParty(_))
        ));
        // One audience: `azp` is not needed, and any is fine unless clients are configured.
        assert!(check(&claims(json!("lakeward"), None), &issuer()).is_ok());
        assert!(check(&claims(json!(["lakeward"]), None), &issuer()).is_ok());
        assert!(check(&claims(json!("lakeward"), Some("cli")), &issuer()).is_ok());
        let clients = OidcIssuer {
            authorized_parties: vec!["databricks-cli".into()],
            ..issuer()
        };
        assert!(check(&claims(two.clone(), Some("databricks-cli")), &clients).is_ok());
        assert!(check(&claims(two.clone(), Some("lakeward")), &clients).is_err());
        assert!(check(&claims(json!("lakeward"), Some("cli")), &clients).is_err());
        assert!(check(&claims(json!("lakeward"), None), &clients).is_ok());
        let mut numeric = claims(two, None);
        numeric.insert("azp".into(), json!(7));
        assert!(check(&numeric, &issuer()).is_err());
    }
}
