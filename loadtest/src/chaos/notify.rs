//! Notifications in chaos mode: the fixture's administrator sends announcements (to one
//! member, or to everyone), and every client checks the `notification.created` frames it
//! gets: numbers 1, 2, 3… (after the one it started from) exactly once each, in order,
//! across reconnects.

use std::{
    collections::{BTreeMap, HashSet},
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use crate::{chat::track::Track, report::count, socket::Endpoints};

/// Prefix of the failures that are the server's answer (the others are transport errors:
/// a killed instance, a timeout).
const REFUSED: &str = "status ";

#[derive(Default)]
pub(crate) struct Counters {
    /// Announcements the server accepted.
    pub sent: AtomicU64,
    /// Of which to everyone.
    pub to_all: AtomicU64,
    /// Announcements to one member, by the member's slot.
    pub direct: Vec<AtomicU64>,
    pub failed: Mutex<BTreeMap<String, u64>>,
    /// Distinct notifications received, over all clients.
    pub delivered: AtomicU64,
}

impl Counters {
    pub fn new(clients: usize) -> Self {
        Self {
            direct: (0..clients).map(|_| AtomicU64::new(0)).collect(),
            ..Self::default()
        }
    }

    /// How many notifications the client in `slot` should get.
    pub fn expected(&self, slot: usize) -> u64 {
        self.to_all.load(Ordering::Relaxed)
            + self
                .direct
                .get(slot)
                .map_or(0, |d| d.load(Ordering::Relaxed))
    }

    pub fn expected_total(&self) -> u64 {
        (0..self.direct.len()).map(|s| self.expected(s)).sum()
    }
}

/// Sends `rate` announcements a second until `until`: every `all_every`th to everyone, the
/// others to one random client (`users`: the clients' user ids, by slot).
pub(crate) async fn announce(
    endpoints: &Endpoints,
    admin_token: &str,
    users: &[Uuid],
    rate: f64,
    all_every: u32,
    until: Instant,
    counters: &Counters,
) {
    if rate <= 0.0 || users.is_empty() {
        return;
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap_or_default();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut k: u64 = 0;
    loop {
        tick.tick().await;
        if Instant::now() >= until {
            return;
        }
        k += 1;
        let to_all = all_every > 0 && k.is_multiple_of(u64::from(all_every));
        let slot = rand::random_range(0..users.len());
        let mut body = json!({
            "title": format!("Chaos announcement {k}"),
            "body": "Sent by tunelink-load in chaos mode.",
        });
        if to_all {
            body["all"] = json!(true);
        } else {
            body["user_id"] = json!(users[slot]);
        }
        // A server that refuses the connection created nothing: try the others. Any other
        // failure leaves it unknown whether the announcement exists; it is counted.
        let first = rand::random_range(0..endpoints.len());
        let mut outcome = Err("no server".to_owned());
        for server in first..first + endpoints.len() {
            let url = format!("{}/api/v1/notifications", endpoints.http_base(server));
            match http
                .post(url)
                .bearer_auth(admin_token)
                .json(&body)
                .send()
                .await
            {
                Ok(r) if r.status().as_u16() == 201 => {
                    outcome = Ok(());
                    break;
                }
                Ok(r) => {
                    outcome = Err(format!("{REFUSED}{}", r.status().as_u16()));
                    break;
                }
                Err(e) if e.is_connect() => outcome = Err("connect".to_owned()),
                Err(e) => {
                    outcome = Err(if e.is_timeout() { "timeout" } else { "error" }.to_owned());
                    break;
                }
            }
        }
        match outcome {
            Ok(()) => {
                counters.sent.fetch_add(1, Ordering::Relaxed);
                if to_all {
                    counters.to_all.fetch_add(1, Ordering::Relaxed);
                } else {
                    counters.direct[slot].fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(why) => count(&counters.failed, why),
        }
    }
}

/// One client's notifications, across its sockets.
#[derive(Debug, Default)]
pub struct Seen {
    /// The number `resumed` gave on the first socket: the run's notifications follow it.
    pub baseline: Option<i64>,
    /// The last number processed (what `resume` sends as `notifications`).
    pub position: i64,
    /// Whether the server numbers notifications (`resumed.notifications_seq`, or `seq`
    /// on a frame); `None` until the first `resumed`.
    pub numbered: Option<bool>,
    resumed_once: bool,
    pub track: Track,
    pub ids: HashSet<Uuid>,
    pub duplicated_ids: u64,
    pub unnumbered: u64,
}

impl Seen {
    /// A `resumed` frame: the first gives the baseline; each gives the position. Returns
    /// whether it was the first.
    pub fn resumed(&mut self, notifications_seq: Option<i64>) -> bool {
        let first = !self.resumed_once;
        self.resumed_once = true;
        match notifications_seq {
            Some(n) => {
                if first {
                    self.baseline = Some(n);
                    self.track = Track::after(n);
                }
                self.numbered = Some(true);
                self.position = n;
            }
            None if self.numbered.is_none() => self.numbered = Some(false),
            None => {}
        }
        first
    }

    /// A notification (frame or REST item); returns whether it is new.
    pub fn receive(&mut self, id: Option<Uuid>, seq: Option<i64>) -> bool {
        let new_id = match id {
            Some(id) => {
                let new = self.ids.insert(id);
                if !new {
                    self.duplicated_ids += 1;
                }
                new
            }
            None => true,
        };
        match seq {
            Some(seq) => {
                self.numbered = Some(true);
                self.track.receive(seq);
                self.position = self.position.max(seq);
            }
            None => self.unnumbered += 1,
        }
        new_id
    }
}

/// The `chaos.notifications` object of the results.
#[derive(Debug, Default, Serialize)]
pub struct Notifications {
    /// Announcements accepted by the server, of which to everyone.
    pub sent: u64,
    pub to_all: u64,
    /// Announcements not sent: refused by the server (`status …`, which makes the run
    /// unclean), or lost in transport (`connect`, `timeout`, `error`: whether they exist
    /// is unknown; if they do, they show as `unexpected`).
    pub failed: BTreeMap<String, u64>,
    /// Deliveries expected (one per recipient client) and received (distinct).
    pub expected: u64,
    pub delivered: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub reordered: u64,
    /// More received than sent to a client (an announcement whose answer was lost).
    pub unexpected: u64,
    /// Whether the server numbered them (`seq`, `resumed.notifications_seq`).
    pub numbered: bool,
    /// `notification.created` frames without `seq`.
    pub unnumbered_frames: u64,
}

impl Notifications {
    /// Announcements the server refused.
    pub fn refused(&self) -> u64 {
        self.failed
            .iter()
            .filter(|(why, _)| why.starts_with(REFUSED))
            .map(|(_, n)| n)
            .sum()
    }

    pub(crate) fn tally<'a>(
        counters: &Counters,
        clients: impl Iterator<Item = (usize, Option<&'a Seen>)>,
    ) -> Self {
        let mut n = Self {
            sent: counters.sent.load(Ordering::Relaxed),
            to_all: counters.to_all.load(Ordering::Relaxed),
            failed: counters
                .failed
                .lock()
                .map(|m| m.clone())
                .unwrap_or_default(),
            numbered: true,
            ..Self::default()
        };
        for (slot, seen) in clients {
            let expected = counters.expected(slot);
            n.expected += expected;
            let Some(seen) = seen else {
                n.lost += expected;
                continue;
            };
            let received = seen.ids.len() as u64;
            n.delivered += received;
            let mut lost = expected.saturating_sub(received);
            let mut duplicated = seen.duplicated_ids;
            if seen.numbered == Some(true) && seen.unnumbered == 0 {
                let last = seen.baseline.unwrap_or(0) + i64::try_from(expected).unwrap_or(0);
                lost = lost.max(seen.track.lost(last));
                duplicated = duplicated.max(seen.track.duplicated);
                n.reordered += seen.track.reordered;
            } else {
                n.numbered = false;
            }
            n.lost += lost;
            n.duplicated += duplicated;
            n.unexpected += received.saturating_sub(expected);
            n.unnumbered_frames += seen.unnumbered;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::{Counters, Notifications, Seen};

    #[test]
    fn numbered_notifications_count_from_the_first_resumed() {
        let counters = Counters::new(2);
        counters
            .to_all
            .store(2, std::sync::atomic::Ordering::Relaxed);
        counters.direct[1].store(1, std::sync::atomic::Ordering::Relaxed);
        // Client 0 started at 5 and got 6, 7; client 1 started at 0 and got 1, 3, 3.
        let mut a = Seen::default();
        assert!(a.resumed(Some(5)));
        for seq in [6, 7] {
            assert!(a.receive(Some(Uuid::from_u128(seq as u128)), Some(seq)));
        }
        let mut b = Seen::default();
        b.resumed(Some(0));
        let twice = Uuid::from_u128(3);
        b.receive(Some(Uuid::from_u128(1)), Some(1));
        b.receive(Some(twice), Some(3));
        assert!(!b.receive(Some(twice), Some(3)));
        assert!(!b.resumed(Some(3)));
        let n = Notifications::tally(&counters, [(0, Some(&a)), (1, Some(&b))].into_iter());
        assert_eq!((n.expected, n.delivered), (5, 4));
        assert_eq!((n.lost, n.duplicated, n.reordered), (1, 1, 0));
        assert!(n.numbered);
    }

    #[test]
    fn unnumbered_notifications_are_counted_by_id() {
        let counters = Counters::new(1);
        counters
            .to_all
            .store(3, std::sync::atomic::Ordering::Relaxed);
        let mut a = Seen::default();
        a.resumed(None);
        a.receive(Some(Uuid::from_u128(1)), None);
        let n = Notifications::tally(&counters, [(0, Some(&a))].into_iter());
        assert_eq!((n.lost, n.unnumbered_frames), (2, 1));
        assert!(!n.numbered);
    }
}
