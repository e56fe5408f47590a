//! The standard response envelope that wraps every answer, success or error.
//!
//! Its shape is owed to the first prototype and its mobile front end:
//! `{status, code, message, data, errors}`. Errors also carry `error_code`, a stable
//! machine-readable reason that clients can switch on (the `code` field is the HTTP status).

use poem_openapi::{
    Enum, Object,
    types::{Example, ParseFromJSON, ToJSON, Type},
};

/// `"success"` or `"error"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum Status {
    Success,
    Error,
}

/// A successful answer carrying `data`.
#[derive(Debug, Object)]
#[oai(example)]
pub struct Envelope<T: ParseFromJSON + ToJSON + Example> {
    /// Always `success` here.
    pub status: Status,
    /// The HTTP status code, repeated for clients that only read the body.
    pub code: u16,
    /// A human-readable summary.
    pub message: String,
    pub data: T,
    /// Always `null` on success.
    pub errors: Option<Vec<FieldError>>,
}

impl<T: ParseFromJSON + ToJSON + Example> Envelope<T> {
    pub fn new(code: u16, message: impl Into<String>, data: T) -> Self {
        Self {
            status: Status::Success,
            code,
            message: message.into(),
            data,
            errors: None,
        }
    }

    pub fn ok(message: impl Into<String>, data: T) -> Self {
        Self::new(200, message, data)
    }

    pub fn created(message: impl Into<String>, data: T) -> Self {
        Self::new(201, message, data)
    }
}

impl<T: ParseFromJSON + ToJSON + Example> Example for Envelope<T> {
    fn example() -> Self {
        Self::ok("OK", T::example())
    }
}

/// The `data` of answers that carry none (`null`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Nothing;

impl Type for Nothing {
    const IS_REQUIRED: bool = false;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> std::borrow::Cow<'static, str> {
        "null".into()
    }

    fn schema_ref() -> poem_openapi::registry::MetaSchemaRef {
        // OpenAPI 3.0 has no `null` type: a nullable object whose only value is null.
        let mut schema = poem_openapi::registry::MetaSchema::new("object");
        schema.nullable = true;
        schema.enum_items = vec![serde_json::Value::Null];
        schema.description = Some("Always `null`.");
        poem_openapi::registry::MetaSchemaRef::Inline(Box::new(schema))
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        None
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(std::iter::empty())
    }
}

impl ParseFromJSON for Nothing {
    fn parse_from_json(
        _value: Option<serde_json::Value>,
    ) -> poem_openapi::types::ParseResult<Self> {
        Ok(Self)
    }
}

impl ToJSON for Nothing {
    fn to_json(&self) -> Option<serde_json::Value> {
        Some(serde_json::Value::Null)
    }
}

impl Example for Nothing {
    fn example() -> Self {
        Self
    }
}

/// One problem with one input field.
#[derive(Debug, Clone, PartialEq, Eq, Object)]
pub struct FieldError {
    /// The field, as named in the request (`email`, `password`, `query.limit`…).
    pub field: String,
    /// What kind of problem: `missing`, `too_short`, `too_long`, `invalid_format`,
    /// `invalid_type`, `out_of_range`, `taken`, `value_error`, `unknown_field` (a form's
    /// part that is not one of its fields).
    #[oai(rename = "type")]
    pub kind: String,
    /// A sentence a person can read.
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, kind: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            kind: kind.to_owned(),
            message: message.into(),
        }
    }
}

/// An error answer.
#[derive(Debug, Object)]
#[oai(example)]
pub struct ErrorEnvelope {
    /// Always `error` here.
    pub status: Status,
    /// The HTTP status code.
    pub code: u16,
    /// Stable, machine-readable reason.
    pub error_code: ErrorCode,
    /// A human-readable explanation; never internal details.
    pub message: String,
    /// Always `null` on errors.
    pub data: Nothing,
    /// One entry per bad field for validation errors, otherwise `null`.
    pub errors: Option<Vec<FieldError>>,
}

impl Example for ErrorEnvelope {
    fn example() -> Self {
        Self {
            status: Status::Error,
            code: 422,
            error_code: ErrorCode::ValidationFailed,
            message: "The request has invalid fields.".into(),
            data: Nothing,
            errors: Some(vec![FieldError::new(
                "email",
                "invalid_format",
                "email must be a valid address",
            )]),
        }
    }
}

/// Stable, machine-readable reasons. Clients may rely on these strings; add, never rename.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The body or a parameter could not be parsed (bad JSON, wrong type).
    MalformedRequest,
    /// One or more fields are invalid; see `errors`.
    ValidationFailed,
    /// No credentials were sent.
    Unauthenticated,
    /// Wrong login or password.
    InvalidCredentials,
    /// The access token is malformed, tampered with or signed with another key.
    InvalidToken,
    /// The access token has expired: refresh it.
    TokenExpired,
    /// The session was ended (logout, password change, deactivation, token reuse).
    SessionRevoked,
    /// The refresh token is unknown or expired.
    InvalidRefreshToken,
    /// A refresh token was used twice; its whole session was revoked.
    RefreshTokenReused,
    /// The account is deactivated.
    AccountDeactivated,
    /// The caller is authenticated but not allowed to do this.
    Forbidden,
    /// The resource does not exist (or the caller may not see it).
    NotFound,
    /// No route matches the path.
    RouteNotFound,
    /// The route exists but not with this method.
    MethodNotAllowed,
    /// The username is already taken (ignoring case).
    UsernameTaken,
    /// The email is already registered (ignoring case).
    EmailTaken,
    /// A catalogue entry with this name already exists (ignoring case).
    NameTaken,
    /// The entry is still used by musicians or events and cannot be deleted.
    InUse,
    /// The event is cancelled: it can no longer be joined or changed.
    EventCancelled,
    /// The event is over.
    EventFinished,
    /// The event has no place left.
    EventFull,
    /// Every place for this instrument is taken.
    InstrumentFull,
    /// You already take part in this event.
    AlreadyParticipating,
    /// You organise this event; you cannot also join it.
    OwnEvent,
    /// This status change is not allowed from the current status.
    InvalidTransition,
    /// The request conflicts with the current state.
    Conflict,
    /// The body is larger than the server accepts.
    PayloadTooLarge,
    /// The `Content-Type` is not one this operation accepts.
    UnsupportedMediaType,
    /// Too many requests: wait for `Retry-After` seconds.
    RateLimited,
    /// A dependency (database, Redis) is unavailable: retry later.
    ServiceUnavailable,
    /// The server is at capacity and refused the work at once (nothing was stored): retry
    /// after `Retry-After` seconds.
    Overloaded,
    /// An unexpected error; it was logged with the request id.
    InternalError,
}
