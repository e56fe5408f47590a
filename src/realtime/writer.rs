//! A connection's writer: the only task that writes to its socket. It takes queued frames
//! in batches (many `feed`s, one flush), runs numbered frames through the connection's
//! [`Sync`] machine, and carries out what the machine asks: send, replay from PostgreSQL,
//! tell the client to refetch.

use std::{collections::VecDeque, sync::Arc, time::Duration};

use chrono::Utc;
use futures_util::{SinkExt, stream::SplitSink};
use poem::web::websocket::{CloseCode, Message, WebSocketStream};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::sync::{Action, Membership, Replayed, StreamId, Sync};
use crate::{chat::log, notifications, state::AppState};
use crate::{
    frames::{ResyncScope, ServerFrame},
    hub::{Kill, Outgoing, close},
};

pub type Sink = SplitSink<WebSocketStream, Message>;

pub const HEARTBEAT: Duration = Duration::from_secs(25);
/// Frames written before one flush.
const BATCH: usize = 64;
/// Most events replayed for one stream; beyond, the client refetches over REST.
pub const REPLAY_LIMIT: i64 = 500;
/// Live conversation frames wait this long for a `resume` before being sent anyway.
pub const RESUME_WINDOW: Duration = Duration::from_secs(2);
/// A frame that arrives past a gap waits this long for the missing one (the bus does not
/// keep order between instances) before the gap is filled from PostgreSQL.
const GAP_WAIT: Duration = Duration::from_millis(50);

pub fn text(frame: &ServerFrame) -> Option<String> {
    serde_json::to_string(frame).ok()
}

pub struct Writer {
    pub state: AppState,
    pub user: Uuid,
    pub sink: Sink,
    pub sync: Sync,
    /// The memberships read when the connection started: a first `resume` uses them.
    pub seed: Option<Vec<Membership>>,
    pub kill: Arc<Kill>,
    pub expires_at: i64,
}

impl Writer {
    pub async fn run(mut self, mut rx: mpsc::Receiver<Outgoing>) {
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        heartbeat.tick().await;
        let until_expiry = Duration::from_secs(
            u64::try_from(self.expires_at - Utc::now().timestamp()).unwrap_or(0),
        );
        let expiry = tokio::time::sleep(until_expiry);
        tokio::pin!(expiry);
        let window = tokio::time::sleep(RESUME_WINDOW);
        tokio::pin!(window);
        let gap = tokio::time::sleep(GAP_WAIT);
        tokio::pin!(gap);
        let mut gap_armed = false;
        let kill = self.kill.clone();
        loop {
            let ok = tokio::select! {
                () = kill.token.cancelled() => break,
                () = &mut window, if self.sync.is_holding() => {
                    let actions = self.go_live();
                    self.carry_out(actions).await
                }
                () = &mut gap, if gap_armed => {
                    gap_armed = false;
                    let actions = self.sync.expire_gaps();
                    self.carry_out(actions).await
                }
                () = &mut expiry => {
                    kill.close(close::TOKEN_EXPIRED, "access token expired; reconnect with a fresh one");
                    break;
                }
                _ = heartbeat.tick() => self.sink.send(Message::Ping(Vec::new())).await.is_ok(),
                item = rx.recv() => {
                    let Some(first) = item else { break };
                    let mut ok = self.dispatch(first).await;
                    for _ in 1..BATCH {
                        if !ok { break; }
                        match rx.try_recv() {
                            Ok(next) => ok = self.dispatch(next).await,
                            Err(_) => break,
                        }
                    }
                    ok
                }
            };
            if !ok || self.sink.flush().await.is_err() {
                kill.close(1006, "write failed");
                break;
            }
            if self.sync.has_gaps() && !gap_armed {
                gap_armed = true;
                gap.as_mut().reset(tokio::time::Instant::now() + GAP_WAIT);
            }
        }
        let (code, reason) = kill.reason();
        let _ = self
            .sink
            .send(Message::Close(Some((
                CloseCode::from(code),
                reason.to_owned(),
            ))))
            .await;
        let _ = self.sink.close().await;
    }

    fn go_live(&mut self) -> Vec<Action> {
        self.seed = None;
        self.sync.go_live()
    }

