//! Personal access tokens (expiry, revocation, workspace rules) and OIDC JWTs (a valid one,
//! and forgeries).

use crate::harness::*;
use base64::Engine;
use http::{Method, StatusCode};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use lakeward_common::internal::ResolvedToken;
use lakeward_common::token::{generate_token, hash_token};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_unknown_and_expired_tokens_are_refused() {
    let gw = TestGateway::start().await;
    let c = gw.c();
    let reply = c.get("localhost", "/api/2.0/token/list", None).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.error_code(), "UNAUTHENTICATED");
    assert_eq!(
        reply.message(),
        "Credential was not sent or was of an unsupported type for this API."
    );
    let reply = c
        .get("localhost", "/api/2.0/token/list", Some(&generate_token()))
        .await;
    assert_eq!(
        (reply.status, reply.message().as_str()),
        (StatusCode::UNAUTHORIZED, "Invalid access token.")
    );
    let reply = c
        .get("localhost", "/api/2.0/token/list", Some("not-a-token"))
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let reply = c
        .get(
            "localhost",
            "/api/2.0/token/list",
            Some(&gw.tokens.bob_expired),
        )
        .await;
    // Told no more than an unknown token is; the reason is in the metric below.
    assert_eq!(
        (reply.status, reply.message().as_str()),
        (StatusCode::UNAUTHORIZED, "Invalid access token.")
    );
    // Tokens disabled in ws3: a member's token is refused there...
    let reply = c
        .get(
            "ws3.lakeward.test",
            "/api/2.0/token/list",
            Some(&gw.tokens.bob),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(gw.control.received().is_empty());
    // ...while its admins keep theirs, since only they can switch tokens back on.
    let reply = c
        .get(
            "ws3.lakeward.test",
            "/api/2.0/token/list",
            Some(&gw.tokens.alice_ws3),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(
        gw.metric("gateway_authn_failures_total{reason=\"expired\"}")
            .await,
        Some(1.0)
    );
    assert_eq!(
        gw.metric("gateway_authn_failures_total{reason=\"tokens_disabled\"}")
            .await,
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_token_expires_on_time() {
    let gw = TestGateway::start().await;
    let value = generate_token();
    // Long enough for the first request even on a loaded machine.
    let expiry = now_ms() + 1500;
    {
        let mut m = gw.model.lock().unwrap();
        let bob = m.principals["bob@example.com"].clone();
        m.tokens.insert(
            hash_token(&value),
            ResolvedToken {
                token_id: "tok-short".into(),
                token_hash: hash_token(&value),
                workspace_id: WS1,
                expiry_time_ms: expiry,
                principal: bob,
            },
        );
    }
    let c = gw.c();
    assert_eq!(
        c.get("localhost", "/api/2.0/token/list", Some(&value))
            .await
            .status,
        StatusCode::OK
    );
    let left = u64::try_from(expiry - now_ms()).unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(left + 50)).await;
    let reply = c
        .get("localhost", "/api/2.0/token/list", Some(&value))
        .await;
    assert_eq!(
        (reply.status, reply.message().as_str()),
        (StatusCode::UNAUTHORIZED, "Invalid access token.")
    );
    let record = gw.audit_record(&reply.request_id()).await;
    assert_eq!(record["authnFailureReason"], "expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_is_refused_on_the_next_request() {
    let gw = TestGateway::start().await;
    let c = gw.c();
    let bob = gw.tokens.bob.clone();
    assert_eq!(
        c.get("localhost", "/api/2.0/token/list", Some(&bob))
            .await
            .status,
        StatusCode::OK
    );
    // Revoked through the gateway: the control plane's response carries a newer state
    // version, so the caches are dropped before that response is sent.
    let reply = c
        .send(
            Method::POST,
            "localhost",
            "/api/2.0/token/delete",
            Some(&bob),
            &[],
            Some(serde_json::json!({"token_id": "tok-bob"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.headers.get("x-lakeward-state-version").is_none());
    assert!(reply.headers.get("x-lakeward-internal-detail").is_none());
    let reply = c.get("localhost", "/api/2.0/token/list", Some(&bob)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);

    // Revoked elsewhere: the background long-poll notices. (Runtime routes carry no state
    // version, so only the long-poll can tell the gateway.)
    let alice = gw.tokens.alice.clone();
    let runtime_route = "/api/2.0/sql/warehouses";
    assert_eq!(
        c.get("localhost", runtime_route, Some(&alice)).await.status,
        StatusCode::OK
    );
    {
        let mut m = gw.model.lock().unwrap();
        m.tokens.retain(|_, t| t.token_id != "tok-alice");
        m.bump();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        let status = c.get("localhost", runtime_route, Some(&alice)).await.status;
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "revocation elsewhere never took effect"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_down_fails_closed() {
    let gw = TestGateway::start_with(Options {
        control_down: true,
        no_wait: true,
        ..Options::default()
    })
    .await;
    let reply = gw
        .c()
        .get("localhost", "/api/2.0/token/list", Some(&gw.tokens.alice))
        .await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.error_code(), "TEMPORARILY_UNAVAILABLE");
    assert_eq!(reply.headers["retry-after"], "1");
    let (status, body) = gw.admin_get("/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("\"snapshot\":false"), "{body}");
}

// === JWTs ===

/// An RS256 access token (`typ: at+jwt`) signed with a fixture key.
pub fn sign(claims: serde_json::Value, kid: Option<&str>, key_file: &str) -> String {
    sign_typed(claims, kid, key_file, Some("at+jwt"))
}

/// As [`sign`], with the header's `typ` chosen (`None`: no `typ`).
pub fn sign_typed(
    claims: serde_json::Value,
    kid: Option<&str>,
    key_file: &str,
    typ: Option<&str>,
) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = kid.map(str::to_owned);
    header.typ = typ.map(str::to_owned);
    sign_with_header(&header, &claims, key_file)
}

/// Signs `claims` under any `header` (extra parameters such as `crit` included).
pub fn sign_with_header(header: &Header, claims: &serde_json::Value, key_file: &str) -> String {
    lakeward_common::jwt_crypto::install();
    let pem = std::fs::read(fixture(key_file)).unwrap();
    jsonwebtoken::encode(header, claims, &EncodingKey::from_rsa_pem(&pem).unwrap()).unwrap()
}

/// Valid claims for alice, issued now, for five minutes.
pub fn claims() -> serde_json::Value {
    let now = now_ms() / 1000;
    serde_json::json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "alice@example.com",
        "iat": now, "nbf": now - 5, "exp": now + 300,
    })
}

pub fn with(
    mut claims: serde_json::Value,
    key: &str,
    value: serde_json::Value,
) -> serde_json::Value {
    if value.is_null() {
        claims.as_object_mut().unwrap().remove(key);
    } else {
        claims[key] = value;
    }
    claims
}

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_jwt_is_accepted() {
    let gw = TestGateway::start().await;
    let token = sign(claims(), Some("test-key-1"), "jwt-rsa-private.pem");
    let reply = gw
        .c()
        .get("localhost", "/api/2.0/ip-access-lists", Some(&token))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.message());
    let received = gw.control.received();
    let asserted = received[0].claims.as_ref().unwrap();
    assert_eq!(asserted.sub, "100");
    assert_eq!(asserted.auth_method, "oauth");
    assert_eq!(asserted.token_id, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_jwts_are_refused() {
    let gw = TestGateway::start().await;
    let c = gw.c();
    let now = now_ms() / 1000;
    let public_pem = std::fs::read(fixture("jwt-rsa-public.pem")).unwrap();
    let hs256_with_public_key = {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("test-key-1".into());
        header.typ = Some("at+jwt".into());
        jsonwebtoken::encode(
            &header,
            &claims(),
            &EncodingKey::from_secret(&public_pem).unwrap(),
        )
        .unwrap()
    };
    let alg_none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"at+jwt","kid":"test-key-1"}"#),
        b64(claims().to_string().as_bytes())
    );
    let forged: Vec<(&str, String)> = vec![
        ("alg none", alg_none),
        (
            "HS256 with the RSA public key as secret",
            hs256_with_public_key,
        ),
        (
            "wrong aud",
            sign(
                with(claims(), "aud", "someone-else".into()),
                Some("test-key-1"),
                "jwt-rsa-private.pem",
            ),
        ),
        (
            "wrong iss",
            sign(
                with(claims(), "iss", "https://evil.test".into()),
                Some("test-key-1"),
                "jwt-rsa-private.pem",
            ),
        ),
        (
            "expired",
            sign(
                with(claims(), "exp", (now - 120).into()),
                Some("test-key-1"),
                "jwt-rsa-private.pem",
            ),
        ),
        (
            "not yet valid",
            sign(
                with(claims(), "nbf", (now + 120).into()),
                Some("test-key-1"),
                "jwt-rsa-private.pem",
            ),
        ),
        (
            "no nbf",
            sign(
                with(claims(), "nbf", serde_json::Value::Null),
                Some("test-key-1"),
                "jwt-rsa-private.pem",
            ),
        ),
        (
            "no aud",
            sign(
                with(claims(), "aud", serde_json::Value::Null),
                Some("test-key-1"),
                "jwt-rsa-private.pem",
            ),
        ),
        (
            "other key, right kid",
            sign(claims(), Some("test-key-1"), "jwt-rsa-attacker.pem"),
        ),
        (
            "unknown principal",
            sign(
                with(claims(), "sub", "mallory@example.com".into()),
                Some("test-key-1"),
                "jwt-rsa-private.pem",
            ),
        ),
    ];
    for (what, token) in &forged {
        let reply = c.get("localhost", "/api/2.0/token/list", Some(token)).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(reply.error_code(), "UNAUTHENTICATED", "{what}");
    }
    assert_eq!(gw.jwks.received().len(), 1, "one JWKS fetch so far");

    // Unknown kid: the JWKS is fetched again once, the token still refused; a second
    // unknown kid within the interval does not fetch again.
    for kid in ["rotated-key", "another-key"] {
        let token = sign(claims(), Some(kid), "jwt-rsa-attacker.pem");
        let reply = c
            .get("localhost", "/api/2.0/token/list", Some(&token))
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{kid}");
    }
    assert_eq!(
        gw.jwks.received().len(),
        2,
        "unknown kids re-fetch at most once per interval"
    );
    assert!(
        gw.control.received().is_empty(),
        "nothing forged reached the control plane"
    );

    for reason in [
        "algorithm",
        "claims",
        "expired",
        "bad_signature",
        "unknown_issuer",
        "unknown_key",
        "unknown_principal",
    ] {
        let series = format!("gateway_authn_failures_total{{reason=\"{reason}\"}}");
        assert!(gw.metric(&series).await.unwrap_or(0.0) >= 1.0, "{series}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_jwks_fails_closed() {
    let gw = TestGateway::start_with(Options {
        jwks_down: true,
        ..Options::default()
    })
    .await;
    let token = sign(claims(), Some("test-key-1"), "jwt-rsa-private.pem");
    for _ in 0..2 {
        let reply = gw
            .c()
            .get("localhost", "/api/2.0/token/list", Some(&token))
            .await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(reply.error_code(), "TEMPORARILY_UNAVAILABLE");
    }
    assert!(gw.control.received().is_empty());
}
