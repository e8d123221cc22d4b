//! Admission limits and framing, checked on the wire. The harness allows 8 KiB of headers,
//! 100 header fields, 2 KiB of URI and 64 KiB of body, with 2 s read timeouts.

use crate::harness::*;
use http::{Method, StatusCode};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_uri_and_body_are_refused() {
    let gw = TestGateway::start().await;
    let c = gw.c();
    let t = gw.tokens.alice.clone();

    // Past the gateway's header budget but within hyper's parser limit: admission's 431.
    let big = "x".repeat(9000);
    let reply = c
        .send(
            Method::GET,
            "localhost",
            "/api/2.0/token/list",
            Some(&t),
            &[("x-big", &big)],
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert_eq!(reply.error_code(), "REQUEST_HEADER_FIELDS_TOO_LARGE");

    // Far past it: hyper's parser answers 431 (or just closes).
    let huge = format!(
        "GET /api/2.0/token/list HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {t}\r\nX-Huge: {}\r\n\r\n",
        "y".repeat(30_000)
    );
    let response = raw_exchange(&gw, huge.as_bytes()).await;
    assert!(
        response.is_empty() || response.starts_with("HTTP/1.1 431"),
        "{response}"
    );

    // Too many header fields.
    let mut many = format!(
        "GET /api/2.0/token/list HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {t}\r\n"
    );
    for i in 0..120 {
        many.push_str(&format!("X-H{i}: 1\r\n"));
    }
    many.push_str("\r\n");
    let response = raw_exchange(&gw, many.as_bytes()).await;
    assert!(
        response.is_empty() || response.starts_with("HTTP/1.1 431"),
        "{response}"
    );

    // URI too long.
    let path = format!("/api/2.0/token/list?q={}", "a".repeat(3000));
    let reply = c.get("localhost", &path, Some(&t)).await;
    assert_eq!(reply.status, StatusCode::URI_TOO_LONG);

    // Body too large, declared.
    let body = serde_json::json!({ "comment": "z".repeat(70_000) });
    let reply = c
        .send(
            Method::POST,
            "localhost",
            "/api/2.0/token/create",
            Some(&t),
            &[],
            Some(body),
        )
        .await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.error_code(), "PAYLOAD_TOO_LARGE");

    // Body too large, chunked (no length to check up front).
    let mut chunked = format!(
        "POST /api/2.0/token/create HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {t}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    for _ in 0..9 {
        chunked.push_str(&format!("2000\r\n{}\r\n", "c".repeat(0x2000)));
    }
    chunked.push_str("0\r\n\r\n");
    let response = raw_exchange(&gw, chunked.as_bytes()).await;
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");

    assert!(
        gw.control.received().is_empty(),
        "nothing over a limit reached the upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_framing_is_refused() {
    let gw = TestGateway::start().await;
    let t = &gw.tokens.alice;
    let body = r#"{"comment":"x"}"#;
    let cases = [
        // Content-Length and Transfer-Encoding: hyper would drop the length and go on.
        format!(
            "POST /api/2.0/token/create HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {t}\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
            body.len(), body.len()
        ),
        // The same, in the other order.
        format!(
            "POST /api/2.0/token/create HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {t}\r\nTransfer-Encoding: chunked\r\nContent-Length: {}\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
            body.len(), body.len()
        ),
        // Two identical lengths: hyper would fold them into one.
        format!(
            "POST /api/2.0/token/create HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {t}\r\nContent-Length: {0}\r\nContent-Length: {0}\r\n\r\n{body}",
            body.len()
        ),
        // Two different lengths: hyper refuses by itself.
        format!(
            "POST /api/2.0/token/create HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {t}\r\nContent-Length: {}\r\nContent-Length: 3\r\n\r\n{body}",
            body.len()
        ),
    ];
    for case in &cases {
        let response = raw_exchange(&gw, case.as_bytes()).await;
        assert!(
            response.starts_with("HTTP/1.1 400"),
            "{case}\n=>\n{response}"
        );
    }
    // A clean request first, then an ambiguous one, pipelined: the first is served.
    let pipelined = format!(
        "GET /api/2.0/token/list HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {t}\r\n\r\n{}",
        cases[0]
    );
    let response = raw_exchange(&gw, pipelined.as_bytes()).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("HTTP/1.1 400"), "{response}");
    let received = gw.control.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].path, "/api/2.0/token/list");

    // HTTP/2 has no Transfer-Encoding, but a repeated Content-Length still gets through the
    // HTTP/2 layer; admission refuses it.
    let h2 = gw.client(std::net::Ipv4Addr::new(127, 0, 0, 1), true);
    let len = r#"{"comment":"x"}"#.len().to_string();
    let reply = h2
        .send(
            Method::POST,
            "localhost",
            "/api/2.0/token/create",
            Some(t),
            &[("content-length", &len), ("content-length", &len)],
            Some(serde_json::json!({"comment": "x"})),
        )
        .await;
    assert_eq!(reply.version, http::Version::HTTP_2);
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(gw.control.received().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off() {
    let gw = TestGateway::start().await;
    let connect = || async {
        let config = tls_client_config(&gw.ca_pem, &[b"http/1.1"]);
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        connector.connect(name, tcp).await.unwrap()
    };
    // A head that never completes: closed after the header read timeout.
    let mut head = connect().await;
    let started = Instant::now();
    head.write_all(b"GET /api/2.0/token/list HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), head.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(n == 0 || text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(started.elapsed() >= Duration::from_millis(1500));

    // A body that never completes: 408.
    let mut body = connect().await;
    body.write_all(
        format!(
            "POST /api/2.0/token/create HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nContent-Length: 100\r\n\r\n{{\"comment\":",
            gw.tokens.alice
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let n = tokio::time::timeout(Duration::from_secs(5), body.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(gw.control.received().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limit_idle_and_handshake_timeouts() {
    let gw = TestGateway::start_with(Options {
        max_connections: Some(1),
        idle_timeout_secs: Some(1),
        ..Options::default()
    })
    .await;
    let config = std::sync::Arc::new(tls_client_config(&gw.ca_pem, &[b"http/1.1"]));
    let connect = || async {
        let connector = tokio_rustls::TlsConnector::from(config.clone());
        let tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        connector.connect(name, tcp).await
    };
    let mut first = connect().await.unwrap();
    first
        .write_all(b"GET /.well-known/databricks-config HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = first.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));

    // The one allowed connection is taken: the next is closed at once.
    assert!(connect().await.is_err(), "a second connection was accepted");
    assert_eq!(
        gw.metric("gateway_connections_refused_total").await,
        Some(1.0)
    );

    // Idle for the timeout: the server closes the first connection.
    let started = Instant::now();
    let n = tokio::time::timeout(Duration::from_secs(5), first.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "idle connection left open");
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "{:?}",
        started.elapsed()
    );

    // Its slot is free again.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match connect().await {
            Ok(conn) => {
                drop(conn);
                break;
            }
            Err(_) => {
                assert!(Instant::now() < deadline, "the freed slot was never reused");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    // A client that never starts TLS is cut off after the handshake timeout.
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut silent = loop {
        let mut tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
        // A connection refused for want of a slot closes at once; retry until one is held.
        match tokio::time::timeout(Duration::from_millis(200), tcp.read(&mut buf)).await {
            Err(_) => break tcp,
            Ok(_) => assert!(Instant::now() < deadline, "no slot for the silent client"),
        }
    };
    let started = Instant::now();
    let n = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    assert!(
        gw.metric("gateway_tls_handshake_failures_total")
            .await
            .unwrap()
            >= 1.0
    );
}
