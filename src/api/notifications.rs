//! `/notifications…`: a user's notifications, and announcements by administrators.

use crate::api::timestamp::Timestamp;
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
    types::Example,
};
use uuid::Uuid;

use super::{
    ApiTags,
    pagination::{Page, PageRequest},
    responses::Errors,
};
use crate::{
    api::guard::{AdminUser, AuthUser},
    domain::{Link, ProfileText, Validator, checked},
    envelope::{Envelope, FieldError, Nothing},
    error::ApiError,
    error_set,
    notifications::{self, Kind, Notice, NotificationRow},
    state::AppState,
};

pub const TITLE_MAX: usize = 120;
pub const BODY_MAX: usize = 2000;

#[derive(Debug, Clone, Object)]
#[oai(example)]
pub struct NotificationView {
    pub id: Uuid,
    /// The user's notification number (1, 2, 3…): what the socket's `resume` takes as
    /// `notifications`.
    pub seq: i64,
    /// `participation_created`, `participation_withdrawn`, `participation_instrument_changed`,
    /// `participation_accepted`, `participation_declined`, `event_updated`,
    /// `event_cancelled`, `announcement`.
    #[oai(rename = "type")]
    pub kind: String,
    pub title: String,
    pub body: String,
    /// API path of what it is about.
    pub link: Option<String>,
    pub event_id: Option<Uuid>,
    pub read: bool,
    pub read_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

impl From<NotificationRow> for NotificationView {
    fn from(n: NotificationRow) -> Self {
        Self {
            id: n.id,
            seq: n.seq,
            kind: n.kind,
            title: n.title,
            body: n.body,
            link: n.link,
            event_id: n.event_id,
            read: n.read_at.is_some(),
            read_at: n.read_at.map(Timestamp),
            created_at: Timestamp(n.created_at),
        }
    }
}

impl Example for NotificationView {
    fn example() -> Self {
        let at = DateTime::parse_from_rfc3339("2026-11-21T10:00:00Z")
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_default();
        let event = Uuid::from_u128(0x0190_9c1e_0000_7000_8000_0000_0000_00e1);
        Self {
            id: Uuid::from_u128(0x0190_9c1e_0000_7000_8000_0000_0000_00b1),
            seq: 12,
            kind: "event_cancelled".into(),
            title: "“Friday jazz jam” is cancelled".into(),
            body:
                "The event planned on 2030-06-21 19:00 UTC at 12 rue Mercière will not take place."
                    .into(),
            link: Some(format!("/api/v1/events/{event}")),
            event_id: Some(event),
            read: false,
            read_at: None,
            created_at: Timestamp(at),
        }
    }
}

#[derive(Debug, Object)]
#[oai(example)]
pub struct UnreadCount {
    pub unread: i64,
}

impl Example for UnreadCount {
    fn example() -> Self {
        Self { unread: 3 }
    }
}

#[derive(Debug, Object)]
#[oai(example)]
pub struct Sent {
    /// How many notifications were created.
    pub recipients: i64,
}

impl Example for Sent {
    fn example() -> Self {
        Self { recipients: 1 }
    }
}

/// An announcement: to one user (`user_id`) or to every active account (`all: true`).
#[derive(Debug, Object)]
#[oai(example)]
pub struct Announcement {
    pub user_id: Option<Uuid>,
    #[oai(default)]
    pub all: bool,
    /// 1–120 characters.
    pub title: String,
    /// 1–2,000 characters.
    pub body: String,
    /// An API path (`/api/v1/…`, one leading slash, no backslash) or an `https://` URL.
    pub link: Option<String>,
}

impl Example for Announcement {
    fn example() -> Self {
        Self {
            user_id: None,
            all: true,
            title: "Fête de la musique".into(),
            body: "Open stages all over town on June 21st: create your event!".into(),
            link: None,
        }
    }
}

#[derive(ApiResponse)]
pub enum ListResponse {
    /// Newest first.
    #[oai(status = 200)]
    Ok(Json<Envelope<Page<NotificationView>>>),
}

#[derive(ApiResponse)]
pub enum OneResponse {
    /// The notification.
    #[oai(status = 200)]
    Ok(Json<Envelope<NotificationView>>),
}

#[derive(ApiResponse)]
pub enum CountResponse {
    /// Unread notifications.
    #[oai(status = 200)]
    Ok(Json<Envelope<UnreadCount>>),
}

#[derive(ApiResponse)]
pub enum DoneResponse {
    /// Done.
    #[oai(status = 200)]
    Ok(Json<Envelope<Nothing>>),
}

#[derive(ApiResponse)]
pub enum SentResponse {
    /// Sent.
    #[oai(status = 201)]
    Created(Json<Envelope<Sent>>),
}

error_set!(ListErrors: 400, 401, 422, 500, 503);
error_set!(OneErrors: 400, 401, 404, 422, 500, 503);
error_set!(CountErrors: 401, 500, 503);
error_set!(SendErrors: 400, 401, 403, 404, 413, 415, 422, 500, 503);

pub struct NotificationsApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Notifications")]
impl NotificationsApi {
    /// My notifications
    ///
    /// My notifications, newest first, optionally unread only. Each carries my notification
    /// number (`seq`), what the socket's `resume` takes.
    #[oai(
        path = "/notifications",
        method = "get",
        operation_id = "notifications_list"
    )]
    async fn list(
        &self,
        state: Data<&AppState>,
        auth: AuthUser,
        /// Only unread ones.
        #[oai(default)]
        unread_only: Query<bool>,
        /// 1–100, default 20.
        limit: Query<Option<u32>>,
        cursor: Query<Option<String>>,
    ) -> Result<ListResponse, Errors<ListErrors>> {
        let page = PageRequest::<notifications::Key>::parse(limit.0, cursor.0.as_deref())
            .map_err(ApiError::validation)?;
        let rows = notifications::list(
            &state.db,
            auth.0.id,
            unread_only.0,
            page.after.as_ref(),
            page.fetch(),
        )
        .await?;
        let (rows, next_cursor) = page.finish(rows, |n| (n.created_at, n.id));
        let items = rows.into_iter().map(NotificationView::from).collect();
        Ok(ListResponse::Ok(Json(Envelope::ok(
            "Notifications.",
            Page { items, next_cursor },
        ))))
    }

    /// Unread count (badge)
    ///
    /// How many of my notifications are unread: the badge count.
    #[oai(
        path = "/notifications/unread-count",
        method = "get",
        operation_id = "notifications_unread_count"
    )]
    async fn unread_count(
        &self,
        state: Data<&AppState>,
        auth: AuthUser,
    ) -> Result<CountResponse, Errors<CountErrors>> {
        let unread = notifications::unread_count(&state.db, auth.0.id).await?;
        Ok(CountResponse::Ok(Json(Envelope::ok(
            "Unread notifications.",
            UnreadCount { unread },
        ))))
    }

    /// Mark all as read
    ///
    /// Marks all my notifications read; my other devices are told (`notification.read`).
    #[oai(
        path = "/notifications/read-all",
        method = "post",
        operation_id = "notifications_read_all"
    )]
    async fn read_all(
        &self,
        state: Data<&AppState>,
        auth: AuthUser,
    ) -> Result<DoneResponse, Errors<CountErrors>> {
        let n = notifications::mark_all_read(&state.db, &state.bus, auth.0.id).await?;
        Ok(DoneResponse::Ok(Json(Envelope::ok(
            format!("{n} marked as read."),
            Nothing,
        ))))
    }

    /// A notification
    ///
    /// One of my notifications. Someone else's answers 404.
    #[oai(
        path = "/notifications/:id",
        method = "get",
        operation_id = "notifications_get"
    )]
    async fn get(
        &self,
        state: Data<&AppState>,
        auth: AuthUser,
        id: Path<Uuid>,
    ) -> Result<OneResponse, Errors<OneErrors>> {
        let row = notifications::get(&state.db, auth.0.id, id.0)
            .await?
            .ok_or_else(|| ApiError::not_found("Notification"))?;
        Ok(OneResponse::Ok(Json(Envelope::ok(
            "Notification.",
            row.into(),
        ))))
    }

    /// Mark as read
    ///
    /// Marks one of my notifications read (again is harmless); my other devices are told.
    #[oai(
        path = "/notifications/:id/read",
        method = "post",
        operation_id = "notifications_read"
    )]
    async fn read(
        &self,
        state: Data<&AppState>,
        auth: AuthUser,
        id: Path<Uuid>,
    ) -> Result<OneResponse, Errors<OneErrors>> {
        let row = notifications::mark_read(&state.db, &state.bus, auth.0.id, id.0)
            .await?
            .ok_or_else(|| ApiError::not_found("Notification"))?;
        Ok(OneResponse::Ok(Json(Envelope::ok(
            "Marked as read.",
            row.into(),
        ))))
    }

    /// Delete a notification
    ///
    /// Deletes one of my notifications; my other devices are told (`notification.deleted`).
    #[oai(
        path = "/notifications/:id",
        method = "delete",
        operation_id = "notifications_delete"
    )]
    async fn delete(
        &self,
        state: Data<&AppState>,
        auth: AuthUser,
        id: Path<Uuid>,
    ) -> Result<DoneResponse, Errors<OneErrors>> {
        if !notifications::delete(&state.db, &state.bus, auth.0.id, id.0).await? {
            return Err(ApiError::not_found("Notification").into());
        }
        Ok(DoneResponse::Ok(Json(Envelope::ok("Deleted.", Nothing))))
    }

    /// Send an announcement (admin)
    ///
    /// To one user (`user_id`) or to every active account (`all: true`).
    #[oai(
        path = "/notifications",
        method = "post",
        operation_id = "notifications_send"
    )]
    async fn send(
        &self,
        state: Data<&AppState>,
        _admin: AdminUser,
        body: Json<Announcement>,
    ) -> Result<SentResponse, Errors<SendErrors>> {
        let body = body.0;
        let mut v = Validator::new();
        match (body.user_id.is_some(), body.all) {
            (true, true) => v.push(FieldError::new(
                "all",
                "value_error",
                "send to user_id or to all, not both",
            )),
            (false, false) => v.push(FieldError::new(
                "user_id",
                "missing",
                "user_id is required unless all is true",
            )),
            _ => {}
        }
        let title = required_text(
            &mut v,
            "title",
            ProfileText::line("title", &body.title, TITLE_MAX),
        );
        let text = required_text(
            &mut v,
            "body",
            ProfileText::parse("body", &body.body, BODY_MAX),
        );
        let link = body
            .link
            .as_deref()
            .and_then(|raw| v.check(Link::parse("link", raw)).flatten());
        v.finish()?;
        let notice = Notice {
            kind: Kind::Announcement,
            title: checked(title)?,
            body: checked(text)?,
            link,
            event_id: None,
        };
        let mut tx = state.db.begin().await?;
        let recipients = match body.user_id {
            Some(user) => {
                let active = crate::accounts::find_active(&mut *tx, user).await?;
                if active.is_none() {
                    return Err(ApiError::not_found("User").into());
                }
                let rows = notifications::create(&mut tx, &[user], &notice).await?;
                tx.commit().await?;
                notifications::publish(&state.bus, &rows).await;
                rows.len() as i64
            }
            None => {
                // However many accounts: one statement, one bus message.
                let (batch, created) = notifications::announce_to_all(&mut tx, &notice).await?;
                tx.commit().await?;
                notifications::publish_batch(&state.bus, batch).await;
                created
            }
        };
        Ok(SentResponse::Created(Json(Envelope::created(
            "Sent.",
            Sent { recipients },
        ))))
    }
}

fn required_text(
    v: &mut Validator,
    field: &str,
    parsed: Result<Option<String>, FieldError>,
) -> Option<String> {
    match parsed {
        Ok(Some(t)) => Some(t),
        Ok(None) => {
            v.push(FieldError::new(
                field,
                "missing",
                format!("{field} is required"),
            ));
            None
        }
        Err(e) => {
            v.push(e);
            None
        }
    }
}
