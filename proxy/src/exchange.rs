//! What travels through the pipeline, and the contract of a stage. A leaf: the stages, the
//! pipeline that composes them and the outer layer all import this, and it imports none of
//! them, so a stage never needs to know which other stages exist.

use crate::ctx::RequestCtx;
use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::combinators::{BoxBody, UnsyncBoxBody};
use http_body_util::{BodyExt, Full};
use std::future::Future;

/// The body of every response the gateway sends. Its error is hyper's (the only bodies that
/// can fail are upstream ones): a concrete type, because with a boxed `dyn Error` rustc's
/// `Send` check of the connection future fails on the trait object's lifetime.
pub(crate) type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// A request body: streaming as received, then buffered by admission.
pub(crate) enum RequestBody {
    Streaming(UnsyncBoxBody<Bytes, hyper::Error>),
    Buffered(Bytes),
}

/// A request travelling down the stack.
pub(crate) struct Exchange {
    /// Boxed: the context is most of an exchange's size, and exchanges and outcomes move from
    /// future to future on their way down and up.
    pub ctx: Box<RequestCtx>,
    pub parts: http::request::Parts,
    pub body: RequestBody,
}

/// What comes back up: the context (for audit and metrics) and the response or the error
/// `E` (one stage's own, or the pipeline's union of them).
pub(crate) struct Outcome<E> {
    pub ctx: Box<RequestCtx>,
    pub result: Result<Response<ProxyBody>, E>,
}

/// One check stage of the pipeline. Each names its own error type; the pipeline turns it into
/// its union of stage errors, and only the outermost layer turns that into a response.
pub(crate) trait Stage: Send + Sync + 'static {
    /// Why this stage refuses a request.
    type Error;

    /// Checks and enriches the exchange; an error ends the request here.
    fn run(&self, ex: &mut Exchange) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// A complete response with `body`, for answers the gateway makes itself.
pub(crate) fn full_response(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<ProxyBody> {
    let mut response = Response::new(
        Full::new(body.into())
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
