//! What one connection has sent, must replay and must drop: a pure state machine, no I/O.
//!
//! Every numbered stream a client follows — each conversation's event log, and the user's
//! notifications — is tracked by the next number the connection owes the client. A live
//! frame below it was really sent (or covered by the client's own position) and is
//! dropped; the next one is sent; one past a gap is held while the missing one may still
//! arrive (the bus does not keep order between instances), then the gap is filled from the
//! store. The connection's writer feeds this machine and carries out its [`Action`]s;
//! answering a [`Action::Replay`] with [`Sync::replayed`].
//!
//! Invariant: for each stream, the frames sent are exactly the numbers after the starting
//! point (the client's `resume` position, or the connection's start), once each, in order —
//! whatever the order, duplication or loss of live frames (checked by the property test).

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Arc,
};

use uuid::Uuid;

/// Live frames held at most per stream while a gap is open; beyond, they are dropped and
/// the gap is filled from the store at once.
const PENDING_LIMIT: usize = 256;
/// Live frames held at most in all, before the client's first frame.
const HOLD_LIMIT: usize = 1024;

pub use crate::frames::StreamId;

/// What the connection's writer must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Send(Arc<str>),
    /// Fetch the stream's stored frames after `after` and hand them to [`Sync::replayed`].
    Replay {
        stream: StreamId,
        after: i64,
    },
    /// Too much was missed to replay: the client refetches this stream over REST.
    Resync(StreamId),
    /// A `resume` is complete.
    Resumed,
}

/// What the store answered for a replay.
#[derive(Debug, Clone, Default)]
pub struct Replayed {
    /// Stored frames after the asked number, in order, with their numbers.
    pub frames: Vec<(i64, Arc<str>)>,
    /// The stream's last number the user may see (`None`: the user never belonged to it).
    pub last: Option<i64>,
    /// `false` when the store held more than it returned (the replay limit).
    pub complete: bool,
}

/// A conversation the user belongs to (or left), as the store knows it now.
pub use crate::chat::log::Membership;

#[derive(Debug, Default)]
struct Stream {
    /// The next number owed to the client.
    next: i64,
    /// Live frames past a gap, by number.
    pending: BTreeMap<i64, Arc<str>>,
    /// Frames past `next` were dropped (held too many): replay when going live.
    overflowed: bool,
}

#[derive(Debug)]
pub struct Sync {
    streams: HashMap<StreamId, Stream>,
    /// Before the client's first frame, live frames are held so that a `resume` replay is
    /// never overtaken by newer frames.
    holding: bool,
    held: usize,
    /// Streams with an open gap, waiting for the missing frame before a replay.
    gaps: Vec<StreamId>,
}

impl Sync {
    /// A connection starting now: nothing before `memberships`' last events and
    /// `notifications` is owed (the client resumes for that).
    pub fn new(memberships: &[Membership], notifications: i64) -> Self {
        let mut streams: HashMap<StreamId, Stream> = memberships
            .iter()
            .filter(|m| m.active)
            .map(|m| {
                let stream = Stream {
                    next: m.last + 1,
                    ..Stream::default()
                };
                (StreamId::Conversation(m.conversation), stream)
            })
            .collect();
        streams.insert(
            StreamId::Notifications,
            Stream {
                next: notifications + 1,
                ..Stream::default()
            },
        );
        Self {
            streams,
            holding: true,
            held: 0,
            gaps: Vec::new(),
        }
    }

    pub fn is_holding(&self) -> bool {
        self.holding
    }

    /// The last notification number the client has been given (or told of).
    pub fn notifications_seq(&self) -> i64 {
        self.streams
            .get(&StreamId::Notifications)
            .map_or(0, |s| s.next - 1)
    }

