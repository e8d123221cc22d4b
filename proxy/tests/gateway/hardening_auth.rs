//! Issue 12, items 3, 4 and 7: JWTs that are not plain access tokens, headers the upstream
//! must never see, and one answer for every failed authentication. Each test asserts both
//! what the client got and what the recording upstream received.

use crate::authn::{b64, claims, sign, sign_typed, sign_with_header, with};
use crate::harness::*;
use http::{HeaderMap, Method, StatusCode, Version};
use jsonwebtoken::{Algorithm, Header};
use lakeward_common::token::generate_token;
use std::net::Ipv4Addr;

const KEY: &str = "jwt-rsa-private.pem";
const KID: Option<&str> = Some("test-key-1");

fn now() -> i64 {
    now_ms() / 1000
}

/// The header of a valid access token with `crit` added.
fn critical(names: &[&str]) -> Header {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = KID.map(str::to_owned);
    header.typ = Some("at+jwt".into());
    header.crit = Some(names.iter().map(|n| n.to_string()).collect());
    header
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwts_that_are_not_plain_access_tokens_are_refused() {
    let gw = TestGateway::start().await;
    let c = gw.c();
    let now = now();
    let two_audiences = serde_json::json!([AUDIENCE, "another-api"]);
    let refused: Vec<(&str, String, &str)> = vec![
        (
            "an OIDC ID token (typ JWT)",
            sign_typed(claims(), KID, KEY, Some("JWT")),
            "token_type",
        ),
        ("no typ", sign_typed(claims(), KID, KEY, None), "token_type"),
        (
            "typ id_token+jwt",
            sign_typed(claims(), KID, KEY, Some("id_token+jwt")),
            "token_type",
        ),
        (
            "several audiences, no azp",
            sign(with(claims(), "aud", two_audiences.clone()), KID, KEY),
            "authorized_party",
        ),
        (
            "several audiences, azp of another client",
            sign(
                with(
                    with(claims(), "aud", two_audiences.clone()),
                    "azp",
                    "another-api".into(),
                ),
                KID,
                KEY,
            ),
            "authorized_party",
        ),
        (
            "crit naming an unknown parameter",
            sign_with_header(&critical(&["urn:example:unknown"]), &claims(), KEY),
            "critical_header",
        ),
        (
            "crit naming b64",
            sign_with_header(&critical(&["b64"]), &claims(), KEY),
            "critical_header",
        ),
        (
            "iat a day in the future",
            sign(with(claims(), "iat", (now + 86_400).into()), KID, KEY),
            "lifetime",
        ),
        (
            "exp 10^10 s away",
            sign(
                with(claims(), "exp", (now + 10_000_000_000).into()),
                KID,
                KEY,
            ),
            "lifetime",
        ),
        (
            "exp 10^10 s away, no iat",
            sign(
                with(
                    with(claims(), "iat", serde_json::Value::Null),
                    "exp",
                    (now + 10_000_000_000).into(),
                ),
                KID,
                KEY,
            ),
            "lifetime",
        ),
        (
            "issued two days ago, valid for five more minutes",
            sign(with(claims(), "iat", (now - 2 * 86_400).into()), KID, KEY),
            "lifetime",
        ),
    ];
    for (what, token, reason) in &refused {
        let reply = c.get("localhost", "/api/2.0/token/list", Some(token)).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(reply.message(), "Invalid access token.", "{what}");
        let record = gw.audit_record(&reply.request_id()).await;
        assert_eq!(record["authnFailureReason"], *reason, "{what}");
    }
    assert!(
        gw.control.received().is_empty(),
        "no refused JWT reached the control plane"
    );
    for reason in [
        "token_type",
        "authorized_party",
        "critical_header",
        "lifetime",
    ] {
        let series = format!("gateway_authn_failures_total{{reason=\"{reason}\"}}");
        assert!(gw.metric(&series).await.unwrap_or(0.0) >= 1.0, "{series}");
    }

    // What an access token may look like: any case of `at+jwt`, its `application/` form,
    // several audiences with an accepted `azp`, a lifetime of exactly the maximum.
    let accepted: Vec<(&str, String)> = vec![
        ("typ AT+JWT", sign_typed(claims(), KID, KEY, Some("AT+JWT"))),
        (
            "typ application/at+jwt",
            sign_typed(claims(), KID, KEY, Some("application/at+jwt")),
        ),
        (
            "several audiences, azp of ours",
            sign(
                with(with(claims(), "aud", two_audiences), "azp", AUDIENCE.into()),
                KID,
                KEY,
            ),
        ),
        (
            "a 24 h lifetime",
            sign(
                with(
                    with(claims(), "iat", now.into()),
                    "exp",
                    (now + 86_400).into(),
                ),
                KID,
                KEY,
            ),
        ),
    ];
    for (what, token) in &accepted {
        let reply = c.get("localhost", "/api/2.0/token/list", Some(token)).await;
        assert_eq!(reply.status, StatusCode::OK, "{what}: {}", reply.message());
    }
    let received = gw.control.received();
    assert_eq!(received.len(), accepted.len());
    for request in &received {
        let asserted = request.claims.as_ref().unwrap();
        assert_eq!(
            (asserted.sub.as_str(), asserted.auth_method.as_str()),
            ("100", "oauth")
        );
    }
}

/// A request over raw HTTP/1.1 bytes with alice's token and `extra` header lines.
fn raw_request(gw: &TestGateway, path: &str, extra: &[&str]) -> Vec<u8> {
    let mut text = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n",
        gw.tokens.alice
    );
    for line in extra {
        text.push_str(line);
        text.push_str("\r\n");
    }
    text.push_str("Connection: close\r\n\r\n");
    text.into_bytes()
}

