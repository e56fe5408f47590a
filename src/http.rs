//! HTTP middleware: request ids, access logs, envelopes for every error, and gzip.

use std::{io::Write, time::Instant};

use poem::{
    Endpoint, IntoResponse, Request, Response, Result,
    http::{
        HeaderValue, StatusCode,
        header::{self, HeaderName},
    },
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
    let gzip = accepts_gzip(req.header(header::ACCEPT_ENCODING));
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
        if gzip {
            resp = compress(resp).await;
        }
        if let Ok(value) = HeaderValue::from_str(&id) {
            resp.headers_mut().insert(REQUEST_ID, value);
        }
        Ok(resp)
    }
    .instrument(span)
    .await
}

/// Whether `Accept-Encoding` lets us answer with gzip (RFC 9110 §12.5.3): `gzip`, or else
/// `*`, with a weight above zero.
fn accepts_gzip(header: Option<&str>) -> bool {
    let weight = |coding: &str| {
        header?.split(',').find_map(|item| {
            let mut parts = item.split(';');
            if !parts.next()?.trim().eq_ignore_ascii_case(coding) {
                return None;
            }
            let q = parts
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
                .map_or(Some(1.0), |(_, v)| v.trim().parse::<f32>().ok());
            Some(q.unwrap_or(0.0))
        })
    };
    weight("gzip")
        .or_else(|| weight("*"))
        .is_some_and(|q| q > 0.0)
}

/// Answers smaller than this go as they are: gzip would save a few bytes for its cost.
const COMPRESS_MIN: usize = 1024;
/// Larger answers are compressed on the blocking pool (the 2 MB docs page takes ~10 ms).
const COMPRESS_INLINE_MAX: usize = 64 * 1024;

/// Gzips a JSON or HTML answer of [`COMPRESS_MIN`] bytes or more (lists, the docs page).
/// Its ETag becomes weak: the bytes differ from the identity answer's, the content does not.
async fn compress(mut resp: Response) -> Response {
    let textual = resp.content_type().is_some_and(|t| {
        t.starts_with("application/json")
            || t.starts_with("text/html")
            || t.starts_with("text/plain")
    });
    if !textual
        || resp.status() == StatusCode::SWITCHING_PROTOCOLS
        || resp.headers().contains_key(header::CONTENT_ENCODING)
    {
        return resp;
    }
    let Ok(bytes) = resp.take_body().into_bytes().await else {
        return crate::error::error_to_response(poem::Error::from_status(
            StatusCode::INTERNAL_SERVER_ERROR,
        ));
    };
    if bytes.len() < COMPRESS_MIN {
        resp.set_body(bytes);
        return resp;
    }
    let big = bytes.len() > COMPRESS_INLINE_MAX;
    let gzip = move || {
        let mut encoder = flate2::write::GzEncoder::new(
            Vec::with_capacity(bytes.len() / 4),
            flate2::Compression::fast(),
        );
        encoder.write_all(&bytes).and_then(|()| encoder.finish())
    };
    let zipped = if big {
        tokio::task::spawn_blocking(gzip)
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
    } else {
        gzip()
    };
    let Ok(zipped) = zipped else {
        return crate::error::error_to_response(poem::Error::from_status(
            StatusCode::INTERNAL_SERVER_ERROR,
        ));
    };
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    headers.append(header::VARY, HeaderValue::from_static("accept-encoding"));
    headers.remove(header::CONTENT_LENGTH);
    if let Some(tag) = headers.get(header::ETAG).and_then(|t| t.to_str().ok())
        && !tag.starts_with("W/")
        && let Ok(weak) = HeaderValue::from_str(&format!("W/{tag}"))
    {
        headers.insert(header::ETAG, weak);
    }
    resp.set_body(zipped);
    resp
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
