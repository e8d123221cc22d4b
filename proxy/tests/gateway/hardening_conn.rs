//! Hardening of the connection and framing layer, on the wire: per-address connection caps,
//! the framing guard past long chunk extensions, the authority, unrequested upgrades and the
//! lingering close. HTTP/1 is raw bytes over TLS; HTTP/2 goes through the h2 crate's client,
//! which sends exactly the pseudo-headers and fields a test gives it. Every test checks what
//! the client got and what the recording upstreams received.

use crate::harness::*;
use bytes::Bytes;
use http::StatusCode;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;

const HERE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
/// Another client address: Linux routes all of 127/8 to the loopback interface.
const ELSEWHERE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

async fn tcp_from(source: Ipv4Addr, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((source, 0))).unwrap();
    socket.connect(to).await.unwrap()
}

async fn tls_from(
    gw: &TestGateway,
    source: Ipv4Addr,
    alpn: &[&[u8]],
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = tcp_from(source, gw.addr).await;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls_client_config(&gw.ca_pem, alpn)));
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    connector.connect(name, tcp).await
}

/// Reads until the peer closes (or 5 s pass: a `TimedOut` error); returns the bytes and the
/// error that ended the read, if one did.
async fn read_to_close(stream: &mut (impl AsyncRead + Unpin)) -> (String, Option<std::io::Error>) {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let deadline = Instant::now() + Duration::from_secs(5);
    let error = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) => break None,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Ok(Err(e)) => break Some(e),
            Err(_) => break Some(std::io::ErrorKind::TimedOut.into()),
        }
    };
    (String::from_utf8_lossy(&out).into_owned(), error)
}

/// Reads one HTTP/1 response (head and `Content-Length` body) off a kept-alive connection.
async fn read_response(stream: &mut TlsStream<TcpStream>) -> String {
    let mut out = Vec::new();
    let mut byte = [0u8; 1];
    while !out.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 1, "closed mid-head: {}", String::from_utf8_lossy(&out));
        out.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&out).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.unwrap();
    head + &String::from_utf8_lossy(&body)
}

/// Sends one request on a fresh connection from 127.0.0.1 and reads until the gateway closes.
async fn one_request(gw: &TestGateway, request: &str) -> String {
    let mut tls = tls_from(gw, HERE, &[b"http/1.1"]).await.unwrap();
    tls.write_all(request.as_bytes()).await.unwrap();
    let (text, _) = read_to_close(&mut tls).await;
    text
}

fn body_of(response: &str) -> serde_json::Value {
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or(serde_json::Value::Null)
}

