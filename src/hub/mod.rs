//! The hub: this process's connected devices, and the fan-out of frames to them. Generic:
//! it routes serialised frames to users and knows nothing of what they say.
//!
//! One task reads the bus (one Redis subscriber per process, or in-process) and hands each
//! frame to the bounded queue of every local connection of its recipients with `try_send`:
//! a connection whose queue is full is a slow consumer and is disconnected (close code
//! 4008), never waited on. Sessions revoked anywhere are closed here too (4004).
//!
//! A delivery crosses the bus as a small JSON header (recipients, stream and number, when
//! it was published) and the frame's text, serialised once by the publisher and never
//! parsed again: one line each, and several deliveries may share one bus message.

use std::{
    collections::HashMap,
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

mod mailbox;

pub use mailbox::{Mailbox, Outgoing, QUEUE_CAPACITY, Resume};

use crate::{
    bus::{Bus, BusEvent},
    frames::{ResyncScope, ServerFrame, StreamId},
    metrics::Metrics,
};

/// Bus topic carrying ids of revoked sessions (a JSON array).
pub const REVOKED_TOPIC: &str = "sessions_revoked";
/// Bus topic carrying deliveries (headers and frames, a line each).
pub const DELIVER_TOPIC: &str = "deliver";

/// Close codes of the protocol (see `protocol/README.md`).
pub mod close {
    pub const GOING_AWAY: u16 = 1001;
    /// The client broke the WebSocket protocol.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A text frame that is not UTF-8.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// A frame over the size limit (64 KiB).
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    pub const UNAUTHENTICATED: u16 = 4001;
    /// A dependency (the database) is unavailable: reconnect after a short wait.
    pub const TRY_AGAIN_LATER: u16 = 1013;
    pub const TOKEN_EXPIRED: u16 = 4003;
    pub const SESSION_REVOKED: u16 = 4004;
    pub const SLOW_CONSUMER: u16 = 4008;
    pub const HEARTBEAT_TIMEOUT: u16 = 4009;
    /// Too many sockets open, or opened too often, for this user.
    pub const TOO_MANY_CONNECTIONS: u16 = 4029;
}

/// A connection of this process.
struct Registered {
    id: u64,
    session: Uuid,
    mailbox: Arc<Mailbox>,
}

#[derive(Default)]
pub struct Counters {
    pub open: AtomicU64,
    pub frames_out: AtomicU64,
    pub slow_consumers: AtomicU64,
}

#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    /// This process, for presence counts.
    instance: Uuid,
    conns: RwLock<HashMap<Uuid, Vec<Registered>>>,
    next_id: AtomicU64,
    shutdown: CancellationToken,
    counters: Counters,
    /// A presence count could not be recorded (database unreachable): the next upkeep
    /// round rewrites this instance's counts.
    presence_missed: AtomicBool,
    metrics: Arc<Metrics>,
    /// Connection tasks still running (their presence not yet removed).
    tasks: std::sync::atomic::AtomicUsize,
    tasks_done: tokio::sync::Notify,
}

/// Held by a connection's task until its end (presence removed): shutdown waits for all.
pub struct TaskGuard(Hub);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        if self.0.inner.tasks.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.inner.tasks_done.notify_waiters();
        }
    }
}

