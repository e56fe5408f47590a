//! Chat writes: every change to a conversation takes the next event number under the
//! conversation's row lock, is recorded as the frame that tells it, and is published to
//! the members' devices after commit.

use sqlx::PgPool;
use uuid::Uuid;

use super::{
    deliver,
    store::{
        ConversationRow, Kind, MAX_MEMBERS, Role, as_data, bump, commit_and_tell, conversation_for,
        direct_key, is_direct, lock_for, lock_row, members, message_by_id, message_for, parse_body,
        record,
    },
};
use crate::{
    bus::Bus,
    error::{ApiError, ErrorCode},
    frames::{MessageData, ServerFrame},
};

/// Starts a conversation. Two people (the creator and one other) make a direct conversation,
/// created once: asking again answers the existing one (`false`).
pub async fn create(
    db: &PgPool,
    bus: &Bus,
    creator: Uuid,
    participants: &[Uuid],
    title: Option<String>,
) -> Result<(ConversationRow, bool), ApiError> {
    let mut others: Vec<Uuid> = participants
        .iter()
        .copied()
        .filter(|p| *p != creator)
        .collect();
    others.sort();
    others.dedup();
    if others.is_empty() {
        return Err(ApiError::field(
            "participant_ids",
            "missing",
            "name at least one other person",
        ));
    }
    if others.len() + 1 > MAX_MEMBERS {
        return Err(ApiError::field(
            "participant_ids",
            "too_long",
            format!("a conversation has at most {MAX_MEMBERS} members"),
        ));
    }
    let active: i64 = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM users WHERE id = ANY($1) AND deactivated_at IS NULL"#,
        &others
    )
    .fetch_one(db)
    .await?;
    if active as usize != others.len() {
        return Err(ApiError::field(
            "participant_ids",
            "not_found",
            "a participant does not exist",
        ));
    }
    if crate::safety::blocks::any_between(db, creator, &others).await? {
        return Err(crate::safety::blocks::refused());
    }
    let direct = is_direct(others.len(), title.as_deref());
    let direct_key = direct.then(|| direct_key(creator, others[0]));
    let mut tx = db.begin().await?;
    if let Some(key) = &direct_key {
        // Serialise concurrent "start a chat with X" for the same pair.
        sqlx::query!("SELECT pg_advisory_xact_lock(hashtext($1))", key)
            .execute(&mut *tx)
            .await?;
        let existing =
            sqlx::query_scalar!("SELECT id FROM conversations WHERE direct_key = $1", key)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(id) = existing {
            tx.commit().await?;
            return Ok((conversation_for(db, creator, id).await?, false));
        }
    }
    let kind = if direct { Kind::Direct } else { Kind::Group };
    let id = sqlx::query_scalar!(
        "INSERT INTO conversations (kind, title, direct_key, created_by, last_event_seq)
         VALUES ($1, $2, $3, $4, 1) RETURNING id",
        kind as Kind,
        title,
        direct_key,
        creator
    )
    .fetch_one(&mut *tx)
    .await?;
    let mut everyone = others.clone();
    everyone.push(creator);
    sqlx::query!(
        "INSERT INTO conversation_members (conversation_id, user_id, role)
         SELECT $1, u, CASE WHEN u = $3 THEN $4 ELSE 'member'::member_role END
         FROM UNNEST($2::uuid[]) u",
        id,
        &everyone,
        creator,
        // The creator owns a group; in a direct conversation nobody does.
        (if direct { Role::Member } else { Role::Owner }) as Role
    )
    .execute(&mut *tx)
    .await?;
    let row = conversation_for(&mut *tx, creator, id).await?;
    let members = members(&mut *tx, id).await?;
    let frame = ServerFrame::ConversationCreated {
        conversation_id: id,
        seq: 1,
        conversation: as_data(&row, &members),
    };
    record(&mut tx, &frame).await?;
    tx.commit().await?;
    deliver(bus, everyone, frame).await;
    Ok((row, true))
}

/// Renames a group conversation.
pub async fn rename(
    db: &PgPool,
    bus: &Bus,
    by: Uuid,
    id: Uuid,
    title: Option<String>,
) -> Result<ConversationRow, ApiError> {
    let mut tx = db.begin().await?;
    let row = lock_for(&mut tx, by, id).await?;
    if row.kind == Kind::Direct {
        return Err(ApiError::state_conflict(
            ErrorCode::Conflict,
            "A direct conversation has no title.",
        ));
    }
    let (seq, _) = bump(&mut tx, id, false).await?;
    sqlx::query!(
        "UPDATE conversations SET title = $2 WHERE id = $1",
        id,
        title
    )
    .execute(&mut *tx)
    .await?;
    let frame = ServerFrame::ConversationRenamed {
        conversation_id: id,
        seq,
        title,
        by,
    };
    let row = conversation_for(&mut *tx, by, id).await?;
    commit_and_tell(tx, bus, frame).await?;
    Ok(row)
}

