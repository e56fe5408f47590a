//! The hub: this process's connected devices, and the fan-out of frames to them.
//!
//! One task reads the bus (one Redis subscriber per process, or in-process) and hands each
//! frame to the bounded queue of every local connection of its recipients with `try_send`:
//! a connection whose queue is full is a slow consumer and is disconnected (close code
//! 4008), never waited on. Sessions revoked anywhere are closed here too (4004), and a
//! periodic check against PostgreSQL catches a revocation whose bus message was lost.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use sqlx::PgPool;
use tokio::sync::{broadcast::error::RecvError, mpsc};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::sync::StreamId;
use crate::frames::{ResyncScope, ServerFrame};
use crate::{
    bus::{Bus, BusEvent},
    chat::{DELIVER_TOPIC, Delivery},
    metrics::Metrics,
    notifications::{self, Change, Published},
};

/// Frames a connection may have waiting before it counts as a slow consumer.
pub const QUEUE_CAPACITY: usize = 256;
/// Bus topic carrying ids of revoked sessions (a JSON array).
pub const REVOKED_TOPIC: &str = "sessions_revoked";
const SESSION_CHECK_EVERY: Duration = Duration::from_secs(30);

/// Close codes of the protocol (see `protocol/README.md`).
pub mod close {
    pub const GOING_AWAY: u16 = 1001;
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

/// What a connection's writer receives.
pub enum Outgoing {
    /// A frame, serialised once for every recipient; `event` is its stream and number
    /// (conversation events, notifications), used to drop duplicates and fill gaps.
    Frame {
        event: Option<(StreamId, i64)>,
        text: Arc<str>,
    },
    /// Replay what was missed after these numbers (from the reader's `resume`).
    Resume {
        conversations: HashMap<Uuid, i64>,
        notifications: Option<i64>,
    },
    /// The client's first frame was not `resume`: release held live frames.
    Live,
}

/// Why a connection must end; the first reason given wins.
#[derive(Default)]
pub struct Kill {
    pub token: CancellationToken,
    reason: Mutex<Option<(u16, &'static str)>>,
}

impl Kill {
    pub fn close(&self, code: u16, reason: &'static str) {
        if let Ok(mut r) = self.reason.lock()
            && r.is_none()
        {
            *r = Some((code, reason));
        }
        self.token.cancel();
    }

