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
    /// `out_of_range`, `taken`, `value_error`.
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
    pub error_code: crate::error::ErrorCode,
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
            error_code: crate::error::ErrorCode::ValidationFailed,
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
