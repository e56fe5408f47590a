//! The `chat` scenario: the fixture's conversations, every member on a socket, messages sent
//! at a total rate. Every receiver checks each message it gets against the conversation's
//! message numbers (1, 2, 3… with no gap), so the tool counts exactly what was lost,
//! duplicated or reordered, and measures send → receive and send → ack latency.

use std::{
    borrow::Cow,
    collections::{BTreeMap, BTreeSet, HashMap},
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::bail;
use futures_util::{SinkExt, StreamExt, stream};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::{
    sync::{mpsc, watch},
    task::JoinSet,
};
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use crate::{
    fixture::Fixture,
    report::{self, Latency, count},
    socket::{self, Endpoints, Socket},
};

const SHARDS: usize = 16;
const BODY_PREFIX: &str = "load ";

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    #[command(flatten)]
    pub servers: socket::Servers,
    /// Use only the first N conversations of the fixture.
    #[arg(long)]
    pub conversations: Option<usize>,
    /// Messages per second, over all conversations (each member sends in turn).
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Seconds of sending.
    #[arg(long, default_value_t = 30)]
    pub duration: u64,
    /// New sockets per second while connecting.
    #[arg(long, default_value_t = 1_000.0)]
    pub ramp: f64,
    /// Seconds between the last socket opening and the first message, so that the work of
    /// connecting (presence announcements) is not measured as messaging.
    #[arg(long, default_value_t = 5)]
    pub settle: u64,
    /// Seconds to wait at the end for acks and deliveries still in flight.
    #[arg(long, default_value_t = 15)]
    pub drain: u64,
    #[arg(long, default_value = "chat-results.json")]
    pub out: PathBuf,
}

#[derive(Debug, Serialize)]
pub struct Results {
    pub scenario: &'static str,
    pub urls: Vec<String>,
    pub conversations: usize,
    pub participants: usize,
    pub connected: u64,
    pub connect_failures: BTreeMap<String, u64>,
    pub offered_rate_per_s: f64,
    pub duration_s: f64,
    /// Sends the tool could not hand to a socket in time (the tool itself was behind).
    pub not_sent: u64,
    pub sent: u64,
    pub acked: u64,
    pub send_errors: BTreeMap<String, u64>,
    /// Sends neither acked nor refused by the end of the drain.
    pub unacked: u64,
    /// Every acked message × the members of its conversation.
    pub expected_deliveries: u64,
    pub delivered: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub reordered: u64,
    pub deliveries_per_s: f64,
    /// Sockets closed or lost during the run.
    pub dropped: BTreeMap<String, u64>,
    pub resync_required: u64,
    /// Send → `message.created` at each receiver.
    pub delivery: Latency,
    /// Send → `ack` at the sender.
    pub ack: Latency,
    pub persisted: Persisted,
}

/// Checked over REST afterwards: each conversation's last message number is the last acked.
#[derive(Debug, Default, Serialize)]
pub struct Persisted {
    pub conversations_checked: u64,
    pub conversations_matching: u64,
    /// Acked messages that PostgreSQL does not have (should be 0).
    pub missing_messages: u64,
    pub errors: u64,
}

impl Results {
    /// Nothing lost, duplicated, reordered, unacked, refused or dropped, and all persisted.
    pub fn is_clean(&self) -> bool {
        self.connected as usize == self.participants
            && self.lost == 0
            && self.duplicated == 0
            && self.reordered == 0
            && self.unacked == 0
            && self.not_sent == 0
            && self.send_errors.is_empty()
            && self.dropped.is_empty()
            && self.persisted.missing_messages == 0
            && self.persisted.errors == 0
            && self.persisted.conversations_matching == self.conversations as u64
    }
}

/// What the scheduler asks a participant to do.
struct Send {
    conversation: usize,
    /// Microseconds since the epoch when the message was due.
    due_us: u64,
}

