//! Sessions checked without a query on the hot path: an in-process view of which sessions
//! are alive, each entry trusted for a short while and dropped at once, on every instance,
//! by the revocation messages the server publishes (logout, password change, deactivation,
//! refresh-token reuse) and by role changes.
//!
//! Correctness rests on the bus, so the cache is used only while this instance is
//! subscribed to Redis, where every instance publishes its revocations. Without Redis (the
//! single-instance default, or instances sharing a database without a bus) and while Redis
//! is unreachable, every request checks PostgreSQL as before; when the subscription comes
//! back (messages may have been missed) the whole cache is dropped. An entry read from PostgreSQL is kept only if no invalidation arrived
//! while it was being read, so a revocation racing a check is never overwritten.

use std::{
    collections::HashMap,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use super::Role;
use crate::{
    bus::{Bus, BusEvent, RedisLink},
    hub::REVOKED_TOPIC,
};

/// How long a session checked in PostgreSQL is trusted without asking again.
pub const TTL: Duration = Duration::from_secs(30);
/// Most sessions remembered; beyond, the cache starts over.
const CAPACITY: usize = 200_000;
/// Bus topic carrying ids of users whose sessions changed (a role change): a JSON array.
pub const CHANGED_TOPIC: &str = "sessions_changed";

#[derive(Clone)]
pub struct SessionCache {
    inner: Arc<Inner>,
}

struct Inner {
    entries: RwLock<HashMap<Uuid, Entry>>,
    /// Bumped by every invalidation.
    epoch: AtomicU64,
    bus: Bus,
}

#[derive(Clone, Copy)]
struct Entry {
    user: Uuid,
    role: Role,
    until: Instant,
}

impl SessionCache {
    /// Starts the cache and its listener on the bus.
    pub fn start(bus: &Bus) -> Self {
        let cache = Self {
            inner: Arc::new(Inner {
                entries: RwLock::new(HashMap::new()),
                epoch: AtomicU64::new(0),
                bus: bus.clone(),
            }),
        };
        let mut events = bus.subscribe();
        let listener = cache.clone();
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(BusEvent::Message { topic, payload }) => match &*topic {
                        REVOKED_TOPIC => listener.forget(&payload, false),
                        CHANGED_TOPIC => listener.forget(&payload, true),
                        _ => {}
                    },
                    Ok(BusEvent::Resync) | Err(RecvError::Lagged(_)) => listener.clear(),
                    Err(RecvError::Closed) => return,
                }
            }
        });
        cache
    }

    /// Whether every instance's invalidations reach this one.
    fn usable(&self) -> bool {
        self.inner.bus.redis_link() == RedisLink::Up
    }

    /// The role of a live session, if it was checked recently.
    pub fn get(&self, session: Uuid, user: Uuid) -> Option<Role> {
        if !self.usable() {
            return None;
        }
        let entries = self.inner.entries.read().unwrap_or_else(|e| e.into_inner());
        entries
            .get(&session)
            .filter(|e| e.user == user && e.until > Instant::now())
            .map(|e| e.role)
    }

    /// The invalidation count, read before checking PostgreSQL (for [`Self::put`]).
    pub fn epoch(&self) -> u64 {
        self.inner.epoch.load(Ordering::Acquire)
    }

    /// Remembers a session found alive, unless an invalidation arrived since `epoch`.
    pub fn put(&self, epoch: u64, session: Uuid, user: Uuid, role: Role) {
        if !self.usable() {
            return;
        }
        let mut entries = self
            .inner
            .entries
            .write()
            .unwrap_or_else(|e| e.into_inner());
        // Checked under the lock that invalidations take too.
        if self.inner.epoch.load(Ordering::Acquire) != epoch {
            return;
        }
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        let until = Instant::now() + TTL;
        entries.insert(session, Entry { user, role, until });
    }

    /// Drops the sessions (or, `by_user`, every session of the users) listed in a bus
    /// payload; everything when it cannot be read.
    fn forget(&self, payload: &str, by_user: bool) {
        let Ok(ids) = serde_json::from_str::<Vec<Uuid>>(payload) else {
            self.clear();
            return;
        };
        let mut entries = self
            .inner
            .entries
            .write()
            .unwrap_or_else(|e| e.into_inner());
        self.inner.epoch.fetch_add(1, Ordering::AcqRel);
        if by_user {
            entries.retain(|_, entry| !ids.contains(&entry.user));
        } else {
            for session in &ids {
                entries.remove(session);
            }
        }
    }

    fn clear(&self) {
        let mut entries = self
            .inner
            .entries
            .write()
            .unwrap_or_else(|e| e.into_inner());
        self.inner.epoch.fetch_add(1, Ordering::AcqRel);
        entries.clear();
    }
}

/// Tells every instance (this one included) that these users' sessions changed (a role).
pub async fn publish_changed(bus: &Bus, users: &[Uuid]) {
    if users.is_empty() {
        return;
    }
    if let Ok(payload) = serde_json::to_string(users) {
        bus.publish_confirmed(CHANGED_TOPIC, &payload).await;
    }
}