/// Edits (`Some(body)`) or deletes (`None`) a message; only its author may.
pub async fn change_message(
    db: &PgPool,
    bus: &Bus,
    user: Uuid,
    id: Uuid,
    new_body: Option<&str>,
) -> Result<MessageData, ApiError> {
    let body = new_body
        .map(|b| parse_body(b).map_err(|e| ApiError::validation(vec![e])))
        .transpose()?;
    let current = message_for(db, user, id).await?;
    if current.author.id != user {
        return Err(ApiError::forbidden("Only the author can change a message."));
    }
    apply_change(db, bus, Some(user), current.conversation_id, id, body).await
}

/// Deletes a message as a moderator (acting on a report): like its author would, told to
/// the members as `message.deleted`. A message already deleted is answered as it is.
pub async fn remove_message(db: &PgPool, bus: &Bus, id: Uuid) -> Result<MessageData, ApiError> {
    let current = message_by_id(db, id).await?;
    if current.deleted_at.is_some() {
        return Ok(current);
    }
    apply_change(db, bus, None, current.conversation_id, id, None).await
}

/// Stores and tells an edit or a deletion; `member`, when given, must still be a member.
async fn apply_change(
    db: &PgPool,
    bus: &Bus,
    member: Option<Uuid>,
    conversation: Uuid,
    id: Uuid,
    body: Option<String>,
) -> Result<MessageData, ApiError> {
    let mut tx = db.begin().await?;
    match member {
        Some(user) => {
            lock_for(&mut tx, user, conversation).await?;
        }
        None => {
            lock_row(&mut tx, conversation).await?;
        }
    }
    let current = message_by_id(&mut *tx, id).await?;
    if current.deleted_at.is_some() {
        return Err(ApiError::state_conflict(
            ErrorCode::Conflict,
            "This message was deleted.",
        ));
    }
    match &body {
        Some(b) => {
            sqlx::query!(
                "UPDATE messages SET body = $2, edited_at = now() WHERE id = $1",
                id,
                b
            )
            .execute(&mut *tx)
            .await?;
        }
        None => {
            sqlx::query!(
                "UPDATE messages SET body = NULL, deleted_at = now() WHERE id = $1",
                id
            )
            .execute(&mut *tx)
            .await?;
        }
    }
    let (seq, _) = bump(&mut tx, conversation, false).await?;
    let message = message_by_id(&mut *tx, id).await?;
    let frame = if body.is_some() {
        ServerFrame::MessageEdited {
            conversation_id: conversation,
            seq,
            message: message.clone(),
        }
    } else {
        ServerFrame::MessageDeleted {
            conversation_id: conversation,
            seq,
            message: message.clone(),
        }
    };
    commit_and_tell(tx, bus, frame).await?;
    Ok(message)
}

/// Moves `user`'s read marker forward to message `seq` (never backward); `None` when it
/// did not move.
pub async fn mark_read(
    db: &PgPool,
    bus: &Bus,
    user: Uuid,
    id: Uuid,
    seq: i64,
) -> Result<Option<i64>, ApiError> {
    let mut tx = db.begin().await?;
    let row = lock_for(&mut tx, user, id).await?;
    if seq < 0 || seq > row.last_message_seq {
        return Err(ApiError::field(
            "seq",
            "out_of_range",
            format!("seq must be between 0 and {}", row.last_message_seq),
        ));
    }
    let moved = sqlx::query!(
        "UPDATE conversation_members SET last_read_seq = $3
         WHERE conversation_id = $1 AND user_id = $2 AND last_read_seq < $3",
        id,
        user,
        seq
    )
    .execute(&mut *tx)
    .await?
    .rows_affected()
        > 0;
    if !moved {
        return Ok(None);
    }
    let (event_seq, _) = bump(&mut tx, id, false).await?;
    let frame = ServerFrame::ReadUpdated {
        conversation_id: id,
        seq: event_seq,
        user_id: user,
        last_read_seq: seq,
    };
    commit_and_tell(tx, bus, frame).await?;
    Ok(Some(seq))
}
