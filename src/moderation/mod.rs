//! Reports and what administrators do about them.
//!
//! Anyone reports a user, a message, an event or a conversation they can see, with a
//! reason; reporting the same thing again while the first report is open answers that one.
//! Administrators list the queue (oldest first) and resolve a report: dismiss it, suspend
//! the account responsible (deactivated, every session ended: its sockets close with 4004),
//! or delete the content (a message is deleted, an event cancelled). Resolving closes every
//! open report on the same target with the same outcome.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    accounts,
    auth::{
        CurrentUser, Role,
        sessions::{self, RevokeReason},
    },
    bus::Bus,
    chat,
    error::{ApiError, ErrorCode},
    events,
    hub::publish_revoked,
};

/// The longest reason, in characters.
pub const REASON_MAX: usize = 1000;
/// The longest administrator's note, in characters.
pub const NOTE_MAX: usize = 1000;

/// What a report is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, poem_openapi::Enum, sqlx::Type, serde::Serialize)]
#[sqlx(type_name = "report_target", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
#[oai(rename = "ReportTarget", rename_all = "lowercase")]
pub enum Target {
    User,
    Message,
    Event,
    Conversation,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, poem_openapi::Enum, sqlx::Type, serde::Serialize)]
#[sqlx(type_name = "report_status", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
#[oai(rename = "ReportStatus", rename_all = "lowercase")]
pub enum Status {
    Open,
    Resolved,
}

/// What an administrator does about a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, poem_openapi::Enum)]
#[oai(rename = "ReportAction", rename_all = "snake_case")]
pub enum Action {
    /// Nothing to do.
    Dismiss,
    /// Suspend the account responsible: the user reported, a message's author, an event's
    /// organiser.
    SuspendUser,
    /// Delete the message, or cancel the event.
    DeleteContent,
}

