use std::collections::HashMap;

use proptest::prelude::*;

use super::*;

fn conv(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn frame(stream: StreamId, seq: i64) -> Arc<str> {
    let name = match stream {
        StreamId::Conversation(c) => c.as_u128().to_string(),
        StreamId::Notifications => "n".into(),
    };
    Arc::from(format!("{name}:{seq}"))
}

fn member(c: Uuid, last: i64) -> Membership {
    Membership {
        conversation: c,
        last,
        floor: 0,
        active: true,
    }
}

fn sent(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(t) => Some(t.to_string()),
            _ => None,
        })
        .collect()
}

/// The store's answer: frames `after+1..=last` (at most `limit`).
fn answer(stream: StreamId, after: i64, last: i64, limit: i64) -> Replayed {
    let end = last.min(after + limit);
    Replayed {
        frames: ((after + 1)..=end).map(|s| (s, frame(stream, s))).collect(),
        last: Some(last),
        complete: end == last,
    }
}

/// A machine already live (the client sent `ping`), conversation 1 at event `last`.
fn live(last: i64) -> Sync {
    let mut sync = Sync::new(&[member(conv(1), last)], 0);
    assert!(sync.go_live().is_empty());
    sync
}

#[test]
fn in_order_frames_pass_and_repeats_are_dropped() {
    let c = StreamId::Conversation(conv(1));
    let mut sync = live(3);
    assert_eq!(sent(&sync.offer(c, 4, frame(c, 4))), ["1:4"]);
    assert!(sync.offer(c, 4, frame(c, 4)).is_empty(), "a repeat");
    assert!(sync.offer(c, 2, frame(c, 2)).is_empty(), "before the start");
    assert_eq!(sent(&sync.offer(c, 5, frame(c, 5))), ["1:5"]);
}

#[test]
fn a_frame_overtaken_by_the_next_is_still_sent_first() {
    // Defect 2: N+1 then N used to send N+1 and drop N.
    let c = StreamId::Conversation(conv(1));
    let mut sync = live(3);
    assert!(
        sync.offer(c, 5, frame(c, 5)).is_empty(),
        "held past the gap"
    );
    assert!(sync.has_gaps());
    assert_eq!(sent(&sync.offer(c, 4, frame(c, 4))), ["1:4", "1:5"]);
    assert!(sync.expire_gaps().is_empty(), "the gap closed by itself");
}

#[test]
fn a_gap_that_stays_open_is_filled_from_the_store() {
    let c = StreamId::Conversation(conv(1));
    let mut sync = live(3);
    sync.offer(c, 6, frame(c, 6));
    let actions = sync.expire_gaps();
    assert_eq!(
        actions,
        [Action::Replay {
            stream: c,
            after: 3
        }]
    );
    let out = sync.replayed(c, answer(c, 3, 6, 500));
    assert_eq!(sent(&out), ["1:4", "1:5", "1:6"]);
    assert!(sync.offer(c, 5, frame(c, 5)).is_empty(), "already replayed");
    assert_eq!(sent(&sync.offer(c, 7, frame(c, 7))), ["1:7"]);
}

#[test]
fn resume_on_the_same_socket_replays_after_the_clients_position() {
    // Defect 1: live frames had been sent, then the transport lost 5 and 6.
    let c = StreamId::Conversation(conv(1));
    let mut sync = live(3);
    assert_eq!(sent(&sync.offer(c, 4, frame(c, 4))), ["1:4"]);
    let actions = sync.resume(&[member(conv(1), 6)], &HashMap::from([(conv(1), 4)]), None);
    assert_eq!(
        actions,
        [
            Action::Replay {
                stream: c,
                after: 4
            },
            Action::Resumed
        ]
    );
    assert_eq!(
        sent(&sync.replayed(c, answer(c, 4, 6, 500))),
        ["1:5", "1:6"]
    );
    // Even frames this socket sent: the client's word is the truth.
    let again = sync.resume(&[member(conv(1), 6)], &HashMap::from([(conv(1), 2)]), None);
    assert_eq!(
        again[0],
        Action::Replay {
            stream: c,
            after: 2
        }
    );
}

#[test]
fn frames_wait_for_the_first_client_frame_and_a_resume_overtakes_none() {
    let c = StreamId::Conversation(conv(1));
    let mut sync = Sync::new(&[member(conv(1), 3)], 0);
    assert!(sync.offer(c, 4, frame(c, 4)).is_empty(), "held");
    let actions = sync.resume(&[member(conv(1), 4)], &HashMap::from([(conv(1), 1)]), None);
    assert_eq!(
        actions[0],
        Action::Replay {
            stream: c,
            after: 1
        }
    );
    assert_eq!(
        sent(&sync.replayed(c, answer(c, 1, 4, 500))),
        ["1:2", "1:3", "1:4"],
        "the held frame is not sent twice"
    );
}

