//! One batch of the message writer (`sender.rs`) as one transaction: the conversations
//! locked in id order, membership and earlier keys read once the locks are held, numbers
//! assigned in queue order, and every row written by one set-based statement.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use chrono::{DateTime, SubsecRound, Utc};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::store::{message_rows_for_keys, not_found};
use crate::{
    error::ApiError,
    frames::{MessageData, ServerFrame, UserRef},
};

/// What a stored send answers: the message, and whether this call created it (`false`
/// for a retry of a `client_msg_id` already stored).
pub type Sent = (MessageData, bool);

/// The same error for another sender of a failed batch (the cause is logged once).
pub(super) fn copy(err: &ApiError) -> ApiError {
    let mut out = ApiError::new(err.status, err.code, err.message.clone());
    out.retry_after = err.retry_after;
    out.fields = err.fields.clone();
    out
}

/// One send as the batch sees it.
pub(super) struct Request {
    pub author: Uuid,
    pub conversation: Uuid,
    pub body: String,
    pub client_msg_id: Option<String>,
}

/// What a committed batch answers and publishes.
pub(super) struct Stored {
    /// One per request, in order.
    pub outcomes: Vec<Result<Sent, ApiError>>,
    /// The new messages' frames: (members, conversation, event number, text).
    pub frames: Vec<(Arc<[Uuid]>, Uuid, i64, String)>,
    /// For members who blocked a message's author, `message.withheld` of the same number.
    pub withheld: Vec<(Arc<[Uuid]>, Uuid, i64, String)>,
}

/// A locked conversation during the batch.
struct Numbers {
    last_message: i64,
    last_event: i64,
    members: Arc<[Uuid]>,
    touched: bool,
    /// A direct conversation one of whose two members blocked the other.
    blocked: bool,
}

