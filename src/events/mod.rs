//! Events: what they are, how their status is derived, and their queries.

pub mod manage;
pub mod participations;
pub mod search;
pub mod store;

use chrono::{DateTime, Utc};
use poem_openapi::Enum;
use uuid::Uuid;

/// How long an event may last; also a constraint of the `events` table, which lets a search
/// for events not yet over skip those that started longer ago than this.
pub const MAX_DURATION_DAYS: i64 = 31;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Enum, sqlx::Type, serde::Serialize, serde::Deserialize,
)]
#[sqlx(type_name = "event_type", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
pub enum EventType {
    Jam,
    Concert,
    Rehearsal,
    OpenMic,
    Workshop,
    Other,
}

/// What is stored; `finished` is derived from the end time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "event_status", rename_all = "lowercase")]
pub enum StoredStatus {
    Scheduled,
    Cancelled,
}

/// An event's status as clients see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum EventStatus {
    /// Upcoming or under way.
    Scheduled,
    Cancelled,
    /// Its end has passed.
    Finished,
}

impl EventStatus {
    pub fn of(stored: StoredStatus, ends_at: DateTime<Utc>, now: DateTime<Utc>) -> Self {
        match stored {
            StoredStatus::Cancelled => Self::Cancelled,
            StoredStatus::Scheduled if ends_at <= now => Self::Finished,
            StoredStatus::Scheduled => Self::Scheduled,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Cancelled => "cancelled",
            Self::Finished => "finished",
        }
    }
}

#[derive(Debug, Clone)]
pub struct EventRow {
    pub id: Uuid,
    pub creator_id: Uuid,
    pub creator_username: String,
    pub title: String,
    pub description: Option<String>,
    pub kind: EventType,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub address: String,
    pub latitude: f64,
    pub longitude: f64,
    pub capacity: Option<i32>,
    pub image_url: Option<String>,
    pub status: StoredStatus,
    pub participants_count: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Metres from the searched point, when there was one.
    pub distance_m: Option<f64>,
}

impl EventRow {
    pub fn status(&self) -> EventStatus {
        EventStatus::of(self.status, self.ends_at, Utc::now())
    }
}
