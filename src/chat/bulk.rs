//! Writing many conversations at once (seeding, load fixtures): members, messages and the
//! event log exactly as the chat writes them — event 1 is `conversation.created`, then one
//! event per message — with the chat's own rule for what is a direct conversation.

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::store::{direct_key, is_direct};
use crate::frames::{ConversationData, MessageData, ServerFrame, UserRef};

/// A message written straight into a conversation's history.
pub struct HistoryMessage {
    pub id: Uuid,
    pub author: UserRef,
    pub body: String,
    pub at: DateTime<Utc>,
}

/// Conversations with their members, messages and event log, exactly as the chat writes
/// them (event 1 is `conversation.created`, then one event per message), inserted together.
#[derive(Default)]
pub struct ConversationBatch {
    c_id: Vec<Uuid>,
    c_kind: Vec<String>,
    c_title: Vec<Option<String>>,
    c_key: Vec<Option<String>>,
    c_by: Vec<Uuid>,
    c_msg: Vec<i64>,
    c_evt: Vec<i64>,
    m_conv: Vec<Uuid>,
    m_user: Vec<Uuid>,
    x_id: Vec<Uuid>,
    x_conv: Vec<Uuid>,
    x_seq: Vec<i64>,
    x_author: Vec<Uuid>,
    x_body: Vec<String>,
    x_at: Vec<DateTime<Utc>>,
    e_conv: Vec<Uuid>,
    e_seq: Vec<i64>,
    e_frame: Vec<serde_json::Value>,
}

impl ConversationBatch {
    pub fn len(&self) -> usize {
        self.c_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.c_id.is_empty()
    }

    /// Whether this batch already holds the direct conversation of this pair.
    pub fn has_direct(&self, a: Uuid, b: Uuid) -> bool {
        let key = Some(direct_key(a, b));
        self.c_key.contains(&key)
    }

    /// Adds a conversation: direct for two members, a group (with `title`) otherwise; the
    /// first member created it.
    pub fn add(
        &mut self,
        id: Uuid,
        title: Option<String>,
        members: &[UserRef],
        created: DateTime<Utc>,
        history: &[HistoryMessage],
    ) -> anyhow::Result<()> {
        let Some(creator) = members.first() else {
            bail!("a conversation needs members");
        };
        let direct = is_direct(members.len() - 1, title.as_deref());
        let kind = if direct { "direct" } else { "group" };
        let mut frames = vec![ServerFrame::ConversationCreated {
            conversation_id: id,
            seq: 1,
            conversation: ConversationData {
                id,
                kind: kind.into(),
                title: title.clone(),
                members: members.to_vec(),
                created_at: created,
            },
        }];
        for (seq, m) in (1..).zip(history) {
            self.x_id.push(m.id);
            self.x_conv.push(id);
            self.x_seq.push(seq);
            self.x_author.push(m.author.id);
            self.x_body.push(m.body.clone());
            self.x_at.push(m.at);
            frames.push(ServerFrame::MessageCreated {
                conversation_id: id,
                seq: seq + 1,
                message: MessageData {
                    id: m.id,
                    conversation_id: id,
                    seq,
                    author: m.author.clone(),
                    body: Some(m.body.clone()),
                    client_msg_id: None,
                    created_at: m.at,
                    edited_at: None,
                    deleted_at: None,
                },
            });
        }
        for frame in &frames {
            if let Some((conv, seq)) = frame.event_seq() {
                self.e_conv.push(conv);
                self.e_seq.push(seq);
                self.e_frame.push(serde_json::to_value(frame)?);
            }
        }
        for m in members {
            self.m_conv.push(id);
            self.m_user.push(m.id);
        }
        let messages = i64::try_from(history.len())?;
        self.c_id.push(id);
        self.c_kind.push(kind.to_owned());
        self.c_title.push(title);
        self.c_key
            .push(direct.then(|| direct_key(members[0].id, members[1].id)));
        self.c_by.push(creator.id);
        self.c_msg.push(messages);
        self.c_evt.push(messages + 1);
        Ok(())
    }

    /// Inserts everything in one transaction.
    pub async fn insert(&self, pool: &PgPool) -> anyhow::Result<()> {
        let mut tx = pool.begin().await?;
        sqlx::query!(
            "INSERT INTO conversations (id, kind, title, direct_key, created_by, last_message_seq, last_event_seq)
             SELECT id, k::conversation_kind, t, dk, b, m, e
             FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::uuid[], $6::int8[], $7::int8[])
                  AS x(id, k, t, dk, b, m, e)",
            &self.c_id,
            &self.c_kind,
            &self.c_title as &[Option<String>],
            &self.c_key as &[Option<String>],
            &self.c_by,
            &self.c_msg,
            &self.c_evt,
        )
        .execute(&mut *tx)
        .await
        .context("inserting conversations")?;
        sqlx::query!(
            "INSERT INTO conversation_members (conversation_id, user_id, role)
             SELECT x.c, x.u, CASE WHEN k.kind = 'group' AND k.created_by = x.u
                                   THEN 'owner'::member_role ELSE 'member' END
             FROM UNNEST($1::uuid[], $2::uuid[]) AS x(c, u) JOIN conversations k ON k.id = x.c",
            &self.m_conv,
            &self.m_user,
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "INSERT INTO messages (id, conversation_id, seq, author_id, body, created_at)
             SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::int8[], $4::uuid[], $5::text[], $6::timestamptz[])",
            &self.x_id,
            &self.x_conv,
            &self.x_seq,
            &self.x_author,
            &self.x_body,
            &self.x_at,
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "INSERT INTO conversation_events (conversation_id, seq, frame)
             SELECT * FROM UNNEST($1::uuid[], $2::int8[], $3::jsonb[])",
            &self.e_conv,
            &self.e_seq,
            &self.e_frame,
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