#[test]
fn without_resume_the_held_frames_go_out_in_order() {
    let c = StreamId::Conversation(conv(1));
    let mut sync = Sync::new(&[member(conv(1), 3)], 0);
    sync.offer(c, 5, frame(c, 5));
    sync.offer(c, 4, frame(c, 4));
    assert_eq!(sent(&sync.go_live()), ["1:4", "1:5"]);
}

#[test]
fn unlisted_conversations_replay_from_the_users_joining() {
    let c = StreamId::Conversation(conv(1));
    let mut sync = Sync::new(&[], 0);
    let joined = Membership {
        floor: 10,
        ..member(conv(1), 12)
    };
    let actions = sync.resume(&[joined], &HashMap::new(), None);
    assert_eq!(
        actions[0],
        Action::Replay {
            stream: c,
            after: 10
        }
    );
    let listed_too_low = sync.resume(&[joined], &HashMap::from([(conv(1), 2)]), None);
    assert_eq!(
        listed_too_low[0],
        Action::Replay {
            stream: c,
            after: 10
        }
    );
}

#[test]
fn a_new_conversation_starts_at_its_creation_or_at_the_store() {
    let created = StreamId::Conversation(conv(7));
    let joined = StreamId::Conversation(conv(8));
    let mut sync = live(0);
    assert_eq!(sent(&sync.offer(created, 1, frame(created, 1))), ["7:1"]);
    // Added to a conversation at event 20: its 21 arrived before its 20.
    assert_eq!(
        sync.offer(joined, 21, frame(joined, 21)),
        [Action::Replay {
            stream: joined,
            after: 0
        }]
    );
    let store = Replayed {
        frames: vec![(20, frame(joined, 20)), (21, frame(joined, 21))],
        last: Some(21),
        complete: true,
    };
    assert_eq!(sent(&sync.replayed(joined, store)), ["8:20", "8:21"]);
    assert!(sync.offer(joined, 20, frame(joined, 20)).is_empty());
}

#[test]
fn too_much_missed_asks_for_a_refetch() {
    let c = StreamId::Conversation(conv(1));
    let mut sync = Sync::new(&[], 0);
    sync.resume(&[member(conv(1), 900)], &HashMap::new(), None);
    let out = sync.replayed(c, answer(c, 0, 900, 500));
    assert_eq!(out.last(), Some(&Action::Resync(c)));
    assert!(sync.offer(c, 900, frame(c, 900)).is_empty());
    assert_eq!(sent(&sync.offer(c, 901, frame(c, 901))), ["1:901"]);
}

#[test]
fn notifications_replay_and_skip_what_was_deleted() {
    let n = StreamId::Notifications;
    let mut sync = Sync::new(&[], 2);
    let actions = sync.resume(&[], &HashMap::new(), Some(2));
    assert_eq!(
        actions,
        [
            Action::Replay {
                stream: n,
                after: 2
            },
            Action::Resumed
        ]
    );
    // 3 was deleted: the store answers 4 and its last number, 5.
    let store = Replayed {
        frames: vec![(4, frame(n, 4)), (5, frame(n, 5))],
        last: Some(5),
        complete: true,
    };
    assert_eq!(sent(&sync.replayed(n, store)), ["n:4", "n:5"]);
    assert_eq!(sync.notifications_seq(), 5);
    assert!(sync.offer(n, 3, frame(n, 3)).is_empty());
    assert_eq!(sent(&sync.offer(n, 6, frame(n, 6))), ["n:6"]);
}

#[test]
fn a_long_gap_is_filled_at_once() {
    let c = StreamId::Conversation(conv(1));
    let mut sync = live(0);
    let mut replays = Vec::new();
    for seq in 2..(PENDING_LIMIT as i64 + 3) {
        replays.extend(sync.offer(c, seq, frame(c, seq)));
    }
    assert_eq!(
        replays,
        [Action::Replay {
            stream: c,
            after: 0
        }]
    );
}

// The property: whatever happens to live frames on the way (reordered, repeated, lost —
// a loss is always followed by the bus's resync signal), and however often the client
// reconnects or resumes, each stream the client sees is exactly 1..N, once, in order.

#[derive(Debug, Clone)]
enum Op {
    /// A change is stored in stream `0` (notifications) or conversation 1..=3.
    Commit(u8),
    /// The in-flight frame at this index reaches the connection.
    Deliver(usize),
    /// It reaches it and stays in flight (a repeat later).
    Repeat(usize),
    /// It is lost in transport.
    Lose(usize),
    /// The bus says frames may have been lost: the client resumes on the same socket.
    Resync,
    /// The gap timer fires.
    Expire,
    /// The socket drops; the client reconnects and resumes.
    Reconnect,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..4).prop_map(Op::Commit),
        4 => any::<usize>().prop_map(Op::Deliver),
        1 => any::<usize>().prop_map(Op::Repeat),
        1 => any::<usize>().prop_map(Op::Lose),
        1 => Just(Op::Resync),
        1 => Just(Op::Expire),
        1 => Just(Op::Reconnect),
    ]
}

fn stream_of(n: u8) -> StreamId {
    if n == 0 {
        StreamId::Notifications
    } else {
        StreamId::Conversation(conv(u128::from(n)))
    }
}

