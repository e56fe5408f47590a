//! Validating event fields: every bad field is reported at once, by name.

use chrono::{DateTime, Duration, Utc};
use poem_openapi::types::MaybeUndefined;
use uuid::Uuid;

use crate::{
    api::choice::Choice,
    domain::{self, Coordinates, ProfileText, Url, Validator, radius_metres},
    envelope::FieldError,
    events::{EventRow, EventType, store::EventFields},
};

pub const TITLE_MAX: usize = 120;
pub const DESCRIPTION_MAX: usize = 5000;
pub const ADDRESS_MAX: usize = 300;
pub const MAX_CAPACITY: i32 = 100_000;
pub const MAX_GENRES: usize = 10;
pub use crate::events::manage::MAX_INSTRUMENTS;
pub const MAX_QUANTITY: i32 = 1000;
pub use crate::events::MAX_DURATION_DAYS;
pub const MAX_RADIUS_KM: f64 = 500.0;

pub fn check_quantity(field: &str, quantity: i32) -> Result<i32, FieldError> {
    if (1..=MAX_QUANTITY).contains(&quantity) {
        Ok(quantity)
    } else {
        Err(FieldError::new(
            field,
            "out_of_range",
            format!("{field} must be 1 to {MAX_QUANTITY}"),
        ))
    }
}

pub fn parse_genres(v: &mut Validator, ids: &[Uuid]) -> Vec<Uuid> {
    let mut unique = ids.to_vec();
    unique.sort();
    unique.dedup();
    if unique.len() > MAX_GENRES {
        v.push(FieldError::new(
            "genre_ids",
            "too_long",
            format!("at most {MAX_GENRES} genres"),
        ));
    }
    unique
}

pub fn parse_near(
    v: &mut Validator,
    lat: Option<f64>,
    lon: Option<f64>,
    radius_km: Option<f64>,
) -> Option<(f64, f64, f64)> {
    match Coordinates::parse("lat", "lon", lat, lon) {
        Ok(Some(p)) => match radius_km {
            Some(r) if r > 0.0 && r <= MAX_RADIUS_KM => {
                Some((p.latitude, p.longitude, radius_metres(r)))
            }
            Some(_) => {
                v.push(FieldError::new(
                    "radius_km",
                    "out_of_range",
                    format!("radius_km must be more than 0 and at most {MAX_RADIUS_KM}"),
                ));
                None
            }
            None => {
                v.push(FieldError::new(
                    "radius_km",
                    "missing",
                    "radius_km is required with lat and lon",
                ));
                None
            }
        },
        Ok(None) => {
            if radius_km.is_some() {
                v.push(FieldError::new(
                    "lat",
                    "missing",
                    "radius_km needs lat and lon",
                ));
            }
            None
        }
        Err(errors) => {
            errors.into_iter().for_each(|e| v.push(e));
            None
        }
    }
}

/// Event fields as sent, for a creation (all present) or a change (absent = keep).
pub struct FieldsInput {
    pub title: Option<String>,
    pub description: MaybeUndefined<String>,
    pub kind: Option<Choice<EventType>>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub address: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub capacity: MaybeUndefined<i32>,
    pub image_url: MaybeUndefined<String>,
}

/// Validates the merged fields; every bad field is recorded in `v`.
pub fn parse_fields(
    v: &mut Validator,
    input: FieldsInput,
    current: Option<&EventRow>,
) -> Option<EventFields> {
    let now = Utc::now();
    let title = match input.title {
        Some(raw) => match ProfileText::line("title", &raw, TITLE_MAX) {
            Ok(Some(t)) => Some(t),
            Ok(None) => {
                v.push(FieldError::new("title", "missing", "title is required"));
                None
            }
            Err(e) => {
                v.push(e);
                None
            }
        },
        None => current.map(|c| c.title.clone()),
    };
    let description = match input.description {
        MaybeUndefined::Undefined => Some(current.and_then(|c| c.description.clone())),
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(raw) => {
            v.check(ProfileText::parse("description", &raw, DESCRIPTION_MAX))
        }
    };
    let kind = match input.kind {
        Some(k) => v.check(k.parse("type")),
        None => current.map(|c| c.kind),
    };
    let address = match input.address {
        Some(raw) => match ProfileText::line("address", &raw, ADDRESS_MAX) {
            Ok(Some(a)) => Some(a),
            Ok(None) => {
                v.push(FieldError::new("address", "missing", "address is required"));
                None
            }
            Err(e) => {
                v.push(e);
                None
            }
        },
        None => current.map(|c| c.address.clone()),
    };
    let coordinates = if input.latitude.is_some() || input.longitude.is_some() || current.is_none()
    {
        match Coordinates::parse("latitude", "longitude", input.latitude, input.longitude) {
            Ok(Some(c)) => Some((c.latitude, c.longitude)),
            Ok(None) => {
                v.push(FieldError::new(
                    "latitude",
                    "missing",
                    "latitude and longitude are required",
                ));
                None
            }
            Err(errors) => {
                errors.into_iter().for_each(|e| v.push(e));
                None
            }
        }
    } else {
        current.map(|c| (c.latitude, c.longitude))
    };
    let capacity = match input.capacity {
        MaybeUndefined::Undefined => Some(current.and_then(|c| c.capacity)),
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(c) if (1..=MAX_CAPACITY).contains(&c) => Some(Some(c)),
        MaybeUndefined::Value(_) => {
            v.push(FieldError::new(
                "capacity",
                "out_of_range",
                format!("capacity must be 1 to {MAX_CAPACITY}"),
            ));
            None
        }
    };
    let image_url = match input.image_url {
        MaybeUndefined::Undefined => Some(current.and_then(|c| c.image_url.clone())),
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(raw) => v.check(Url::parse("image_url", &raw)),
    };
    // A date the database could not store is refused here, named (and then ignored).
    let mut times = [("starts_at", input.starts_at), ("ends_at", input.ends_at)];
    for (field, time) in &mut times {
        if let Err(e) = domain::check_time(field, *time) {
            v.push(e);
            *time = None;
        }
    }
    let [(_, input_starts_at), (_, input_ends_at)] = times;
    let time_changed = input_starts_at.is_some() || input_ends_at.is_some();
    let starts_at = input_starts_at.or(current.map(|c| c.starts_at));
    let ends_at = input_ends_at.or(current.map(|c| c.ends_at));
    if let Some(s) = input_starts_at
        && s <= now
    {
        v.push(FieldError::new(
            "starts_at",
            "out_of_range",
            "starts_at must be in the future",
        ));
    }
    if let (Some(s), Some(e)) = (starts_at, ends_at)
        && time_changed
    {
        if e <= s {
            v.push(FieldError::new(
                "ends_at",
                "out_of_range",
                "ends_at must be after starts_at",
            ));
        } else if e - s > Duration::days(MAX_DURATION_DAYS) {
            v.push(FieldError::new(
                "ends_at",
                "out_of_range",
                format!("an event lasts at most {MAX_DURATION_DAYS} days"),
            ));
        }
    }
    let (latitude, longitude) = coordinates?;
    Some(EventFields {
        title: title?,
        description: description?,
        kind: kind?,
        starts_at: starts_at?,
        ends_at: ends_at?,
        address: address?,
        latitude,
        longitude,
        capacity: capacity?,
        image_url: image_url?,
    })
}
