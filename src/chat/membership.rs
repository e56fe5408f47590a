//! Who is in a group and what they may do: the owner (its creator, then whoever the owner
//! hands it to) and the admins the owner names add and remove members; admins remove only
//! members; anyone leaves. A member added later sees the messages from when they joined,
//! unless the owner shares the history. Each change is an event of the conversation, like a
//! message, telling who did it (`by`).

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{
    deliver,
    store::{
        ConversationRow, Kind, MAX_MEMBERS, Role, bump, commit_and_tell, is_member, lock_as,
        member_ids, record, role_of, user_ref,
    },
};
use crate::{
    bus::Bus,
    error::{ApiError, ErrorCode},
    frames::ServerFrame,
};

fn groups_only(row: &ConversationRow, message: &str) -> Result<(), ApiError> {
    if row.kind == Kind::Direct {
        return Err(ApiError::state_conflict(ErrorCode::Conflict, message));
    }
    Ok(())
}

/// Adds a member to a group (idempotent: an existing member is not re-added). Owners and
/// admins only.
pub async fn add_member(
    db: &PgPool,
    bus: &Bus,
    by: Uuid,
    id: Uuid,
    user: Uuid,
) -> Result<bool, ApiError> {
    let mut tx = db.begin().await?;
    let (row, role) = lock_as(&mut tx, by, id).await?;
    groups_only(
        &row,
        "A direct conversation has exactly two members; start a group instead.",
    )?;
    if !role.manages_members() {
        return Err(ApiError::forbidden(
            "Only the group's owner and admins add members.",
        ));
    }
    if is_member(&mut *tx, id, user).await? {
        return Ok(false);
    }
    let exists = crate::accounts::find_active(&mut *tx, user)
        .await?
        .is_some();
    if !exists {
        return Err(ApiError::not_found("User"));
    }
    if crate::safety::blocks::any_between(&mut *tx, by, &[user]).await? {
        return Err(crate::safety::blocks::refused());
    }
    let count = member_ids(&mut tx, id).await?.len();
    if count >= MAX_MEMBERS {
        return Err(ApiError::state_conflict(
            ErrorCode::Conflict,
            format!("A conversation has at most {MAX_MEMBERS} members."),
        ));
    }
    let (seq, _) = bump(&mut tx, id, false).await?;
    // What came before is theirs to read only if the owner shares the history.
    let history_from = if row.new_members_see_history {
        0
    } else {
        row.last_message_seq
    };
    sqlx::query!(
        "INSERT INTO conversation_members
             (conversation_id, user_id, joined_event_seq, history_from_seq, last_read_seq)
         VALUES ($1, $2, $3, $4, $4)
         ON CONFLICT (conversation_id, user_id)
         DO UPDATE SET left_at = NULL, joined_at = now(), role = 'member',
                       last_read_seq = $4, history_from_seq = $4,
                       joined_event_seq = $3, left_event_seq = NULL",
        id,
        user,
        seq,
        history_from
    )
    .execute(&mut *tx)
    .await?;
    let frame = ServerFrame::MemberJoined {
        conversation_id: id,
        seq,
        user: user_ref(&mut tx, user).await?,
        by,
    };
    commit_and_tell(tx, bus, frame).await?;
    Ok(true)
}

/// Removes a member (or leaves, when `user == by`). The one removed is told too. The owner
/// removes anyone, an admin removes members; when the owner leaves, the longest-standing
/// admin (or else member) becomes the owner.
pub async fn remove_member(
    db: &PgPool,
    bus: &Bus,
    by: Uuid,
    id: Uuid,
    user: Uuid,
) -> Result<(), ApiError> {
    let mut tx = db.begin().await?;
    let (row, by_role) = lock_as(&mut tx, by, id).await?;
    groups_only(&row, "Nobody leaves a direct conversation.")?;
    let Some(role) = role_of(&mut *tx, id, user).await? else {
        return Err(ApiError::not_found("Member"));
    };
    // `Owner < Admin < Member`: one removes only those below.
    if user != by && !(by_role.manages_members() && by_role < role) {
        return Err(ApiError::forbidden(
            "The owner removes admins and members; admins remove members.",
        ));
    }
    let mut users = member_ids(&mut tx, id).await?;
    let (seq, _) = bump(&mut tx, id, false).await?;
    // They see the event that removes them, and nothing after.
    sqlx::query!(
        "UPDATE conversation_members SET left_at = now(), left_event_seq = $3, role = 'member'
         WHERE conversation_id = $1 AND user_id = $2",
        id,
        user,
        seq
    )
    .execute(&mut *tx)
    .await?;
    let left = ServerFrame::MemberLeft {
        conversation_id: id,
        seq,
        user_id: user,
        by,
    };
    record(&mut tx, &left).await?;
    let handed_on = if role == Role::Owner {
        hand_on(&mut tx, id, user).await?
    } else {
        None
    };
    tx.commit().await?;
    users.sort();
    let rest: Vec<Uuid> = users.iter().copied().filter(|u| *u != user).collect();
    deliver(bus, users, left).await;
    if let Some(frame) = handed_on {
        deliver(bus, rest, frame).await;
    }
    Ok(())
}

