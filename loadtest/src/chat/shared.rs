//! What the chat scenario's participants share (counters, latency histograms) and what
//! each reports at the end.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Mutex,
        atomic::{AtomicI64, AtomicU64},
    },
    time::{SystemTime, UNIX_EPOCH},
};

use hdrhistogram::Histogram;
use uuid::Uuid;

use super::track::Track;
use crate::{
    chaos::notify,
    fixture::Conversation,
    report::{self, Latency},
};

pub(crate) const SHARDS: usize = 16;
pub(crate) const BODY_PREFIX: &str = "load ";

/// What the scheduler asks a participant to do.
pub(crate) enum Command {
    Send(Send),
    /// Chaos: lose the socket now.
    Drop,
}

pub(crate) struct Send {
    pub conversation: usize,
    /// Microseconds since the epoch when the message was due.
    pub due_us: u64,
}

pub(crate) struct Shared {
    pub index: HashMap<Uuid, usize>,
    pub ids: Vec<Uuid>,
    /// Per conversation: the highest acked message number.
    pub last_acked: Vec<AtomicI64>,
    pub sent: AtomicU64,
    pub acked: AtomicU64,
    pub refused: AtomicU64,
    /// Sends whose socket failed before they were written.
    pub write_failed: AtomicU64,
    pub delivered: AtomicU64,
    pub resyncs: AtomicU64,
    pub connected: AtomicU64,
    pub failed: AtomicU64,
    pub delivery: Vec<Mutex<Histogram<u64>>>,
    pub ack: Vec<Mutex<Histogram<u64>>>,
    /// Send → its first answer, an ack or a refusal (how fast an overloaded server says no).
    pub answer: Vec<Mutex<Histogram<u64>>>,
    /// Refused sends sent again after their `retry_after` (same `client_msg_id`).
    pub retried: AtomicU64,
    /// Refusals that end a send (not retried): with the acks, the sends answered for good.
    pub given_up: AtomicU64,
    pub send_errors: Mutex<BTreeMap<String, u64>>,
    pub connect_failures: Mutex<BTreeMap<String, u64>>,
    pub dropped: Mutex<BTreeMap<String, u64>>,
}

impl Shared {
    pub(super) fn new(conversations: &[Conversation]) -> Self {
        let shards = || {
            (0..SHARDS)
                .map(|_| Mutex::new(report::histogram()))
                .collect()
        };
        Self {
            index: conversations
                .iter()
                .enumerate()
                .map(|(i, c)| (c.id, i))
                .collect(),
            ids: conversations.iter().map(|c| c.id).collect(),
            last_acked: conversations.iter().map(|_| AtomicI64::new(0)).collect(),
            sent: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            write_failed: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            resyncs: AtomicU64::new(0),
            connected: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            delivery: shards(),
            ack: shards(),
            answer: shards(),
            retried: AtomicU64::new(0),
            given_up: AtomicU64::new(0),
            send_errors: Mutex::default(),
            connect_failures: Mutex::default(),
            dropped: Mutex::default(),
        }
    }
}

/// What a participant saw.
pub(crate) struct Outcome {
    pub slot: usize,
    pub tracks: HashMap<usize, Track>,
    pub unacked: u64,
    /// Chaos mode: its notifications.
    pub notifications: Option<notify::Seen>,
}

pub(crate) fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

pub(super) fn merged(shards: &[Mutex<Histogram<u64>>]) -> Latency {
    let mut all = report::histogram();
    for shard in shards {
        if let Ok(h) = shard.lock() {
            let _ = all.add(&*h);
        }
    }
    report::latency(&all)
}
