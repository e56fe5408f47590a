//! Reading settings from the environment: the lowest layer, shared by `config` and
//! `limits`.

use std::{fmt, str::FromStr};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name}: {reason}")]
    Invalid { name: &'static str, reason: String },
    #[error("{name}: {reason}")]
    SecretFile { name: String, reason: String },
}

/// A set, non-empty variable; or, when `NAME` is unset, the contents of the file that
/// `NAME_FILE` names (Docker and Kubernetes secrets), without its final newline.
pub fn var(name: &str) -> Option<String> {
    var_from(|key| std::env::var(key).ok(), name)
}

fn var_from(lookup: impl Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    let set = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
    if let Some(value) = set(lookup(name)) {
        return Some(value);
    }
    let path = set(lookup(&format!("{name}_FILE")))?;
    let text = std::fs::read_to_string(path.trim()).ok()?;
    set(Some(text.trim_end_matches(['\n', '\r']).to_owned()))
}

/// The settings that are secrets, which may come from files (`JWT_SECRET_FILE`, …). Any
/// setting may, through [`var`]; these are checked at start-up.
pub const SECRETS: [&str; 4] = ["JWT_SECRET", "DATABASE_URL", "REDIS_URL", "METRICS_TOKEN"];

/// Each set `NAME_FILE` of [`SECRETS`] names a readable, non-empty file, and `NAME` is not
/// set beside it: checked once at start-up, so that a missing secret stops the server
/// instead of leaving a default in its place.
pub fn check_secret_files() -> Result<(), ConfigError> {
    check_files(std::env::vars())
}

fn check_files(vars: impl Iterator<Item = (String, String)>) -> Result<(), ConfigError> {
    let vars: Vec<(String, String)> = vars.collect();
    for (key, path) in &vars {
        let Some(name) = key.strip_suffix("_FILE") else {
            continue;
        };
        if !SECRETS.contains(&name) || path.trim().is_empty() {
            continue;
        }
        let error = |reason: String| ConfigError::SecretFile {
            name: key.clone(),
            reason,
        };
        if vars.iter().any(|(k, v)| k == name && !v.trim().is_empty()) {
            return Err(error(format!("set {name} or {key}, not both")));
        }
        match std::fs::read_to_string(path.trim()) {
            Ok(text) if !text.trim().is_empty() => {}
            Ok(_) => return Err(error(format!("`{path}` is empty"))),
            Err(err) => return Err(error(format!("cannot read `{path}`: {err}"))),
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_variable_or_its_file() {
        let dir = std::env::temp_dir().join(format!("tunelink-env-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let secret = dir.join("jwt");
        std::fs::write(&secret, "s3cret value\n").unwrap();
        let path = secret.display().to_string();
        let env = |pairs: &[(&str, &str)]| {
            let pairs: Vec<(String, String)> = pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            move |key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
        };
        let from_file = env(&[("JWT_SECRET_FILE", path.as_str())]);
        assert_eq!(
            var_from(from_file, "JWT_SECRET").as_deref(),
            Some("s3cret value")
        );
        let both = env(&[("JWT_SECRET", "plain"), ("JWT_SECRET_FILE", path.as_str())]);
        assert_eq!(var_from(both, "JWT_SECRET").as_deref(), Some("plain"));
        assert!(var_from(env(&[]), "JWT_SECRET").is_none());

        let vars = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<Vec<_>>()
                .into_iter()
        };
        assert!(check_files(vars(&[("JWT_SECRET_FILE", path.as_str())])).is_ok());
        assert!(check_files(vars(&[("JWT_SECRET_FILE", "/nonexistent/secret")])).is_err());
        assert!(
            check_files(vars(&[
                ("JWT_SECRET_FILE", path.as_str()),
                ("JWT_SECRET", "x")
            ]))
            .is_err()
        );
        std::fs::write(&secret, "\n").unwrap();
        assert!(check_files(vars(&[("JWT_SECRET_FILE", path.as_str())])).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