/// Makes the longest-standing admin (or else member) the owner, after the owner `left`.
async fn hand_on(
    conn: &mut PgConnection,
    id: Uuid,
    left: Uuid,
) -> Result<Option<ServerFrame>, ApiError> {
    let heir = sqlx::query_scalar!(
        "SELECT user_id FROM conversation_members
         WHERE conversation_id = $1 AND left_at IS NULL
         ORDER BY role, joined_at, user_id LIMIT 1",
        id
    )
    .fetch_optional(&mut *conn)
    .await?;
    let Some(heir) = heir else {
        return Ok(None);
    };
    Ok(Some(change_role(conn, id, heir, Role::Owner, left).await?))
}

/// Records `user`'s new role as the conversation's next event.
async fn change_role(
    conn: &mut PgConnection,
    id: Uuid,
    user: Uuid,
    role: Role,
    by: Uuid,
) -> Result<ServerFrame, ApiError> {
    let (seq, _) = bump(conn, id, false).await?;
    sqlx::query!(
        "UPDATE conversation_members SET role = $3 WHERE conversation_id = $1 AND user_id = $2",
        id,
        user,
        role as Role
    )
    .execute(&mut *conn)
    .await?;
    let frame = ServerFrame::MemberRoleChanged {
        conversation_id: id,
        seq,
        user_id: user,
        role: role.as_str().to_owned(),
        by,
    };
    record(conn, &frame).await?;
    Ok(frame)
}

/// Sets a member's role; the owner only. Making someone `owner` hands the group on: the
/// previous owner becomes an admin. `false` when the role was already that.
pub async fn set_role(
    db: &PgPool,
    bus: &Bus,
    by: Uuid,
    id: Uuid,
    user: Uuid,
    role: Role,
) -> Result<bool, ApiError> {
    let mut tx = db.begin().await?;
    let (row, by_role) = lock_as(&mut tx, by, id).await?;
    groups_only(&row, "A direct conversation has no roles.")?;
    if by_role != Role::Owner {
        return Err(ApiError::forbidden("Only the group's owner changes roles."));
    }
    let Some(current) = role_of(&mut *tx, id, user).await? else {
        return Err(ApiError::not_found("Member"));
    };
    if user == by {
        return Err(ApiError::state_conflict(
            ErrorCode::Conflict,
            "The owner hands the group on by making another member its owner.",
        ));
    }
    if current == role {
        return Ok(false);
    }
    let mut frames = Vec::with_capacity(2);
    if role == Role::Owner {
        // One owner at a time: step down first.
        frames.push(change_role(&mut tx, id, by, Role::Admin, by).await?);
    }
    frames.push(change_role(&mut tx, id, user, role, by).await?);
    let users = member_ids(&mut tx, id).await?;
    tx.commit().await?;
    for frame in frames {
        deliver(bus, users.clone(), frame).await;
    }
    Ok(true)
}

/// Whether members added from now on see the messages from before they joined; the owner
/// only. `false` when the setting was already that.
pub async fn share_history(
    db: &PgPool,
    bus: &Bus,
    by: Uuid,
    id: Uuid,
    visible: bool,
) -> Result<bool, ApiError> {
    let mut tx = db.begin().await?;
    let (row, by_role) = lock_as(&mut tx, by, id).await?;
    groups_only(&row, "A direct conversation has no settings.")?;
    if by_role != Role::Owner {
        return Err(ApiError::forbidden(
            "Only the group's owner changes its settings.",
        ));
    }
    if row.new_members_see_history == visible {
        return Ok(false);
    }
    let (seq, _) = bump(&mut tx, id, false).await?;
    sqlx::query!(
        "UPDATE conversations SET new_members_see_history = $2 WHERE id = $1",
        id,
        visible
    )
    .execute(&mut *tx)
    .await?;
    let frame = ServerFrame::ConversationSettingsChanged {
        conversation_id: id,
        seq,
        new_members_see_history: visible,
        by,
    };
    commit_and_tell(tx, bus, frame).await?;
    Ok(true)
}
