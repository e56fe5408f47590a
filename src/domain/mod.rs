//! Domain types that parse user input at the edge: once built, they are valid.

mod account;
mod profile;

pub use account::{
    EMAIL_MAX, Email, PASSWORD_MAX, PASSWORD_MIN, Password, USERNAME_MAX, USERNAME_MIN, Username,
};
pub use profile::{Coordinates, Link, ProfileText, Url, radius_metres};

use crate::{envelope::FieldError, error::ApiError};

/// Collects field errors while parsing a request, so that every bad field is reported at once.
#[derive(Default)]
pub struct Validator {
    errors: Vec<FieldError>,
}

impl Validator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps the value if it parsed, remembers the error otherwise.
    pub fn check<T>(&mut self, result: Result<T, FieldError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(err) => {
                self.errors.push(err);
                None
            }
        }
    }

    pub fn push(&mut self, err: FieldError) {
        self.errors.push(err);
    }

    /// `Ok(())` when nothing was wrong, otherwise a 422 listing every bad field.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::validation(self.errors))
        }
    }
}

/// Unwraps the values a [`Validator`] checked, after `finish()` said they are all present.
///
/// Returns a 500-class error rather than panicking if a caller forgot to check.
pub fn checked<T>(value: Option<T>) -> Result<T, ApiError> {
    value.ok_or_else(|| ApiError::internal(anyhow::anyhow!("validated value missing")))
}

/// Whether a timestamp can be stored and compared: years 1 to 9999. chrono reads dates far
/// outside what PostgreSQL stores (4713 BC to 294276 AD), and such a date in a query
/// would fail there; nothing TuneLink keeps lies outside these years.
pub fn storable_time(time: &chrono::DateTime<chrono::Utc>) -> bool {
    use chrono::Datelike;
    (1..=9999).contains(&time.year())
}

/// A timestamp input, checked: `field` is named when it is out of range.
pub fn check_time(
    field: &str,
    time: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, FieldError> {
    match time {
        Some(t) if !storable_time(&t) => Err(FieldError::new(
            field,
            "out_of_range",
            format!("{field} must be between the years 1 and 9999"),
        )),
        t => Ok(t),
    }
}

/// A search text's bounds: at most this many characters as sent…
pub const MAX_QUERY_CHARS: usize = 100;
/// …and at least this many once trimmed.
pub const MIN_QUERY_CHARS: usize = 3;

/// A search text (`q`): trimmed; blank means no filter.
pub fn search_text(raw: Option<String>) -> Result<Option<String>, FieldError> {
    let Some(raw) = raw else { return Ok(None) };
    let text = raw.trim();
    let n = text.chars().count();
    let too_long = raw.chars().count() > MAX_QUERY_CHARS;
    if n == 0 && !too_long {
        return Ok(None);
    }
    if n < MIN_QUERY_CHARS || too_long {
        return Err(FieldError::new(
            "q",
            "out_of_range",
            format!("q must be {MIN_QUERY_CHARS} to {MAX_QUERY_CHARS} characters"),
        ));
    }
    Ok(Some(text.to_owned()))
}

/// Whether `text` shows nothing: only white space and invisible format characters
/// (zero-width spaces and joiners, bidirectional marks and overrides, the byte-order mark,
/// word joiners, soft hyphens, Hangul fillers). Such text is refused where text is required.
pub fn is_blank(text: &str) -> bool {
    text.chars().all(|c| c.is_whitespace() || is_invisible(c))
}

fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
        | '\u{FFA0}' | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E007F}')
}

#[cfg(test)]
mod tests {
    #[test]
    fn invisible_text_is_blank() {
        for blank in [
            "",
            "  ",
            "\u{200B}\u{200D}",
            "\u{202E}\u{2066} \u{FEFF}",
            "\u{3164}",
        ] {
            assert!(super::is_blank(blank), "{blank:?}");
        }
        for shown in ["a", "\u{200B}a", "🎸", "\u{202E}x"] {
            assert!(!super::is_blank(shown), "{shown:?}");
        }
    }
}
