//! Reading settings from the environment: the lowest layer, shared by `config` and
//! `limits`.

use std::{fmt, str::FromStr};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name}: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// A set, non-empty variable.
pub fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// A variable parsed as `T`, `default` when unset.
pub fn parse<T: FromStr>(name: &'static str, default: &str) -> Result<T, ConfigError>
where
    T::Err: fmt::Display,
{
    let raw = var(name).unwrap_or_else(|| default.to_owned());
    raw.trim()
        .parse()
        .map_err(|err: T::Err| ConfigError::Invalid {
            name,
            reason: format!("`{raw}` is not valid: {err}"),
        })
}
