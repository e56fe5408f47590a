//! The chat scenario's results: counted from what every participant saw, printed and
//! written as JSON.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::{Outcome, verify::Persisted};
use crate::{chaos, fixture::Conversation, report::Latency};

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
    /// Sends refused (`error` with their `ref`); in chaos mode, refusals that stored
    /// nothing (`rate_limited`…) are retried and counted here each time.
    pub refused: u64,
    /// Error codes received; in chaos mode only those not retried.
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
    /// Sockets closed or lost during the run (expected in chaos mode).
    pub dropped: BTreeMap<String, u64>,
    pub resync_required: u64,
    /// Send → `message.created` at each receiver.
    pub delivery: Latency,
    /// Send → `ack` at the sender (from the first attempt, in chaos mode).
    pub ack: Latency,
    /// Send → first answer (ack or refusal), from when the send was first written.
    #[serde(default)]
    pub answer: Latency,
    /// Refused sends sent again after `retry_after` with the same `client_msg_id`.
    #[serde(default)]
    pub retried: u64,
    pub persisted: Persisted,
    /// Chaos mode only: what was done to the clients and servers, and what came back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chaos: Option<chaos::Results>,
}

impl Results {
    /// Nothing lost, duplicated, reordered, unacked, refused or dropped, and all persisted.
    /// In chaos mode dropped sockets and retried refusals are expected; the chaos checks
    /// (notifications, twins, faults) must pass instead.
    pub fn is_clean(&self) -> bool {
        let common = self.connected as usize == self.participants
            && self.lost == 0
            && self.duplicated == 0
            && self.reordered == 0
            && self.unacked == 0
            && self.not_sent == 0
            && self.send_errors.is_empty()
            && self.persisted.missing_messages == 0
            && self.persisted.errors == 0
            && self.persisted.conversations_matching == self.conversations as u64;
        match &self.chaos {
            Some(chaos) => common && chaos.is_clean(),
            None => common && self.dropped.is_empty(),
        }
    }

    pub fn print(&self) {
        let r = self;
        println!(
            "chat: {} conversations, {} members connected of {} over {} server(s)\n\
             sent {} at {:.0}/s for {:.0} s ({} not sent): {} acked, {} refused, errors {:?}, {} unacked\n\
             deliveries: {} of {} expected ({:.0}/s): lost {}, duplicated {}, reordered {}; \
             dropped sockets {:?}; resync_required {}\n\
             send→receive ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}\n\
             send→ack ms:     p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}\n\
             first answer ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2} (ack or refusal; {} refused sends retried)\n\
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
            r.refused,
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
            r.answer.p50_ms,
            r.answer.p90_ms,
            r.answer.p99_ms,
            r.answer.max_ms,
            r.retried,
            r.persisted.conversations_matching,
            r.persisted.conversations_checked,
            r.persisted.missing_messages,
        );
        if let Some(c) = &self.chaos {
            let n = &c.notifications;
            println!(
                "chaos: {} disconnects, {} reconnects (failures {:?}), {} resumes, {} resumed \
                 ({} replayed), resync_required {:?}, {} refetches ({} messages, {} failed)\n\
                 chaos: {} sends retried, refusals {:?}, {} stale frames, {} late frames, {} event gaps, {} twins\n\
                 chaos: notifications {} sent ({} to all, failed {:?}): {} of {} delivered, \
                 lost {}, duplicated {}, reordered {}, unexpected {}, numbered {} ({} frames without seq)",
                c.disconnects,
                c.reconnects,
                c.reconnect_failures,
                c.resumes,
                c.resumed,
                c.replayed,
                c.resync_required,
                c.refetches,
                c.refetched_messages,
                c.refetch_failures,
                c.retried_sends,
                c.refusals,
                c.stale_frames,
                c.late_frames,
                c.event_gaps,
                c.twins,
                n.sent,
                n.to_all,
                n.failed,
                n.delivered,
                n.expected,
                n.lost,
                n.duplicated,
                n.reordered,
                n.unexpected,
                n.numbered,
                n.unnumbered_frames,
            );
            for f in &c.faults {
                println!(
                    "chaos: {} at {:.1} s (planned {:.1} s), took {:.2} s{}",
                    f.fault,
                    f.at_s,
                    f.planned_at_s,
                    f.took_s,
                    f.error
                        .as_deref()
                        .map(|e| format!(", FAILED: {e}"))
                        .unwrap_or_default()
                );
            }
        }
    }
}

/// Messages lost, duplicated and reordered over every participant, and sends unacked.
pub(super) struct Tally {
    pub lost: u64,
    pub duplicated: u64,
    pub reordered: u64,
    pub unacked: u64,
}

/// `last`: per conversation, the last acked message number; `slot`: participant by user.
pub(super) fn tally(
    outcomes: &[Outcome],
    conversations: &[Conversation],
    last: &[i64],
    slot: &HashMap<usize, usize>,
) -> Tally {
    let mut t = Tally {
        lost: 0,
        duplicated: 0,
        reordered: 0,
        unacked: 0,
    };
    let by_slot: HashMap<usize, &Outcome> = outcomes.iter().map(|o| (o.slot, o)).collect();
    for o in outcomes {
        t.unacked += o.unacked;
        for (&conv, track) in &o.tracks {
            t.lost += track.lost(last[conv]);
            t.duplicated += track.duplicated;
            t.reordered += track.reordered;
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
                t.lost += u64::try_from(last[conv]).unwrap_or(0);
            }
        }
    }
    t
}
