//! Per-process fixed windows: one counter per (limit, key), in a few mutex-guarded shards
//! so that concurrent requests for different keys rarely meet. A check is a hash lookup
//! under an uncontended lock; nothing is allocated once a key is known.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use super::{Key, Limit, Rule};

const SHARDS: usize = 16;
/// A shard is swept of expired windows when it grows past this (then past twice its size).
const SWEEP_FLOOR: usize = 1024;

#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    count: u32,
}

struct Shard {
    windows: HashMap<(Limit, u128), Window>,
    sweep_at: usize,
}

pub struct Windows {
    shards: Box<[Mutex<Shard>]>,
}

impl Default for Windows {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        windows: HashMap::new(),
                        sweep_at: SWEEP_FLOOR,
                    })
                })
                .collect(),
        }
    }
}

impl Windows {
    /// Counts a hit; `Err(wait)` when it is over the limit, with the time left in the window.
    /// `longest` is the longest window of any limit, to know what a sweep may drop.
    pub fn hit(
        &self,
        limit: Limit,
        key: Key,
        rule: Rule,
        longest: Duration,
        now: Instant,
    ) -> Result<u32, Duration> {
        let index = (key.0 as usize ^ (key.0 >> 64) as usize ^ limit as usize) % SHARDS;
        let Some(shard) = self.shards.get(index) else {
            return Ok(0);
        };
        // Counters stay meaningful after a panic elsewhere: use a poisoned lock as is.
        let mut shard = shard.lock().unwrap_or_else(|e| e.into_inner());
        if shard.windows.len() >= shard.sweep_at {
            shard
                .windows
                .retain(|_, w| now.saturating_duration_since(w.start) < longest);
            shard.sweep_at = (shard.windows.len() * 2).max(SWEEP_FLOOR);
        }
        let window = shard.windows.entry((limit, key.0)).or_insert(Window {
            start: now,
            count: 0,
        });
        let elapsed = now.saturating_duration_since(window.start);
        if elapsed >= rule.window {
            *window = Window {
                start: now,
                count: 0,
            };
        }
        window.count = window.count.saturating_add(1);
        if window.count > rule.max {
            Err(rule
                .window
                .saturating_sub(now.saturating_duration_since(window.start)))
        } else {
            Ok(window.count)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_allows_max_then_refuses_until_it_ends() {
        let windows = Windows::default();
        let rule = Rule::per_secs(2, 10);
        let key = Key(7);
        let t0 = Instant::now();
        let long = Duration::from_secs(10);
        assert_eq!(windows.hit(Limit::Typing, key, rule, long, t0), Ok(1));
        assert_eq!(windows.hit(Limit::Typing, key, rule, long, t0), Ok(2));
        let wait = windows
            .hit(Limit::Typing, key, rule, long, t0 + Duration::from_secs(4))
            .expect_err("third hit refused");
        assert_eq!(wait, Duration::from_secs(6));
        // Other limits and other keys have their own windows.
        assert_eq!(windows.hit(Limit::Messages, key, rule, long, t0), Ok(1));
        assert_eq!(windows.hit(Limit::Typing, Key(8), rule, long, t0), Ok(1));
        assert_eq!(
            windows.hit(Limit::Typing, key, rule, long, t0 + Duration::from_secs(10)),
            Ok(1)
        );
    }

    #[test]
    fn expired_windows_are_swept() {
        let windows = Windows::default();
        let rule = Rule::per_secs(1, 1);
        let t0 = Instant::now();
        let long = Duration::from_secs(1);
        // Keys 16 apart land in the same shard.
        let same_shard = |i: usize| Key((i * SHARDS) as u128);
        for i in 0..SWEEP_FLOOR {
            let _ = windows.hit(Limit::Typing, same_shard(i), rule, long, t0);
        }
        let len = |w: &Windows| -> usize {
            w.shards
                .iter()
                .map(|s| s.lock().map(|s| s.windows.len()).unwrap_or(0))
                .sum()
        };
        assert_eq!(len(&windows), SWEEP_FLOOR);
        let later = t0 + Duration::from_secs(2);
        let _ = windows.hit(Limit::Typing, same_shard(SWEEP_FLOOR), rule, long, later);
        assert_eq!(len(&windows), 1, "expired windows dropped");
    }
}
