//! A participant without chaos: one socket for the whole run; a socket lost is a drop.

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashMap},
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

use super::{
    BODY_PREFIX, Command, Outcome, SHARDS, Shared,
    frames::{self, Ack, Created, Refused},
    now_us,
    track::Track,
};
use crate::{
    report::{self, count},
    socket::Socket,
};

pub(super) async fn participant(
    slot: usize,
    mut ws: Socket,
    shared: &Shared,
    mut commands: mpsc::Receiver<Command>,
    mut stop: watch::Receiver<bool>,
) -> Outcome {
    let shard = slot % SHARDS;
    let mut tracks: HashMap<usize, Track> = HashMap::new();
    let mut pending: HashMap<u64, Pending> = HashMap::new();
    // Refused sends to write again, as a client does after `retry_after`.
    let mut retries: BinaryHeap<Reverse<(Instant, u64)>> = BinaryHeap::new();
    let mut next_ref = 0u64;
    loop {
        let next_retry = retries.peek().map(|Reverse((at, _))| *at);
        tokio::select! {
            _ = stop.changed() => break,
            () = sleep_until(next_retry), if next_retry.is_some() => {
                let Some(Reverse((_, r))) = retries.pop() else { continue };
                let Some(p) = pending.get(&r) else { continue };
                shared.retried.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = ws.send(Message::text(p.frame.clone())).await {
                    shared.write_failed.fetch_add(1, Ordering::Relaxed);
                    count(&shared.dropped, format!("write: {e}"));
                    break;
                }
            }
            Some(command) = commands.recv() => {
                let Command::Send(send) = command else { continue };
                next_ref += 1;
                let frame = format!(
                    r#"{{"type":"send","ref":"{next_ref}","conversation_id":"{}","body":"{BODY_PREFIX}{}","client_msg_id":"{slot}-{next_ref}"}}"#,
                    shared.ids[send.conversation], send.due_us
                );
                pending.insert(next_ref, Pending { sent: Instant::now(), refusals: 0, frame: frame.clone() });
                if let Err(e) = ws.send(Message::text(frame)).await {
                    shared.write_failed.fetch_add(1, Ordering::Relaxed);
                    count(&shared.dropped, format!("write: {e}"));
                    break;
                }
                shared.sent.fetch_add(1, Ordering::Relaxed);
            }
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(text))) => {
                    handle(text.as_str(), shared, shard, &mut tracks, &mut pending, &mut retries);
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
        notifications: None,
    }
}

/// A send waiting for its ack.
struct Pending {
    /// When it was first written.
    sent: Instant,
    /// How often it was refused (and sent again).
    refusals: u32,
    frame: String,
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at.into()).await;
    }
}

fn handle(
    text: &str,
    shared: &Shared,
    shard: usize,
    tracks: &mut HashMap<usize, Track>,
    pending: &mut HashMap<u64, Pending>,
    retries: &mut BinaryHeap<Reverse<(Instant, u64)>>,
) {
    let kind = frames::kind(text);
    if kind == "message.created" {
        let Ok(frame) = serde_json::from_str::<Created<'_>>(text) else {
            count(&shared.send_errors, "unreadable message.created".into());
            return;
        };
        let Some(&conv) = shared.index.get(&frame.message.conversation_id) else {
            return;
        };
        if tracks.entry(conv).or_default().receive(frame.message.seq) {
            shared.record_delivery(shard, frame.message.body.as_deref());
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
        if sent.refusals == 0 {
            shared.record_answer(shard, sent.sent);
        }
        shared.record_ack(shard, &ack, sent.sent);
    } else if kind == "error" {
        let Ok(refused) = serde_json::from_str::<Refused<'_>>(text) else {
            return;
        };
        let reference = refused
            .reference
            .as_deref()
            .and_then(|r| r.parse::<u64>().ok());
        let Some((r, p)) = reference.and_then(|r| Some((r, pending.get_mut(&r)?))) else {
            count(&shared.send_errors, refused.code.into_owned());
            return;
        };
        shared.refused.fetch_add(1, Ordering::Relaxed);
        if p.refusals == 0 {
            shared.record_answer(shard, p.sent);
        }
        p.refusals += 1;
        // Refusals that stored nothing are sent again with the same `client_msg_id`, as
        // the protocol README asks: after at least the delay the server gave, doubling at
        // each new refusal (up to 16 times), spread by up to a quarter so that refused
        // clients do not all come back at once.
        match (&*refused.code, refused.retry_after) {
            ("overloaded" | "rate_limited", Some(secs)) => {
                let base = Duration::from_secs(secs.max(1)) * (1 << (p.refusals - 1).min(4));
                let spread = base / 4 * u32::try_from(r % 101).unwrap_or(0) / 100;
                retries.push(Reverse((Instant::now() + base + spread, r)));
            }
            _ => {
                pending.remove(&r);
                shared.given_up.fetch_add(1, Ordering::Relaxed);
                count(&shared.send_errors, refused.code.into_owned());
            }
        }
    } else if kind == "resync_required" {
        shared.resyncs.fetch_add(1, Ordering::Relaxed);
    }
}

impl Shared {
    /// A message received for the first time: counted, and its latency recorded when its
    /// body carries the time it was due.
    pub(crate) fn record_delivery(&self, shard: usize, body: Option<&str>) {
        self.delivered.fetch_add(1, Ordering::Relaxed);
        let sent_us = body
            .and_then(|b| b.strip_prefix(BODY_PREFIX))
            .and_then(|t| t.parse::<u64>().ok());
        if let (Some(sent_us), Ok(mut h)) = (sent_us, self.delivery[shard].lock()) {
            report::record(
                &mut h,
                Duration::from_micros(now_us().saturating_sub(sent_us)),
            );
        }
    }

    /// The first answer (ack or refusal) to a send first written at `sent`.
    pub(crate) fn record_answer(&self, shard: usize, sent: Instant) {
        if let Ok(mut h) = self.answer[shard].lock() {
            report::record(&mut h, sent.elapsed());
        }
    }

    /// An ack for a send first written at `sent`.
    pub(crate) fn record_ack(&self, shard: usize, ack: &Ack<'_>, sent: Instant) {
        self.acked.fetch_add(1, Ordering::Relaxed);
        if let Some(&conv) = self.index.get(&ack.message.conversation_id) {
            self.last_acked[conv].fetch_max(ack.message.seq, Ordering::Relaxed);
        }
        if let Ok(mut h) = self.ack[shard].lock() {
            report::record(&mut h, sent.elapsed());
        }
    }
}
