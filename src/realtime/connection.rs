//! One WebSocket connection: authentication, then one task that reads the client's frames
//! (`incoming.rs`) and writes what is queued for it (`writer.rs`) until either side stops.
//!
//! Tens of thousands of sockets are idle at any time, so an idle connection is kept
//! small: one task, one timer for all its deadlines, a mailbox with no buffer until a
//! frame arrives (`hub::Mailbox`), and the work a client frame starts boxed only while
//! it runs.

use std::{collections::HashMap, pin::Pin, sync::Arc, time::Duration};

use futures_util::{SinkExt, StreamExt};
use poem::web::websocket::{CloseCode, Message, WebSocketStream};
use tokio::time::Instant;
use uuid::Uuid;

use crate::limits::Slot;

use super::{
    presence,
    sync::{Membership, Sync},
    writer::{HEARTBEAT, RESUME_WINDOW, text},
};
use crate::{
    auth::authenticate,
    bus::RedisLink,
    chat,
    error::{ApiError, ErrorCode},
    limits::{Key, Limit},
    state::AppState,
};
use crate::{
    frames::{ClientFrame, PROTOCOL_VERSION, ServerFrame},
    hub::{Mailbox, Outgoing, close},
};

pub const AUTH_TIMEOUT: Duration = Duration::from_secs(5);
/// A peer silent this long (no frame, no pong) is dead.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Queued items written before one flush.
const BATCH: usize = 64;

/// Work a client frame started that must finish before the next frame is read (so that
/// a client's frames are handled in order), while queued frames keep being written.
pub(super) type Busy = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A connection once authenticated and registered.
pub(super) struct Connection {
    pub state: AppState,
    pub user: Uuid,
    /// Its id in the hub.
    pub id: u64,
    pub ws: WebSocketStream,
    pub mailbox: Arc<Mailbox>,
    pub sync: Sync,
    /// The memberships read when the connection started: a first `resume` uses them.
    pub seed: Option<Vec<Membership>>,
    /// Work of the last client frame, still running.
    pub busy: Option<Busy>,
    /// When this connection last sent typing to each conversation.
    pub typing_at: HashMap<Uuid, Instant>,
    /// Whether the client's first frame is still to come.
    pub first: bool,
    pub deadlines: Deadlines,
}

/// Everything this connection must do at a given time, served by one timer.
pub(super) struct Deadlines {
    pub heartbeat: Instant,
    /// The access token expires.
    pub expiry: Instant,
    /// Silent since too long.
    pub idle: Instant,
    /// Live frames held for a `resume` are released (while holding).
    pub window: Instant,
    /// A frame past a gap waits for the missing one until then.
    pub gap: Option<Instant>,
}

impl Deadlines {
    fn next(&self, holding: bool) -> Instant {
        let mut next = self.heartbeat.min(self.expiry).min(self.idle);
        if holding {
            next = next.min(self.window);
        }
        self.gap.map_or(next, |g| next.min(g))
    }
}

/// Runs a connection to its end. `header_token` comes from `Authorization: Bearer`.
/// `waiting` is the socket's place among its address's unauthenticated sockets, given back
/// once it has authenticated (or not).
pub fn serve(
    state: AppState,
    socket: WebSocketStream,
    header_token: Option<String>,
    waiting: Option<Slot>,
) -> impl Future<Output = ()> + Send {
    // Shutdown waits for this task to end, its presence removed.
    let task = state.hub.task();
    // Opening is boxed, outside the connection's own future: its queries and what it
    // was given are done with once the connection runs, and must not make every idle
    // connection's task larger.
    let opening = Box::pin(open(state, socket, header_token, waiting));
    async move {
        let _task = task;
        let Some(mut connection) = opening.await else {
            return;
        };
        connection.run().await;
        let Connection {
            state, user, id, ..
        } = connection;
        state.hub.unregister(user, id);
        Box::pin(presence::disconnected(state, user)).await;
    }
}