/// Stores `requests` in the open transaction `conn`; one outcome per request.
pub(super) async fn store_in(
    conn: &mut PgConnection,
    requests: &[Request],
) -> Result<Stored, ApiError> {
    let mut ids: Vec<Uuid> = requests.iter().map(|r| r.conversation).collect();
    ids.sort_unstable();
    ids.dedup();
    // The row locks serialise each conversation's changes; taken in id order, so that
    // two writers (two instances) wait for each other instead of deadlocking.
    let locked = sqlx::query(
        "SELECT id, last_message_seq, last_event_seq, blocked FROM conversations
         WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE",
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    // Read once the locks are held: membership and earlier sends are then final.
    let mut authors: Vec<Uuid> = requests.iter().map(|r| r.author).collect();
    authors.sort_unstable();
    authors.dedup();
    // Members, the names of the batch's authors among them, and whether a member blocked
    // one of the authors, in one round trip.
    let rows = sqlx::query(
        "SELECT m.conversation_id, array_agg(m.user_id ORDER BY m.user_id) AS members,
                array_remove(array_agg(u.id ORDER BY m.user_id), NULL) AS authors,
                array_remove(array_agg(u.username ORDER BY m.user_id), NULL) AS names,
                bool_or(EXISTS (SELECT 1 FROM blocks b
                                WHERE b.blocker_id = m.user_id AND b.blocked_id = ANY($2)))
         FROM conversation_members m
         LEFT JOIN users u ON u.id = m.user_id AND m.user_id = ANY($2)
         WHERE m.conversation_id = ANY($1) AND m.left_at IS NULL
         GROUP BY m.conversation_id",
    )
    .bind(&ids)
    .bind(&authors)
    .fetch_all(&mut *conn)
    .await?;
    let mut members: HashMap<Uuid, Vec<Uuid>> = HashMap::with_capacity(rows.len());
    let mut names: HashMap<Uuid, String> = HashMap::with_capacity(authors.len());
    let mut any_block = false;
    for row in rows {
        members.insert(row.try_get(0)?, row.try_get(1)?);
        let (ids, usernames): (Vec<Uuid>, Vec<String>) = (row.try_get(2)?, row.try_get(3)?);
        names.extend(ids.into_iter().zip(usernames));
        any_block |= row.try_get::<Option<bool>, _>(4)?.unwrap_or(false);
    }
    // Who blocked whom among them: read only when some member blocked an author (rare).
    let blocks: HashSet<(Uuid, Uuid)> = if any_block {
        let all: Vec<Uuid> = members.values().flatten().copied().collect();
        sqlx::query_as(
            "SELECT blocker_id, blocked_id FROM blocks
             WHERE blocker_id = ANY($1) AND blocked_id = ANY($2)",
        )
        .bind(&all)
        .bind(&authors)
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .collect()
    } else {
        HashSet::new()
    };
    let mut conversations: HashMap<Uuid, Numbers> = HashMap::with_capacity(locked.len());
    for row in locked {
        let id: Uuid = row.try_get(0)?;
        conversations.insert(
            id,
            Numbers {
                last_message: row.try_get(1)?,
                last_event: row.try_get(2)?,
                members: members.remove(&id).unwrap_or_default().into(),
                touched: false,
                blocked: row.try_get(3)?,
            },
        );
    }
    let keyed: Vec<(Uuid, Uuid, &str)> = requests
        .iter()
        .filter_map(|r| Some((r.conversation, r.author, r.client_msg_id.as_deref()?)))
        .collect();
    // Earlier sends with the same keys: a retry answers the first message.
    let firsts: HashMap<(Uuid, Uuid, String), MessageData> = if keyed.is_empty() {
        HashMap::new()
    } else {
        message_rows_for_keys(&mut *conn, &keyed)
            .await?
            .into_iter()
            .filter_map(|m| {
                let key = (m.conversation_id, m.author.id, m.client_msg_id.clone()?);
                Some((key, m))
            })
            .collect()
    };

    // Stored with microseconds: the frame says exactly what the history will.
    let now: DateTime<Utc> = Utc::now().trunc_subsecs(6);
    let mut outcomes = Vec::with_capacity(requests.len());
    let mut rows = Rows::default();
    let mut frames = Vec::new();
    let mut withheld = Vec::new();
    // Keys stored by this batch: a repeat within the batch answers the first.
    let mut fresh: HashMap<(Uuid, Uuid, String), usize> = HashMap::new();
    for r in requests {
        let Some(numbers) = conversations.get_mut(&r.conversation) else {
            outcomes.push(Err(not_found()));
            continue;
        };
        if numbers.members.binary_search(&r.author).is_err() {
            outcomes.push(Err(not_found()));
            continue;
        }
        // A retry of a message stored before a block still answers it.
        let first = r
            .client_msg_id
            .as_ref()
            .and_then(|k| firsts.get(&(r.conversation, r.author, k.clone())));
        if let Some(first) = first {
            outcomes.push(Ok((first.clone(), false)));
            continue;
        }
        if numbers.blocked {
            outcomes.push(Err(crate::safety::blocks::closed()));
            continue;
        }
        if let Some(key) = &r.client_msg_id {
            let key = (r.conversation, r.author, key.clone());
            if let Some(&i) = fresh.get(&key) {
                let first = outcomes[i]
                    .as_ref()
                    .map(|(m, _): &Sent| m.clone())
                    .map_err(copy)?;
                outcomes.push(Ok((first, false)));
                continue;
            }
            fresh.insert(key, outcomes.len());
        }
        numbers.last_message += 1;
        numbers.last_event += 1;
        numbers.touched = true;
        let message = MessageData {
            id: Uuid::new_v4(),
            conversation_id: r.conversation,
            seq: numbers.last_message,
            author: UserRef {
                id: r.author,
                username: names.get(&r.author).cloned().unwrap_or_default(),
            },
            body: Some(r.body.clone()),
            client_msg_id: r.client_msg_id.clone(),
            created_at: now,
            edited_at: None,
            deleted_at: None,
        };
        let frame = ServerFrame::MessageCreated {
            conversation_id: r.conversation,
            seq: numbers.last_event,
            message: message.clone(),
        };
        // Serialised once: the same text goes to the event log and to every device.
        let text = serde_json::to_string(&frame).map_err(ApiError::internal)?;
        rows.push(&message, numbers.last_event, &text);
        // The common case (no member blocked an author) shares the member list as it is.
        let hides = |m: &&Uuid| blocks.contains(&(**m, r.author));
        let seeing = if blocks.is_empty() || !numbers.members.iter().any(|m| hides(&m)) {
            numbers.members.clone()
        } else {
            let (hiding, seeing): (Vec<Uuid>, Vec<Uuid>) = numbers.members.iter().partition(hides);
            let hidden = ServerFrame::withheld_text(r.conversation, numbers.last_event);
            withheld.push((hiding.into(), r.conversation, numbers.last_event, hidden));
            seeing.into()
        };
        frames.push((seeing, r.conversation, numbers.last_event, text));
        outcomes.push(Ok((message, true)));
    }
    if !rows.ids.is_empty() {
        let (touched, last_messages, last_events): (Vec<Uuid>, Vec<i64>, Vec<i64>) = conversations
            .iter()
            .filter(|(_, n)| n.touched)
            .map(|(id, n)| (*id, n.last_message, n.last_event))
            .fold(Default::default(), |mut acc, (id, m, e)| {
                acc.0.push(id);
                acc.1.push(m);
                acc.2.push(e);
                acc
            });
        let (seen_conv, seen_user, seen_seq) = rows.read_markers();
        sqlx::query(
            "WITH bump AS (
                 UPDATE conversations c
                 SET last_message_seq = v.m, last_event_seq = v.e, last_activity_at = $4
                 FROM UNNEST($1::uuid[], $2::int8[], $3::int8[]) AS v(id, m, e)
                 WHERE c.id = v.id),
             stored AS (
                 INSERT INTO messages (id, conversation_id, seq, author_id, body, client_msg_id, created_at)
                 SELECT x.id, x.c, x.s, x.a, x.b, x.k, $4
                 FROM UNNEST($5::uuid[], $6::uuid[], $7::int8[], $8::uuid[], $9::text[], $10::text[])
                      AS x(id, c, s, a, b, k)),
             seen AS (
                 UPDATE conversation_members cm SET last_read_seq = r.s
                 FROM UNNEST($11::uuid[], $12::uuid[], $13::int8[]) AS r(c, u, s)
                 WHERE cm.conversation_id = r.c AND cm.user_id = r.u AND cm.last_read_seq < r.s)
             INSERT INTO conversation_events (conversation_id, seq, frame)
             SELECT e.c, e.s, e.f::jsonb FROM UNNEST($6::uuid[], $14::int8[], $15::text[]) AS e(c, s, f)",
        )
        .bind(&touched)
        .bind(&last_messages)
        .bind(&last_events)
        .bind(now)
        .bind(&rows.ids)
        .bind(&rows.conversations)
        .bind(&rows.seqs)
        .bind(&rows.authors)
        .bind(&rows.bodies)
        .bind(&rows.client_msg_ids)
        .bind(&seen_conv)
        .bind(&seen_user)
        .bind(&seen_seq)
        .bind(&rows.event_seqs)
        .bind(&rows.frames)
        .execute(&mut *conn)
        .await?;
    }
    Ok(Stored {
        outcomes,
        frames,
        withheld,
    })
}