/// One receiver's view of one conversation.
#[derive(Debug)]
struct Track {
    /// The next message number expected in order.
    next: i64,
    /// Numbers skipped over, not received yet.
    missing: BTreeSet<i64>,
    duplicated: u64,
    reordered: u64,
}

impl Default for Track {
    fn default() -> Self {
        Self {
            next: 1,
            missing: BTreeSet::new(),
            duplicated: 0,
            reordered: 0,
        }
    }
}

impl Track {
    /// Returns whether `seq` is new.
    fn receive(&mut self, seq: i64) -> bool {
        if seq == self.next {
            self.next += 1;
            true
        } else if seq > self.next {
            self.missing.extend(self.next..seq);
            self.next = seq + 1;
            true
        } else if self.missing.remove(&seq) {
            self.reordered += 1;
            true
        } else {
            self.duplicated += 1;
            false
        }
    }

    /// Messages up to `last` never received.
    fn lost(&self, last: i64) -> u64 {
        let skipped = self.missing.range(..=last).count() as u64;
        skipped + u64::try_from(last - (self.next - 1)).unwrap_or(0)
    }
}

struct Shared {
    index: HashMap<Uuid, usize>,
    /// Per conversation: the highest acked message number.
    last_acked: Vec<AtomicI64>,
    sent: AtomicU64,
    acked: AtomicU64,
    refused: AtomicU64,
    /// Sends whose socket failed before they were written.
    write_failed: AtomicU64,
    delivered: AtomicU64,
    resyncs: AtomicU64,
    connected: AtomicU64,
    failed: AtomicU64,
    delivery: Vec<Mutex<Histogram<u64>>>,
    ack: Vec<Mutex<Histogram<u64>>>,
    send_errors: Mutex<BTreeMap<String, u64>>,
    connect_failures: Mutex<BTreeMap<String, u64>>,
    dropped: Mutex<BTreeMap<String, u64>>,
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

fn merged(shards: &[Mutex<Histogram<u64>>]) -> Latency {
    let mut all = report::histogram();
    for shard in shards {
        if let Ok(h) = shard.lock() {
            let _ = all.add(&*h);
        }
    }
    report::latency(&all)
}

#[derive(Deserialize)]
struct Kind<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
}

#[derive(Deserialize)]
struct Created<'a> {
    #[serde(borrow)]
    message: CreatedMessage<'a>,
}

#[derive(Deserialize)]
struct CreatedMessage<'a> {
    conversation_id: Uuid,
    seq: i64,
    #[serde(borrow)]
    body: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Ack<'a> {
    #[serde(rename = "ref", borrow)]
    reference: Cow<'a, str>,
    message: AckedMessage,
}

#[derive(Deserialize)]
struct AckedMessage {
    conversation_id: Uuid,
    seq: i64,
}

#[derive(Deserialize)]
struct Refused<'a> {
    #[serde(rename = "ref", borrow, default)]
    reference: Option<Cow<'a, str>>,
    #[serde(borrow)]
    code: Cow<'a, str>,
}

/// Reads the fixture, runs, prints the summary and writes the JSON results.
pub async fn main(args: Args) -> anyhow::Result<()> {
    let fixture = Fixture::load(&args.servers.fixture)?;
    let r = run(&fixture, &args).await?;
    println!(
        "chat: {} conversations, {} members connected of {} over {} server(s)\n\
         sent {} at {:.0}/s for {:.0} s ({} not sent): {} acked, {} refused {:?}, {} unacked\n\
         deliveries: {} of {} expected ({:.0}/s): lost {}, duplicated {}, reordered {}; \
         dropped sockets {:?}; resync_required {}\n\
         send→receive ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}\n\
         send→ack ms:     p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}\n\
         persisted: {} of {} conversations end at the last acked message, {} acked messages missing",
        r.conversations,
        r.connected,
        r.participants,
        r.urls.len(),
        r.sent,
        r.offered_rate_per_s,
        r.duration_s,
        r.not_sent,
        r.acked,
        r.send_errors.values().sum::<u64>(),
        r.send_errors,
        r.unacked,
        r.delivered,
        r.expected_deliveries,
        r.deliveries_per_s,
        r.lost,
        r.duplicated,
        r.reordered,
        r.dropped,
        r.resync_required,
        r.delivery.p50_ms,
        r.delivery.p90_ms,
        r.delivery.p99_ms,
        r.delivery.max_ms,
        r.ack.p50_ms,
        r.ack.p90_ms,
        r.ack.p99_ms,
        r.ack.max_ms,
        r.persisted.conversations_matching,
        r.persisted.conversations_checked,
        r.persisted.missing_messages,
    );
    report::write_json(&args.out, &r)?;
    if !r.is_clean() {
        bail!("the run was not clean: see the counts above");
    }
    Ok(())
}

