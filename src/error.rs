//! The one error type of the API, its stable codes, and how errors become envelopes.
//!
//! Handlers return `Result<_, ApiError>`-like values; every error answer, including the ones
//! poem and poem-openapi produce themselves (bad JSON, unknown route, missing token), leaves
//! the server as an [`ErrorEnvelope`]. Internal causes are logged, never sent.

use std::fmt;

use poem::{Response, http::StatusCode};

use crate::envelope::{ErrorEnvelope, FieldError, Nothing, Status};

pub use crate::envelope::ErrorCode;

/// An error that will be answered to the client.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    pub fields: Vec<FieldError>,
    /// Seconds a client should wait before retrying (429, 503).
    pub retry_after: Option<u64>,
    /// The internal cause, logged and never sent.
    source: Option<anyhow::Error>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            fields: Vec::new(),
            retry_after: None,
            source: None,
        }
    }

    pub fn validation(fields: Vec<FieldError>) -> Self {
        let mut err = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::ValidationFailed,
            "The request has invalid fields.",
        );
        err.fields = fields;
        err
    }

    pub fn field(field: &str, kind: &str, message: impl Into<String>) -> Self {
        Self::validation(vec![FieldError::new(field, kind, message)])
    }

    pub fn unauthorized(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            format!("{what} not found."),
        )
    }

    pub fn conflict(code: ErrorCode, field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        let mut err = Self::new(StatusCode::CONFLICT, code, message.clone());
        err.fields = vec![FieldError::new(field, "taken", message)];
        err
    }

    /// A 409 with a specific code.
    pub fn state_conflict(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        let mut err = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ServiceUnavailable,
            message,
        );
        err.retry_after = Some(1);
        err
    }

    /// The server is at capacity and refused the work at once, storing nothing: retry after
    /// `secs` seconds.
    pub fn overloaded(secs: u64) -> Self {
        let mut err = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Overloaded,
            format!("The server is at capacity; retry in {secs} s."),
        );
        err.retry_after = Some(secs);
        err
    }

    /// Too many requests: retry after `wait` (rounded up to whole seconds, at least 1).
    pub fn rate_limited(wait: std::time::Duration) -> Self {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let secs = secs.max(1);
        let mut err = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RateLimited,
            format!("Too many requests; retry in {secs} s."),
        );
        err.retry_after = Some(secs);
        err
    }

    /// An unexpected failure: the cause is logged, the client sees a generic message.
    pub fn internal(cause: impl Into<anyhow::Error>) -> Self {
        let mut err = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::InternalError,
            "An unexpected error occurred; it has been logged.",
        );
        err.source = Some(cause.into());
        err
    }

    pub fn into_envelope(self) -> ErrorEnvelope {
        ErrorEnvelope {
            status: Status::Error,
            code: self.status.as_u16(),
            error_code: self.code,
            message: self.message,
            data: Nothing,
            errors: (!self.fields.is_empty()).then_some(self.fields),
        }
    }

    /// Logs what must be logged and builds the HTTP answer.
    pub fn to_response(&self) -> Response {
        if let Some(cause) = &self.source {
            tracing::error!(error = ?cause, code = ?self.code, "request failed");
        } else if self.status.is_server_error() {
            tracing::warn!(code = ?self.code, message = %self.message, "request failed");
        }
        let body = ErrorEnvelope {
            status: Status::Error,
            code: self.status.as_u16(),
            error_code: self.code,
            message: self.message.clone(),
            data: Nothing,
            errors: (!self.fields.is_empty()).then(|| self.fields.clone()),
        };
        let json = poem_openapi::types::ToJSON::to_json(&body).unwrap_or_default();
        let mut resp = Response::builder()
            .status(self.status)
            .content_type("application/json; charset=utf-8")
            .body(json.to_string());
        if let Some(secs) = self.retry_after {
            resp.headers_mut().insert(
                poem::http::header::RETRY_AFTER,
                poem::http::HeaderValue::from(secs),
            );
        }
        resp
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

impl poem::error::ResponseError for ApiError {
    fn status(&self) -> StatusCode {
        self.status
    }

    fn as_response(&self) -> Response {
        self.to_response()
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        if database_unavailable(&err) {
            tracing::warn!(error = %err, "database unavailable");
            Self::unavailable("The database is unavailable; please retry shortly.")
        } else if let sqlx::Error::Database(db) = &err
            && db.code().as_deref() == Some("22021")
        {
            // A text value PostgreSQL cannot store: NUL (`\u0000`). Inputs are checked at
            // the edge; this is the net for a text field that is not.
            Self::field(
                "body",
                "invalid_characters",
                "text must not contain NUL (\\u0000) characters",
            )
        } else {
            Self::internal(err)
        }
    }
}

/// Whether a database error means "PostgreSQL is down, restarting or saturated" (answer
/// 503, retry later) rather than a bug (500).
pub fn database_unavailable(err: &sqlx::Error) -> bool {
    match err {
        // The pool could not hand out a connection within DATABASE_ACQUIRE_TIMEOUT_MS: the
        // server is down (connections refused until the deadline) or the pool is busy.
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        // The connection broke mid-request (server stopped, network cut).
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_) => true,
        // A connection cut short can also read as a protocol error ("unexpected EOF").
        sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // Class 08: connection exception; 57P01-57P03: admin or crash shutdown, cannot
            // connect now (starting up or shutting down); 53300: too many connections.
            code.starts_with("08") || matches!(&*code, "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    }
}

impl From<deadpool_redis::PoolError> for ApiError {
    fn from(err: deadpool_redis::PoolError) -> Self {
        tracing::warn!(error = %err, "redis unavailable");
        Self::unavailable("A backing service is unavailable; please retry shortly.")
    }
}

/// Turns a unique-constraint violation into a clear 409, by constraint name.
///
/// `constraints` maps a constraint (or unique index) name to the field and error code it
/// stands for. Any other database error stays an internal one.
pub fn map_unique_violation(
    err: sqlx::Error,
    constraints: &[(&str, &str, ErrorCode, &str)],
) -> ApiError {
    if let sqlx::Error::Database(db) = &err
        && db.is_unique_violation()
        && let Some(name) = db.constraint()
        && let Some((_, field, code, message)) = constraints.iter().find(|c| c.0 == name)
    {
        return ApiError::conflict(*code, field, *message);
    }
    ApiError::from(err)
}

/// Builds the envelope for an error that poem or poem-openapi raised on its own (parse
/// failures, unknown routes, a failed security check), or passes ours through.
pub fn error_to_response(err: poem::Error) -> Response {
    if let Some(api) = err.downcast_ref::<ApiError>() {
        return api.to_response();
    }
    if let Some(field) = form_field_error(&err) {
        return ApiError::validation(vec![field]).to_response();
    }
    let status = err.status();
    let (code, message) = match status {
        StatusCode::NOT_FOUND => (ErrorCode::RouteNotFound, "No such route.".to_owned()),
        StatusCode::METHOD_NOT_ALLOWED => (
            ErrorCode::MethodNotAllowed,
            "This method is not allowed on this route.".to_owned(),
        ),
        StatusCode::UNAUTHORIZED => (
            ErrorCode::Unauthenticated,
            "Authentication required: send `Authorization: Bearer <access token>`.".to_owned(),
        ),
        // poem's CORS refusing an origin, method or header.
        StatusCode::FORBIDDEN => (ErrorCode::Forbidden, format!("Forbidden: {err}.")),
        StatusCode::PAYLOAD_TOO_LARGE => (
            ErrorCode::PayloadTooLarge,
            "The request body is too large.".to_owned(),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            ErrorCode::UnsupportedMediaType,
            format!("Unsupported content type: {err}."),
        ),
        StatusCode::TOO_MANY_REQUESTS => (ErrorCode::RateLimited, "Too many requests.".to_owned()),
        s if s.is_client_error() => (ErrorCode::MalformedRequest, describe_parse_error(&err)),
        _ => {
            tracing::error!(error = %err, status = %status, "unhandled error");
            return ApiError::internal(anyhow::anyhow!("{err}")).to_response();
        }
    };
    ApiError::new(status, code, message).to_response()
}

/// A form body (urlencoded or multipart) with a missing, repeated, mistyped or unknown
/// field, as poem-openapi reports it (JSON bodies are checked before, by `api::strict`):
/// the field it names, as every other bad input is reported.
fn form_field_error(err: &poem::Error) -> Option<FieldError> {
    use poem_openapi::error::{ParseMultipartError, ParseRequestPayloadError};
    let reason = if let Some(e) = err.downcast_ref::<ParseMultipartError>() {
        &e.reason
    } else if let Some(e) = err.downcast_ref::<ParseRequestPayloadError>() {
        &e.reason
    } else {
        return None;
    };
    form_field(reason)
}

/// `field `email` is required` (multipart), `missing field `email`` (urlencoded),
/// `failed to parse field `password`: …`, `unknown field `x``.
fn form_field(reason: &str) -> Option<FieldError> {
    let name = reason.split('`').nth(1).filter(|n| !n.is_empty())?;
    let name: String = name.chars().filter(|c| !c.is_control()).take(64).collect();
    let (kind, message) = if reason.contains("is required") || reason.contains("missing field") {
        ("missing", format!("{name} is required"))
    } else if reason.contains("unknown field") {
        (
            "unknown_field",
            format!("{name} is not a field of this form"),
        )
    } else if reason.contains("repeated field") {
        ("invalid_type", format!("{name} must be sent once"))
    } else if reason.contains("failed to parse field") || reason.contains("invalid type") {
        ("invalid_type", format!("{name} has the wrong type"))
    } else {
        return None;
    };
    Some(FieldError::new(name, kind, message))
}

/// poem-openapi's parse errors are precise but terse; make them read as sentences.
fn describe_parse_error(err: &poem::Error) -> String {
    let text = err.to_string();
    if text.is_empty() {
        "The request could not be understood.".to_owned()
    } else {
        let mut text = text.replacen("parse request payload error: ", "Invalid body: ", 1);
        if !text.ends_with('.') {
            text.push('.');
        }
        text
    }
}

#[cfg(test)]
mod form_tests {
    use super::form_field;

    #[test]
    fn form_parse_errors_name_their_field() {
        for (reason, field, kind) in [
            ("field `email` is required", "email", "missing"),
            ("missing field `email`", "email", "missing"),
            (
                "failed to parse field `password`: failed to parse \"string\": repeated field",
                "password",
                "invalid_type",
            ),
            ("unknown field `extra`", "extra", "unknown_field"),
        ] {
            let found = form_field(reason).unwrap();
            assert_eq!(
                (found.field.as_str(), found.kind.as_str()),
                (field, kind),
                "{reason}"
            );
        }
        assert!(form_field("failed to read headers").is_none());
    }
}
