//! `Timestamp`: an instant in an answer, always RFC 3339 in UTC with `Z`
//! (`2026-12-24T20:00:00.123456Z`), the format of the socket's frames.
//!
//! poem-openapi writes a `DateTime<Utc>` as `…+00:00`; every answer's instants go through
//! this type instead, so that REST and the socket agree.

use std::borrow::Cow;

use chrono::{DateTime, SecondsFormat, Utc};
use poem_openapi::{
    registry::{MetaSchemaRef, Registry},
    types::{ParseFromJSON, ParseResult, ToJSON, Type},
};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub DateTime<Utc>);

impl From<DateTime<Utc>> for Timestamp {
    fn from(t: DateTime<Utc>) -> Self {
        Self(t)
    }
}

impl Type for Timestamp {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        DateTime::<Utc>::name()
    }

    fn schema_ref() -> MetaSchemaRef {
        DateTime::<Utc>::schema_ref()
    }

    fn register(registry: &mut Registry) {
        DateTime::<Utc>::register(registry);
    }

    fn as_raw_value(&self) -> Option<&Self> {
        Some(self)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self> + 'a> {
        Box::new(std::iter::once(self))
    }
}

impl ParseFromJSON for Timestamp {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        DateTime::<Utc>::parse_from_json(value)
            .map(Self)
            .map_err(poem_openapi::types::ParseError::propagate)
    }
}

impl ToJSON for Timestamp {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(
            self.0.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        ))
    }
}

/// The moment the OpenAPI examples show.
pub fn example_time() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-21T10:00:00Z")
        .map(|d| d.with_timezone(&Utc))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_are_written_in_utc_with_z() {
        let t: DateTime<Utc> = "2026-12-24T21:00:00.5+01:00".parse().unwrap();
        assert_eq!(
            Timestamp(t).to_json(),
            Some(Value::String("2026-12-24T20:00:00.500Z".into()))
        );
        let whole: DateTime<Utc> = "2026-12-24T20:00:00Z".parse().unwrap();
        assert_eq!(
            Timestamp(whole).to_json(),
            Some(Value::String("2026-12-24T20:00:00Z".into()))
        );
    }
}
