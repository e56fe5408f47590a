//! Typed configuration, read from environment variables (and `.env` when present).
//!
//! Every variable has a development default so that `cargo run` works on a laptop with a
//! local PostgreSQL and nothing else. `APP_ENV=production` turns the defaults that are only
//! safe on a laptop (the `hetic` JWT secret) into start-up errors.

use std::{fmt, str::FromStr, time::Duration};

use crate::limits::{RateLimits, TrustedProxies};

/// The JWT secret of the original project, for development only.
pub const DEVELOPMENT_JWT_SECRET: &str = "hetic";
/// Shortest JWT secret accepted in production (HS256 wants at least 256 bits).
pub const MIN_PRODUCTION_SECRET_LEN: usize = 32;

/// A value that must never appear in logs or `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppEnv {
    Development,
    Test,
    Production,
}

impl FromStr for AppEnv {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "development" | "dev" | "local" => Ok(Self::Development),
            "test" => Ok(Self::Test),
            "production" | "prod" => Ok(Self::Production),
            other => Err(format!(
                "unknown APP_ENV `{other}` (expected development, test or production)"
            )),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "pretty" | "text" => Ok(Self::Pretty),
            "json" => Ok(Self::Json),
            other => Err(format!(
                "unknown LOG_FORMAT `{other}` (expected pretty or json)"
            )),
        }
    }
}

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct Settings {
    pub app_env: AppEnv,
    /// Address the HTTP server binds (`BIND_ADDR`); port 0 picks a free one.
    pub bind_addr: String,
    /// PostgreSQL URL (`DATABASE_URL`); may contain a password.
    pub database_url: Secret,
    pub database_max_connections: u32,
    /// How long a request waits for a database connection before failing with 503. While
    /// PostgreSQL is down, every request that needs it answers 503 after this long.
    pub database_acquire_timeout: Duration,
    /// Redis URL (`REDIS_URL`); `None` runs a single instance with in-process fan-out.
    pub redis_url: Option<Secret>,
    pub jwt_secret: Secret,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    /// How many password hashes may run at once (each takes ~19 MiB and a core for ~20 ms).
    pub password_hash_concurrency: usize,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    pub log_format: LogFormat,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
    /// Every rate limit (`RATE_LIMIT_*`, `WS_MAX_CONNECTIONS_PER_USER`).
    pub rate_limits: RateLimits,
    /// Prefix of the rate-limit keys in Redis (`RATE_LIMIT_REDIS_PREFIX`).
    pub rate_limit_redis_prefix: String,
    /// Proxies whose `X-Forwarded-For` gives the client address (`TRUSTED_PROXIES`).
    pub trusted_proxies: TrustedProxies,
    /// Browser origins allowed by CORS and on the socket (`ALLOWED_ORIGINS`); empty = no
    /// CORS, and the socket accepts any origin; `*` = any origin.
    pub allowed_origins: Vec<String>,
    /// When set, `GET /metrics` wants `Authorization: Bearer <token>` (`METRICS_TOKEN`).
    pub metrics_token: Option<Secret>,
    /// The message writer's batch and queue bounds (`SEND_BATCH_MAX`, `SEND_QUEUE_CAPACITY`).
    pub sends: SendSettings,
    /// Connection hygiene: idle timeout and caps (`CONNECTION_*`).
    pub connections: ConnectionLimits,
}

/// Bounds of the message writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendSettings {
    /// Most sends stored in one transaction (`SEND_BATCH_MAX`).
    pub batch: usize,
    /// Most sends waiting for the writer; beyond, sends are refused (`SEND_QUEUE_CAPACITY`).
    pub queue: usize,
}

/// Descriptors kept for everything but client connections (pools, logs, the listener).
pub const FILE_RESERVE: u64 = 512;

/// The default cap on open connections: the process's open-file limit (`ulimit -n`) less
/// [`FILE_RESERVE`], and at least half of it; 100,000 when the limit is unbounded.
pub fn default_max_total() -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    match limit {
        Some(n) => usize::try_from(n.saturating_sub(FILE_RESERVE).max(n / 2)).unwrap_or(100_000),
        None => 100_000,
    }
}