impl Hub {
    /// Starts the dispatcher (bus → connections).
    pub fn start(bus: &Bus, metrics: Arc<Metrics>) -> Self {
        let hub = Self {
            inner: Arc::new(Inner {
                instance: bus.instance(),
                conns: RwLock::new(HashMap::new()),
                next_id: AtomicU64::new(1),
                shutdown: CancellationToken::new(),
                counters: Counters::default(),
                presence_missed: Default::default(),
                metrics,
                tasks: Default::default(),
                tasks_done: Default::default(),
            }),
        };
        let mut events = bus.subscribe();
        let dispatcher = hub.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = dispatcher.inner.shutdown.cancelled() => return,
                    event = events.recv() => match event {
                        Ok(BusEvent::Message { topic, payload }) => dispatcher.on_message(&topic, &payload),
                        Ok(BusEvent::Resync) | Err(RecvError::Lagged(_)) => dispatcher.resync_all(),
                        Err(RecvError::Closed) => return,
                    },
                }
            }
        });
        hub
    }

    pub fn instance(&self) -> Uuid {
        self.inner.instance
    }

    pub fn counters(&self) -> &Counters {
        &self.inner.counters
    }

    /// Resolves when the server shuts down.
    pub fn shutting_down(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.inner.shutdown.cancelled()
    }

    /// Tells every connection to go elsewhere (1001) and stops the hub's tasks.
    pub fn shutdown(&self) {
        self.inner.shutdown.cancel();
        for conns in self.read().values() {
            for c in conns {
                c.mailbox
                    .close(close::GOING_AWAY, "server shutting down; reconnect");
            }
        }
    }

    /// Whether shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutdown.is_cancelled()
    }

    /// Counts a connection task until the guard is dropped.
    pub fn task(&self) -> TaskGuard {
        self.inner.tasks.fetch_add(1, Ordering::AcqRel);
        TaskGuard(self.clone())
    }

    /// Waits (at most `grace`) until every connection task has ended; `false` on time-out.
    pub async fn drained(&self, grace: Duration) -> bool {
        let wait = async {
            loop {
                let done = self.inner.tasks_done.notified();
                if self.inner.tasks.load(Ordering::Acquire) == 0 {
                    return;
                }
                done.await;
            }
        };
        tokio::time::timeout(grace, wait).await.is_ok()
    }

    /// Registers a connection: its id, and the mailbox its frames are queued in.
    pub fn register(&self, user: Uuid, session: Uuid) -> (u64, Arc<Mailbox>) {
        let mailbox = Arc::new(Mailbox::default());
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut conns) = self.inner.conns.write() {
            conns.entry(user).or_default().push(Registered {
                id,
                session,
                mailbox: mailbox.clone(),
            });
        }
        self.inner.counters.open.fetch_add(1, Ordering::Relaxed);
        (id, mailbox)
    }

    pub fn unregister(&self, user: Uuid, id: u64) {
        if let Ok(mut conns) = self.inner.conns.write()
            && let Some(list) = conns.get_mut(&user)
        {
            list.retain(|c| c.id != id);
            if list.is_empty() {
                conns.remove(&user);
            }
        }
        self.inner.counters.open.fetch_sub(1, Ordering::Relaxed);
    }

    /// Queues an item for one connection (answers to its own requests, resume).
    pub fn send_to_connection(&self, user: Uuid, id: u64, item: Outgoing) {
        let conns = self.read();
        if let Some(c) = conns.get(&user).into_iter().flatten().find(|c| c.id == id) {
            self.queue(c, item);
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Uuid, Vec<Registered>>> {
        // A panic while holding the lock cannot leave the map inconsistent (no partial
        // updates), so a poisoned lock is still usable.
        self.inner.conns.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands a frame to every local connection of `users`, never waiting.
    pub fn send_local(&self, users: &[Uuid], event: Option<(StreamId, i64)>, text: &Arc<str>) {
        let conns = self.read();
        for user in users {
            for c in conns.get(user).into_iter().flatten() {
                self.offer(c, event, text);
            }
        }
    }

    fn offer(&self, c: &Registered, event: Option<(StreamId, i64)>, text: &Arc<str>) {
        let item = Outgoing::Frame {
            event,
            text: text.clone(),
        };
        self.queue(c, item);
    }

    /// Queues an item for a connection; a full queue cuts it as a slow consumer.
    fn queue(&self, c: &Registered, item: Outgoing) {
        match c.mailbox.push(item) {
            Ok(()) => {
                self.inner
                    .counters
                    .frames_out
                    .fetch_add(1, Ordering::Relaxed);
            }
            Err(mailbox::Full) => {
                if !c.mailbox.is_closed() {
                    self.inner
                        .counters
                        .slow_consumers
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::info!(connection = c.id, "slow consumer disconnected");
                }
                c.mailbox
                    .close(close::SLOW_CONSUMER, "too slow: frames were piling up");
            }
        }
    }

    fn on_message(&self, topic: &str, payload: &str) {
        match topic {
            DELIVER_TOPIC => {
                let mut lines = payload.split('\n');
                while let (Some(header), Some(text)) = (lines.next(), lines.next()) {
                    match serde_json::from_str::<Header>(header) {
                        Ok(h) => {
                            self.send_local(&h.users, h.event, &Arc::from(text));
                            if let Some(sent) = h.at {
                                let lag = chrono::Utc::now().timestamp_micros() - sent;
                                let lag = Duration::from_micros(u64::try_from(lag).unwrap_or(0));
                                self.inner.metrics.fanout_lag.record(lag);
                            }
                        }
                        Err(err) => tracing::warn!(error = %err, "bad delivery on the bus"),
                    }
                }
            }
            REVOKED_TOPIC => {
                if let Ok(sessions) = serde_json::from_str::<Vec<Uuid>>(payload) {
                    self.revoke(&sessions);
                }
            }
            _ => {}
        }
    }

    /// The users with a connection here.
    pub fn local_users(&self) -> Vec<Uuid> {
        self.read().keys().copied().collect()
    }

    /// The sessions of the connections here.
    pub fn sessions(&self) -> Vec<Uuid> {
        self.read().values().flatten().map(|c| c.session).collect()
    }

    /// Closes the connections of these sessions.
    pub fn revoke(&self, sessions: &[Uuid]) {
        let sessions: std::collections::HashSet<&Uuid> = sessions.iter().collect();
        for conns in self.read().values() {
            for c in conns.iter().filter(|c| sessions.contains(&c.session)) {
                c.mailbox.close(close::SESSION_REVOKED, "session revoked");
            }
        }
    }

    /// Frames may have been lost in transport: every client is told to resume.
    pub fn resync_all(&self) {
        let frame = ServerFrame::ResyncRequired {
            conversation_id: None,
            scope: ResyncScope::All,
            reason: "live updates may have been missed; send resume".into(),
        };
        let Ok(text) = serde_json::to_string(&frame) else {
            return;
        };
        let text: Arc<str> = Arc::from(text);
        for conns in self.read().values() {
            for c in conns {
                self.offer(c, None, &text);
            }
        }
    }

    /// A socket's presence could not be counted or uncounted: repair at the next round.
    pub fn presence_missed(&self) {
        self.inner.presence_missed.store(true, Ordering::Relaxed);
    }

    /// Whether a presence count was missed since the last call.
    pub fn take_presence_missed(&self) -> bool {
        self.inner.presence_missed.swap(false, Ordering::Relaxed)
    }

    /// Open sockets per user on this instance.
    pub fn sockets_per_user(&self) -> Vec<(Uuid, i32)> {
        self.read()
            .iter()
            .map(|(user, conns)| (*user, i32::try_from(conns.len()).unwrap_or(i32::MAX)))
            .collect()
    }
}

/// Announces revoked sessions to every instance (and this one), waiting for Redis to take
/// the message when it is up: a logout applies at once everywhere.
pub async fn publish_revoked(bus: &Bus, sessions: &[Uuid]) {
    if sessions.is_empty() {
        return;
    }
    if let Ok(payload) = serde_json::to_string(sessions) {
        bus.publish_confirmed(REVOKED_TOPIC, &payload).await;
    }
}

/// One delivery's header on the bus.
#[derive(Serialize, Deserialize)]
struct Header<'a> {
    users: std::borrow::Cow<'a, [Uuid]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    event: Option<(StreamId, i64)>,
    /// When it was published (Unix microseconds), for the fan-out lag metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    at: Option<i64>,
}

/// A frame for some users' devices: its text (serialised once) and, for numbered frames,
/// its stream and number.
pub struct Delivery<'a> {
    pub users: &'a [Uuid],
    pub event: Option<(StreamId, i64)>,
    pub text: &'a str,
}

/// Publishes committed frames to every device of their users in one bus message, sent
/// to this instance and to the instances that hold one of the users.
pub async fn publish(bus: &Bus, deliveries: &[Delivery<'_>]) {
    let at = Some(chrono::Utc::now().timestamp_micros());
    let mut payload = String::new();
    let mut users: Vec<Uuid> = Vec::new();
    for d in deliveries.iter().filter(|d| !d.users.is_empty()) {
        users.extend_from_slice(d.users);
        // Frames are serialised JSON: a raw line break cannot occur in them.
        if d.text.contains('\n') {
            tracing::warn!("a frame with a line break was not published");
            continue;
        }
        let header = Header {
            users: std::borrow::Cow::Borrowed(d.users),
            event: d.event,
            at,
        };
        match serde_json::to_string(&header) {
            Ok(h) => {
                if !payload.is_empty() {
                    payload.push('\n');
                }
                payload.push_str(&h);
                payload.push('\n');
                payload.push_str(d.text);
            }
            Err(err) => tracing::warn!(error = %err, "cannot serialize a delivery"),
        }
    }
    if !payload.is_empty() {
        users.sort_unstable();
        users.dedup();
        bus.publish_to_users(&users, DELIVER_TOPIC, &payload).await;
    }
}