/// Waits (up to 5 s) for a metric to reach `at_least`.
async fn wait_for_metric(gw: &TestGateway, series: &str, at_least: f64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while gw.metric(series).await.unwrap_or(0.0) < at_least {
        assert!(
            Instant::now() < deadline,
            "{series} never reached {at_least}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether the gateway closes `tcp` at once (end of stream or reset) rather than keeping it.
async fn refused(tcp: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// Polls until a PAT request from `source` is served (the address's slots came back).
async fn served_again(gw: &TestGateway, source: Ipv4Addr) {
    let request = format!(
        "GET /api/2.0/token/list HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        gw.tokens.alice
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(mut tls) = tls_from(gw, source, &[b"http/1.1"]).await {
            if tls.write_all(request.as_bytes()).await.is_ok() {
                let (text, _) = read_to_close(&mut tls).await;
                if text.starts_with("HTTP/1.1 200") {
                    return;
                }
            }
        }
        assert!(Instant::now() < deadline, "{source} was never served again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The other address gets a real answer from the upstream, which sees that address.
async fn served_from_elsewhere(gw: &TestGateway) {
    let before = gw.control.received().len();
    let reply = gw
        .client(ELSEWHERE, false)
        .get("localhost", "/api/2.0/token/list", Some(&gw.tokens.alice))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.message());
    let received = gw.control.received();
    assert_eq!(received.len(), before + 1);
    let claims = received.last().unwrap().claims.clone().unwrap();
    assert_eq!(claims.client_ip, "127.0.0.2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_in_the_handshake_cannot_lock_others_out() {
    // The default caps: 32 connections of one address in their TLS handshake.
    let gw = TestGateway::start().await;
    let mut idle = Vec::new();
    for _ in 0..32 {
        idle.push(tcp_from(HERE, gw.addr).await);
    }
    wait_for_metric(&gw, "gateway_connections_open", 32.0).await;

    // The kernel queues accepts in order, so the 33rd is counted after the 32 idle ones.
    let mut one_more = tcp_from(HERE, gw.addr).await;
    assert!(refused(&mut one_more).await, "a 33rd handshake was let in");
    assert!(
        tls_from(&gw, HERE, &[b"http/1.1"]).await.is_err(),
        "a TLS client from the flooding address was let in"
    );
    assert!(
        gw.metric("gateway_connections_refused_per_address_total")
            .await
            .unwrap()
            >= 2.0
    );
    // The idle sockets were held, not dropped.
    for tcp in &mut idle {
        let mut buf = [0u8; 1];
        assert!(matches!(
            tcp.try_read(&mut buf),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
        ));
    }

    served_from_elsewhere(&gw).await;
    drop(idle);
    served_again(&gw, HERE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_hold_every_open_connection() {
    let gw = TestGateway::start_with(Options {
        configure: Some(Box::new(|config| {
            config.limits.max_connections_per_address = 6;
            config.limits.max_handshakes_per_address = 6;
        })),
        ..Options::default()
    })
    .await;
    let mut open = Vec::new();
    for _ in 0..6 {
        open.push(tls_from(&gw, HERE, &[b"http/1.1"]).await.unwrap());
    }
    assert!(
        tls_from(&gw, HERE, &[b"http/1.1"]).await.is_err(),
        "a 7th connection from one address was let in"
    );
    served_from_elsewhere(&gw).await;
    assert!(
        gw.control
            .received()
            .iter()
            .all(|r| r.claims.as_ref().unwrap().client_ip == "127.0.0.2"),
        "nothing from the capped address reached the upstream"
    );

    // A closed connection gives its slot back.
    open.pop();
    served_again(&gw, HERE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_framing_guard_follows_past_long_chunk_extensions() {
    let gw = TestGateway::start().await;
    let t = &gw.tokens.alice;
    let body = r#"{"statement":"SELECT 1","warehouse_id":"w"}"#;
    let head = format!(
        "POST /api/2.0/sql/statements HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {t}\r\nContent-Type: application/json\r\n"
    );
    // 2 KiB of extension: past the 1 KiB after which the guard used to stop following.
    let long_extension = format!(
        "{head}Transfer-Encoding: chunked\r\n\r\n{:x};note={}\r\n{body}\r\n0\r\n\r\n",
        body.len(),
        "n".repeat(2048)
    );
    let ambiguous = format!(
        "{head}Content-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        body.len(),
        body.len()
    );
    let mut tls = tls_from(&gw, HERE, &[b"http/1.1"]).await.unwrap();
    tls.write_all(long_extension.as_bytes()).await.unwrap();
    let first = read_response(&mut tls).await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    // The same keep-alive connection.
    tls.write_all(ambiguous.as_bytes()).await.unwrap();
    let (second, _) = read_to_close(&mut tls).await;
    assert!(second.starts_with("HTTP/1.1 400"), "{second}");
    assert!(second.to_ascii_lowercase().contains("connection: close"));
    assert_eq!(body_of(&second)["error_code"], "BAD_REQUEST");
    let received = gw.runtime.received();
    assert_eq!(
        received.len(),
        1,
        "only the first request reached the runtime"
    );
    assert_eq!(
        received[0].body,
        body.as_bytes(),
        "chunks decoded, extension dropped"
    );

    // Past the bound (4 KiB by default): refused, and nothing after it on the connection.
    let too_long = format!(
        "{head}Transfer-Encoding: chunked\r\n\r\n{:x};note={}\r\n{body}\r\n0\r\n\r\n\
         GET /api/2.0/sql/statements/s1 HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {t}\r\n\r\n",
        body.len(),
        "n".repeat(5000)
    );
    let response = one_request(&gw, &too_long).await;
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    assert_eq!(
        body_of(&response)["message"],
        "Chunk extensions longer than 4096 bytes"
    );
    assert_eq!(response.matches("HTTP/1.1 ").count(), 1, "{response}");
    assert_eq!(gw.runtime.received().len(), 1);
}

/// An HTTP/2 connection from 127.0.0.1 through the h2 crate's client.
async fn h2_client(gw: &TestGateway) -> h2::client::SendRequest<Bytes> {
    let tls = tls_from(gw, HERE, &[b"h2"]).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (client, connection) = h2::client::handshake(tls).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// A GET over HTTP/2 with exactly this URI (its authority becomes `:authority`) and these
/// extra fields.
async fn h2_get(
    client: &h2::client::SendRequest<Bytes>,
    uri: &str,
    token: &str,
    fields: &[(&str, &str)],
) -> (StatusCode, serde_json::Value) {
    let mut request = http::Request::get(uri).header("authorization", format!("Bearer {token}"));
    for (name, value) in fields {
        request = request.header(*name, *value);
    }
    let mut client = client.clone().ready().await.unwrap();
    let (response, _) = client
        .send_request(request.body(()).unwrap(), true)
        .unwrap();
    let response = response.await.unwrap();
    let status = response.status();
    let mut body = response.into_body();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        bytes.extend_from_slice(&chunk);
    }
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_and_authorities_are_checked() {
    let gw = TestGateway::start().await;
    let t = &gw.tokens.alice;
    let request = |target: &str, hosts: &[&str]| {
        let mut text = format!("GET {target} HTTP/1.1\r\n");
        for host in hosts {
            text.push_str(&format!("Host: {host}\r\n"));
        }
        text + &format!("Authorization: Bearer {t}\r\nConnection: close\r\n\r\n")
    };
    let path = "/api/2.0/token/list";
    for (target, hosts) in [
        (path, &["localhost", "localhost"][..]),
        (path, &["localhost", "ws2.lakeward.test"]),
        (path, &["localhost:99999"]),
        (path, &["localhost:0"]),
        (path, &["localhost:"]),
        (path, &["localhost:+443"]),
        (path, &["alice@localhost"]),
        (path, &["localhost:443:443"]),
        (
            "https://localhost:99999/api/2.0/token/list",
            &["localhost:99999"],
        ),
        (
            "https://localhost/api/2.0/token/list",
            &["ws1.lakeward.test"],
        ),
    ] {
        let response = one_request(&gw, &request(target, hosts)).await;
        assert!(
            response.starts_with("HTTP/1.1 400"),
            "{target} {hosts:?}: {response}"
        );
        assert_eq!(body_of(&response)["error_code"], "BAD_REQUEST");
    }
    assert!(
        gw.control.received().is_empty(),
        "nothing refused was forwarded"
    );
    let good = one_request(&gw, &request(path, &["localhost:8443"])).await;
    assert!(good.starts_with("HTTP/1.1 200"), "{good}");
    assert_eq!(gw.control.received().len(), 1);

    // HTTP/2: the :authority, and a Host field beside it.
    let h2 = h2_client(&gw).await;
    for (uri, fields) in [
        ("https://localhost:99999/api/2.0/token/list", &[][..]),
        ("https://localhost:0/api/2.0/token/list", &[]),
        (
            "https://localhost/api/2.0/token/list",
            &[("host", "ws2.lakeward.test")],
        ),
        (
            "https://localhost/api/2.0/token/list",
            &[("host", "localhost"), ("host", "localhost")],
        ),
        (
            "https://localhost/api/2.0/token/list",
            &[("host", "localhost:70000")],
        ),
    ] {
        let (status, body) = h2_get(&h2, uri, t, fields).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri} {fields:?}: {body}");
        assert_eq!(body["error_code"], "BAD_REQUEST");
    }
    assert_eq!(gw.control.received().len(), 1);
    let (status, _) = h2_get(
        &h2,
        "https://localhost:8443/api/2.0/token/list",
        t,
        &[("host", "LOCALHOST:8443")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(gw.control.received().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unrequested_upgrade_is_a_502() {
    let gw = TestGateway::start().await;
    let t = &gw.tokens.alice;
    let path = "/api/2.0/sql/statements/switch";
    for extra in ["", "Connection: Upgrade\r\nUpgrade: websocket\r\n"] {
        let response = one_request(
            &gw,
            &format!(
                "GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {t}\r\nConnection: close\r\n{extra}\r\n"
            ),
        )
        .await;
        assert!(
            response.starts_with("HTTP/1.1 502"),
            "{extra:?}: {response}"
        );
        assert_eq!(body_of(&response)["error_code"], "BAD_GATEWAY");
        assert!(!response.to_ascii_lowercase().contains("upgrade: websocket"));
    }
    let received = gw.runtime.received();
    assert_eq!(
        received.len(),
        2,
        "the upstream was asked, and answered 101"
    );
    for request in &received {
        assert_eq!(request.path, path);
        assert!(
            request.headers.get("upgrade").is_none(),
            "no upgrade was asked for"
        );
    }

    let h2 = h2_client(&gw).await;
    let (status, body) = h2_get(&h2, &format!("https://localhost{path}"), t, &[]).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(body["error_code"], "BAD_GATEWAY");
    assert_eq!(gw.runtime.received().len(), 3);
}

/// Writes all of `request` before reading anything, as Python `requests` does, and returns
/// what was read.
async fn write_everything_then_read(gw: &TestGateway, request: &[u8]) -> String {
    let mut tls = tls_from(gw, HERE, &[b"http/1.1"]).await.unwrap();
    let written = tls.write_all(request).await;
    assert!(
        written.is_ok(),
        "the gateway stopped reading before the request was written: {written:?}"
    );
    tls.flush().await.unwrap();
    let (text, error) = read_to_close(&mut tls).await;
    assert!(
        !text.is_empty(),
        "no response, the connection ended with {error:?}"
    );
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_still_sending_read_the_refusal_not_a_reset() {
    let gw = TestGateway::start().await;
    let t = &gw.tokens.alice;
    // 200 KB of header, far past hyper's parser limit: hyper answers 431 at once.
    let huge_head = format!(
        "GET /api/2.0/token/list HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {t}\r\nX-Big: {}\r\n\r\n",
        "a".repeat(200_000)
    );
    // A declared body past the limit (64 KiB here): 413 before a byte of it is read.
    let mut big_body = format!(
        "POST /api/2.0/token/create HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {t}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        2 << 20
    )
    .into_bytes();
    big_body.resize(big_body.len() + (2 << 20), b' ');
    for round in 0..5 {
        let response = write_everything_then_read(&gw, huge_head.as_bytes()).await;
        assert!(
            response.starts_with("HTTP/1.1 431"),
            "round {round}: {response}"
        );
        let response = write_everything_then_read(&gw, &big_body).await;
        assert!(
            response.starts_with("HTTP/1.1 413"),
            "round {round}: {response}"
        );
        assert_eq!(body_of(&response)["error_code"], "PAYLOAD_TOO_LARGE");
    }
    assert!(gw.control.received().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lingering_is_bounded() {
    let gw = TestGateway::start_with(Options {
        configure: Some(Box::new(|config| {
            config.limits.lingering_max_bytes = 256 * 1024
        })),
        ..Options::default()
    })
    .await;
    let mut tls = tls_from(&gw, HERE, &[b"http/1.1"]).await.unwrap();
    tls.write_all(
        format!(
            "GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: {}",
            "a".repeat(20_000)
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    // A client that never stops sending is cut off once the discard budget is spent.
    let chunk = vec![b'a'; 16 * 1024];
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut written = 0usize;
    let cut_off = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, tls.write_all(&chunk)).await {
            Ok(Ok(())) => written += chunk.len(),
            Ok(Err(_)) => break true,
            Err(_) => break false,
        }
        assert!(written < 1 << 30, "the gateway discarded a gigabyte");
    };
    assert!(cut_off, "still accepting bytes after {written}");
    assert!(
        written >= 256 * 1024,
        "cut off before the budget: {written}"
    );
    assert!(gw.control.received().is_empty());
}