    /// Handles one queued item; `false` when the socket is gone.
    async fn dispatch(&mut self, item: Outgoing) -> bool {
        match item {
            Outgoing::Frame { event: None, text } => self.feed(&text).await,
            Outgoing::Frame {
                event: Some((stream, seq)),
                text,
            } => {
                let actions = self.sync.offer(stream, seq, text);
                self.carry_out(actions).await
            }
            Outgoing::Live => {
                let actions = self.go_live();
                self.carry_out(actions).await
            }
            Outgoing::Resume {
                conversations,
                notifications,
            } => {
                let seed = self.seed.take().filter(|_| self.sync.is_holding());
                let memberships = match seed {
                    Some(m) => m,
                    None => match self.load_memberships().await {
                        Some(m) => m,
                        None => {
                            return self
                                .resync(
                                    None,
                                    ResyncScope::All,
                                    "resume unavailable right now; retry shortly",
                                )
                                .await;
                        }
                    },
                };
                let actions = self
                    .sync
                    .resume(&memberships, &conversations, notifications);
                self.carry_out(actions).await
            }
        }
    }

    async fn load_memberships(&self) -> Option<Vec<Membership>> {
        let loaded = self
            .state
            .with_socket_db(log::memberships(&self.state.db, self.user))
            .await;
        loaded.ok().map(|(rows, _)| rows)
    }

    /// Carries out the machine's actions in order (a replay's own actions first).
    async fn carry_out(&mut self, actions: Vec<Action>) -> bool {
        let mut queue: VecDeque<Action> = actions.into();
        let mut replayed = 0u64;
        while let Some(action) = queue.pop_front() {
            let ok = match action {
                Action::Send(text) => self.feed(&text).await,
                Action::Replay { stream, after } => {
                    let more = match self.replay(stream, after).await {
                        Some(answer) => {
                            replayed += answer.frames.len() as u64;
                            self.sync.replayed(stream, answer)
                        }
                        None => self.sync.give_up(stream),
                    };
                    for a in more.into_iter().rev() {
                        queue.push_front(a);
                    }
                    true
                }
                Action::Resync(stream) => {
                    let (conversation, scope, reason) = match stream {
                        StreamId::Conversation(c) => (
                            Some(c),
                            ResyncScope::Conversation,
                            "too much was missed to replay, or history is unavailable right now; refetch over REST",
                        ),
                        StreamId::Notifications => (
                            None,
                            ResyncScope::Notifications,
                            "too many notifications were missed to replay; refetch over REST",
                        ),
                    };
                    self.resync(conversation, scope, reason).await
                }
                Action::Resumed => {
                    let frame = ServerFrame::Resumed {
                        replayed: std::mem::take(&mut replayed),
                        notifications_seq: self.sync.notifications_seq(),
                    };
                    match text(&frame) {
                        Some(t) => self.feed(&t).await,
                        None => false,
                    }
                }
            };
            if !ok {
                return false;
            }
        }
        true
    }

    /// The stored frames of `stream` after `after`; `None` if the store cannot answer.
    async fn replay(&self, stream: StreamId, after: i64) -> Option<Replayed> {
        let (state, user) = (&self.state, self.user);
        match stream {
            StreamId::Conversation(c) => {
                let stored = state
                    .with_socket_db(log::events_after(&state.db, user, c, after, REPLAY_LIMIT))
                    .await
                    .ok()?;
                let Some((frames, last)) = stored else {
                    return Some(Replayed::default());
                };
                let complete = frames.last().is_none_or(|f| f.0 >= last);
                Some(Replayed {
                    frames: frames
                        .into_iter()
                        .map(|(seq, f)| (seq, Arc::from(f)))
                        .collect(),
                    last: Some(last),
                    complete,
                })
            }
            StreamId::Notifications => {
                let (changes, last, complete) = state
                    .with_socket_db(notifications::changes_after(
                        &state.db,
                        user,
                        after,
                        REPLAY_LIMIT,
                    ))
                    .await
                    .ok()?;
                let frames = changes
                    .iter()
                    .filter_map(|c| {
                        let t = text(&notifications::frame(c))?;
                        Some((c.seq(), Arc::from(t)))
                    })
                    .collect();
                Some(Replayed {
                    frames,
                    last: Some(last),
                    complete,
                })
            }
        }
    }

    async fn resync(
        &mut self,
        conversation: Option<Uuid>,
        scope: ResyncScope,
        reason: &str,
    ) -> bool {
        let frame = ServerFrame::ResyncRequired {
            conversation_id: conversation,
            scope,
            reason: reason.into(),
        };
        match text(&frame) {
            Some(t) => self.feed(&t).await,
            None => false,
        }
    }

    async fn feed(&mut self, text: &str) -> bool {
        self.sink.feed(Message::Text(text.to_owned())).await.is_ok()
    }
}