    /// A live frame numbered `seq` in `stream`.
    pub fn offer(&mut self, stream: StreamId, seq: i64, text: Arc<str>) -> Vec<Action> {
        let known = self.streams.contains_key(&stream);
        let state = self.streams.entry(stream).or_default();
        if !known {
            // A conversation this connection has not seen yet (the user just joined it).
            // Its creation is the start; anything else is fetched from the user's joining,
            // so that an earlier frame still in flight is not skipped.
            if seq == 1 {
                state.next = 1;
            } else {
                state.pending.insert(seq, text);
                return if self.holding {
                    Vec::new()
                } else {
                    vec![Action::Replay { stream, after: 0 }]
                };
            }
        }
        if seq < state.next {
            return Vec::new();
        }
        if state.next == 0 {
            // Still waiting for the store to say where this stream starts.
            state.pending.insert(seq, text);
            return Vec::new();
        }
        if self.holding {
            if self.held < HOLD_LIMIT {
                if state.pending.insert(seq, text).is_none() {
                    self.held += 1;
                }
            } else {
                state.overflowed = true;
            }
            return Vec::new();
        }
        let mut out = Vec::new();
        if seq == state.next && state.pending.is_empty() {
            state.next += 1;
            out.push(Action::Send(text));
            return out;
        }
        state.pending.insert(seq, text);
        self.flush(stream, &mut out);
        out
    }

    /// The client's first frame was not `resume` (or it waited too long): send what was held.
    pub fn go_live(&mut self) -> Vec<Action> {
        if !self.holding {
            return Vec::new();
        }
        self.holding = false;
        self.held = 0;
        let mut ids: Vec<StreamId> = self.streams.keys().copied().collect();
        ids.sort();
        let mut out = Vec::new();
        for id in ids {
            let Some(state) = self.streams.get_mut(&id) else {
                continue;
            };
            if std::mem::take(&mut state.overflowed) || state.next == 0 {
                let after = (state.next - 1).max(0);
                out.push(Action::Replay { stream: id, after });
            } else {
                self.flush(id, &mut out);
            }
        }
        out
    }

    /// The client says what it has: everything after is replayed, even frames this
    /// connection sent before. `conversations` is the client's word, `memberships` the
    /// store's; `notifications` `None` replays no notification.
    pub fn resume(
        &mut self,
        memberships: &[Membership],
        conversations: &HashMap<Uuid, i64>,
        notifications: Option<i64>,
    ) -> Vec<Action> {
        self.holding = false;
        self.held = 0;
        self.gaps.clear();
        let mut out = Vec::new();
        let mut members: Vec<&Membership> = memberships.iter().collect();
        members.sort_by_key(|m| m.conversation);
        let mut keep: HashSet<StreamId> = HashSet::from([StreamId::Notifications]);
        for m in members {
            let id = StreamId::Conversation(m.conversation);
            let listed = conversations.get(&m.conversation).copied();
            if !m.active && listed.is_none_or(|p| p >= m.last) {
                continue;
            }
            keep.insert(id);
            // Never below the user's joining, never past what exists.
            let from = listed.unwrap_or(m.floor).max(m.floor).min(m.last);
            let state = self.streams.entry(id).or_default();
            state.next = from + 1;
            state.overflowed = false;
            let next = state.next;
            state.pending.retain(|seq, _| *seq >= next);
            if from < m.last {
                out.push(Action::Replay {
                    stream: id,
                    after: from,
                });
            } else {
                self.flush(id, &mut out);
            }
        }
        // Streams the store did not list: frames that reached us anyway are checked
        // against the store (the user joined, or left, just now).
        let mut others: Vec<StreamId> = self
            .streams
            .iter()
            .filter(|(id, s)| !keep.contains(id) && !s.pending.is_empty())
            .map(|(id, _)| *id)
            .collect();
        others.sort();
        for id in &others {
            let after = self.streams.get(id).map_or(0, |s| (s.next - 1).max(0));
            out.push(Action::Replay { stream: *id, after });
        }
        keep.extend(others);
        self.streams.retain(|id, _| keep.contains(id));
        let state = self.streams.entry(StreamId::Notifications).or_default();
        state.overflowed = false;
        match notifications {
            Some(after) => {
                state.next = after + 1;
                let next = state.next;
                state.pending.retain(|seq, _| *seq >= next);
                out.push(Action::Replay {
                    stream: StreamId::Notifications,
                    after,
                });
            }
            None => self.flush(StreamId::Notifications, &mut out),
        }
        out.push(Action::Resumed);
        out
    }

