//! Stage 1, admission: size limits, framing, the authority, path normalization and the
//! bounded body read.
//! Everything here is local and cheap, so a request that breaks a limit costs the gateway
//! almost nothing and never reaches an upstream.
//!
//! Some limits are enforced by hyper before a request exists (header bytes and count at the
//! HTTP/1 parser, answered 431; header read timeout, connection closed; HTTP/2 header list
//! size, 431), and the connection-level ones in [`crate::server`]. This stage re-checks the
//! header limits (HTTP/2 counts differently) and owns the rest.

mod authority;
pub(crate) mod framing;
mod path;

use crate::config::Limits;
use crate::ctx::{ConnInfo, FramingFaultKind};
use crate::exchange::{Exchange, RequestBody, Stage};
use crate::shared::Shared;
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::HeaderMap;
use http_body_util::BodyExt;
use std::sync::Arc;
use std::time::Duration;

pub(crate) use authority::AuthorityError;
pub(crate) use path::PathError;

/// Why admission refused a request.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AdmissionError {
    #[error("{count} header fields; the limit is {limit}")]
    TooManyHeaders { count: usize, limit: usize },
    #[error("{bytes} bytes of header fields; the limit is {limit}")]
    HeadersTooLarge { bytes: usize, limit: usize },
    #[error("request target of {bytes} bytes; the limit is {limit}")]
    UriTooLong { bytes: usize, limit: usize },
    #[error("ambiguous message framing: {0}")]
    AmbiguousFraming(&'static str),
    #[error("header name `{0}` contains an underscore")]
    UnderscoreInHeaderName(http::HeaderName),
    #[error("more than {limit} bytes of chunk extensions")]
    ChunkExtensionsTooLong { limit: usize },
    #[error("message framing the gateway cannot follow")]
    UnparseableFraming,
    #[error("bad authority: {0}")]
    BadAuthority(#[from] AuthorityError),
    #[error("bad path: {0}")]
    BadPath(#[from] PathError),
    #[error("body larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("body not received within {0:?}")]
    BodyTimeout(Duration),
    #[error("body could not be read: {0}")]
    BodyRead(String),
}

/// The admission stage.
#[derive(Clone)]
pub(crate) struct Admission {
    shared: Arc<Shared>,
}

impl Admission {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Admission { shared }
    }
}

impl Stage for Admission {
    type Error = AdmissionError;

    async fn run(&self, ex: &mut Exchange) -> Result<(), AdmissionError> {
        let limits = &self.shared.config.limits;
        let result = admit(ex, limits).await;
        if result
            .as_ref()
            .is_err_and(AdmissionError::condemns_connection)
        {
            // The bytes after this request cannot be trusted to be framed as hyper thinks.
            ex.ctx.close_connection = true;
        }
        result
    }
}

impl AdmissionError {
    /// Whether the connection must close after this refusal: its framing cannot be trusted,
    /// or a body too large is still on its way.
    fn condemns_connection(&self) -> bool {
        matches!(
            self,
            AdmissionError::AmbiguousFraming(_)
                | AdmissionError::ChunkExtensionsTooLong { .. }
                | AdmissionError::UnparseableFraming
                | AdmissionError::BodyTooLarge { .. }
        )
    }
}

async fn admit(ex: &mut Exchange, limits: &Limits) -> Result<(), AdmissionError> {
    framing_fault(&ex.ctx.conn, ex.ctx.ordinal, limits)?;
    check_headers(&ex.parts.headers, limits)?;
    if let Some(name) = crate::untrusted_headers::underscored_name(&ex.parts.headers) {
        return Err(AdmissionError::UnderscoreInHeaderName(name.clone()));
    }
    check_framing_headers(&ex.parts.headers)?;
    authority::check(&ex.parts)?;
    let target = ex
        .parts
        .uri
        .path_and_query()
        .map_or(0, |pq| pq.as_str().len());
    if target > limits.max_uri_bytes {
        return Err(AdmissionError::UriTooLong {
            bytes: target,
            limit: limits.max_uri_bytes,
        });
    }
    ex.ctx.path = Some(path::normalize(ex.parts.uri.path())?);

    let declared = ex
        .parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes as u64) {
        // Refused before a byte of the body is read.
        return Err(AdmissionError::BodyTooLarge {
            limit: limits.max_body_bytes,
        });
    }
    let body = read_body(&mut ex.body, limits, &ex.ctx.conn, ex.ctx.ordinal).await?;
    ex.ctx.body = body.clone();
    ex.body = RequestBody::Buffered(body);
    Ok(())
}

