//! The client against real sockets on port 0: a small hyper server that follows a script,
//! one step per request it receives.

use super::*;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use lakeward_common::assertion::{Audience, MasterSecret, PrincipalKind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;
use tokio::net::TcpListener;

/// What the peer does with the request it receives.
#[derive(Clone)]
enum Step {
    Answer(StatusCode, Vec<u8>),
    /// Closes the connection without answering.
    Drop,
    /// Never answers.
    Hang,
}

fn ok(body: &str) -> Step {
    Step::Answer(StatusCode::OK, body.as_bytes().to_vec())
}

struct Peer {
    url: String,
    hits: Arc<AtomicUsize>,
    /// The identity header of the last request, if any.
    last_assertion: Arc<std::sync::Mutex<Option<String>>>,
}

impl Peer {
    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// A peer that takes step `script(n)` for its n-th request (from 0).
async fn peer(script: impl Fn(usize) -> Step + Send + Sync + 'static) -> Peer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let last_assertion = Arc::new(std::sync::Mutex::new(None));
    let script = Arc::new(script);
    let (counter, seen) = (hits.clone(), last_assertion.clone());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (script, counter, seen) = (script.clone(), counter.clone(), seen.clone());
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    let n = counter.fetch_add(1, Ordering::SeqCst);
                    *seen.lock().unwrap() = request
                        .headers()
                        .get(IDENTITY_HEADER)
                        .map(|v| v.to_str().unwrap().to_owned());
                    let step = script(n);
                    async move {
                        match step {
                            Step::Answer(status, body) => {
                                let mut response =
                                    hyper::Response::new(Full::new(Bytes::from(body)));
                                *response.status_mut() = status;
                                Ok(response)
                            }
                            // An error from the service makes hyper close the connection.
                            Step::Drop => Err("dropped"),
                            Step::Hang => std::future::pending().await,
                        }
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Peer {
        url,
        hits,
        last_assertion,
    }
}

#[tokio::test]
async fn the_deadline_covers_the_whole_call() {
    let peer = peer(|_| Step::Hang).await;
    let client = InternalClient::new(&peer.url);
    let started = Instant::now();
    let err = client
        .call(Method::GET, "/slow")
        .timeout(Duration::from_millis(200))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        peer.hits(),
        1,
        "a hung attempt is not abandoned for another"
    );
}

#[tokio::test]
async fn answers_over_the_cap_are_refused() {
    let peer = peer(|_| Step::Answer(StatusCode::OK, vec![b'x'; 4096])).await;
    let client = InternalClient::new(&peer.url).with_max_response_bytes(1024);
    let err = client.call(Method::GET, "/big").send().await.unwrap_err();
    assert!(
        matches!(err, ClientError::TooLarge { limit: 1024 }),
        "{err}"
    );
    assert_eq!(peer.hits(), 1, "a cap is not a reason to retry");
    let reply = client
        .call(Method::GET, "/big")
        .max_response_bytes(4096)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.body.len(), 4096);
}

#[tokio::test]
async fn idempotent_calls_are_retried_until_they_succeed() {
    let peer = peer(|n| match n {
        0 => Step::Drop,
        1 => Step::Answer(StatusCode::SERVICE_UNAVAILABLE, b"{}".to_vec()),
        _ => ok(r#"{"version": 7}"#),
    })
    .await;
    let client = InternalClient::new(&peer.url);
    let reply: serde_json::Value = client.call(Method::GET, "/v").json().await.unwrap();
    assert_eq!(reply["version"], 7);
    assert_eq!(peer.hits(), 3);
}

#[tokio::test]
async fn retries_end_with_the_last_answer() {
    let peer = peer(|_| Step::Answer(StatusCode::SERVICE_UNAVAILABLE, b"busy".to_vec())).await;
    let client = InternalClient::new(&peer.url).with_retries(3);
    let reply = client.call(Method::GET, "/v").send().await.unwrap();
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(peer.hits(), 4);
    let err = client
        .call(Method::GET, "/v")
        .retries(0)
        .json::<()>()
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(peer.hits(), 5);
}

#[tokio::test]
async fn a_post_is_not_repeated() {
    let peer = peer(|n| match n {
        0 => Step::Answer(StatusCode::SERVICE_UNAVAILABLE, b"busy".to_vec()),
        1 => Step::Drop,
        _ => ok("{}"),
    })
    .await;
    let client = InternalClient::new(&peer.url);
    let err = client
        .call(Method::POST, "/change")
        .json_body(&serde_json::json!({"a": 1}))
        .json::<serde_json::Value>()
        .await
        .unwrap_err();
    match err {
        ClientError::Status { status, body } => {
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(&body[..], b"busy");
        }
        other => panic!("expected a status error, got {other}"),
    }
    assert_eq!(peer.hits(), 1, "a POST is sent once on a status error");
    let err = client
        .call(Method::POST, "/change")
        .send()
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Transport(_)), "{err}");
    assert_eq!(peer.hits(), 2, "nor repeated when its answer was lost");
}

#[tokio::test]
async fn a_post_that_only_reads_may_be_marked_idempotent() {
    let peer = peer(|n| match n {
        0 => Step::Drop,
        _ => ok(r#"{"found": true}"#),
    })
    .await;
    let client = InternalClient::new(&peer.url);
    let reply: serde_json::Value = client
        .call(Method::POST, "/resolve")
        .idempotent(true)
        .json()
        .await
        .unwrap();
    assert_eq!(reply["found"], true);
    assert_eq!(peer.hits(), 2);
}

#[tokio::test]
async fn a_refused_connection_is_a_transport_failure() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let err = InternalClient::new(&url)
        .call(Method::POST, "/x")
        .send()
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Transport(_)), "{err}");
}

#[tokio::test]
async fn the_assertion_is_signed_per_call() {
    let peer = peer(|_| ok("{}")).await;
    let master = MasterSecret::generate();
    let key = master.key_for(Audience::DataPlane);
    let client = InternalClient::new(&format!("{}/", peer.url));
    client
        .call(Method::GET, "/who")
        .signed(&key, IdentityClaims::runtime("acct", "req-9"))
        .send()
        .await
        .unwrap();
    let token = peer.last_assertion.lock().unwrap().clone().unwrap();
    let claims = key.verify(&token).unwrap();
    assert_eq!(claims.kind, PrincipalKind::Runtime);
    assert_eq!(claims.request_id, "req-9");

    let err = client
        .call(Method::GET, "/who")
        .signed_by(|| Err(AssertionError::Signing))
        .send()
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Signing(_)), "{err}");
    assert_eq!(peer.hits(), 1, "an unsigned call is not sent");
}

#[tokio::test]
async fn answers_that_are_not_the_json_expected() {
    let peer = peer(|_| ok("not json")).await;
    let err = InternalClient::new(&peer.url)
        .call(Method::GET, "/x")
        .json::<serde_json::Value>()
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Decode(_)), "{err}");
}
