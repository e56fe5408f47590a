//! HTTP middleware: request ids, access logs, and envelopes for every error.

use std::time::Instant;

use poem::{
    Endpoint, IntoResponse, Request, Response, Result,
    http::{HeaderValue, header::HeaderName},
};
use tracing::Instrument;
use uuid::Uuid;

use crate::error::error_to_response;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A request id from the caller (if sane) or a new one.
fn request_id(req: &Request) -> String {
    req.header(&REQUEST_ID)
        .filter(|id| {
            !id.is_empty()
                && id.len() <= 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map_or_else(|| Uuid::new_v4().to_string(), str::to_owned)
}

/// Wraps every request: a span carrying its id (so every log line has it), errors turned
/// into envelopes, the id echoed in `x-request-id`, and one access-log line.
///
/// Only the path is logged, never the query string: tokens must not end up in logs.
pub async fn around<E: Endpoint>(next: E, req: Request) -> Result<Response> {
    let id = request_id(&req);
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        path = %req.uri().path(),
    );
    async move {
        let started = Instant::now();
        let mut resp = match next.call(req).await {
            Ok(resp) => resp.into_response(),
            Err(err) => error_to_response(err),
        };
        let status = resp.status();
        let micros = started.elapsed().as_micros() as u64;
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), micros, "request");
        } else {
            tracing::info!(status = status.as_u16(), micros, "request");
        }
        if let Ok(value) = HeaderValue::from_str(&id) {
            resp.headers_mut().insert(REQUEST_ID, value);
        }
        Ok(resp)
    }
    .instrument(span)
    .await
}

/// Refuses bodies larger than `max` bytes with 413, on every route (JSON, forms, multipart).
///
/// poem's `SizeLimit` also refuses requests without `Content-Length` (411), which would
/// break every GET; here a declared length is checked up front, and a body without one
/// (chunked) is read up to `max + 1` bytes: more is a 413 too, less is handed on as is.
/// At most `max` bytes are ever buffered.
pub struct LimitBody(pub usize);

impl<E: Endpoint> poem::Middleware<E> for LimitBody {
    type Output = BodyLimit<E>;

    fn transform(&self, inner: E) -> BodyLimit<E> {
        BodyLimit { inner, max: self.0 }
    }
}

pub struct BodyLimit<E> {
    inner: E,
    max: usize,
}

impl<E: Endpoint> Endpoint for BodyLimit<E> {
    type Output = E::Output;

    async fn call(&self, mut req: Request) -> Result<Self::Output> {
        let declared = req
            .header(poem::http::header::CONTENT_LENGTH)
            .and_then(|v| v.parse::<u64>().ok());
        match declared {
            Some(len) if len > self.max as u64 => {
                return Err(poem::Error::from_status(
                    poem::http::StatusCode::PAYLOAD_TOO_LARGE,
                ));
            }
            Some(_) => {}
            None => {
                use tokio::io::AsyncReadExt;
                let mut body = Vec::new();
                let read = req
                    .take_body()
                    .into_async_read()
                    .take(self.max as u64 + 1)
                    .read_to_end(&mut body)
                    .await;
                if read.is_err() {
                    return Err(poem::Error::from_status(
                        poem::http::StatusCode::BAD_REQUEST,
                    ));
                }
                if body.len() > self.max {
                    return Err(poem::Error::from_status(
                        poem::http::StatusCode::PAYLOAD_TOO_LARGE,
                    ));
                }
                req.set_body(body);
            }
        }
        self.inner.call(req).await
    }
}