    /// The store's answer to a [`Action::Replay`].
    pub fn replayed(&mut self, stream: StreamId, replay: Replayed) -> Vec<Action> {
        let mut out = Vec::new();
        let Some(last) = replay.last else {
            // The user never belonged to it: whatever reached us was addressed to us.
            if let Some(state) = self.streams.remove(&stream) {
                out.extend(state.pending.into_values().map(Action::Send));
            }
            self.gaps.retain(|g| *g != stream);
            return out;
        };
        let state = self.streams.entry(stream).or_default();
        if state.next == 0 {
            // A new stream: start where the store's answer starts.
            state.next = replay.frames.first().map_or(last + 1, |f| f.0);
        }
        for (seq, text) in replay.frames {
            if seq >= state.next {
                state.next = seq + 1;
                out.push(Action::Send(text));
            }
        }
        if !replay.complete {
            out.push(Action::Resync(stream));
        }
        // Numbers up to `last` are covered (sent, or deleted since for notifications).
        state.next = state.next.max(last + 1);
        state.overflowed = false;
        let next = state.next;
        state.pending.retain(|seq, _| *seq >= next);
        self.gaps.retain(|g| *g != stream);
        if !self.holding {
            self.flush(stream, &mut out);
        }
        out
    }

    /// The store could not answer a replay of `stream`: the client is told to refetch it
    /// over REST, what reached us past the gap is sent, and the stream goes on after it.
    pub fn give_up(&mut self, stream: StreamId) -> Vec<Action> {
        let mut out = vec![Action::Resync(stream)];
        self.gaps.retain(|g| *g != stream);
        let Some(state) = self.streams.get_mut(&stream) else {
            return out;
        };
        state.overflowed = false;
        for (seq, text) in std::mem::take(&mut state.pending) {
            if seq >= state.next {
                state.next = seq + 1;
                out.push(Action::Send(text));
            }
        }
        if state.next == 0 {
            self.streams.remove(&stream);
        }
        out
    }

    /// Some stream waits for a missing frame.
    pub fn has_gaps(&self) -> bool {
        !self.gaps.is_empty()
    }

    /// The missing frames did not come: fetch them.
    pub fn expire_gaps(&mut self) -> Vec<Action> {
        let mut gaps = std::mem::take(&mut self.gaps);
        gaps.sort();
        gaps.dedup();
        gaps.into_iter()
            .filter_map(|stream| {
                let state = self.streams.get(&stream)?;
                let open = state.pending.keys().next().is_some_and(|s| *s > state.next);
                open.then(|| Action::Replay {
                    stream,
                    after: state.next - 1,
                })
            })
            .collect()
    }

    /// Sends the held frames that follow on, in order; notes a gap if one remains.
    fn flush(&mut self, stream: StreamId, out: &mut Vec<Action>) {
        let Some(state) = self.streams.get_mut(&stream) else {
            return;
        };
        while let Some(entry) = state.pending.first_entry() {
            let seq = *entry.key();
            if seq < state.next {
                entry.remove();
            } else if seq == state.next {
                out.push(Action::Send(entry.remove()));
                state.next += 1;
            } else {
                break;
            }
        }
        if state.pending.len() > PENDING_LIMIT {
            state.pending.clear();
            out.push(Action::Replay {
                stream,
                after: state.next - 1,
            });
        } else if !state.pending.is_empty() && !self.gaps.contains(&stream) {
            self.gaps.push(stream);
        }
    }
}

#[cfg(test)]
#[path = "sync_tests.rs"]
mod tests;
