//! What a chaos client does with the frames it receives: acks and refusals settle its
//! outbox; conversation frames are checked against its positions; `resync_required` is
//! answered (`resume` on the same socket, or a refetch over REST); notifications are
//! checked by number.

use std::{
    collections::hash_map::Entry,
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use super::{
    client::{Action, Client},
    rest,
};
use crate::{
    chat::{
        frames::{self, Ack, Event, EventMessage, Notification, Refused, Resumed, Resync},
        shared::SHARDS,
        track::Track,
    },
    report::count,
};

/// Refusals that stored nothing: the send is retried after `retry_after`.
const RETRYABLE: [&str; 3] = ["rate_limited", "overloaded", "service_unavailable"];

const CONVERSATION_FRAMES: [&str; 8] = [
    "message.created",
    "message.edited",
    "message.deleted",
    "read.updated",
    "member.joined",
    "member.left",
    "conversation.created",
    "conversation.renamed",
];

impl Client<'_> {
    pub(super) fn handle(&mut self, text: &str) -> Action {
        let shard = self.slot % SHARDS;
        match frames::kind(text) {
            "ack" => {
                let Ok(ack) = serde_json::from_str::<Ack<'_>>(text) else {
                    return Action::None;
                };
                let done = ack.reference.parse::<u64>().ok();
                if let Some(p) = done.and_then(|r| self.outbox.remove(&r)) {
                    self.chaos.outstanding.fetch_sub(1, Ordering::Relaxed);
                    let sent = p.first_written.unwrap_or_else(Instant::now);
                    self.shared.record_ack(shard, &ack, sent);
                }
            }
            "error" => {
                let Ok(refused) = serde_json::from_str::<Refused<'_>>(text) else {
                    return Action::None;
                };
                let r = refused.reference.as_deref().and_then(|r| r.parse().ok());
                match r.and_then(|r| self.outbox.get_mut(&r).map(|p| (r, p))) {
                    Some((_, p)) if RETRYABLE.contains(&&*refused.code) => {
                        self.shared.refused.fetch_add(1, Ordering::Relaxed);
                        count(&self.chaos.refusals, refused.code.into_owned());
                        let wait = Duration::from_secs(refused.retry_after.unwrap_or(1));
                        p.on_socket = false;
                        p.retry_at = Some(Instant::now() + wait.max(Duration::from_millis(200)));
                    }
                    Some((r, _)) => {
                        self.outbox.remove(&r);
                        self.chaos.outstanding.fetch_sub(1, Ordering::Relaxed);
                        count(&self.shared.send_errors, refused.code.into_owned());
                    }
                    None => count(&self.shared.send_errors, refused.code.into_owned()),
                }
            }
            "resync_required" => {
                self.shared.resyncs.fetch_add(1, Ordering::Relaxed);
                let Ok(resync) = serde_json::from_str::<Resync>(text) else {
                    return Action::Resume;
                };
                let scope = match (&resync.conversation_id, resync.scope) {
                    (Some(_), _) => "conversation".to_owned(),
                    (None, Some(scope)) => scope,
                    (None, None) => "all".to_owned(),
                };
                count(&self.chaos.resync_required, scope.clone());
                return match resync.conversation_id {
                    Some(id) => match self.shared.index.get(&id) {
                        Some(&conv) => Action::Refetch(conv),
                        None => Action::None,
                    },
                    None if scope == "notifications" => Action::RefetchNotifications,
                    None => Action::Resume,
                };
            }
            "resumed" => {
                let Ok(resumed) = serde_json::from_str::<Resumed>(text) else {
                    return Action::None;
                };
                self.chaos.resumed.fetch_add(1, Ordering::Relaxed);
                let replayed = &self.chaos.replayed;
                replayed.fetch_add(resumed.replayed, Ordering::Relaxed);
                if self.notes.resumed(resumed.notifications_seq) {
                    self.chaos.baselined.fetch_add(1, Ordering::Relaxed);
                }
            }
            "notification.created" => {
                let Ok(n) = serde_json::from_str::<Notification>(text) else {
                    return Action::None;
                };
                let id = n.notification.as_ref().map(|b| b.id);
                let seq = n.seq.or_else(|| n.notification.and_then(|b| b.seq));
                // A number already processed, of a notification already had, is what a
                // client ignores: the overlap of a resume on the same socket (protocol
                // README), counted as stale like conversation frames.
                if seq.is_some_and(|s| s <= self.notes.position)
                    && id.is_some_and(|i| self.notes.ids.contains(&i))
                {
                    self.chaos.stale_frames.fetch_add(1, Ordering::Relaxed);
                    return Action::None;
                }
                if self.notes.receive(id, seq) {
                    let delivered = &self.chaos.notifications.delivered;
                    delivered.fetch_add(1, Ordering::Relaxed);
                }
            }
            "notification.read" | "notification.deleted" => {
                // Not caused by the tool; they take a number in the same sequence.
                if let Ok(Notification { seq: Some(seq), .. }) = serde_json::from_str(text) {
                    self.notes.position = self.notes.position.max(seq);
                }
            }
            kind if CONVERSATION_FRAMES.contains(&kind) => self.event(kind, text),
            _ => {}
        }
        Action::None
    }

    /// A conversation frame. One at or below the position is what a client ignores (the
    /// overlap of a replay or a refetch: `stale_frames`), unless its message is one this
    /// client never had: the server sent N after N+1 (`late_frames`), and the message
    /// counts as reordered, not lost.
    fn event(&mut self, kind: &str, text: &str) {
        let Ok(event) = serde_json::from_str::<Event<'_>>(text) else {
            count(&self.shared.send_errors, format!("unreadable {kind}"));
            return;
        };
        let (Some(id), Some(seq)) = (event.conversation_id, event.seq) else {
            return;
        };
        let Some(&conv) = self.shared.index.get(&id) else {
            return;
        };
        let message = event.message.filter(|_| kind == "message.created");
        let position = self.events.entry(conv).or_insert(0);
        if seq <= *position {
            let had = |m: &EventMessage<'_>| self.tracks.get(&conv).is_some_and(|t| t.has(m.seq));
            match message {
                Some(m) if !had(&m) => {
                    self.chaos.late_frames.fetch_add(1, Ordering::Relaxed);
                    self.message(conv, m.seq, m.body.as_deref(), m.client_msg_id.as_deref());
                }
                _ => {
                    self.chaos.stale_frames.fetch_add(1, Ordering::Relaxed);
                }
            }
            return;
        }
        if seq > *position + 1 {
            self.chaos.event_gaps.fetch_add(1, Ordering::Relaxed);
        }
        *position = seq;
        if let Some(m) = message {
            self.message(conv, m.seq, m.body.as_deref(), m.client_msg_id.as_deref());
        }
    }

    fn message(&mut self, conv: usize, seq: i64, body: Option<&str>, client_msg_id: Option<&str>) {
        if self.tracks.entry(conv).or_default().receive(seq) {
            self.shared.record_delivery(self.slot % SHARDS, body);
        }
        let mine = client_msg_id
            .and_then(|c| c.strip_prefix(self.own_prefix.as_str()))
            .and_then(|r| r.parse::<u64>().ok());
        if let Some(r) = mine {
            match self.own.entry(r) {
                Entry::Occupied(o) if *o.get() != seq => {
                    self.chaos.twins.fetch_add(1, Ordering::Relaxed);
                }
                Entry::Occupied(_) => {}
                Entry::Vacant(v) => {
                    v.insert(seq);
                }
            }
        }
    }

    /// `resync_required` for one conversation: its messages over REST from the first one
    /// missing, then on from its current event number.
    pub(super) async fn refetch(&mut self, conv: usize) {
        let after = self.tracks.get(&conv).map_or(0, Track::contiguous);
        let id = self.shared.ids[conv];
        match rest::conversation(&self.http, self.endpoints, self.token, id, after).await {
            Ok((last_event, messages)) => {
                self.chaos.refetches.fetch_add(1, Ordering::Relaxed);
                let fetched = &self.chaos.refetched_messages;
                fetched.fetch_add(messages.len() as u64, Ordering::Relaxed);
                for m in messages {
                    if !self.tracks.get(&conv).is_some_and(|t| t.has(m.seq)) {
                        self.message(conv, m.seq, m.body.as_deref(), m.client_msg_id.as_deref());
                    }
                }
                let position = self.events.entry(conv).or_insert(0);
                *position = (*position).max(last_event);
            }
            Err(_) => {
                self.chaos.refetch_failures.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// `resync_required` for notifications: those after the position, over REST.
    pub(super) async fn refetch_notifications(&mut self) {
        let after = self.notes.position;
        match rest::notifications(&self.http, self.endpoints, self.token, after).await {
            Ok(items) => {
                for n in items {
                    if self.notes.receive(Some(n.id), n.seq) {
                        let delivered = &self.chaos.notifications.delivered;
                        delivered.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Err(_) => {
                self.chaos.refetch_failures.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