/// What one client may hold open (see `connections`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// A connection with no byte read or written for this long is closed: one that says
    /// nothing, never finishes its headers or body, or idles between requests
    /// (`CONNECTION_IDLE_TIMEOUT_SECS`). Above the socket heartbeat (25 s), so that live
    /// sockets are never cut.
    pub idle_timeout: Duration,
    /// A request's headers must arrive whole within this long of their first byte
    /// (`CONNECTION_HEADER_TIMEOUT_SECS`; 0 = no bound): a slow-header client is cut even
    /// when it is never idle.
    pub header_timeout: Duration,
    /// Open connections in all (`CONNECTION_MAX_TOTAL`); kept under the file limit so that
    /// the database, Redis and `/healthz` always have descriptors. By default the file
    /// limit less [`FILE_RESERVE`] (see [`default_max_total`]).
    pub max_total: usize,
    /// Open connections from one address (`CONNECTION_MAX_PER_ADDRESS`); trusted proxies
    /// (`TRUSTED_PROXIES`) are exempt, their clients being many.
    pub max_per_address: usize,
    /// Sockets from one client address still waiting for their `auth` frame
    /// (`WS_MAX_UNAUTHENTICATED_PER_ADDRESS`); more upgrades answer 429. Trusted proxies
    /// are counted per client behind them. 0 = no limit.
    pub max_unauthenticated_per_address: u32,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(60),
            header_timeout: Duration::from_secs(20),
            max_total: default_max_total(),
            max_per_address: 256,
            max_unauthenticated_per_address: 16,
        }
    }
}

impl Default for SendSettings {
    fn default() -> Self {
        Self {
            batch: 256,
            queue: 512,
        }
    }
}

pub use crate::env::ConfigError;
use crate::env::{parse, var};

impl Settings {
    /// Reads the configuration from the environment and checks it.
    pub fn from_env() -> Result<Self, ConfigError> {
        crate::env::check_secret_files()?;
        let app_env: AppEnv = parse("APP_ENV", "development")?;
        let settings = Self {
            app_env,
            bind_addr: var("BIND_ADDR").unwrap_or_else(|| "0.0.0.0:8080".into()),
            database_url: Secret::new(
                var("DATABASE_URL")
                    .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/tunelink".into()),
            ),
            database_max_connections: parse("DATABASE_MAX_CONNECTIONS", "20")?,
            database_acquire_timeout: Duration::from_millis(parse(
                "DATABASE_ACQUIRE_TIMEOUT_MS",
                "1000",
            )?),
            redis_url: var("REDIS_URL").map(Secret::new),
            jwt_secret: Secret::new(
                std::env::var("JWT_SECRET").unwrap_or_else(|_| DEVELOPMENT_JWT_SECRET.into()),
            ),
            access_token_ttl: Duration::from_secs(parse("ACCESS_TOKEN_TTL_SECS", "900")?),
            refresh_token_ttl: Duration::from_secs(parse("REFRESH_TOKEN_TTL_SECS", "2592000")?),
            password_hash_concurrency: parse(
                "PASSWORD_HASH_CONCURRENCY",
                &default_hash_concurrency().to_string(),
            )?,
            max_body_bytes: parse("MAX_BODY_BYTES", "1048576")?,
            log_format: parse(
                "LOG_FORMAT",
                if app_env == AppEnv::Production {
                    "json"
                } else {
                    "pretty"
                },
            )?,
            shutdown_grace: Duration::from_secs(parse("SHUTDOWN_GRACE_SECS", "10")?),
            rate_limits: RateLimits::from_env()?,
            rate_limit_redis_prefix: var("RATE_LIMIT_REDIS_PREFIX")
                .unwrap_or_else(|| "tunelink:rl:".into()),
            trusted_proxies: parse("TRUSTED_PROXIES", "")?,
            allowed_origins: var("ALLOWED_ORIGINS")
                .map(|v| parse_origins(&v))
                .unwrap_or_default(),
            metrics_token: var("METRICS_TOKEN").map(Secret::new),
            sends: SendSettings {
                batch: parse("SEND_BATCH_MAX", "256")?,
                queue: parse("SEND_QUEUE_CAPACITY", "512")?,
            },
            connections: ConnectionLimits {
                idle_timeout: Duration::from_secs(parse("CONNECTION_IDLE_TIMEOUT_SECS", "60")?),
                header_timeout: Duration::from_secs(parse("CONNECTION_HEADER_TIMEOUT_SECS", "20")?),
                max_total: parse("CONNECTION_MAX_TOTAL", &default_max_total().to_string())?,
                max_per_address: parse("CONNECTION_MAX_PER_ADDRESS", "256")?,
                max_unauthenticated_per_address: parse("WS_MAX_UNAUTHENTICATED_PER_ADDRESS", "16")?,
            },
        };
        settings.validate()?;
        Ok(settings)
    }