/// Authenticates and registers a connection, and greets its client; `None` when it was
/// refused (the socket then closed with the reason).
async fn open(
    state: AppState,
    mut ws: WebSocketStream,
    header_token: Option<String>,
    waiting: Option<Slot>,
) -> Option<Connection> {
    let token = match header_token {
        Some(t) => Some(t),
        None => match tokio::time::timeout(AUTH_TIMEOUT, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => match ClientFrame::parse(&t) {
                Ok(ClientFrame::Auth { token }) => Some(token),
                _ => None,
            },
            _ => None,
        },
    };
    drop(waiting);
    let Some(token) = token else {
        refuse(&mut ws, close::UNAUTHENTICATED, "send a bearer token first").await;
        return None;
    };
    // Each step's futures are boxed, so that only one is held at a time: thousands of
    // sockets may be opening at once (a reconnect storm).
    let checked = state
        .with_socket_db(Box::pin(authenticate(
            &state.tokens,
            &state.db,
            &state.sessions,
            &token,
        )))
        .await;
    let (user, expires_at) = match checked {
        Ok(user) => {
            let exp = state.tokens.verify(&token).map(|c| c.exp).unwrap_or(0);
            (user, exp)
        }
        Err(err) => {
            let (code, reason) = match err.code {
                ErrorCode::TokenExpired => (close::TOKEN_EXPIRED, "authentication failed"),
                // Logged out, password changed, deactivated: as for a live socket.
                ErrorCode::SessionRevoked => (close::SESSION_REVOKED, "session revoked"),
                // The token may be fine: the database could not tell. Not the client's fault.
                ErrorCode::ServiceUnavailable => (
                    close::TRY_AGAIN_LATER,
                    "service unavailable; reconnect shortly",
                ),
                _ => (close::UNAUTHENTICATED, "authentication failed"),
            };
            let _ = ws
                .send(Message::Text(
                    text(&error_frame(None, &err)).unwrap_or_default(),
                ))
                .await;
            refuse(&mut ws, code, reason).await;
            return None;
        }
    };
    drop(token);
    // Each socket opened updates presence: openings are limited per user, and so are the
    // sockets open at once (counted in PostgreSQL's presence, on every instance).
    if let Err(err) = Box::pin(state.limits.check(Limit::Connects, Key::user(user.id))).await {
        too_many(&mut ws, &err).await;
        return None;
    }
    let max = state.settings.rate_limits.max_connections_per_user;
    let announced = state
        .with_socket_db(Box::pin(presence::connected(&state, user.id, max)))
        .await;
    let contacts = match announced {
        Ok(Some(frames)) => frames,
        Ok(None) => {
            let mut err = ApiError::new(
                poem::http::StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::RateLimited,
                format!("At most {max} sockets may be open at once; close one first."),
            );
            err.retry_after = Some(HEARTBEAT.as_secs());
            too_many(&mut ws, &err).await;
            return None;
        }
        // Other instances find this one through its presence rows: a socket they cannot
        // find would miss their frames, so with Redis it is refused until presence works.
        Err(err) if state.bus.redis_link() != RedisLink::Disabled => {
            tracing::warn!(error = %err, "presence unavailable; socket refused");
            let reason = "service unavailable; reconnect shortly";
            refuse(&mut ws, close::TRY_AGAIN_LATER, reason).await;
            return None;
        }
        Err(err) => {
            tracing::warn!(error = %err, "presence unavailable");
            state.hub.presence_missed();
            Vec::new()
        }
    };
    let (id, mailbox) = state.hub.register(user.id, user.session_id);
    // What the user belongs to, read once registered: every frame committed after this
    // reaches the connection, every frame before is the client's to resume.
    let seed = state
        .with_socket_db(Box::pin(chat::log::memberships(&state.db, user.id)))
        .await;
    let greeted = match seed {
        Ok(seed) => {
            let ready = ServerFrame::Ready {
                protocol: PROTOCOL_VERSION,
                user_id: user.id,
                session_id: user.session_id,
                heartbeat_secs: HEARTBEAT.as_secs(),
            };
            let sent = ws.send(Message::Text(text(&ready).unwrap_or_default()));
            sent.await.is_ok().then_some(seed)
        }
        Err(_) => {
            let reason = "service unavailable; reconnect shortly";
            refuse(&mut ws, close::TRY_AGAIN_LATER, reason).await;
            None
        }
    };
    let Some((memberships, notifications)) = greeted else {
        state.hub.unregister(user.id, id);
        Box::pin(presence::disconnected(state, user.id)).await;
        return None;
    };
    for frame in &contacts {
        reply(&state, user.id, id, frame);
    }
    let now = Instant::now();
    let until_expiry = u64::try_from(expires_at - chrono::Utc::now().timestamp()).unwrap_or(0);
    Some(Connection {
        sync: Sync::new(&memberships, notifications),
        seed: Some(memberships),
        state,
        user: user.id,
        id,
        ws,
        mailbox,
        busy: None,
        typing_at: HashMap::new(),
        first: true,
        deadlines: Deadlines {
            heartbeat: now + HEARTBEAT,
            expiry: now + Duration::from_secs(until_expiry),
            idle: now + IDLE_TIMEOUT,
            window: now + RESUME_WINDOW,
            gap: None,
        },
    })
}

