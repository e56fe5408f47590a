//! How much expensive work (searches) runs at once: at most a few per user and, in all, a
//! share of the database pool, so that one account's searches can never take every
//! connection and push other people's requests into 503. Over the user's own bound the
//! work is refused at once (429); when every place in all is taken, it waits a moment
//! ([`QUEUE_MAX`]) for one and is then refused (503 `overloaded`), never queued for seconds.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The longest work waits for a place before it is refused.
pub const QUEUE_MAX: std::time::Duration = std::time::Duration::from_millis(250);
use uuid::Uuid;

use crate::error::ApiError;

pub struct Gate {
    total: Arc<Semaphore>,
    per_user: u32,
    running: Mutex<HashMap<Uuid, u32>>,
}

/// Leave to run; the work is counted until it is dropped.
pub struct Pass<'a> {
    gate: &'a Gate,
    user: Uuid,
    _permit: OwnedSemaphorePermit,
}

impl Gate {
    /// `total` at once in all (at least 1); `per_user` at once per user (0: no bound).
    pub fn new(total: usize, per_user: u32) -> Self {
        Self {
            total: Arc::new(Semaphore::new(total.max(1))),
            per_user,
            running: Mutex::new(HashMap::new()),
        }
    }

    pub async fn enter(&self, user: Uuid) -> Result<Pass<'_>, ApiError> {
        {
            let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
            let n = running.entry(user).or_default();
            if self.per_user > 0 && *n >= self.per_user {
                return Err(ApiError::rate_limited(std::time::Duration::from_secs(1)));
            }
            *n += 1;
        }
        let permit = tokio::time::timeout(QUEUE_MAX, self.total.clone().acquire_owned()).await;
        match permit {
            Ok(Ok(permit)) => Ok(Pass {
                gate: self,
                user,
                _permit: permit,
            }),
            _ => {
                self.leave(user);
                Err(ApiError::overloaded(1))
            }
        }
    }

    fn leave(&self, user: Uuid) {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = running.get_mut(&user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                running.remove(&user);
            }
        }
    }
}

/// Places per key (a client address, say), each held until its [`Slot`] is dropped.
pub struct Slots {
    max: u32,
    taken: Mutex<HashMap<crate::limits::Key, u32>>,
}

/// A place taken in [`Slots`].
pub struct Slot {
    slots: Arc<Slots>,
    key: crate::limits::Key,
}

impl Slots {
    /// At most `max` places per key; 0 = no bound.
    pub fn new(max: u32) -> Arc<Self> {
        Arc::new(Self {
            max,
            taken: Mutex::new(HashMap::new()),
        })
    }

    /// A place for `key`, or `None` when it holds `max` already.
    pub fn take(self: &Arc<Self>, key: crate::limits::Key) -> Option<Slot> {
        let mut taken = self.taken.lock().unwrap_or_else(PoisonError::into_inner);
        let n = taken.entry(key).or_default();
        if self.max > 0 && *n >= self.max {
            return None;
        }
        *n += 1;
        Some(Slot {
            slots: self.clone(),
            key,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut taken = self
            .slots
            .taken
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = taken.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                taken.remove(&self.key);
            }
        }
    }
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        self.gate.leave(self.user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bounds_per_user_and_in_all() {
        let gate = Gate::new(3, 2);
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let a1 = gate.enter(a).await.unwrap();
        let _a2 = gate.enter(a).await.unwrap();
        assert_eq!(
            gate.enter(a).await.err().map(|e| e.status.as_u16()),
            Some(429)
        );
        let _b1 = gate.enter(b).await.unwrap();
        // Three running in all: the next one, anyone's, waits a moment, then is refused.
        assert_eq!(
            gate.enter(b).await.err().map(|e| e.status.as_u16()),
            Some(503)
        );
        drop(a1);
        assert!(gate.enter(b).await.is_ok());
        assert!(gate.running.lock().unwrap().len() <= 2);
    }

    #[test]
    fn slots_are_given_back_when_dropped() {
        let slots = Slots::new(2);
        let key = crate::limits::Key::user(Uuid::new_v4());
        let a = slots.take(key).unwrap();
        let _b = slots.take(key).unwrap();
        assert!(slots.take(key).is_none());
        assert!(
            slots
                .take(crate::limits::Key::user(Uuid::new_v4()))
                .is_some()
        );
        drop(a);
        assert!(slots.take(key).is_some());
    }
}