    pub fn reason(&self) -> (u16, &'static str) {
        self.reason
            .lock()
            .ok()
            .and_then(|r| *r)
            .unwrap_or((1000, "closed"))
    }
}

struct Registered {
    id: u64,
    session: Uuid,
    tx: mpsc::Sender<Outgoing>,
    kill: Arc<Kill>,
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
    db: PgPool,
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
    /// Starts the dispatcher (bus → connections) and the periodic session check.
    pub fn start(bus: &Bus, db: PgPool, metrics: Arc<Metrics>) -> Self {
        let hub = Self {
            inner: Arc::new(Inner {
                instance: Uuid::new_v4(),
                conns: RwLock::new(HashMap::new()),
                next_id: AtomicU64::new(1),
                shutdown: CancellationToken::new(),
                counters: Counters::default(),
                presence_missed: Default::default(),
                metrics,
                db: db.clone(),
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
        let checker = hub.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(SESSION_CHECK_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut healthy = true;
            loop {
                tokio::select! {
                    () = checker.inner.shutdown.cancelled() => return,
                    _ = every.tick() => healthy = checker.maintain(&db, !healthy).await,
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
                c.kill
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

    pub fn register(
        &self,
        user: Uuid,
        session: Uuid,
    ) -> (u64, mpsc::Receiver<Outgoing>, Arc<Kill>) {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let kill = Arc::new(Kill::default());
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut conns) = self.inner.conns.write() {
            conns.entry(user).or_default().push(Registered {
                id,
                session,
                tx,
                kill: kill.clone(),
            });
        }
        self.inner.counters.open.fetch_add(1, Ordering::Relaxed);
        (id, rx, kill)
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
            match c.tx.try_send(item) {
                Ok(()) => {
                    self.inner
                        .counters
                        .frames_out
                        .fetch_add(1, Ordering::Relaxed);
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    self.inner
                        .counters
                        .slow_consumers
                        .fetch_add(1, Ordering::Relaxed);
                    c.kill
                        .close(close::SLOW_CONSUMER, "too slow: frames were piling up");
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
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
        match c.tx.try_send(Outgoing::Frame {
            event,
            text: text.clone(),
        }) {
            Ok(()) => {
                self.inner
                    .counters
                    .frames_out
                    .fetch_add(1, Ordering::Relaxed);
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                if !c.kill.token.is_cancelled() {
                    self.inner
                        .counters
                        .slow_consumers
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::info!(connection = c.id, "slow consumer disconnected");
                }
                c.kill
                    .close(close::SLOW_CONSUMER, "too slow: frames were piling up");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    fn on_message(&self, topic: &str, payload: &str) {
        match topic {
            DELIVER_TOPIC => match serde_json::from_str::<Delivery>(payload) {
                Ok(d) => match serde_json::to_string(&d.frame) {
                    Ok(text) => {
                        let event = d
                            .frame
                            .event_seq()
                            .map(|(c, seq)| (StreamId::Conversation(c), seq));
                        self.send_local(&d.users, event, &Arc::from(text));
                        if let Some(sent) = d.sent_at_us {
                            let lag = chrono::Utc::now().timestamp_micros() - sent;
                            let lag = Duration::from_micros(u64::try_from(lag).unwrap_or(0));
                            self.inner.metrics.fanout_lag.observe(lag);
                        }
                    }
                    Err(err) => tracing::warn!(error = %err, "cannot serialize a frame"),
                },
                Err(err) => tracing::warn!(error = %err, "bad delivery on the bus"),
            },
            notifications::BUS_TOPIC => match serde_json::from_str::<Published>(payload) {
                Ok(Published::Changes(changes)) => changes.iter().for_each(|c| self.notify(c)),
                Ok(Published::Batch(batch)) => self.notify_batch(batch),
                Err(err) => tracing::warn!(error = %err, "bad notification on the bus"),
            },
            REVOKED_TOPIC => {
                if let Ok(sessions) = serde_json::from_str::<Vec<Uuid>>(payload) {
                    self.revoke(&sessions);
                }
            }
            _ => {}
        }
    }

    /// Hands a notification change to the user's local connections.
    fn notify(&self, change: &Change) {
        let frame = super::notification_frame(change);
        if let Ok(text) = serde_json::to_string(&frame) {
            let event = Some((StreamId::Notifications, change.seq()));
            self.send_local(&[change.user()], event, &Arc::from(text));
        }
    }

    /// An announcement to many: its rows for the users connected here, in one query.
    fn notify_batch(&self, batch: Uuid) {
        let users: Vec<Uuid> = self.read().keys().copied().collect();
        if users.is_empty() {
            return;
        }
        let hub = self.clone();
        tokio::spawn(async move {
            match notifications::batch_for(&hub.inner.db, batch, &users).await {
                Ok(rows) => rows
                    .into_iter()
                    .for_each(|row| hub.notify(&Change::Created(row))),
                // Devices get them by number at their next resume.
                Err(err) => tracing::warn!(error = %err, "cannot read an announcement"),
            }
        });
    }

    /// Closes the connections of these sessions.
    pub fn revoke(&self, sessions: &[Uuid]) {
        let sessions: std::collections::HashSet<&Uuid> = sessions.iter().collect();
        for conns in self.read().values() {
            for c in conns.iter().filter(|c| sessions.contains(&c.session)) {
                c.kill.close(close::SESSION_REVOKED, "session revoked");
            }
        }
    }

    /// Frames may have been lost in transport: every client is told to resume.
    fn resync_all(&self) {
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

    /// One round of upkeep against PostgreSQL: closes revoked sessions and refreshes the
    /// presence heartbeat, rewriting this instance's counts when `repair` (the previous
    /// round failed) or when a count was missed since. `false` when the database could
    /// not be reached; the next round (in 30 s) repairs then.
    pub async fn maintain(&self, db: &PgPool, repair: bool) -> bool {
        self.check_sessions(db).await;
        let repair = self.inner.presence_missed.swap(false, Ordering::Relaxed) || repair;
        let sockets = self.sockets_per_user();
        match super::presence::heartbeat(db, self.instance(), &sockets, repair).await {
            Ok(()) => true,
            Err(err) => {
                tracing::warn!(error = %err, "presence heartbeat failed; will repair counts");
                false
            }
        }
    }

    /// Open sockets per user on this instance.
    fn sockets_per_user(&self) -> Vec<(Uuid, i32)> {
        self.read()
            .iter()
            .map(|(user, conns)| (*user, i32::try_from(conns.len()).unwrap_or(i32::MAX)))
            .collect()
    }

    /// Closes connections whose session was revoked (or account deactivated) if the bus
    /// message telling so was lost.
    async fn check_sessions(&self, db: &PgPool) {
        let sessions: Vec<Uuid> = self.read().values().flatten().map(|c| c.session).collect();
        if sessions.is_empty() {
            return;
        }
        let alive = sqlx::query_scalar!(
            "SELECT s.id FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.id = ANY($1) AND s.revoked_at IS NULL AND u.deactivated_at IS NULL",
            &sessions
        )
        .fetch_all(db)
        .await;
        match alive {
            Ok(alive) => {
                let alive: std::collections::HashSet<Uuid> = alive.into_iter().collect();
                let dead: Vec<Uuid> = sessions
                    .into_iter()
                    .filter(|s| !alive.contains(s))
                    .collect();
                if !dead.is_empty() {
                    self.revoke(&dead);
                }
            }
            Err(err) => tracing::warn!(error = %err, "session check failed"),
        }
    }
}

/// Announces revoked sessions to every instance (and this one).
pub async fn publish_revoked(bus: &Bus, sessions: &[Uuid]) {
    if sessions.is_empty() {
        return;
    }
    if let Ok(payload) = serde_json::to_string(sessions) {
        bus.publish(REVOKED_TOPIC, &payload).await;
    }
}
