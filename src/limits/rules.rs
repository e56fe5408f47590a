//! The configured limits: how many hits a key may make per window, read from the
//! environment as `N/WINDOW` (`20/60s`, `5/1m`, `100/1h`; a bare number of seconds works
//! too) or `off`.

use std::{fmt, str::FromStr, time::Duration};

use crate::env::{ConfigError, parse};

/// At most `max` hits per `window`; `max == 0` turns the limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub max: u32,
    pub window: Duration,
}

impl Rule {
    pub const OFF: Self = Self {
        max: 0,
        window: Duration::ZERO,
    };

    pub const fn per_secs(max: u32, secs: u64) -> Self {
        Self {
            max,
            window: Duration::from_secs(secs),
        }
    }

    pub fn is_off(&self) -> bool {
        self.max == 0 || self.window.is_zero()
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_off() {
            f.write_str("off")
        } else {
            write!(f, "{}/{}s", self.max, self.window.as_secs_f64())
        }
    }
}

impl FromStr for Rule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("off") || s == "0" {
            return Ok(Self::OFF);
        }
        let (max, window) = s
            .split_once('/')
            .ok_or_else(|| "expected `N/WINDOW` such as `20/60s`, or `off`".to_owned())?;
        let max: u32 = max
            .trim()
            .parse()
            .map_err(|_| format!("`{max}` is not a count"))?;
        let window = window.trim();
        let (number, unit) = match window.find(|c: char| c.is_ascii_alphabetic()) {
            Some(at) => window.split_at(at),
            None => (window, "s"),
        };
        let number: f64 = number
            .trim()
            .parse()
            .map_err(|_| format!("`{window}` is not a duration"))?;
        let unit_secs = match unit {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            other => return Err(format!("unknown unit `{other}` (ms, s, m or h)")),
        };
        let secs = number * unit_secs;
        if !secs.is_finite() || secs <= 0.0 || secs > 86_400.0 {
            return Err("the window must be more than 0 and at most a day".into());
        }
        Ok(Self {
            max,
            window: Duration::from_secs_f64(secs),
        })
    }
}

/// Every limit of the server (see README, "Rate limits").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimits {
    pub login_per_ip: Rule,
    /// Per submitted login (username or email, ignoring case), whether it exists or not.
    pub login_per_name: Rule,
    pub register_per_ip: Rule,
    pub refresh_per_ip: Rule,
    pub refresh_per_account: Rule,
    pub password_per_ip: Rule,
    pub password_per_account: Rule,
    /// Messages sent per user, over REST and the socket together.
    pub messages_per_user: Rule,
    /// Typing frames per user (after the per-conversation throttle of one per 2 s).
    pub typing_per_user: Rule,
    /// Sockets opened per user (each one updates presence).
    pub connects_per_user: Rule,
    /// Sockets open at once per user, on every instance together; 0 = no limit.
    pub max_connections_per_user: u32,
    /// Musician and event searches per user.
    pub searches_per_user: Rule,
    /// Writes that fan out to others (renames, edits, deletions, membership, roles, event
    /// and participation changes) per user.
    pub changes_per_user: Rule,
    /// The same writes per conversation or event.
    pub changes_per_target: Rule,
    /// Reports filed per user.
    pub reports_per_user: Rule,
    /// Searches running at once per user (in this process); 0 = no limit.
    pub max_searches_per_user: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            login_per_ip: Rule::per_secs(50, 60),
            login_per_name: Rule::per_secs(10, 60),
            register_per_ip: Rule::per_secs(30, 600),
            refresh_per_ip: Rule::per_secs(60, 60),
            refresh_per_account: Rule::per_secs(20, 60),
            password_per_ip: Rule::per_secs(20, 60),
            password_per_account: Rule::per_secs(5, 60),
            messages_per_user: Rule::per_secs(30, 10),
            typing_per_user: Rule::per_secs(20, 10),
            connects_per_user: Rule::per_secs(30, 60),
            max_connections_per_user: 20,
            searches_per_user: Rule::per_secs(30, 10),
            changes_per_user: Rule::per_secs(60, 60),
            changes_per_target: Rule::per_secs(30, 60),
            reports_per_user: Rule::per_secs(20, 3600),
            max_searches_per_user: 2,
        }
    }
}