pub async fn run(fixture: &Fixture, args: &Args) -> anyhow::Result<Results> {
    let conversations = &fixture.conversations[..args
        .conversations
        .unwrap_or(usize::MAX)
        .min(fixture.conversations.len())];
    if conversations.is_empty() {
        bail!("the fixture has no conversations: write one with --group-size 2 or more");
    }
    if args.rate <= 0.0 || args.ramp <= 0.0 {
        bail!("--rate and --ramp must be positive");
    }
    // Every member of the chosen conversations gets one socket.
    let mut participants: Vec<usize> = conversations
        .iter()
        .flat_map(|c| c.members.iter().copied())
        .collect();
    participants.sort_unstable();
    participants.dedup();
    let slot: HashMap<usize, usize> = participants
        .iter()
        .enumerate()
        .map(|(slot, &user)| (user, slot))
        .collect();
    socket::ensure_fd_room(participants.len())?;
    let endpoints = args.servers.endpoints().await?;
    let shared = Arc::new(Shared {
        index: conversations
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id, i))
            .collect(),
        last_acked: conversations.iter().map(|_| AtomicI64::new(0)).collect(),
        sent: AtomicU64::new(0),
        acked: AtomicU64::new(0),
        refused: AtomicU64::new(0),
        write_failed: AtomicU64::new(0),
        delivered: AtomicU64::new(0),
        resyncs: AtomicU64::new(0),
        connected: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        delivery: (0..SHARDS)
            .map(|_| Mutex::new(report::histogram()))
            .collect(),
        ack: (0..SHARDS)
            .map(|_| Mutex::new(report::histogram()))
            .collect(),
        send_errors: Mutex::default(),
        connect_failures: Mutex::default(),
        dropped: Mutex::default(),
    });

    // Connect everyone; members of a conversation are consecutive, so round robin over the
    // servers spreads each conversation over all of them.
    let (stop_tx, stop) = watch::channel(false);
    let mut senders = Vec::with_capacity(participants.len());
    let mut tasks = JoinSet::new();
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / args.ramp));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let connecting = Instant::now();
    for (i, &user) in participants.iter().enumerate() {
        ticker.tick().await;
        let (tx, rx) = mpsc::channel(256);
        senders.push(tx);
        let (target, source) = endpoints.pick(i);
        let (target, token) = (target.clone(), fixture.users[user].token.clone());
        let (shared, stop) = (shared.clone(), stop.clone());
        tasks.spawn(async move {
            match socket::open(&target, source, &token).await {
                Ok((ws, _)) => {
                    shared.connected.fetch_add(1, Ordering::Relaxed);
                    Some(participant(i, ws, &shared, rx, stop).await)
                }
                Err(e) => {
                    shared.failed.fetch_add(1, Ordering::Relaxed);
                    count(&shared.connect_failures, e.0);
                    None
                }
            }
        });
    }
    while shared.connected.load(Ordering::Relaxed) + shared.failed.load(Ordering::Relaxed)
        < participants.len() as u64
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "{} of {} members connected in {:.1} s; sending {:.0} messages/s for {} s after {} s",
        shared.connected.load(Ordering::Relaxed),
        participants.len(),
        connecting.elapsed().as_secs_f64(),
        args.rate,
        args.duration,
        args.settle
    );

    tokio::time::sleep(Duration::from_secs(args.settle)).await;

    // Send: open loop, each conversation in turn, each member of it in turn.
    let total = (args.rate * args.duration as f64).round() as u64;
    let mut turns = vec![0usize; conversations.len()];
    let (mut issued, mut not_sent, mut next) = (0u64, 0u64, 0usize);
    let sending = Instant::now();
    let mut last_progress = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while issued < total {
        tick.tick().await;
        let due = ((sending.elapsed().as_secs_f64() * args.rate) as u64).min(total);
        let due_us = now_us();
        while issued < due {
            let c = &conversations[next];
            let member = c.members[turns[next] % c.members.len()];
            turns[next] += 1;
            let send = Send {
                conversation: next,
                due_us,
            };
            if senders[slot[&member]].try_send(send).is_err() {
                not_sent += 1;
            }
            next = (next + 1) % conversations.len();
            issued += 1;
        }
        if last_progress.elapsed() >= Duration::from_secs(10) {
            last_progress = Instant::now();
            println!(
                "  {:>3.0} s: sent {}, acked {}, delivered {}",
                sending.elapsed().as_secs_f64(),
                shared.sent.load(Ordering::Relaxed),
                shared.acked.load(Ordering::Relaxed),
                shared.delivered.load(Ordering::Relaxed)
            );
        }
    }
    let duration = sending.elapsed();

    // Drain: wait for the acks, then for every delivery of what was acked.
    let members = |c: &crate::fixture::Conversation| c.members.len() as u64;
    let drain_until = Instant::now() + Duration::from_secs(args.drain);
    let expected = || -> u64 {
        conversations
            .iter()
            .enumerate()
            .map(|(i, c)| {
                u64::try_from(shared.last_acked[i].load(Ordering::Relaxed)).unwrap_or(0)
                    * members(c)
            })
            .sum()
    };
    while Instant::now() < drain_until {
        let answered =
            shared.acked.load(Ordering::Relaxed) + shared.refused.load(Ordering::Relaxed);
        let sent = shared.sent.load(Ordering::Relaxed);
        if sent + not_sent + shared.write_failed.load(Ordering::Relaxed) >= issued
            && answered >= sent
            && shared.delivered.load(Ordering::Relaxed) >= expected()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop_tx.send(true);
    let mut outcomes = vec![];
    while let Some(done) = tasks.join_next().await {
        if let Ok(Some(outcome)) = done {
            outcomes.push(outcome);
        }
    }

    let last: Vec<i64> = shared
        .last_acked
        .iter()
        .map(|a| a.load(Ordering::Relaxed))
        .collect();
    let (mut lost, mut duplicated, mut reordered, mut unacked) = (0, 0, 0, 0);
    let by_slot: HashMap<usize, &Outcome> = outcomes.iter().map(|o| (o.slot, o)).collect();
    for o in &outcomes {
        unacked += o.unacked;
        for (&conv, track) in &o.tracks {
            lost += track.lost(last[conv]);
            duplicated += track.duplicated;
            reordered += track.reordered;
        }
    }
    // A member whose socket never opened, or who heard nothing of a conversation, missed
    // all of it.
    for (conv, c) in conversations.iter().enumerate() {
        for m in &c.members {
            let heard = by_slot
                .get(&slot[m])
                .is_some_and(|o| o.tracks.contains_key(&conv));
            if !heard {
                lost += u64::try_from(last[conv]).unwrap_or(0);
            }
        }
    }
    let persisted = verify(fixture, conversations, &last, &endpoints).await;
    let delivered = shared.delivered.load(Ordering::Relaxed);
    Ok(Results {
        scenario: "chat",
        urls: endpoints.urls(),
        conversations: conversations.len(),
        participants: participants.len(),
        connected: shared.connected.load(Ordering::Relaxed),
        connect_failures: shared
            .connect_failures
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default(),
        offered_rate_per_s: args.rate,
        duration_s: duration.as_secs_f64(),
        not_sent,
        sent: shared.sent.load(Ordering::Relaxed),
        acked: shared.acked.load(Ordering::Relaxed),
        send_errors: shared
            .send_errors
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default(),
        unacked,
        expected_deliveries: conversations
            .iter()
            .zip(&last)
            .map(|(c, &l)| u64::try_from(l).unwrap_or(0) * members(c))
            .sum(),
        delivered,
        lost,
        duplicated,
        reordered,
        deliveries_per_s: delivered as f64 / duration.as_secs_f64(),
        dropped: shared.dropped.lock().map(|m| m.clone()).unwrap_or_default(),
        resync_required: shared.resyncs.load(Ordering::Relaxed),
        delivery: merged(&shared.delivery),
        ack: merged(&shared.ack),
        persisted,
    })
}