fn status_line(response: &str) -> &str {
    response.lines().next().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn underscored_header_names_are_refused_over_http1() {
    let gw = TestGateway::start().await;
    for line in [
        "X_Lakeward_Identity: forged",
        "x_lakeward_identity: forged",
        "X_Forwarded_For: 10.9.9.9",
        "Accept_Encoding: gzip",
    ] {
        let response = raw_exchange(&gw, &raw_request(&gw, "/api/2.0/token/list", &[line])).await;
        assert_eq!(status_line(&response), "HTTP/1.1 400 Bad Request", "{line}");
        assert!(
            response.contains(r#""error_code":"BAD_REQUEST""#) && response.contains("underscores"),
            "{line}: {response}"
        );
    }
    assert!(
        gw.control.received().is_empty(),
        "nothing with an underscored header reached the upstream"
    );
    // The same request, dashed, is an ordinary call.
    let response = raw_exchange(
        &gw,
        &raw_request(&gw, "/api/2.0/token/list", &["X-Something: fine"]),
    )
    .await;
    assert_eq!(status_line(&response), "HTTP/1.1 200 OK", "{response}");
    assert_eq!(gw.control.received().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn underscored_header_names_are_refused_over_http2() {
    let gw = TestGateway::start().await;
    let c = gw.client(Ipv4Addr::new(127, 0, 0, 1), true);
    let alice = gw.tokens.alice.clone();
    for header in ["x_lakeward_identity", "x_forwarded_for"] {
        let reply = c
            .send(
                Method::GET,
                "localhost",
                "/api/2.0/token/list",
                Some(&alice),
                &[(header, "forged")],
                None,
            )
            .await;
        assert_eq!(reply.version, Version::HTTP_2);
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{header}");
        assert_eq!(reply.error_code(), "BAD_REQUEST", "{header}");
    }
    assert!(gw.control.received().is_empty());
    let reply = c
        .send(
            Method::GET,
            "localhost",
            "/api/2.0/token/list",
            Some(&alice),
            &[("x-something", "fine")],
            None,
        )
        .await;
    assert_eq!(
        (reply.version, reply.status),
        (Version::HTTP_2, StatusCode::OK)
    );
    assert_eq!(gw.control.received().len(), 1);
}

/// Every header a client could use to pose as another address, scheme, host, method or path.
const SPOOFED: [(&str, &str); 14] = [
    ("X-Forwarded-For", "6.6.6.6"),
    ("X-Real-IP", "6.6.6.6"),
    ("Forwarded", "for=6.6.6.6;proto=http;host=evil.test"),
    ("True-Client-IP", "6.6.6.6"),
    ("CF-Connecting-IP", "6.6.6.6"),
    ("X-Client-IP", "6.6.6.6"),
    ("X-Forwarded-Host", "evil.test"),
    ("X-Forwarded-Port", "80"),
    ("X-Forwarded-Proto", "http"),
    ("X-HTTP-Method-Override", "DELETE"),
    ("X-HTTP-Method", "DELETE"),
    ("X-Method-Override", "DELETE"),
    ("X-Original-URL", "/api/2.0/token/delete"),
    ("X-Rewrite-URL", "/api/2.0/token/delete"),
];

/// The upstream saw the gateway's forwarding headers, once each, and none of the client's.
fn assert_only_gateway_forwarding(headers: &HeaderMap, client_ip: &str) {
    let all = |name: &str| -> Vec<&str> {
        headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    };
    assert_eq!(all("x-forwarded-for"), [client_ip], "{headers:?}");
    assert_eq!(all("x-forwarded-proto"), ["https"], "{headers:?}");
    for (name, _) in SPOOFED {
        let lower = name.to_ascii_lowercase();
        if lower == "x-forwarded-for" || lower == "x-forwarded-proto" {
            continue;
        }
        assert!(!headers.contains_key(&lower), "{name} reached the upstream");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_forwarding_and_override_headers_are_replaced_over_http1() {
    let gw = TestGateway::start().await;
    let lines: Vec<String> = SPOOFED.iter().map(|(n, v)| format!("{n}: {v}")).collect();
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let response = raw_exchange(&gw, &raw_request(&gw, "/api/2.0/token/list", &lines)).await;
    assert_eq!(status_line(&response), "HTTP/1.1 200 OK", "{response}");
    let received = gw.control.received();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("GET", "/api/2.0/token/list")
    );
    assert_only_gateway_forwarding(&request.headers, "127.0.0.1");
    assert_eq!(request.claims.as_ref().unwrap().client_ip, "127.0.0.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_the_decided_address_is_forwarded_over_http2() {
    let gw = TestGateway::start_with(Options {
        trusted_proxies: vec!["127.0.0.1".into()],
        ..Options::default()
    })
    .await;
    let c = gw.client(Ipv4Addr::new(127, 0, 0, 1), true);
    // The client wrote 6.6.6.6; the trusted proxy at 127.0.0.1 added 127.0.0.2, the address
    // the gateway decides with.
    let mut headers: Vec<(&str, &str)> = SPOOFED
        .iter()
        .filter(|(n, _)| *n != "X-Forwarded-For")
        .map(|(n, v)| (*n, *v))
        .collect();
    headers.push(("x-forwarded-for", "6.6.6.6, 127.0.0.2"));
    let reply = c
        .send(
            Method::GET,
            "localhost",
            "/api/2.0/sql/warehouses",
            Some(&gw.tokens.alice),
            &headers,
            None,
        )
        .await;
    assert_eq!(
        (reply.version, reply.status),
        (Version::HTTP_2, StatusCode::OK)
    );
    let received = gw.runtime.received();
    assert_eq!(received.len(), 1);
    assert_only_gateway_forwarding(&received[0].headers, "127.0.0.2");
    assert_eq!(received[0].claims.as_ref().unwrap().client_ip, "127.0.0.2");
    assert_eq!(received[0].method, Method::GET);
}

/// Status, body and headers (sorted), as a client sees an answer.
type Answer = (StatusCode, Vec<u8>, Vec<(String, String)>);

/// Status, body and headers, less the ones that differ per response by nature.
fn answer(reply: &Reply) -> Answer {
    let mut headers: Vec<(String, String)> = reply
        .headers
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "x-request-id" | "date"))
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
        .collect();
    headers.sort();
    (reply.status, reply.body.to_vec(), headers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_failed_authentication_gets_the_same_answer() {
    let gw = TestGateway::start().await;
    let c = gw.c();
    let now = now();
    let failures: Vec<(&str, &str, String, &str)> = vec![
        (
            "unknown PAT",
            "localhost",
            generate_token(),
            "unknown_token",
        ),
        (
            "expired PAT",
            "localhost",
            gw.tokens.bob_expired.clone(),
            "expired",
        ),
        (
            "PAT of a workspace its owner may not use",
            "ws2.lakeward.test",
            gw.tokens.bob.clone(),
            "wrong_workspace",
        ),
        (
            "PAT where tokens are disabled",
            "ws3.lakeward.test",
            gw.tokens.bob.clone(),
            "tokens_disabled",
        ),
        (
            "not a token at all",
            "localhost",
            "not-a-token".into(),
            "malformed",
        ),
        (
            "JWT from an unknown issuer",
            "localhost",
            sign(with(claims(), "iss", "https://evil.test".into()), KID, KEY),
            "unknown_issuer",
        ),
        (
            "JWT with a forged signature",
            "localhost",
            sign(claims(), KID, "jwt-rsa-attacker.pem"),
            "bad_signature",
        ),
        (
            "expired JWT",
            "localhost",
            sign(with(claims(), "exp", (now - 120).into()), KID, KEY),
            "expired",
        ),
        (
            "JWT for another audience",
            "localhost",
            sign(with(claims(), "aud", "other".into()), KID, KEY),
            "claims",
        ),
        (
            "ID token",
            "localhost",
            sign_typed(claims(), KID, KEY, Some("JWT")),
            "token_type",
        ),
        (
            "JWT of an unknown principal",
            "localhost",
            sign(
                with(claims(), "sub", "mallory@example.com".into()),
                KID,
                KEY,
            ),
            "unknown_principal",
        ),
        (
            "JWT with alg none",
            "localhost",
            format!(
                "{}.{}.",
                b64(br#"{"alg":"none","typ":"at+jwt"}"#),
                b64(claims().to_string().as_bytes())
            ),
            "algorithm",
        ),
    ];
    let mut first: Option<Answer> = None;
    for (what, host, token, reason) in &failures {
        let reply = c.get(host, "/api/2.0/token/list", Some(token)).await;
        let got = answer(&reply);
        match &first {
            None => first = Some(got),
            Some(expected) => assert_eq!(&got, expected, "{what}"),
        }
        let record = gw.audit_record(&reply.request_id()).await;
        assert_eq!(record["authnFailureReason"], *reason, "{what}");
        assert_eq!(record["response"]["statusCode"], 401, "{what}");
    }
    let (status, body, headers) = first.unwrap();
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
        serde_json::json!({"error_code": "UNAUTHENTICATED", "message": "Invalid access token."})
    );
    assert!(
        headers.contains(&("www-authenticate".into(), "Bearer".into())),
        "{headers:?}"
    );
    assert!(
        gw.control.received().is_empty(),
        "no refused request reached the control plane"
    );

    // No credentials at all: the same status and headers, and Databricks' own message.
    let reply = c.get("localhost", "/api/2.0/token/list", None).await;
    let (missing_status, missing_body, missing_headers) = answer(&reply);
    assert_eq!(missing_status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        reply.message(),
        "Credential was not sent or was of an unsupported type for this API."
    );
    assert_ne!(missing_body, body);
    let names = |h: &[(String, String)]| -> Vec<String> {
        h.iter()
            .filter(|(n, _)| n != "content-length")
            .map(|(n, v)| format!("{n}: {v}"))
            .collect()
    };
    assert_eq!(names(&missing_headers), names(&headers));
    let record = gw.audit_record(&reply.request_id()).await;
    assert_eq!(record["authnFailureReason"], "missing");
}
