//! What chaos clients count as it happens, and the `chaos` object of the results.

use std::{
    collections::BTreeMap,
    sync::{
        Mutex,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
};

use serde::Serialize;

use super::{FaultRun, Notifications, notify};

/// What happened to the clients, counted as it happens.
#[derive(Default)]
pub(crate) struct Counters {
    pub disconnects: AtomicU64,
    pub reconnects: AtomicU64,
    pub resumes: AtomicU64,
    pub resumed: AtomicU64,
    pub replayed: AtomicU64,
    pub refetches: AtomicU64,
    pub refetched_messages: AtomicU64,
    pub refetch_failures: AtomicU64,
    pub retried_sends: AtomicU64,
    pub stale_frames: AtomicU64,
    pub late_frames: AtomicU64,
    pub event_gaps: AtomicU64,
    pub twins: AtomicU64,
    /// Sends in outboxes, not acked (nor refused for good) yet.
    pub outstanding: AtomicI64,
    /// Clients that got their first `resumed` (their notification number to start from).
    pub baselined: AtomicU64,
    pub reconnect_failures: Mutex<BTreeMap<String, u64>>,
    pub resync_required: Mutex<BTreeMap<String, u64>>,
    pub refusals: Mutex<BTreeMap<String, u64>>,
    pub notifications: notify::Counters,
}

/// The `chaos` object of the results.
#[derive(Debug, Default, Serialize)]
pub struct Results {
    /// Sockets the tool dropped on purpose (`--chaos-disconnects-per-s`).
    pub disconnects: u64,
    /// Sockets opened again after any loss (the first opening excluded).
    pub reconnects: u64,
    pub reconnect_failures: BTreeMap<String, u64>,
    /// `resume` frames sent: first thing on every socket, and again after
    /// `resync_required` on the same socket.
    pub resumes: u64,
    /// `resumed` answers, and the events they say were replayed.
    pub resumed: u64,
    pub replayed: u64,
    /// By scope: `conversation`, `notifications`, `all` (also `conversation_id: null`
    /// without a scope).
    pub resync_required: BTreeMap<String, u64>,
    /// Conversations refetched over REST after `resync_required`, and their messages.
    pub refetches: u64,
    pub refetched_messages: u64,
    pub refetch_failures: u64,
    /// Sends written again (same `client_msg_id`) after a reconnect or a refusal.
    pub retried_sends: u64,
    /// Retryable refusals (`rate_limited`, `overloaded`, `service_unavailable`) by code.
    pub refusals: BTreeMap<String, u64>,
    /// Conversation frames at or below the client's position, ignored as the protocol
    /// allows (overlap after a refetch or a replay).
    pub stale_frames: u64,
    /// Conversation frames below the position whose message the client never had: sent
    /// after a later event (their messages count as reordered).
    pub late_frames: u64,
    /// Conversation frames that skipped event numbers on arrival.
    pub event_gaps: u64,
    /// One `client_msg_id` stored as two messages.
    pub twins: u64,
    pub faults: Vec<FaultRun>,
    pub notifications: Notifications,
}

impl Results {
    pub(crate) fn from_counters(c: &Counters, faults: Vec<FaultRun>, n: Notifications) -> Self {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let map =
            |m: &Mutex<BTreeMap<String, u64>>| m.lock().map(|m| m.clone()).unwrap_or_default();
        Self {
            disconnects: get(&c.disconnects),
            reconnects: get(&c.reconnects),
            reconnect_failures: map(&c.reconnect_failures),
            resumes: get(&c.resumes),
            resumed: get(&c.resumed),
            replayed: get(&c.replayed),
            resync_required: map(&c.resync_required),
            refetches: get(&c.refetches),
            refetched_messages: get(&c.refetched_messages),
            refetch_failures: get(&c.refetch_failures),
            retried_sends: get(&c.retried_sends),
            refusals: map(&c.refusals),
            stale_frames: get(&c.stale_frames),
            late_frames: get(&c.late_frames),
            event_gaps: get(&c.event_gaps),
            twins: get(&c.twins),
            faults,
            notifications: n,
        }
    }

    /// Every fault ran, nothing was twinned or left unrefetched, and every notification
    /// arrived once, in order, numbered.
    pub fn is_clean(&self) -> bool {
        let n = &self.notifications;
        self.faults.iter().all(|f| f.error.is_none())
            && self.twins == 0
            && self.refetch_failures == 0
            && n.lost == 0
            && n.duplicated == 0
            && n.reordered == 0
            && n.unnumbered_frames == 0
            && n.refused() == 0
    }
}