/// The batch's new rows, column by column (for `UNNEST`).
#[derive(Default)]
struct Rows {
    ids: Vec<Uuid>,
    conversations: Vec<Uuid>,
    seqs: Vec<i64>,
    authors: Vec<Uuid>,
    bodies: Vec<String>,
    client_msg_ids: Vec<Option<String>>,
    event_seqs: Vec<i64>,
    frames: Vec<String>,
}

impl Rows {
    fn push(&mut self, m: &MessageData, event_seq: i64, frame: &str) {
        self.ids.push(m.id);
        self.conversations.push(m.conversation_id);
        self.seqs.push(m.seq);
        self.authors.push(m.author.id);
        self.bodies.push(m.body.clone().unwrap_or_default());
        self.client_msg_ids.push(m.client_msg_id.clone());
        self.event_seqs.push(event_seq);
        self.frames.push(frame.to_owned());
    }

    /// Each sender has read what they wrote: the highest number each sent, per
    /// conversation (one row per pair, as `UPDATE … FROM` wants).
    fn read_markers(&self) -> (Vec<Uuid>, Vec<Uuid>, Vec<i64>) {
        let mut highest: HashMap<(Uuid, Uuid), i64> = HashMap::new();
        for ((c, a), s) in self.conversations.iter().zip(&self.authors).zip(&self.seqs) {
            let e = highest.entry((*c, *a)).or_insert(*s);
            *e = (*e).max(*s);
        }
        let mut out = (Vec::new(), Vec::new(), Vec::new());
        for ((c, a), s) in highest {
            out.0.push(c);
            out.1.push(a);
            out.2.push(s);
        }
        out
    }
}
