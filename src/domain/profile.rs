//! Profile fields: free text, URLs and coordinates.

use crate::envelope::FieldError;

/// Free text with a maximum length (counted as sent), trimmed; text that shows nothing
/// (`domain::is_blank`) means "none". No control character but the line feed, and none at
/// all in one line of text ([`ProfileText::line`]).
pub struct ProfileText;

impl ProfileText {
    /// Text that may span lines (a bio, a description).
    pub fn parse(field: &str, raw: &str, max: usize) -> Result<Option<String>, FieldError> {
        Self::checked(field, raw, max, |c| c.is_control() && c != '\n')
    }

    /// One line of text (a name, a title, an address, a city).
    pub fn line(field: &str, raw: &str, max: usize) -> Result<Option<String>, FieldError> {
        Self::checked(field, raw, max, |c| {
            c.is_control() || c == '\u{2028}' || c == '\u{2029}'
        })
    }

    fn checked(
        field: &str,
        raw: &str,
        max: usize,
        refused: impl Fn(char) -> bool,
    ) -> Result<Option<String>, FieldError> {
        if raw.chars().count() > max {
            return Err(FieldError::new(
                field,
                "too_long",
                format!("{field} must be at most {max} characters"),
            ));
        }
        if raw.chars().any(refused) {
            return Err(FieldError::new(
                field,
                "invalid_format",
                format!("{field} must not contain control characters"),
            ));
        }
        let value = raw.trim();
        Ok((!super::is_blank(value)).then(|| value.to_owned()))
    }
}

/// An absolute `http` or `https` URL of at most 2,048 characters.
pub struct Url;

impl Url {
    pub const MAX: usize = 2048;

    pub fn parse(field: &str, raw: &str) -> Result<Option<String>, FieldError> {
        let value = raw.trim();
        if value.is_empty() {
            return Ok(None);
        }
        if value.len() > Self::MAX {
            return Err(FieldError::new(
                field,
                "too_long",
                format!("{field} must be at most {} characters", Self::MAX),
            ));
        }
        let rest = value
            .strip_prefix("https://")
            .or_else(|| value.strip_prefix("http://"));
        let host_ok = rest.is_some_and(|r| {
            let host = r.split(['/', '?', '#']).next().unwrap_or_default();
            !host.is_empty()
        });
        if !host_ok || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(FieldError::new(
                field,
                "invalid_format",
                format!("{field} must be an absolute http(s) URL"),
            ));
        }
        Ok(Some(value.to_owned()))
    }
}

/// Where a notification leads: a path of this API (`/api/v1/events/…`: one leading slash,
/// no backslash, so that no browser reads it as another host, as it would `//evil.com` or
/// `/\\evil.com`) or an `https://` URL.
pub struct Link;

impl Link {
    pub fn parse(field: &str, raw: &str) -> Result<Option<String>, FieldError> {
        let value = raw.trim();
        if value.is_empty() {
            return Ok(None);
        }
        let bad = |message: &str| Err(FieldError::new(field, "invalid_format", message));
        if value
            .chars()
            .any(|c| c == '\\' || c.is_whitespace() || c.is_control())
        {
            return bad("a link has no backslash, space or control character");
        }
        if value.starts_with('/') {
            if value.starts_with("//") {
                return bad("a path starts with a single slash");
            }
            if value.len() > Url::MAX {
                return Err(FieldError::new(
                    field,
                    "too_long",
                    format!("{field} must be at most {} characters", Url::MAX),
                ));
            }
            return Ok(Some(value.to_owned()));
        }
        if !value.starts_with("https://") {
            return bad("a link is an API path (`/api/v1/…`) or an https:// URL");
        }
        Url::parse(field, value)
    }
}

/// A point on Earth: latitude in [-90, 90], longitude in [-180, 180].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Coordinates {
    pub latitude: f64,
    pub longitude: f64,
}

/// Degrees kept to 7 decimals (about a centimetre). Besides being all the precision a place
/// needs, it turns subnormal values such as `5e-324` into 0: PostgreSQL's float arithmetic
/// refuses to underflow (`value out of range: underflow`) in `ll_to_earth`.
fn round_degrees(value: f64) -> f64 {
    (value * 1e7).round() / 1e7
}

/// A search radius in metres; at least one, so that a radius of `1e-300` km does not
/// underflow in PostgreSQL's `earth_box` either.
pub fn radius_metres(km: f64) -> f64 {
    (km * 1000.0).max(1.0)
}

impl Coordinates {
    /// Both or neither: a latitude without a longitude is not a place.
    pub fn parse(
        lat_field: &str,
        lon_field: &str,
        latitude: Option<f64>,
        longitude: Option<f64>,
    ) -> Result<Option<Self>, Vec<FieldError>> {
        let mut errors = Vec::new();
        let check = |field: &str, value: f64, bound: f64, errors: &mut Vec<FieldError>| {
            if !value.is_finite() || value.abs() > bound {
                errors.push(FieldError::new(
                    field,
                    "out_of_range",
                    format!("{field} must be between -{bound} and {bound}"),
                ));
            }
        };
        match (latitude, longitude) {
            (None, None) => return Ok(None),
            (Some(lat), Some(lon)) => {
                check(lat_field, lat, 90.0, &mut errors);
                check(lon_field, lon, 180.0, &mut errors);
            }
            (Some(_), None) => errors.push(FieldError::new(
                lon_field,
                "missing",
                format!("{lon_field} is required with {lat_field}"),
            )),
            (None, Some(_)) => errors.push(FieldError::new(
                lat_field,
                "missing",
                format!("{lat_field} is required with {lon_field}"),
            )),
        }
        if errors.is_empty() {
            Ok(latitude.zip(longitude).map(|(latitude, longitude)| Self {
                latitude: round_degrees(latitude),
                longitude: round_degrees(longitude),
            }))
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            Url::parse("p", "https://cdn.example.com/a.png"),
            Ok(Some("https://cdn.example.com/a.png".into()))
        );
        assert_eq!(Url::parse("p", "  "), Ok(None));
        for bad in ["ftp://x", "https://", "javascript:alert(1)", "https://a b"] {
            assert!(Url::parse("p", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn coordinates() {
        assert_eq!(Coordinates::parse("lat", "lon", None, None), Ok(None));
        assert!(Coordinates::parse("lat", "lon", Some(48.85), Some(2.35)).is_ok());
        assert_eq!(
            Coordinates::parse("lat", "lon", Some(91.0), Some(0.0)).map_err(|e| e.len()),
            Err(1)
        );
        assert_eq!(
            Coordinates::parse("lat", "lon", Some(1.0), None).map_err(|e| e[0].field.clone()),
            Err("lon".into())
        );
        assert!(Coordinates::parse("lat", "lon", Some(f64::NAN), Some(0.0)).is_err());
    }
}