/// What a participant saw.
struct Outcome {
    slot: usize,
    tracks: HashMap<usize, Track>,
    unacked: u64,
}

async fn participant(
    slot: usize,
    mut ws: Socket,
    shared: &Shared,
    mut sends: mpsc::Receiver<Send>,
    mut stop: watch::Receiver<bool>,
) -> Outcome {
    let shard = slot % SHARDS;
    let mut tracks: HashMap<usize, Track> = HashMap::new();
    let mut pending: HashMap<u64, Instant> = HashMap::new();
    let mut next_ref = 0u64;
    let conversation_ids: Vec<Uuid> = {
        let mut ids = vec![Uuid::nil(); shared.index.len()];
        for (id, &i) in &shared.index {
            ids[i] = *id;
        }
        ids
    };
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            Some(send) = sends.recv() => {
                next_ref += 1;
                let frame = format!(
                    r#"{{"type":"send","ref":"{next_ref}","conversation_id":"{}","body":"{BODY_PREFIX}{}","client_msg_id":"{slot}-{next_ref}"}}"#,
                    conversation_ids[send.conversation], send.due_us
                );
                pending.insert(next_ref, Instant::now());
                if let Err(e) = ws.send(Message::text(frame)).await {
                    shared.write_failed.fetch_add(1, Ordering::Relaxed);
                    count(&shared.dropped, format!("write: {e}"));
                    break;
                }
                shared.sent.fetch_add(1, Ordering::Relaxed);
            }
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(text))) => {
                    handle(text.as_str(), shared, shard, &mut tracks, &mut pending);
                }
                Some(Ok(Message::Close(frame))) => {
                    count(&shared.dropped, format!("closed {}", frame.map_or(1005, |f| u16::from(f.code))));
                    break;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    count(&shared.dropped, format!("error: {e}"));
                    break;
                }
                None => {
                    count(&shared.dropped, "eof".to_owned());
                    break;
                }
            }
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), ws.close(None)).await;
    Outcome {
        slot,
        tracks,
        unacked: pending.len() as u64,
    }
}

