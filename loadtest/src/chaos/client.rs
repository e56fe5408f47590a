//! One chaos client: a user's device whose socket dies (dropped by the tool, closed by a
//! dying server) and comes back on any server with `resume` and its own positions. Sends
//! wait in an outbox until acked and go out again, same `client_msg_id`, on every new
//! socket and after every refusal.

use std::{
    collections::{BTreeMap, HashMap},
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::{self, Message};

use super::{Counters, notify::Seen};
use crate::{
    chat::{
        shared::{BODY_PREFIX, Command, Outcome, Send, Shared},
        track::Track,
    },
    report::count,
    socket::{self, Endpoints, Socket},
};

pub(crate) struct Client<'a> {
    pub(super) slot: usize,
    pub(super) token: &'a str,
    pub(super) shared: &'a Shared,
    pub(super) chaos: &'a Counters,
    pub(super) endpoints: &'a Endpoints,
    pub(super) http: reqwest::Client,
    /// `client_msg_id`s are `<run>-<slot>-<ref>`: unique across runs of one fixture.
    pub(super) own_prefix: String,
    /// Per conversation: messages by number, and the last event number processed.
    pub(super) tracks: HashMap<usize, Track>,
    pub(super) events: HashMap<usize, i64>,
    pub(super) outbox: BTreeMap<u64, Pending>,
    next_ref: u64,
    /// This client's messages seen, by `ref`: their message number (a second one is a twin).
    pub(super) own: HashMap<u64, i64>,
    pub(super) notes: Seen,
    ever_connected: bool,
}

pub(super) struct Pending {
    frame: String,
    pub(super) first_written: Option<Instant>,
    /// Written on the current socket: its answer may still come.
    pub(super) on_socket: bool,
    /// Refused: not before then.
    pub(super) retry_at: Option<Instant>,
}

pub(super) enum Action {
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
}
