//! Rate limits: fixed windows counted per process, and across instances in Redis when it
//! is configured.
//!
//! Every check counts locally first. A key over its limit on this instance is refused
//! without asking Redis (the local count can only be lower than the shared one); otherwise,
//! with Redis, one atomic script (`INCR` + `PEXPIRE`) decides for all instances. When Redis
//! fails, the local decision stands and Redis is left alone for a moment: a broken Redis
//! never fails or slows a request. Hot socket paths (typing) use [`Limiter::check_local`]
//! only: see README, "Rate limits", for that trade-off.

pub mod client_ip;
mod gate;
mod local;
mod rules;

use std::{
    net::IpAddr,
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use deadpool_redis::redis;
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub use client_ip::{ClientIp, TrustedProxies};
pub use gate::{Gate, Pass, Slot, Slots};
pub use rules::{RateLimits, Rule};

use crate::error::ApiError;

/// Longest a Redis check may take before the local decision is used.
const REDIS_BUDGET: Duration = Duration::from_millis(250);
/// After a Redis failure, only local windows are used for this long.
const REDIS_BACKOFF: Duration = Duration::from_secs(2);

/// Fixed window in Redis: the first hit of a window sets its expiry; answers the count and
/// the milliseconds left. A key somehow left without expiry gets one.
const SCRIPT: &str = r"
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
";

/// What is limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    LoginIp,
    LoginName,
    RegisterIp,
    RefreshIp,
    RefreshAccount,
    PasswordIp,
    PasswordAccount,
    Messages,
    Typing,
    Connects,
    /// Expensive searches (musicians, events), per user.
    Searches,
    /// Writes that fan out to other people (renames, edits, deletions, membership and role
    /// changes, event and participation changes), per user.
    Changes,
    /// The same writes, per conversation or event changed.
    ChangesTarget,
    /// Reports filed, per user.
    Reports,
}

impl Limit {
    pub const ALL: [Self; 14] = [
        Self::LoginIp,
        Self::LoginName,
        Self::RegisterIp,
        Self::RefreshIp,
        Self::RefreshAccount,
        Self::PasswordIp,
        Self::PasswordAccount,
        Self::Messages,
        Self::Typing,
        Self::Connects,
        Self::Searches,
        Self::Changes,
        Self::ChangesTarget,
        Self::Reports,
    ];

    /// Stable name, used in Redis keys and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            Self::LoginIp => "login_ip",
            Self::LoginName => "login_name",
            Self::RegisterIp => "register_ip",
            Self::RefreshIp => "refresh_ip",
            Self::RefreshAccount => "refresh_account",
            Self::PasswordIp => "password_ip",
            Self::PasswordAccount => "password_account",
            Self::Messages => "messages",
            Self::Typing => "typing",
            Self::Connects => "connects",
            Self::Searches => "searches",
            Self::Changes => "changes",
            Self::ChangesTarget => "changes_target",
            Self::Reports => "reports",
        }
    }

    fn rule(self, rules: &RateLimits) -> Rule {
        match self {
            Self::LoginIp => rules.login_per_ip,
            Self::LoginName => rules.login_per_name,
            Self::RegisterIp => rules.register_per_ip,
            Self::RefreshIp => rules.refresh_per_ip,
            Self::RefreshAccount => rules.refresh_per_account,
            Self::PasswordIp => rules.password_per_ip,
            Self::PasswordAccount => rules.password_per_account,
            Self::Messages => rules.messages_per_user,
            Self::Typing => rules.typing_per_user,
            Self::Connects => rules.connects_per_user,
            Self::Searches => rules.searches_per_user,
            Self::Changes => rules.changes_per_user,
            Self::ChangesTarget => rules.changes_per_target,
            Self::Reports => rules.reports_per_user,
        }
    }
}

/// Who is counted: a user, an address, or a submitted name, as 128 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key(u128);

impl Key {
    pub fn user(id: Uuid) -> Self {
        Self(id.as_u128())
    }

    /// A conversation or an event, by id.
    pub fn target(id: Uuid) -> Self {
        Self(id.as_u128())
    }

    /// IPv6 clients are counted per /64: one subscriber usually holds a whole /64.
    pub fn ip(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Self(u128::from(v4.to_ipv6_mapped())),
            IpAddr::V6(v6) => Self(u128::from(v6) & !u128::from(u64::MAX)),
        }
    }

    /// A submitted login name, ignoring case and surrounding spaces; hashed, so that the
    /// names people type (existing or not) are never stored in Redis.
    pub fn name(name: &str) -> Self {
        let digest = Sha256::digest(name.trim().to_lowercase().as_bytes());
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        Self(u128::from_be_bytes(bytes))
    }
}

pub struct Limiter {
    rules: RateLimits,
    longest: Duration,
    local: local::Windows,
    redis: Option<deadpool_redis::Pool>,
    prefix: String,
    started: Instant,
    /// Milliseconds since `started` before which Redis is not tried.
    redis_resume_at: AtomicU64,
    rejected: [AtomicU64; Limit::ALL.len()],
}