/// The framing guard's verdict on this request: a fault found in it, or in one before it on
/// the same connection (everything after such a message is suspect too).
fn framing_fault(conn: &ConnInfo, ordinal: u64, limits: &Limits) -> Result<(), AdmissionError> {
    match conn.framing_fault.get() {
        Some(fault) if fault.request <= ordinal => Err(match fault.kind {
            FramingFaultKind::Ambiguous => {
                AdmissionError::AmbiguousFraming("conflicting length headers")
            }
            FramingFaultKind::ChunkExtensionsTooLong => AdmissionError::ChunkExtensionsTooLong {
                limit: limits.max_chunk_extension_bytes,
            },
            FramingFaultKind::Unparseable => AdmissionError::UnparseableFraming,
        }),
        _ => Ok(()),
    }
}

fn check_headers(headers: &HeaderMap, limits: &Limits) -> Result<(), AdmissionError> {
    if headers.len() > limits.max_headers {
        return Err(AdmissionError::TooManyHeaders {
            count: headers.len(),
            limit: limits.max_headers,
        });
    }
    // Counted as on the HTTP/1 wire: `name: value\r\n`.
    let bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if bytes > limits.max_header_bytes {
        return Err(AdmissionError::HeadersTooLarge {
            bytes,
            limit: limits.max_header_bytes,
        });
    }
    Ok(())
}

/// What the header map can still show (HTTP/2, or anything hyper kept): more than one length,
/// a list-valued length, or a length beside a transfer coding.
fn check_framing_headers(headers: &HeaderMap) -> Result<(), AdmissionError> {
    let mut lengths = headers.get_all(CONTENT_LENGTH).iter();
    let first = lengths.next();
    if lengths.next().is_some() || first.is_some_and(|v| v.as_bytes().contains(&b',')) {
        return Err(AdmissionError::AmbiguousFraming(
            "more than one Content-Length",
        ));
    }
    if first.is_some() && headers.contains_key(TRANSFER_ENCODING) {
        return Err(AdmissionError::AmbiguousFraming(
            "both Content-Length and Transfer-Encoding",
        ));
    }
    Ok(())
}

/// Reads the whole body within the size and time limits. The framing guard reads every byte
/// before hyper decodes it, so a fault in this body is known by the time its frame (or its
/// end) arrives here.
async fn read_body(
    body: &mut RequestBody,
    limits: &Limits,
    conn: &ConnInfo,
    ordinal: u64,
) -> Result<Bytes, AdmissionError> {
    let mut streaming = match std::mem::replace(body, RequestBody::Buffered(Bytes::new())) {
        RequestBody::Buffered(bytes) => return Ok(bytes),
        RequestBody::Streaming(streaming) => streaming,
    };
    let max = limits.max_body_bytes;
    let read = async {
        let mut chunks: Vec<Bytes> = Vec::new();
        let mut total = 0usize;
        while let Some(frame) = streaming.frame().await {
            framing_fault(conn, ordinal, limits)?;
            let frame = frame.map_err(|e| AdmissionError::BodyRead(e.to_string()))?;
            // Trailers carry nothing the upstreams use; only data counts.
            if let Ok(data) = frame.into_data() {
                total += data.len();
                if total > max {
                    return Err(AdmissionError::BodyTooLarge { limit: max });
                }
                chunks.push(data);
            }
        }
        framing_fault(conn, ordinal, limits)?;
        Ok(match chunks.len() {
            0 => Bytes::new(),
            1 => chunks.pop().unwrap_or_default(),
            _ => Bytes::from(chunks.concat()),
        })
    };
    let timeout = Duration::from_secs(limits.body_read_timeout_secs);
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| AdmissionError::BodyTimeout(timeout))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn header_limits() {
        let limits = Limits {
            max_headers: 3,
            max_header_bytes: 40,
            ..Limits::default()
        };
        let mut headers = HeaderMap::new();
        headers.insert("a", HeaderValue::from_static("1"));
        assert!(check_headers(&headers, &limits).is_ok());
        headers.insert("b", HeaderValue::from_static("x"));
        headers.append("b", HeaderValue::from_static("y"));
        headers.append("b", HeaderValue::from_static("z"));
        assert!(matches!(
            check_headers(&headers, &limits),
            Err(AdmissionError::TooManyHeaders { count: 4, .. })
        ));
        let mut big = HeaderMap::new();
        big.insert(
            "long",
            HeaderValue::from_static("0123456789012345678901234567890123456789"),
        );
        assert!(matches!(
            check_headers(&big, &limits),
            Err(AdmissionError::HeadersTooLarge { .. })
        ));
    }

    #[test]
    fn framing_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("3"));
        assert!(check_framing_headers(&headers).is_ok());
        headers.append(CONTENT_LENGTH, HeaderValue::from_static("3"));
        assert!(check_framing_headers(&headers).is_err());
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("3"));
        headers.insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        assert!(check_framing_headers(&headers).is_err());
    }
}
