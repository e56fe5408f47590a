//! Documenting error answers per operation.
//!
//! Each operation returns `Result<ItsResponse, Errors<ItsErrorSet>>`: the success side is a
//! typed `ApiResponse` enum of its own, and the error side lists, in the OpenAPI document,
//! exactly the statuses that operation can answer, each as an [`ErrorEnvelope`].

use std::marker::PhantomData;

use poem::{IntoResponse, Response};
use poem_openapi::{
    ApiResponse,
    registry::{
        MetaHeader, MetaMediaType, MetaResponse, MetaResponses, MetaSchema, MetaSchemaRef, Registry,
    },
    types::{ToJSON, Type},
};

use crate::{envelope::ErrorEnvelope, error::ApiError};

/// The statuses an operation may answer with an error.
pub trait ErrorSet: Send + Sync + 'static {
    const STATUSES: &'static [u16];
}

/// Declares an [`ErrorSet`]: `error_set!(LoginErrors: 400, 401, 422);`.
#[macro_export]
macro_rules! error_set {
    ($(#[$meta:meta])* $name:ident: $($status:literal),+ $(,)?) => {
        $(#[$meta])*
        pub struct $name;
        impl $crate::api::responses::ErrorSet for $name {
            const STATUSES: &'static [u16] = &[$($status),+];
        }
    };
}

/// An [`ApiError`] documented with the statuses of `S`.
pub struct Errors<S: ErrorSet>(pub ApiError, PhantomData<S>);

impl<S: ErrorSet, E: Into<ApiError>> From<E> for Errors<S> {
    fn from(err: E) -> Self {
        Self(err.into(), PhantomData)
    }
}

impl<S: ErrorSet> From<Errors<S>> for poem::Error {
    fn from(err: Errors<S>) -> Self {
        poem::Error::from(err.0)
    }
}

impl<S: ErrorSet> IntoResponse for Errors<S> {
    fn into_response(self) -> Response {
        self.0.to_response()
    }
}

impl<S: ErrorSet> ApiResponse for Errors<S> {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: S::STATUSES
                .iter()
                .map(|&status| MetaResponse {
                    description: describe(status),
                    status: Some(status),
                    status_range: None,
                    content: vec![MetaMediaType {
                        content_type: "application/json; charset=utf-8",
                        schema: schema(status),
                    }],
                    headers: headers(status),
                })
                .collect(),
        }
    }

    fn register(registry: &mut Registry) {
        ErrorEnvelope::register(registry);
    }
}

/// The envelope; for 429, with an example of its own (the envelope's example is a 422).
fn schema(status: u16) -> MetaSchemaRef {
    if status != 429 {
        return ErrorEnvelope::schema_ref();
    }
    let example = ApiError::rate_limited(std::time::Duration::from_secs(42))
        .into_envelope()
        .to_json();
    MetaSchemaRef::Inline(Box::new(MetaSchema {
        all_of: vec![ErrorEnvelope::schema_ref()],
        example,
        ..MetaSchema::ANY
    }))
}

/// `Retry-After` on the answers that carry it.
fn headers(status: u16) -> Vec<MetaHeader> {
    match status {
        429 | 503 => vec![MetaHeader {
            name: "Retry-After".into(),
            description: Some("Seconds to wait before retrying.".into()),
            required: true,
            deprecated: false,
            schema: u64::schema_ref(),
        }],
        _ => vec![],
    }
}

fn describe(status: u16) -> &'static str {
    match status {
        400 => {
            "Malformed request: the body is not valid JSON (`malformed_request`, with `errors` \
             naming `body`)."
        }
        401 => {
            "Not authenticated: missing, invalid, expired or revoked token, or wrong credentials \
             (`unauthenticated`, `invalid_token`, `token_expired`, `session_revoked`, \
             `invalid_credentials`, `invalid_refresh_token`, `refresh_token_reused`)."
        }
        403 => "Authenticated but not allowed (`forbidden`, `account_deactivated`).",
        404 => "Not found, or not visible to the caller (`not_found`).",
        409 => {
            "Conflicts with existing data (`username_taken`, `email_taken`, `name_taken`, `in_use`, `event_cancelled`, `event_finished`, `event_full`, `instrument_full`, `already_participating`, `own_event`, `invalid_transition`, `conflict`)."
        }
        413 => "The body is too large (`payload_too_large`).",
        415 => "Unsupported `Content-Type` (`unsupported_media_type`).",
        422 => {
            "Invalid fields, one entry per field in `errors` (`validation_failed`): a missing or \
             `null` required field, a value of the wrong type (a number where a string is \
             expected), a malformed UUID or date-time in the body, the path or the query, or a \
             value the rules refuse. Fields are named as documented (`instruments[0].quantity`)."
        }
        429 => "Too many requests; see `Retry-After` (`rate_limited`).",
        503 => {
            "A dependency (the database) is unavailable (`service_unavailable`), or the server is at capacity and refused the work at once, storing nothing (`overloaded`, message sends); retry after `Retry-After` seconds."
        }
        _ => "Unexpected error, logged with the request id (`internal_error`).",
    }
}