impl Limiter {
    pub fn new(rules: RateLimits, redis: Option<deadpool_redis::Pool>, prefix: String) -> Self {
        let longest = Limit::ALL
            .iter()
            .map(|l| l.rule(&rules).window)
            .max()
            .unwrap_or_default();
        Self {
            rules,
            longest,
            local: local::Windows::default(),
            redis,
            prefix,
            started: Instant::now(),
            redis_resume_at: AtomicU64::new(0),
            rejected: Default::default(),
        }
    }

    pub fn rules(&self) -> &RateLimits {
        &self.rules
    }

    /// Refused hits so far, per limit.
    pub fn rejected(&self) -> impl Iterator<Item = (Limit, u64)> + '_ {
        Limit::ALL
            .iter()
            .zip(&self.rejected)
            .map(|(l, n)| (*l, n.load(Ordering::Relaxed)))
    }

    /// Counts a hit on this instance only; `rate_limited` when over the limit.
    pub fn check_local(&self, limit: Limit, key: Key) -> Result<(), ApiError> {
        let rule = limit.rule(&self.rules);
        if rule.is_off() {
            return Ok(());
        }
        self.local
            .hit(limit, key, rule, self.longest, Instant::now())
            .map(|_| ())
            .map_err(|wait| self.refuse(limit, wait))
    }

    /// Counts a hit on every instance (through Redis when configured and reachable).
    pub async fn check(&self, limit: Limit, key: Key) -> Result<(), ApiError> {
        let rule = limit.rule(&self.rules);
        if rule.is_off() {
            return Ok(());
        }
        self.check_local(limit, key)?;
        let Some(pool) = &self.redis else {
            return Ok(());
        };
        let now_ms = self.started.elapsed().as_millis() as u64;
        if now_ms < self.redis_resume_at.load(Ordering::Relaxed) {
            return Ok(());
        }
        match tokio::time::timeout(REDIS_BUDGET, self.redis_hit(pool, limit, key, rule)).await {
            Ok(Ok((count, ttl_ms))) if count > i64::from(rule.max) => Err(self.refuse(
                limit,
                Duration::from_millis(u64::try_from(ttl_ms).unwrap_or(0)),
            )),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(err)) => {
                self.redis_failed(now_ms, &err.to_string());
                Ok(())
            }
            Err(_) => {
                self.redis_failed(now_ms, "timed out");
                Ok(())
            }
        }
    }

    async fn redis_hit(
        &self,
        pool: &deadpool_redis::Pool,
        limit: Limit,
        key: Key,
        rule: Rule,
    ) -> anyhow::Result<(i64, i64)> {
        let mut conn = pool.get().await?;
        let redis_key = format!("{}{}:{:032x}", self.prefix, limit.name(), key.0);
        let window_ms = rule.window.as_millis().max(1) as u64;
        let answer: (i64, i64) = redis::cmd("EVAL")
            .arg(SCRIPT)
            .arg(1)
            .arg(redis_key)
            .arg(window_ms)
            .query_async(&mut conn)
            .await?;
        Ok(answer)
    }

    fn redis_failed(&self, now_ms: u64, why: &str) {
        let resume = now_ms + REDIS_BACKOFF.as_millis() as u64;
        let before = self.redis_resume_at.swap(resume, Ordering::Relaxed);
        if before <= now_ms {
            tracing::warn!(
                error = why,
                "rate limits: Redis unavailable, counting per instance"
            );
        }
    }

    fn refuse(&self, limit: Limit, wait: Duration) -> ApiError {
        if let Some(n) = Limit::ALL
            .iter()
            .position(|l| *l == limit)
            .and_then(|i| self.rejected.get(i))
        {
            n.fetch_add(1, Ordering::Relaxed);
        }
        ApiError::rate_limited(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_ignore_case_and_spaces() {
        assert_eq!(
            Key::name(" Nina@Example.com"),
            Key::name("nina@example.com")
        );
        assert_ne!(Key::name("nina"), Key::name("miles"));
    }

    #[test]
    fn ipv6_clients_count_per_64() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(Key::ip(a), Key::ip(b));
        assert_ne!(Key::ip(a), Key::ip(c));
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(Key::ip(v4), Key::ip(mapped));
    }

    #[tokio::test]
    async fn local_limits_refuse_with_a_wait_and_count_refusals() {
        let mut rules = RateLimits::off();
        rules.login_per_name = Rule::per_secs(2, 30);
        let limiter = Limiter::new(rules, None, String::new());
        let key = Key::name("nina");
        assert!(limiter.check(Limit::LoginName, key).await.is_ok());
        assert!(limiter.check(Limit::LoginName, key).await.is_ok());
        let err = limiter.check(Limit::LoginName, key).await.unwrap_err();
        assert_eq!(err.status.as_u16(), 429);
        assert!(err.retry_after.is_some_and(|s| (1..=30).contains(&s)));
        // Limits that are off never refuse.
        for _ in 0..100 {
            assert!(limiter.check(Limit::LoginIp, key).await.is_ok());
        }
        let rejected: Vec<_> = limiter.rejected().filter(|(_, n)| *n > 0).collect();
        assert_eq!(rejected, [(Limit::LoginName, 1)]);
    }
}
