//! A connection's writing half: what is queued for the client, taken in batches (many
//! `feed`s, one flush). Numbered frames go through the connection's [`Sync`] machine,
//! and the connection carries out what the machine asks: send, replay from PostgreSQL,
//! tell the client to refetch.

use std::{collections::VecDeque, sync::Arc, time::Duration};

use futures_util::SinkExt;
use poem::web::websocket::Message;
use uuid::Uuid;

use super::{
    connection::Connection,
    sync::{Action, Membership, Replayed, StreamId},
};
use crate::{chat::log, notifications};
use crate::{
    frames::{ResyncScope, ServerFrame},
    hub::{Outgoing, Resume},
};

pub const HEARTBEAT: Duration = Duration::from_secs(25);
/// Most events replayed for one stream; beyond, the client refetches over REST.
pub const REPLAY_LIMIT: i64 = 500;
/// Live conversation frames wait this long for a `resume` before being sent anyway.
pub const RESUME_WINDOW: Duration = Duration::from_secs(2);
/// A frame that arrives past a gap waits this long for the missing one (the bus does not
/// keep order between instances) before the gap is filled from PostgreSQL.
pub const GAP_WAIT: Duration = Duration::from_millis(50);

pub fn text(frame: &ServerFrame) -> Option<String> {
    serde_json::to_string(frame).ok()
}

impl Connection {
    pub(super) fn go_live(&mut self) -> Vec<Action> {
        self.seed = None;
        self.sync.go_live()
    }

    /// Handles one queued item; `false` when the socket is gone.
    pub(super) async fn dispatch(&mut self, item: Outgoing) -> bool {
        let actions = match item {
            Outgoing::Frame { event: None, text } => return self.feed(&text).await,
            Outgoing::Frame {
                event: Some((stream, seq)),
                text,
            } => self.sync.offer(stream, seq, text),
            Outgoing::Live => self.go_live(),
            Outgoing::Resume(resume) => return Box::pin(self.resume(*resume)).await,
        };
        self.carry_out(actions).await
    }

    /// Answers a client's `resume`: replays what it missed, then `resumed`.
    async fn resume(&mut self, resume: Resume) -> bool {
        let seed = self.seed.take().filter(|_| self.sync.is_holding());
        let memberships = match seed {
            Some(m) => m,
            None => match self.load_memberships().await {
                Some(m) => m,
                None => {
                    let reason = "resume unavailable right now; retry shortly";
                    return self.resync(None, ResyncScope::All, reason).await;
                }
            },
        };
        let actions = self
            .sync
            .resume(&memberships, &resume.conversations, resume.notifications);
        self.carry_out(actions).await
    }

    async fn load_memberships(&mut self) -> Option<Vec<Membership>> {
        let loaded = self
            .state
            .with_socket_db(log::memberships(&self.state.db, self.user))
            .await;
        loaded.ok().map(|(rows, _)| rows)
    }

    /// Carries out the machine's actions in order.
    pub(super) async fn carry_out(&mut self, actions: Vec<Action>) -> bool {
        // The usual case, frames to send, waits for nothing but the socket; the rest is
        // rare and boxed, so that its state does not make every connection's task larger.
        if !actions.iter().all(|a| matches!(a, Action::Send(_))) {
            return Box::pin(self.carry_out_all(actions)).await;
        }
        for action in actions {
            if let Action::Send(text) = action
                && !self.feed(&text).await
            {
                return false;
            }
        }
        true
    }

    /// Carries out any actions in order (a replay's own actions first).
    async fn carry_out_all(&mut self, actions: Vec<Action>) -> bool {
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
    async fn replay(&mut self, stream: StreamId, after: i64) -> Option<Replayed> {
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
        self.ws.feed(Message::Text(text.to_owned())).await.is_ok()
    }
}
