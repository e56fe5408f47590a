//! `Choice<E>`: an enum field documented as its enum, but whose bad values are reported by
//! our validation (422 naming the field) instead of poem-openapi's parser (400).

use std::borrow::Cow;

use poem_openapi::{
    registry::{MetaSchemaRef, Registry},
    types::{ParseFromJSON, ParseResult, ToJSON, Type},
};
use serde_json::Value;

use crate::envelope::FieldError;

/// The accepted values, for error messages.
pub trait Choices {
    const NAMES: &'static str;
}

impl Choices for crate::catalogue::SkillLevel {
    const NAMES: &'static str = crate::catalogue::SkillLevel::NAMES;
}

impl Choices for crate::auth::Role {
    const NAMES: &'static str = "user, admin";
}

impl Choices for crate::chat::store::Role {
    const NAMES: &'static str = "owner, admin, member";
}

impl Choices for crate::moderation::Target {
    const NAMES: &'static str = "user, message, event, conversation";
}

impl Choices for crate::moderation::Action {
    const NAMES: &'static str = "dismiss, suspend_user, delete_content";
}

impl Choices for crate::catalogue::Category {
    const NAMES: &'static str =
        "strings, keys, percussion, brass, woodwind, voice, electronic, other";
}

/// A value of `E`, or what the client sent instead.
#[derive(Debug, Clone)]
pub struct Choice<E>(pub Result<E, Value>);

impl<E: Choices> Choice<E> {
    pub fn parse(self, field: &str) -> Result<E, FieldError> {
        self.0.map_err(|raw| {
            FieldError::new(
                field,
                "invalid",
                format!("{field} must be one of: {} (got {raw})", E::NAMES),
            )
        })
    }
}

impl<E: Type> Type for Choice<E> {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        E::name()
    }

    fn schema_ref() -> MetaSchemaRef {
        E::schema_ref()
    }

    fn register(registry: &mut Registry) {
        E::register(registry);
    }

    fn as_raw_value(&self) -> Option<&Self> {
        Some(self)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self> + 'a> {
        Box::new(std::iter::once(self))
    }
}

impl<E: ParseFromJSON> ParseFromJSON for Choice<E> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            // Missing stays a parse error, like any other required field.
            None | Some(Value::Null) => Err(poem_openapi::types::ParseError::expected_input()),
            Some(v) => Ok(Self(E::parse_from_json(Some(v.clone())).map_err(|_| v))),
        }
    }
}

impl<E: ToJSON> ToJSON for Choice<E> {
    fn to_json(&self) -> Option<Value> {
        match &self.0 {
            Ok(e) => e.to_json(),
            Err(raw) => Some(raw.clone()),
        }
    }
}

impl<E: poem_openapi::types::Example> poem_openapi::types::Example for Choice<E> {
    fn example() -> Self {
        Self(Ok(E::example()))
    }
}

impl<E: poem_openapi::types::ParseFromParameter> poem_openapi::types::ParseFromParameter
    for Choice<E>
{
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        Ok(Self(
            E::parse_from_parameter(value).map_err(|_| Value::String(value.to_owned())),
        ))
    }
}
