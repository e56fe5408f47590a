//! Usernames, emails and passwords.

use std::fmt;

use crate::envelope::FieldError;

pub const USERNAME_MIN: usize = 3;
pub const USERNAME_MAX: usize = 32;
pub const PASSWORD_MIN: usize = 8;
pub const PASSWORD_MAX: usize = 128;
pub const EMAIL_MAX: usize = 254;

/// 3–32 characters: ASCII letters, digits, `_`, `.` and `-`, starting with a letter or digit.
/// Unique ignoring case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        let value = raw.trim();
        let len = value.chars().count();
        if len == 0 {
            return Err(FieldError::new(field, "missing", "username is required"));
        }
        if len < USERNAME_MIN {
            return Err(FieldError::new(
                field,
                "too_short",
                format!("username must be at least {USERNAME_MIN} characters"),
            ));
        }
        // Counted as sent, surrounding spaces included (the document's `maxLength`).
        if raw.chars().count() > USERNAME_MAX {
            return Err(FieldError::new(
                field,
                "too_long",
                format!("username must be at most {USERNAME_MAX} characters"),
            ));
        }
        let valid_chars = value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        let starts_well = value.starts_with(|c: char| c.is_ascii_alphanumeric());
        if !valid_chars || !starts_well {
            return Err(FieldError::new(
                field,
                "invalid_format",
                "username may contain only letters, digits, '_', '.' and '-', and must start \
                 with a letter or a digit",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A syntactically valid email address, stored lower-case. Unique ignoring case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        let value = raw.trim();
        if value.is_empty() {
            return Err(FieldError::new(field, "missing", "email is required"));
        }
        // Counted as sent, surrounding spaces included (the document's `maxLength`), and
        // within SMTP's 254 octets.
        if value.len() > EMAIL_MAX || raw.chars().count() > EMAIL_MAX {
            return Err(FieldError::new(
                field,
                "too_long",
                format!("email must be at most {EMAIL_MAX} characters"),
            ));
        }
        // `email_address` follows RFC 5322; we also want a dotted domain, as every address
        // a musician will give us has one.
        let has_dotted_domain = value
            .rsplit_once('@')
            .is_some_and(|(_, domain)| domain.contains('.') && !domain.ends_with('.'));
        if !email_address::EmailAddress::is_valid(value) || !has_dotted_domain {
            return Err(FieldError::new(
                field,
                "invalid_format",
                "email must be a valid address, like name@example.com",
            ));
        }
        Ok(Self(value.to_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password of 8–128 characters. Never printed.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        let len = raw.chars().count();
        if len == 0 {
            return Err(FieldError::new(field, "missing", "password is required"));
        }
        if len < PASSWORD_MIN {
            return Err(FieldError::new(
                field,
                "too_short",
                format!("password must be at least {PASSWORD_MIN} characters"),
            ));
        }
        if len > PASSWORD_MAX {
            return Err(FieldError::new(
                field,
                "too_long",
                format!("password must be at most {PASSWORD_MAX} characters"),
            ));
        }
        if raw.trim().is_empty() {
            return Err(FieldError::new(
                field,
                "invalid_format",
                "password must not be only spaces",
            ));
        }
        // The JSON forms refuse NUL in every text (`api::strict`); a password set through
        // an urlencoded or multipart form must not hold one either, or it could never be
        // typed at a JSON login.
        if raw.contains('\0') {
            return Err(FieldError::new(
                field,
                "invalid_format",
                "password must not contain NUL characters",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// A password as typed at login: never validated (old rules may differ), only bounded
    /// so that nobody can make us hash a megabyte.
    pub fn for_login(raw: &str) -> Option<Self> {
        (raw.chars().count() <= PASSWORD_MAX).then(|| Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert_eq!(
            Username::parse("u", " Miles_D ").map(|u| u.0),
            Ok("Miles_D".into())
        );
        for (bad, kind) in [
            ("", "missing"),
            ("ab", "too_short"),
            (&"x".repeat(33), "too_long"),
            ("_lead", "invalid_format"),
            ("a b c", "invalid_format"),
            ("bébop", "invalid_format"),
        ] {
            assert_eq!(
                Username::parse("u", bad).map_err(|e| e.kind),
                Err(kind.into()),
                "{bad}"
            );
        }
    }

    #[test]
    fn emails() {
        assert_eq!(
            Email::parse("e", " Nina@Example.COM ").map(|e| e.0),
            Ok("nina@example.com".into())
        );
        for bad in [
            "nina",
            "nina@",
            "@example.com",
            "nina@localhost",
            "a b@example.com",
        ] {
            assert_eq!(
                Email::parse("e", bad).map_err(|e| e.kind),
                Err("invalid_format".into()),
                "{bad}"
            );
        }
    }

    #[test]
    fn passwords() {
        assert!(Password::parse("p", "correct horse").is_ok());
        assert_eq!(
            Password::parse("p", "short").map_err(|e| e.kind).err(),
            Some("too_short".into())
        );
        assert_eq!(
            Password::parse("p", &"x".repeat(129))
                .map_err(|e| e.kind)
                .err(),
            Some("too_long".into())
        );
        assert_eq!(
            Password::parse("p", "          ").map_err(|e| e.kind).err(),
            Some("invalid_format".into())
        );
        assert!(!format!("{:?}", Password::parse("p", "hunter2hunter2")).contains("hunter2"));
    }
}