impl RateLimits {
    /// Every limit off: for load tests that must not be throttled.
    pub fn off() -> Self {
        Self {
            login_per_ip: Rule::OFF,
            login_per_name: Rule::OFF,
            register_per_ip: Rule::OFF,
            refresh_per_ip: Rule::OFF,
            refresh_per_account: Rule::OFF,
            password_per_ip: Rule::OFF,
            password_per_account: Rule::OFF,
            messages_per_user: Rule::OFF,
            typing_per_user: Rule::OFF,
            connects_per_user: Rule::OFF,
            max_connections_per_user: 0,
            searches_per_user: Rule::OFF,
            changes_per_user: Rule::OFF,
            changes_per_target: Rule::OFF,
            reports_per_user: Rule::OFF,
            max_searches_per_user: 0,
        }
    }

    /// `RATE_LIMIT_*` variables over the defaults; `RATE_LIMITS=off` turns them all off.
    pub fn from_env() -> Result<Self, ConfigError> {
        let all_off =
            crate::env::var("RATE_LIMITS").is_some_and(|v| v.trim().eq_ignore_ascii_case("off"));
        let base = if all_off {
            Self::off()
        } else {
            Self::default()
        };
        let rule = |name: &'static str, default: Rule| -> Result<Rule, ConfigError> {
            parse(name, &default.to_string())
        };
        Ok(Self {
            login_per_ip: rule("RATE_LIMIT_LOGIN_PER_IP", base.login_per_ip)?,
            login_per_name: rule("RATE_LIMIT_LOGIN_PER_NAME", base.login_per_name)?,
            register_per_ip: rule("RATE_LIMIT_REGISTER_PER_IP", base.register_per_ip)?,
            refresh_per_ip: rule("RATE_LIMIT_REFRESH_PER_IP", base.refresh_per_ip)?,
            refresh_per_account: rule("RATE_LIMIT_REFRESH_PER_ACCOUNT", base.refresh_per_account)?,
            password_per_ip: rule("RATE_LIMIT_PASSWORD_PER_IP", base.password_per_ip)?,
            password_per_account: rule(
                "RATE_LIMIT_PASSWORD_PER_ACCOUNT",
                base.password_per_account,
            )?,
            messages_per_user: rule("RATE_LIMIT_MESSAGES_PER_USER", base.messages_per_user)?,
            typing_per_user: rule("RATE_LIMIT_TYPING_PER_USER", base.typing_per_user)?,
            connects_per_user: rule("RATE_LIMIT_CONNECTS_PER_USER", base.connects_per_user)?,
            max_connections_per_user: parse(
                "WS_MAX_CONNECTIONS_PER_USER",
                &base.max_connections_per_user.to_string(),
            )?,
            searches_per_user: rule("RATE_LIMIT_SEARCHES_PER_USER", base.searches_per_user)?,
            changes_per_user: rule("RATE_LIMIT_CHANGES_PER_USER", base.changes_per_user)?,
            changes_per_target: rule("RATE_LIMIT_CHANGES_PER_TARGET", base.changes_per_target)?,
            reports_per_user: rule("RATE_LIMIT_REPORTS_PER_USER", base.reports_per_user)?,
            max_searches_per_user: parse(
                "SEARCH_MAX_CONCURRENT_PER_USER",
                &base.max_searches_per_user.to_string(),
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_with_units() {
        assert_eq!("20/60s".parse::<Rule>(), Ok(Rule::per_secs(20, 60)));
        assert_eq!("20/60".parse::<Rule>(), Ok(Rule::per_secs(20, 60)));
        assert_eq!("5/1m".parse::<Rule>(), Ok(Rule::per_secs(5, 60)));
        assert_eq!("100/1h".parse::<Rule>(), Ok(Rule::per_secs(100, 3600)));
        assert_eq!(
            "3/500ms".parse::<Rule>().map(|r| r.window),
            Ok(Duration::from_millis(500))
        );
        assert!("off".parse::<Rule>().is_ok_and(|r| r.is_off()));
        for bad in ["", "20", "x/60", "20/0", "20/-1", "20/5d", "20/1e9"] {
            assert!(bad.parse::<Rule>().is_err(), "{bad}");
        }
    }

    #[test]
    fn rules_print_as_they_parse() {
        for rule in [Rule::per_secs(20, 60), Rule::OFF] {
            assert_eq!(rule.to_string().parse::<Rule>(), Ok(rule));
        }
    }
}
