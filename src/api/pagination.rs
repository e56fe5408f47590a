//! Cursor pagination: `limit` (default 20, at most 100) and an opaque `cursor`, answered as
//! `{items, next_cursor}`. A cursor is the sort key of the last item, base64url-encoded JSON;
//! clients must treat it as opaque.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use poem_openapi::{
    Object,
    types::{Example, ParseFromJSON, ToJSON},
};
use serde::{Serialize, de::DeserializeOwned};

use crate::envelope::FieldError;

pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 100;

/// One page of a list.
#[derive(Debug, Object)]
#[oai(example)]
pub struct Page<T: ParseFromJSON + ToJSON + Example> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl<T: ParseFromJSON + ToJSON + Example> Example for Page<T> {
    fn example() -> Self {
        Self {
            items: vec![T::example()],
            next_cursor: Some("eyJrIjoiYmFzcyIsImlkIjoiLi4uIn0".into()),
        }
    }
}

/// A validated `limit` and decoded `cursor`.
#[derive(Debug)]
pub struct PageRequest<C> {
    pub limit: u32,
    pub after: Option<C>,
}

impl<C: DeserializeOwned> PageRequest<C> {
    /// Validates both, reporting each bad one as a field error.
    pub fn parse(limit: Option<u32>, cursor: Option<&str>) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            errors.push(FieldError::new(
                "limit",
                "out_of_range",
                format!("limit must be between 1 and {MAX_LIMIT}"),
            ));
        }
        let after = match cursor.filter(|c| !c.is_empty()) {
            None => None,
            Some(raw) => match decode(raw) {
                Some(c) => Some(c),
                None => {
                    errors.push(FieldError::new(
                        "cursor",
                        "invalid_format",
                        "cursor is not one this server gave out",
                    ));
                    None
                }
            },
        };
        if errors.is_empty() {
            Ok(Self { limit, after })
        } else {
            Err(errors)
        }
    }

    /// Rows to fetch: one more than the page, to know whether another page follows.
    pub fn fetch(&self) -> i64 {
        i64::from(self.limit) + 1
    }

    /// Cuts the extra row and makes the next cursor from the last item kept.
    pub fn finish<T, K: Serialize>(
        &self,
        mut rows: Vec<T>,
        key: impl Fn(&T) -> K,
    ) -> (Vec<T>, Option<String>) {
        let limit = self.limit as usize;
        if rows.len() > limit {
            rows.truncate(limit);
            let next = rows.last().map(|last| encode(&key(last)));
            (rows, next)
        } else {
            (rows, None)
        }
    }
}

fn decode<C: DeserializeOwned>(raw: &str) -> Option<C> {
    let bytes = URL_SAFE_NO_PAD.decode(raw.trim()).ok()?;
    let key: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    // The server never gives out a cursor with a timestamp it could not store: one that
    // has it was made up, and must not reach a query (PostgreSQL would fail on it).
    if !times_storable(&key) {
        return None;
    }
    serde_json::from_value(key).ok()
}

/// Whether every timestamp in a cursor's key is one the database can compare.
fn times_storable(key: &serde_json::Value) -> bool {
    use serde_json::Value;
    match key {
        // Read as the key's own deserialiser reads it (chrono's, lenient on the year).
        Value::String(s) => s
            .parse::<chrono::DateTime<chrono::Utc>>()
            .map_or(true, |t| crate::domain::storable_time(&t)),
        Value::Array(items) => items.iter().all(times_storable),
        Value::Object(map) => map.values().all(times_storable),
        _ => true,
    }
}

pub fn encode<K: Serialize>(key: &K) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(key).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
    struct Key {
        n: String,
        id: u32,
    }

    #[test]
    fn cursors_round_trip_and_pages_are_cut() {
        let req = PageRequest::<Key>::parse(Some(2), None).unwrap();
        let (rows, next) = req.finish(vec![1, 2, 3], |r| Key {
            n: format!("k{r}"),
            id: *r,
        });
        assert_eq!(rows, vec![1, 2]);
        let next = PageRequest::<Key>::parse(Some(2), next.as_deref()).unwrap();
        assert_eq!(
            next.after,
            Some(Key {
                n: "k2".into(),
                id: 2
            })
        );
        let (rows, next) = req.finish(vec![1, 2], |r| *r);
        assert_eq!((rows.len(), next), (2, None));
    }

    #[test]
    fn bad_limits_and_cursors_are_field_errors() {
        let errors = PageRequest::<Key>::parse(Some(0), Some("%%%")).unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["limit", "cursor"]);
        assert!(PageRequest::<Key>::parse(Some(101), None).is_err());
        assert!(PageRequest::<Key>::parse(Some(100), None).is_ok());
    }
}