struct World {
    /// Stored numbers per stream: 1..=last.
    log: HashMap<StreamId, i64>,
    in_flight: Vec<(StreamId, i64)>,
    lost: bool,
    /// What the client processed, per stream, in order.
    seen: HashMap<StreamId, Vec<i64>>,
    sync: Sync,
    limit: i64,
}

impl World {
    fn memberships(&self) -> Vec<Membership> {
        self.log
            .iter()
            .filter_map(|(s, last)| match s {
                StreamId::Conversation(c) => Some(member(*c, *last)),
                StreamId::Notifications => None,
            })
            .collect()
    }

    fn position(&self, stream: StreamId) -> i64 {
        self.seen
            .get(&stream)
            .and_then(|s| s.last())
            .copied()
            .unwrap_or(0)
    }

    /// Carries out the machine's actions, answering replays from the log.
    fn run(&mut self, actions: Vec<Action>) {
        let mut queue: std::collections::VecDeque<Action> = actions.into();
        while let Some(action) = queue.pop_front() {
            match action {
                Action::Send(text) => {
                    let (name, seq) = text.split_once(':').unwrap_or_default();
                    let stream = if name == "n" {
                        StreamId::Notifications
                    } else {
                        StreamId::Conversation(conv(name.parse().unwrap_or_default()))
                    };
                    self.seen
                        .entry(stream)
                        .or_default()
                        .push(seq.parse().unwrap_or_default());
                }
                Action::Replay { stream, after } => {
                    let last = self.log.get(&stream).copied().unwrap_or(0);
                    let more = self
                        .sync
                        .replayed(stream, answer(stream, after, last, self.limit));
                    for a in more.into_iter().rev() {
                        queue.push_front(a);
                    }
                }
                Action::Resync(stream) => {
                    // The client refetches over REST up to what the store has.
                    let last = self.log.get(&stream).copied().unwrap_or(0);
                    let from = self.position(stream) + 1;
                    self.seen.entry(stream).or_default().extend(from..=last);
                }
                Action::Resumed => {}
            }
        }
    }

    fn resume(&mut self) {
        let conversations = self
            .log
            .keys()
            .filter(|s| matches!(s, StreamId::Conversation(_)))
            .filter_map(|s| match s {
                StreamId::Conversation(c) => Some((*c, self.position(*s))),
                StreamId::Notifications => None,
            })
            .collect();
        let notifications = self.position(StreamId::Notifications);
        let members = self.memberships();
        let actions = self
            .sync
            .resume(&members, &conversations, Some(notifications));
        self.run(actions);
    }

    fn deliver(&mut self, index: usize, keep: bool) {
        if self.in_flight.is_empty() {
            return;
        }
        let i = index % self.in_flight.len();
        let (stream, seq) = self.in_flight[i];
        if !keep {
            self.in_flight.remove(i);
        }
        let actions = self.sync.offer(stream, seq, frame(stream, seq));
        self.run(actions);
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Commit(n) => {
                let stream = stream_of(n);
                let last = self.log.entry(stream).or_insert(0);
                *last += 1;
                self.in_flight.push((stream, *last));
            }
            Op::Deliver(i) => self.deliver(i, false),
            Op::Repeat(i) => self.deliver(i, true),
            Op::Lose(i) => {
                if !self.in_flight.is_empty() {
                    let i = i % self.in_flight.len();
                    self.in_flight.remove(i);
                    self.lost = true;
                }
            }
            Op::Resync => {
                if std::mem::take(&mut self.lost) {
                    self.resume();
                }
            }
            Op::Expire => {
                let actions = self.sync.expire_gaps();
                self.run(actions);
            }
            Op::Reconnect => {
                // Frames in flight went to the old socket.
                self.in_flight.clear();
                self.lost = false;
                let notifications = self.log.get(&StreamId::Notifications).copied();
                self.sync = Sync::new(&self.memberships(), notifications.unwrap_or(0));
                self.resume();
            }
        }
    }

    /// Everything in flight arrives, losses are signalled, gaps time out.
    fn settle(&mut self) {
        while !self.in_flight.is_empty() {
            self.deliver(0, false);
        }
        if std::mem::take(&mut self.lost) {
            self.resume();
        }
        let actions = self.sync.expire_gaps();
        self.run(actions);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn every_stream_is_delivered_exactly_once_in_order(
        ops in proptest::collection::vec(op(), 0..120),
        limit in prop_oneof![Just(500i64), 2i64..6],
    ) {
        let mut world = World {
            log: HashMap::new(),
            in_flight: Vec::new(),
            lost: false,
            seen: HashMap::new(),
            sync: Sync::new(&[], 0),
            limit,
        };
        world.resume();
        for op in ops {
            world.apply(op);
        }
        world.settle();
        for (stream, last) in &world.log {
            let seen = world.seen.get(stream).cloned().unwrap_or_default();
            let want: Vec<i64> = (1..=*last).collect();
            prop_assert_eq!(&seen, &want, "stream {:?}", stream);
        }
    }
}
