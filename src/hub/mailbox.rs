//! A connection's mailbox: the items waiting for its socket, and why it must stop.
//!
//! Tens of thousands of sockets sit idle most of the time, so an idle mailbox owns no
//! buffer: the queue is allocated by the first item, and given back once drained. It is bounded: a connection with [`QUEUE_CAPACITY`] items waiting is a slow
//! consumer, and the hub cuts it instead of waiting for it.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
};

use tokio::sync::Notify;
use uuid::Uuid;

use crate::frames::StreamId;

/// Items a connection may have waiting before it counts as a slow consumer.
pub const QUEUE_CAPACITY: usize = 256;

/// What a connection's task receives.
pub enum Outgoing {
    /// A frame, serialised once for every recipient; `event` is its stream and number
    /// (conversation events, notifications), used to drop duplicates and fill gaps.
    Frame {
        event: Option<(StreamId, i64)>,
        text: Arc<str>,
    },
    /// Replay what was missed after these numbers (from the client's `resume`).
    Resume(Box<Resume>),
    /// The client's first frame was not `resume`: release held live frames.
    Live,
}

/// The positions a client's `resume` gave.
pub struct Resume {
    pub conversations: HashMap<Uuid, i64>,
    pub notifications: Option<i64>,
}

/// Shared by the hub, which fills it, and the connection's task, which empties it, until
/// someone closes it (with a reason the task sends in its close frame).
#[derive(Default)]
pub struct Mailbox {
    queue: Mutex<Queue>,
    ready: Notify,
}

#[derive(Default)]
struct Queue {
    items: VecDeque<Outgoing>,
    /// Why the connection must end; the first reason given wins.
    closed: Option<(u16, &'static str)>,
}

/// The queue is full: the connection is a slow consumer.
#[derive(Debug)]
pub struct Full;

impl Mailbox {
    /// Queues an item, never waiting.
    pub fn push(&self, item: Outgoing) -> Result<(), Full> {
        let mut queue = self.lock();
        if queue.items.len() >= QUEUE_CAPACITY {
            return Err(Full);
        }
        let was_empty = queue.items.is_empty();
        queue.items.push_back(item);
        drop(queue);
        // The reader drains everything before it waits again, so only the first item of
        // a run needs to wake it (a wake-up with nobody waiting is kept for later).
        if was_empty {
            self.ready.notify_one();
        }
        Ok(())
    }

    /// Tells the connection to end (the first reason given is the one sent).
    pub fn close(&self, code: u16, reason: &'static str) {
        let mut queue = self.lock();
        if queue.closed.is_none() {
            queue.closed = Some((code, reason));
            drop(queue);
            self.ready.notify_one();
        }
    }

    /// Whether the connection was told to end.
    pub fn is_closed(&self) -> bool {
        self.lock().closed.is_some()
    }

    /// Why the connection ends (a normal closure unless someone said otherwise).
    pub fn reason(&self) -> (u16, &'static str) {
        self.lock().closed.unwrap_or((1000, "closed"))
    }

    /// Waits until something is queued, then moves up to `max` items into `into`; `None`
    /// once the mailbox is closed. Cancel-safe: nothing is taken unless it returns.
    pub async fn recv(&self, into: &mut Vec<Outgoing>, max: usize) -> Option<usize> {
        loop {
            match self.take(into, max) {
                Some(0) => self.ready.notified().await,
                taken => return taken,
            }
        }
    }

    fn take(&self, into: &mut Vec<Outgoing>, max: usize) -> Option<usize> {
        let mut queue = self.lock();
        if queue.closed.is_some() {
            return None;
        }
        let n = queue.items.len().min(max);
        into.extend(queue.items.drain(..n));
        // Drained: an idle connection keeps no buffer.
        if queue.items.is_empty() {
            queue.items = VecDeque::new();
        }
        Some(n)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // Nothing panics while holding it; a poisoned queue is still consistent.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: i64) -> Outgoing {
        Outgoing::Frame {
            event: Some((StreamId::Notifications, n)),
            text: Arc::from(n.to_string()),
        }
    }

    fn numbers(items: &[Outgoing]) -> Vec<i64> {
        items
            .iter()
            .filter_map(|i| match i {
                Outgoing::Frame {
                    event: Some((_, n)),
                    ..
                } => Some(*n),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn items_come_out_in_order_in_batches_and_a_full_queue_refuses() {
        let mailbox = Mailbox::default();
        for n in 0..QUEUE_CAPACITY as i64 {
            mailbox.push(frame(n)).expect("room");
        }
        assert!(mailbox.push(frame(-1)).is_err(), "a full queue refuses");
        let mut items = Vec::new();
        assert_eq!(mailbox.recv(&mut items, 100).await, Some(100));
        assert_eq!(numbers(&items), (0..100).collect::<Vec<_>>());
        items.clear();
        let rest = mailbox.recv(&mut items, 1000).await;
        assert_eq!(rest, Some(QUEUE_CAPACITY - 100));
        assert_eq!(numbers(&items)[0], 100);
        let capacity = mailbox.lock().items.capacity();
        assert_eq!(capacity, 0, "a drained burst gives its buffer back");
    }

    #[tokio::test]
    async fn a_waiting_reader_wakes_for_an_item_pushed_later() {
        let mailbox = Arc::new(Mailbox::default());
        let reader = {
            let mailbox = mailbox.clone();
            tokio::spawn(async move {
                let mut items = Vec::new();
                mailbox.recv(&mut items, 8).await;
                numbers(&items)
            })
        };
        tokio::task::yield_now().await;
        mailbox.push(frame(7)).expect("room");
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), reader)
            .await
            .expect("woken")
            .expect("no panic");
        assert_eq!(got, vec![7]);
    }

    #[tokio::test]
    async fn a_cancelled_wait_loses_nothing() {
        let mailbox = Mailbox::default();
        let mut items = Vec::new();
        // Waiting, then given up (as a `select!` does when another branch wins).
        let waited = tokio::time::timeout(
            std::time::Duration::from_millis(10),
            mailbox.recv(&mut items, 8),
        );
        assert!(waited.await.is_err());
        mailbox.push(frame(1)).expect("room");
        mailbox.push(frame(2)).expect("room");
        assert_eq!(mailbox.recv(&mut items, 8).await, Some(2));
        assert_eq!(numbers(&items), vec![1, 2]);
    }

    #[tokio::test]
    async fn closing_wakes_the_reader_and_the_first_reason_wins() {
        let mailbox = Arc::new(Mailbox::default());
        let reader = {
            let mailbox = mailbox.clone();
            tokio::spawn(async move { mailbox.recv(&mut Vec::new(), 8).await })
        };
        tokio::task::yield_now().await;
        mailbox.close(4008, "too slow");
        mailbox.close(4004, "revoked");
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), reader)
            .await
            .expect("woken")
            .expect("no panic");
        assert_eq!(got, None);
        assert!(mailbox.is_closed());
        assert_eq!(mailbox.reason(), (4008, "too slow"));
    }
}