    /// Refuses settings that are unsafe or unusable.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let secret = self.jwt_secret.expose();
        if self.app_env == AppEnv::Production {
            let reason = if secret.is_empty() {
                Some("must be set in production".to_owned())
            } else if secret == DEVELOPMENT_JWT_SECRET {
                Some("the development secret `hetic` is refused in production".to_owned())
            } else if secret.len() < MIN_PRODUCTION_SECRET_LEN {
                Some(format!(
                    "must be at least {MIN_PRODUCTION_SECRET_LEN} bytes in production"
                ))
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(ConfigError::Invalid {
                    name: "JWT_SECRET",
                    reason,
                });
            }
        } else if secret.is_empty() {
            return Err(invalid("JWT_SECRET", "must not be empty"));
        }
        if self.access_token_ttl.is_zero() {
            return Err(invalid("ACCESS_TOKEN_TTL_SECS", "must be positive"));
        }
        if self.refresh_token_ttl <= self.access_token_ttl {
            return Err(invalid(
                "REFRESH_TOKEN_TTL_SECS",
                "must be longer than ACCESS_TOKEN_TTL_SECS",
            ));
        }
        if self.password_hash_concurrency == 0 {
            return Err(invalid("PASSWORD_HASH_CONCURRENCY", "must be at least 1"));
        }
        if self.database_acquire_timeout.is_zero() {
            return Err(invalid("DATABASE_ACQUIRE_TIMEOUT_MS", "must be positive"));
        }
        if self.database_max_connections == 0 {
            return Err(invalid("DATABASE_MAX_CONNECTIONS", "must be at least 1"));
        }
        if self.sends.batch == 0 {
            return Err(invalid("SEND_BATCH_MAX", "must be at least 1"));
        }
        if self.sends.queue == 0 {
            return Err(invalid("SEND_QUEUE_CAPACITY", "must be at least 1"));
        }
        Ok(())
    }
}

/// `https://app.example.com, https://admin.example.com` → normalised origins.
pub fn parse_origins(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
        .filter(|o| !o.is_empty())
        .collect()
}

fn default_hash_concurrency() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

fn invalid(name: &'static str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        name,
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default connection cap follows the file limit: 10,000 fixed refused half the
    /// 19,000 sockets one instance holds (issue 6) on a machine with `ulimit -n 20000`.
    #[test]
    fn the_default_connection_cap_follows_the_file_limit() {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
        let cap = default_max_total() as u64;
        match limit {
            Some(n) => {
                assert!(cap < n, "{cap} under the limit {n}");
                assert!(cap >= n / 2 && cap + FILE_RESERVE >= n, "{cap} of {n}");
            }
            None => assert_eq!(cap, 100_000),
        }
    }

    fn production(secret: &str) -> Settings {
        Settings {
            app_env: AppEnv::Production,
            bind_addr: "127.0.0.1:0".into(),
            database_url: Secret::new("postgres://localhost/x"),
            database_max_connections: 5,
            database_acquire_timeout: Duration::from_secs(1),
            redis_url: None,
            jwt_secret: Secret::new(secret),
            access_token_ttl: Duration::from_secs(60),
            refresh_token_ttl: Duration::from_secs(3600),
            password_hash_concurrency: 1,
            max_body_bytes: 1024,
            log_format: LogFormat::Json,
            shutdown_grace: Duration::from_secs(1),
            rate_limits: RateLimits::default(),
            rate_limit_redis_prefix: "tunelink:rl:".into(),
            trusted_proxies: TrustedProxies::default(),
            allowed_origins: Vec::new(),
            metrics_token: None,
            sends: SendSettings::default(),
            connections: ConnectionLimits::default(),
        }
    }

    #[test]
    fn production_refuses_weak_secrets() {
        for weak in ["", "hetic", "short-secret"] {
            let err = production(weak).validate().expect_err(weak);
            assert!(err.to_string().starts_with("JWT_SECRET"), "{err}");
        }
        production("a-long-enough-secret-for-production-use")
            .validate()
            .expect("a 39-byte secret is accepted");
    }

    #[test]
    fn development_accepts_the_development_secret() {
        let mut s = production("hetic");
        s.app_env = AppEnv::Development;
        assert!(s.validate().is_ok());
    }

    #[test]
    fn secrets_are_hidden_from_debug() {
        let s = production("super-secret-value-that-is-long-enough");
        assert!(!format!("{s:?}").contains("super-secret"));
    }
}