impl Connection {
    /// Reads the client's frames and writes what is queued for it, until one side stops;
    /// then says why in a close frame.
    async fn run(&mut self) {
        let mailbox = self.mailbox.clone();
        let timer = tokio::time::sleep_until(self.deadlines.next(true));
        tokio::pin!(timer);
        let mut items = Vec::new();
        loop {
            let ok = tokio::select! {
                taken = mailbox.recv(&mut items, BATCH) => {
                    // Closed: by the hub (slow, revoked, shutdown) or a deadline.
                    if taken.is_none() {
                        break;
                    }
                    let mut ok = true;
                    for item in items.drain(..) {
                        ok = ok && self.dispatch(item).await;
                    }
                    // A burst's buffer is not kept by an idle connection.
                    if items.capacity() > 8 {
                        items = Vec::new();
                    }
                    ok
                }
                () = async {
                    if let Some(work) = self.busy.as_mut() {
                        work.await;
                    }
                }, if self.busy.is_some() => {
                    self.busy = None;
                    true
                }
                incoming = self.ws.next(), if self.busy.is_none() => match incoming {
                    Some(Ok(message)) => {
                        self.deadlines.idle = Instant::now() + IDLE_TIMEOUT;
                        self.on_message(message)
                    }
                    // The peer left, or broke the protocol: say which.
                    None => false,
                    Some(Err(err)) => {
                        let (code, reason) = read_error(&err);
                        mailbox.close(code, reason);
                        false
                    }
                },
                // Boxed: timers are rare, and their work (a gap filled from PostgreSQL)
                // must not make every connection's task larger.
                () = &mut timer => Box::pin(self.on_time()).await,
            };
            if !ok {
                mailbox.close(1000, "closed");
                break;
            }
            // Writes queued by tungstenite (a pong, a batch) go out now.
            if self.ws.flush().await.is_err() {
                mailbox.close(1006, "write failed");
                break;
            }
            if self.sync.has_gaps() && self.deadlines.gap.is_none() {
                self.deadlines.gap = Some(Instant::now() + super::writer::GAP_WAIT);
            }
            let next = self.deadlines.next(self.sync.is_holding());
            if next < timer.deadline() || timer.is_elapsed() {
                timer.as_mut().reset(next);
            }
        }
        let (code, reason) = mailbox.reason();
        let close = Message::Close(Some((CloseCode::from(code), reason.to_owned())));
        let _ = self.ws.send(close).await;
        let _ = self.ws.close().await;
    }

    /// Whatever is due now; `false` when the connection must end.
    async fn on_time(&mut self) -> bool {
        let now = Instant::now();
        let d = &mut self.deadlines;
        if now >= d.expiry {
            let reason = "access token expired; reconnect with a fresh one";
            self.mailbox.close(close::TOKEN_EXPIRED, reason);
            return false;
        }
        if now >= d.idle {
            self.mailbox
                .close(close::HEARTBEAT_TIMEOUT, "no sign of life");
            return false;
        }
        if now >= d.heartbeat {
            d.heartbeat = now + HEARTBEAT;
            if self.ws.feed(Message::Ping(Vec::new())).await.is_err() {
                return false;
            }
        }
        if d.gap.is_some_and(|g| now >= g) {
            d.gap = None;
            let actions = self.sync.expire_gaps();
            if !self.carry_out(actions).await {
                return false;
            }
        }
        if self.sync.is_holding() && now >= self.deadlines.window {
            let actions = self.go_live();
            return self.carry_out(actions).await;
        }
        true
    }
}

/// The close code for a frame that could not be read (RFC 6455, 7.4.1). poem hands
/// tungstenite's errors over as text, so they are told apart by it.
fn read_error(err: &std::io::Error) -> (u16, &'static str) {
    let text = err.to_string();
    if text.starts_with("Space limit exceeded") {
        (close::MESSAGE_TOO_BIG, "frame too large (over 64 KiB)")
    } else if text.starts_with("UTF-8 encoding error") {
        (close::INVALID_PAYLOAD, "text frame is not valid UTF-8")
    } else if text.starts_with("WebSocket protocol error") {
        (close::PROTOCOL_ERROR, "protocol error")
    } else {
        (1000, "closed")
    }
}

async fn refuse(ws: &mut WebSocketStream, code: u16, reason: &str) {
    let _ = ws
        .send(Message::Close(Some((
            CloseCode::from(code),
            reason.to_owned(),
        ))))
        .await;
    let _ = ws.close().await;
}

/// Refuses a socket over the user's limits: an error frame saying when to retry, then 4029.
async fn too_many(ws: &mut WebSocketStream, err: &ApiError) {
    if let Some(t) = text(&error_frame(None, err)) {
        let _ = ws.send(Message::Text(t)).await;
    }
    refuse(ws, close::TOO_MANY_CONNECTIONS, "too many connections").await;
}

pub(super) fn error_frame(reference: Option<String>, err: &ApiError) -> ServerFrame {
    let code = poem_openapi::types::ToJSON::to_json(&err.code)
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{:?}", err.code));
    let message = match err.fields.first() {
        Some(f) => format!("{}: {}", f.field, f.message),
        None => err.message.clone(),
    };
    ServerFrame::Error {
        reference,
        code,
        message,
        retry_after: err.retry_after,
    }
}

/// Answers to this connection go through its mailbox like every other frame, so that
/// they keep their place among the frames queued before them.
pub(super) fn reply(state: &AppState, user: Uuid, conn: u64, frame: &ServerFrame) {
    if let Some(t) = text(frame) {
        state.hub.send_to_connection(
            user,
            conn,
            Outgoing::Frame {
                event: None,
                text: Arc::from(t),
            },
        );
    }
}