impl Action {
    fn resolution(self) -> &'static str {
        match self {
            Self::Dismiss => "dismissed",
            Self::SuspendUser => "user_suspended",
            Self::DeleteContent => "content_deleted",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Report {
    pub id: Uuid,
    pub reporter_id: Uuid,
    pub target_type: Target,
    pub target_id: Uuid,
    pub reason: String,
    pub status: Status,
    pub resolution: Option<String>,
    pub note: Option<String>,
    pub resolved_by: Option<Uuid>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// Checks free text: trimmed, something visible, at most `max` characters.
pub fn parse_text(field: &str, raw: &str, max: usize) -> Result<String, ApiError> {
    let text = raw.trim();
    if crate::domain::is_blank(text) {
        return Err(ApiError::field(
            field,
            "missing",
            format!("{field} must say something"),
        ));
    }
    // Counted as sent, surrounding spaces included (the document's `maxLength`).
    if raw.chars().count() > max {
        return Err(ApiError::field(
            field,
            "too_long",
            format!("{field} must be at most {max} characters"),
        ));
    }
    Ok(text.to_owned())
}

/// Files a report by `reporter` about something they can see; `false` when an open report
/// of theirs on it already exists (that one is answered).
pub async fn file(
    db: &PgPool,
    reporter: Uuid,
    target: Target,
    target_id: Uuid,
    reason: &str,
) -> Result<(Report, bool), ApiError> {
    let reason = parse_text("reason", reason, REASON_MAX)?;
    let visible = match target {
        Target::User if target_id == reporter => {
            return Err(ApiError::field(
                "target_id",
                "invalid",
                "you cannot report yourself",
            ));
        }
        Target::User => accounts::find_active(db, target_id).await?.is_some(),
        Target::Message => chat::store::message_for(db, reporter, target_id)
            .await
            .is_ok(),
        Target::Event => events::store::status_of(db, target_id).await?.is_some(),
        Target::Conversation => chat::store::conversation_for(db, reporter, target_id)
            .await
            .is_ok(),
    };
    if !visible {
        return Err(ApiError::field(
            "target_id",
            "not_found",
            "no such thing, or not one you can see",
        ));
    }
    let inserted = sqlx::query_as!(
        Report,
        r#"INSERT INTO reports (reporter_id, target_type, target_id, reason)
           VALUES ($1, $2, $3, $4)
           ON CONFLICT (reporter_id, target_type, target_id) WHERE status = 'open' DO NOTHING
           RETURNING id, reporter_id, target_type AS "target_type: Target", target_id, reason,
                     status AS "status: Status", resolution, note, resolved_by, resolved_at,
                     created_at"#,
        reporter,
        target as Target,
        target_id,
        reason
    )
    .fetch_optional(db)
    .await?;
    if let Some(report) = inserted {
        return Ok((report, true));
    }
    let open = sqlx::query_as!(
        Report,
        r#"SELECT id, reporter_id, target_type AS "target_type: Target", target_id, reason,
                  status AS "status: Status", resolution, note, resolved_by, resolved_at,
                  created_at
           FROM reports
           WHERE reporter_id = $1 AND target_type = $2 AND target_id = $3 AND status = 'open'"#,
        reporter,
        target as Target,
        target_id
    )
    .fetch_one(db)
    .await?;
    Ok((open, false))
}

pub type ListKey = (DateTime<Utc>, Uuid);

/// The queue, oldest first; every report when `status` is `None`.
pub async fn list(
    db: &PgPool,
    status: Option<Status>,
    after: Option<&ListKey>,
    fetch: i64,
) -> Result<Vec<Report>, ApiError> {
    Ok(sqlx::query_as!(
        Report,
        r#"SELECT id, reporter_id, target_type AS "target_type: Target", target_id, reason,
                  status AS "status: Status", resolution, note, resolved_by, resolved_at,
                  created_at
           FROM reports
           WHERE ($1::report_status IS NULL OR status = $1)
             AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3))
           ORDER BY created_at, id
           LIMIT $4"#,
        status as Option<Status>,
        after.map(|a| a.0),
        after.map(|a| a.1),
        fetch
    )
    .fetch_all(db)
    .await?)
}

/// Resolves a report (and every open report on the same target) by `action`.
pub async fn resolve(
    db: &PgPool,
    bus: &Bus,
    admin: &CurrentUser,
    id: Uuid,
    action: Action,
    note: Option<&str>,
) -> Result<Report, ApiError> {
    if admin.role != Role::Admin {
        return Err(ApiError::forbidden("Administrators only."));
    }
    let note = note
        .filter(|n| !crate::domain::is_blank(n))
        .map(|n| parse_text("note", n, NOTE_MAX))
        .transpose()?;
    let report = get(db, id).await?;
    if report.status == Status::Resolved {
        return Err(ApiError::state_conflict(
            ErrorCode::Conflict,
            "This report is already resolved.",
        ));
    }
    match action {
        Action::Dismiss => {}
        Action::SuspendUser => suspend(db, bus, responsible(db, &report).await?).await?,
        Action::DeleteContent => match report.target_type {
            Target::Message => {
                chat::store::remove_message(db, bus, report.target_id).await?;
            }
            Target::Event => {
                // Cancelling twice is not an error here: the content is gone either way.
                if events::store::status_of(db, report.target_id).await? == Some(false) {
                    events::manage::cancel(db, bus, admin, report.target_id).await?;
                }
            }
            Target::User | Target::Conversation => {
                return Err(ApiError::field(
                    "action",
                    "invalid",
                    "delete_content applies to a message or an event; suspend_user or dismiss",
                ));
            }
        },
    }
    sqlx::query!(
        "UPDATE reports SET status = 'resolved', resolution = $3, note = $4, resolved_by = $5,
                            resolved_at = now()
         WHERE target_type = $1 AND target_id = $2 AND status = 'open'",
        report.target_type as Target,
        report.target_id,
        action.resolution(),
        note,
        admin.id
    )
    .execute(db)
    .await?;
    get(db, id).await
}

async fn get(db: &PgPool, id: Uuid) -> Result<Report, ApiError> {
    sqlx::query_as!(
        Report,
        r#"SELECT id, reporter_id, target_type AS "target_type: Target", target_id, reason,
                  status AS "status: Status", resolution, note, resolved_by, resolved_at,
                  created_at
           FROM reports WHERE id = $1"#,
        id
    )
    .fetch_optional(db)
    .await?
    .ok_or_else(|| ApiError::not_found("Report"))
}

/// The account a report holds responsible.
async fn responsible(db: &PgPool, report: &Report) -> Result<Uuid, ApiError> {
    let user = match report.target_type {
        Target::User => Some(report.target_id),
        Target::Message => {
            sqlx::query_scalar!(
                "SELECT author_id FROM messages WHERE id = $1",
                report.target_id
            )
            .fetch_optional(db)
            .await?
        }
        Target::Event => {
            sqlx::query_scalar!(
                "SELECT creator_id FROM events WHERE id = $1",
                report.target_id
            )
            .fetch_optional(db)
            .await?
        }
        Target::Conversation => {
            return Err(ApiError::field(
                "action",
                "invalid",
                "a conversation has no single author: report the user or the message",
            ));
        }
    };
    user.ok_or_else(|| ApiError::not_found("Reported content"))
}

/// Suspends an account: deactivated, every session ended (sockets close with 4004).
/// Administrators are not suspended this way.
async fn suspend(db: &PgPool, bus: &Bus, user: Uuid) -> Result<(), ApiError> {
    let mut tx = db.begin().await?;
    let role = sqlx::query_scalar!(
        r#"SELECT role AS "role: Role" FROM users WHERE id = $1 FOR UPDATE"#,
        user
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| ApiError::not_found("User"))?;
    if role == Role::Admin {
        return Err(ApiError::state_conflict(
            ErrorCode::Conflict,
            "An administrator is not suspended through a report; demote them first.",
        ));
    }
    accounts::deactivate(&mut tx, user).await?;
    let ended = sessions::revoke_all(&mut tx, user, None, RevokeReason::Suspended).await?;
    tx.commit().await?;
    publish_revoked(bus, &ended).await;
    Ok(())
}
