//! One chaos client: a user's device whose socket dies (dropped by the tool, closed by a
//! dying server) and comes back on any server with `resume` and its own positions. Sends
//! wait in an outbox until acked and go out again, same `client_msg_id`, on every new
//! socket and after every refusal.

use std::{
    collections::{BTreeMap, HashMap, hash_map::Entry},
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::{self, Message};

use super::{Counters, notify::Seen, rest};
use crate::{
    chat::{
        BODY_PREFIX, Command, Outcome, SHARDS, Send, Shared,
        frames::{self, Ack, Event, Notification, Refused, Resumed, Resync},
        track::Track,
    },
    report::count,
    socket::{self, Endpoints, Socket},
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

pub(crate) struct Client<'a> {
    slot: usize,
    token: &'a str,
    shared: &'a Shared,
    chaos: &'a Counters,
    endpoints: &'a Endpoints,
    http: reqwest::Client,
    /// `client_msg_id`s are `<run>-<slot>-<ref>`: unique across runs of one fixture.
    own_prefix: String,
    /// Per conversation: messages by number, and the last event number processed.
    tracks: HashMap<usize, Track>,
    events: HashMap<usize, i64>,
    outbox: BTreeMap<u64, Pending>,
    next_ref: u64,
    /// This client's messages seen, by `ref`: their message number (a second one is a twin).
    own: HashMap<u64, i64>,
    notes: Seen,
    ever_connected: bool,
}

struct Pending {
    frame: String,
    first_written: Option<Instant>,
    /// Written on the current socket: its answer may still come.
    on_socket: bool,
    /// Refused: not before then.
    retry_at: Option<Instant>,
}

enum Action {
    None,
    Write,
    Resume,
    Refetch(usize),
    RefetchNotifications,
}

enum End {
    Stop,
    Lost,
}

impl<'a> Client<'a> {
    pub(crate) fn new(
        slot: usize,
        token: &'a str,
        run: &str,
        shared: &'a Shared,
        chaos: &'a Counters,
        endpoints: &'a Endpoints,
    ) -> Self {
        Self {
            slot,
            token,
            shared,
            chaos,
            endpoints,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap_or_default(),
            own_prefix: format!("{run}-{slot}-"),
            tracks: HashMap::new(),
            events: HashMap::new(),
            outbox: BTreeMap::new(),
            next_ref: 0,
            own: HashMap::new(),
            notes: Seen::default(),
            ever_connected: false,
        }
    }

    pub(crate) async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut stop: watch::Receiver<bool>,
    ) -> Outcome {
        while let Some(ws) = self.connect(&mut commands, &mut stop).await {
            if let End::Stop = self.session(ws, &mut commands, &mut stop).await {
                break;
            }
        }
        Outcome {
            slot: self.slot,
            tracks: self.tracks,
            unacked: self.outbox.len() as u64,
            notifications: Some(self.notes),
        }
    }

    /// Opens a socket (the first on the round-robin server, then any at random, another
    /// than the one that just failed), `resume` as its first frame; `None` once stopped.
    async fn connect(
        &mut self,
        commands: &mut mpsc::Receiver<Command>,
        stop: &mut watch::Receiver<bool>,
    ) -> Option<Socket> {
        let endpoints = self.endpoints;
        let n = endpoints.len();
        let mut failed_on = None;
        let mut attempt = 0u32;
        loop {
            if *stop.borrow() {
                return None;
            }
            let server = if !self.ever_connected && attempt == 0 {
                self.slot % n
            } else {
                let s = rand::random_range(0..n);
                match failed_on {
                    Some(f) if f == s && n > 1 => (s + 1 + rand::random_range(0..n - 1)) % n,
                    _ => s,
                }
            };
            let (target, source) = endpoints.pick_on(self.slot, server);
            let resume = self.resume_frame();
            let opening = socket::open_with(target, source, self.token, &resume);
            tokio::pin!(opening);
            let opened = loop {
                tokio::select! {
                    _ = stop.changed() => return None,
                    Some(command) = commands.recv() => self.offline(command),
                    opened = &mut opening => break opened,
                }
            };
            match opened {
                Ok((ws, _)) => {
                    if self.ever_connected {
                        self.chaos.reconnects.fetch_add(1, Ordering::Relaxed);
                    } else {
                        self.shared.connected.fetch_add(1, Ordering::Relaxed);
                        self.ever_connected = true;
                    }
                    self.chaos.resumes.fetch_add(1, Ordering::Relaxed);
                    return Some(ws);
                }
                Err(e) => {
                    if !self.ever_connected && attempt == 0 {
                        self.shared.failed.fetch_add(1, Ordering::Relaxed);
                        count(&self.shared.connect_failures, e.reason);
                    } else {
                        count(&self.chaos.reconnect_failures, e.reason);
                    }
                    failed_on = Some(server);
                    // Backoff with jitter, or what the server asked for.
                    let wait = e.retry_after.map_or_else(
                        || {
                            let ms = (100u64 << attempt.min(4)).min(2_000);
                            Duration::from_millis(ms / 2 + rand::random_range(0..=ms / 2))
                        },
                        |s| Duration::from_secs(s.max(1)),
                    );
                    let until = tokio::time::Instant::now() + wait;
                    loop {
                        tokio::select! {
                            _ = stop.changed() => return None,
                            Some(command) = commands.recv() => self.offline(command),
                            () = tokio::time::sleep_until(until) => break,
                        }
                    }
                    attempt = attempt.saturating_add(1);
                }
            }
        }
    }

    /// A command while no socket is open: sends wait in the outbox.
    fn offline(&mut self, command: Command) {
        if let Command::Send(send) = command {
            self.push(send);
        }
    }

    async fn session(
        &mut self,
        mut ws: Socket,
        commands: &mut mpsc::Receiver<Command>,
        stop: &mut watch::Receiver<bool>,
    ) -> End {
        for p in self.outbox.values_mut() {
            p.on_socket = false;
        }
        if self.write_due(&mut ws).await.is_err() {
            return self.lost("write failed".into());
        }
        loop {
            let retry = self.outbox.values().filter_map(|p| p.retry_at).min();
            let action = tokio::select! {
                _ = stop.changed() => {
                    let _ = tokio::time::timeout(Duration::from_secs(5), ws.close(None)).await;
                    return End::Stop;
                }
                Some(command) = commands.recv() => match command {
                    Command::Send(send) => {
                        self.push(send);
                        Action::Write
                    }
                    Command::Drop => {
                        // Gone without a word, as when a network disappears.
                        self.chaos.disconnects.fetch_add(1, Ordering::Relaxed);
                        drop(ws);
                        return End::Lost;
                    }
                },
                msg = ws.next() => match msg {
                    Some(Ok(Message::Text(text))) => self.handle(text.as_str()),
                    Some(Ok(Message::Close(frame))) => {
                        let code = frame.map_or(1005, |f| u16::from(f.code));
                        return self.lost(format!("closed {code}"));
                    }
                    Some(Ok(_)) => Action::None,
                    Some(Err(e)) => return self.lost(format!("error: {e}")),
                    None => return self.lost("eof".into()),
                },
                () = tokio::time::sleep_until(retry.unwrap_or_else(Instant::now).into()), if retry.is_some() => Action::Write,
            };
            if self.act(&mut ws, action).await.is_err() {
                return self.lost("write failed".into());
            }
        }
    }

    fn lost(&self, reason: String) -> End {
        count(&self.shared.dropped, reason);
        End::Lost
    }

    fn push(&mut self, send: Send) {
        self.next_ref += 1;
        let r = self.next_ref;
        let frame = format!(
            r#"{{"type":"send","ref":"{r}","conversation_id":"{}","body":"{BODY_PREFIX}{}","client_msg_id":"{}{r}"}}"#,
            self.shared.ids[send.conversation], send.due_us, self.own_prefix
        );
        self.outbox.insert(
            r,
            Pending {
                frame,
                first_written: None,
                on_socket: false,
                retry_at: None,
            },
        );
        self.chaos.outstanding.fetch_add(1, Ordering::Relaxed);
    }

    /// Writes every send not on this socket whose wait (if refused) is over.
    async fn write_due(&mut self, ws: &mut Socket) -> Result<(), tungstenite::Error> {
        let now = Instant::now();
        let mut any = false;
        for p in self.outbox.values_mut() {
            if p.on_socket || p.retry_at.is_some_and(|t| t > now) {
                continue;
            }
            if p.first_written.is_none() {
                p.first_written = Some(now);
                self.shared.sent.fetch_add(1, Ordering::Relaxed);
            } else {
                self.chaos.retried_sends.fetch_add(1, Ordering::Relaxed);
            }
            p.on_socket = true;
            p.retry_at = None;
            ws.feed(Message::text(p.frame.clone())).await?;
            any = true;
        }
        if any {
            ws.flush().await?;
        }
        Ok(())
    }

    async fn act(&mut self, ws: &mut Socket, action: Action) -> Result<(), tungstenite::Error> {
        match action {
            Action::None => Ok(()),
            Action::Write => self.write_due(ws).await,
            Action::Resume => {
                self.chaos.resumes.fetch_add(1, Ordering::Relaxed);
                ws.send(Message::text(self.resume_frame())).await
            }
            Action::Refetch(conv) => {
                self.refetch(conv).await;
                Ok(())
            }
            Action::RefetchNotifications => {
                self.refetch_notifications().await;
                Ok(())
            }
        }
    }

    /// `resume` with this client's positions (and its notification number, once the
    /// server has shown it numbers them).
    fn resume_frame(&self) -> String {
        let conversations: serde_json::Map<String, serde_json::Value> = self
            .events
            .iter()
            .map(|(&c, &seq)| (self.shared.ids[c].to_string(), json!(seq)))
            .collect();
        let mut frame = json!({"type": "resume", "conversations": conversations});
        if self.notes.numbered == Some(true) {
            frame["notifications"] = json!(self.notes.position);
        }
        frame.to_string()
    }

    fn handle(&mut self, text: &str) -> Action {
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

    /// A conversation frame: ignored at or below the position (as a client does), else
    /// processed and its message checked.
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
        let position = self.events.entry(conv).or_insert(0);
        if seq <= *position {
            self.chaos.stale_frames.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if seq > *position + 1 {
            self.chaos.event_gaps.fetch_add(1, Ordering::Relaxed);
        }
        *position = seq;
        if kind == "message.created"
            && let Some(m) = event.message
        {
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
    async fn refetch(&mut self, conv: usize) {
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
    async fn refetch_notifications(&mut self) {
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