fn handle(
    text: &str,
    shared: &Shared,
    shard: usize,
    tracks: &mut HashMap<usize, Track>,
    pending: &mut HashMap<u64, Instant>,
) {
    // Live frames start with their `type` (serde writes the tag first): dispatch on it
    // without a second parse. Frames replayed from the event log have their keys in
    // another order.
    let kind = if let Some(rest) = text.strip_prefix(r#"{"type":""#) {
        rest.split('"').next().unwrap_or_default()
    } else {
        match serde_json::from_str::<Kind<'_>>(text) {
            Ok(k) => match k.kind {
                Cow::Borrowed(kind) => kind,
                Cow::Owned(_) => "",
            },
            Err(_) => "",
        }
    };
    if kind == "message.created" {
        let Ok(frame) = serde_json::from_str::<Created<'_>>(text) else {
            count(&shared.send_errors, "unreadable message.created".into());
            return;
        };
        let Some(&conv) = shared.index.get(&frame.message.conversation_id) else {
            return;
        };
        if tracks.entry(conv).or_default().receive(frame.message.seq) {
            shared.delivered.fetch_add(1, Ordering::Relaxed);
            let sent_us = frame
                .message
                .body
                .as_deref()
                .and_then(|b| b.strip_prefix(BODY_PREFIX))
                .and_then(|t| t.parse::<u64>().ok());
            if let (Some(sent_us), Ok(mut h)) = (sent_us, shared.delivery[shard].lock()) {
                report::record(
                    &mut h,
                    Duration::from_micros(now_us().saturating_sub(sent_us)),
                );
            }
        }
    } else if kind == "ack" {
        let Ok(ack) = serde_json::from_str::<Ack<'_>>(text) else {
            return;
        };
        let Some(sent) = ack
            .reference
            .parse::<u64>()
            .ok()
            .and_then(|r| pending.remove(&r))
        else {
            return;
        };
        shared.acked.fetch_add(1, Ordering::Relaxed);
        if let Some(&conv) = shared.index.get(&ack.message.conversation_id) {
            shared.last_acked[conv].fetch_max(ack.message.seq, Ordering::Relaxed);
        }
        if let Ok(mut h) = shared.ack[shard].lock() {
            report::record(&mut h, sent.elapsed());
        }
    } else if kind == "error" {
        let Ok(refused) = serde_json::from_str::<Refused<'_>>(text) else {
            return;
        };
        if let Some(r) = refused.reference.and_then(|r| r.parse::<u64>().ok())
            && pending.remove(&r).is_some()
        {
            shared.refused.fetch_add(1, Ordering::Relaxed);
        }
        count(&shared.send_errors, refused.code.into_owned());
    } else if kind == "resync_required" {
        shared.resyncs.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Deserialize)]
struct ConversationEnvelope {
    data: ConversationState,
}

#[derive(Deserialize)]
struct ConversationState {
    last_message_seq: i64,
}

/// Asks the server, conversation by conversation, for its last message number.
async fn verify(
    fixture: &Fixture,
    conversations: &[crate::fixture::Conversation],
    last: &[i64],
    endpoints: &Endpoints,
) -> Persisted {
    let client = reqwest::Client::new();
    let checks = stream::iter(conversations.iter().zip(last).enumerate())
        .map(|(i, (c, &acked))| {
            let client = client.clone();
            let base = endpoints.http_base(i);
            let token = c
                .members
                .first()
                .map(|&m| fixture.users[m].token.clone())
                .unwrap_or_default();
            async move {
                let stored = async {
                    client
                        .get(format!("{base}/api/v1/conversations/{}", c.id))
                        .bearer_auth(token)
                        .send()
                        .await?
                        .error_for_status()?
                        .json::<ConversationEnvelope>()
                        .await
                }
                .await
                .map(|e| e.data.last_message_seq);
                (acked, stored)
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let mut p = Persisted::default();
    for (acked, stored) in checks {
        p.conversations_checked += 1;
        match stored {
            Ok(stored) if stored >= acked => p.conversations_matching += 1,
            Ok(stored) => p.missing_messages += u64::try_from(acked - stored).unwrap_or(0),
            Err(_) => p.errors += 1,
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::Track;

    #[test]
    fn tracks_count_lost_duplicated_and_reordered() {
        let mut t = Track::default();
        for seq in [1, 2, 4, 3, 3, 6] {
            t.receive(seq);
        }
        assert_eq!((t.duplicated, t.reordered), (1, 1));
        assert_eq!(t.lost(6), 1); // 5
        assert_eq!(t.lost(8), 3); // 5, 7, 8
        assert_eq!(t.lost(4), 0);
    }
}
