//! The shapes of events in requests and answers, with their examples.

use crate::api::timestamp::Timestamp;
use chrono::{DateTime, Utc};
use poem_openapi::{
    Enum, Object,
    types::{Example, MaybeUndefined},
};
use uuid::Uuid;

use crate::{
    api::choice::{Choice, Choices},
    catalogue::Category,
    events::{EventStatus, EventType},
};

impl Choices for EventType {
    const NAMES: &'static str = "jam, concert, rehearsal, open_mic, workshop, other";
}

impl Choices for EventStatus {
    const NAMES: &'static str = "scheduled, cancelled, finished";
}

/// Order of search results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum EventSort {
    /// By start time, soonest first.
    Date,
    /// Nearest first (needs `lat`, `lon` and `radius_km`).
    Distance,
}

impl Choices for EventSort {
    const NAMES: &'static str = "date, distance";
}

pub use crate::frames::UserRef;

#[derive(Debug, Clone, Object)]
pub struct GenreRef {
    pub genre_id: Uuid,
    pub name: String,
}

/// An instrument an event needs.
#[derive(Debug, Clone, Object)]
#[oai(example)]
pub struct NeededInstrumentView {
    pub instrument_id: Uuid,
    pub name: String,
    pub category: Category,
    pub quantity: i32,
    /// Places taken (pending or accepted participations).
    pub filled: i32,
    pub available: i32,
}

impl Example for NeededInstrumentView {
    fn example() -> Self {
        Self {
            instrument_id: Uuid::from_u128(0x0190_9c1e_0000_7000_8000_0000_0000_0001),
            name: "Double Bass".into(),
            category: Category::Strings,
            quantity: 1,
            filled: 0,
            available: 1,
        }
    }
}

#[derive(Debug, Object)]
#[oai(example)]
pub struct EventView {
    pub id: Uuid,
    pub title: String,
    pub description: Option<String>,
    #[oai(rename = "type")]
    pub kind: EventType,
    pub status: EventStatus,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    pub address: String,
    pub latitude: f64,
    pub longitude: f64,
    /// `null`: no limit.
    pub capacity: Option<i32>,
    /// Pending and accepted participations.
    pub participants_count: i32,
    /// `null` when there is no capacity.
    pub places_left: Option<i32>,
    pub image_url: Option<String>,
    pub creator: UserRef,
    pub genres: Vec<GenreRef>,
    /// Empty: open to any instrument.
    pub instruments: Vec<NeededInstrumentView>,
    /// Kilometres from the point given in `lat`/`lon`, if any.
    pub distance_km: Option<f64>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// The examples' event: the Fête de la Musique of 2030. Requests that create or move an
/// event need a start in the future, and the document's examples must stay valid requests.
const STARTS: &str = "2030-06-21T19:00:00Z";
const ENDS: &str = "2030-06-21T23:00:00Z";
const MOVED_STARTS: &str = "2030-06-21T20:00:00Z";
const MOVED_ENDS: &str = "2030-06-22T00:00:00Z";

fn example_time(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .unwrap_or_default()
}

impl Example for EventView {
    fn example() -> Self {
        Self {
            id: Uuid::from_u128(0x0190_9c1e_0000_7000_8000_0000_0000_00e1),
            title: "Friday jazz jam".into(),
            description: Some("Standards, all levels welcome.".into()),
            kind: EventType::Jam,
            status: EventStatus::Scheduled,
            starts_at: Timestamp(example_time(STARTS)),
            ends_at: Timestamp(example_time(ENDS)),
            address: "12 rue Mercière, 69002 Lyon".into(),
            latitude: 45.7622,
            longitude: 4.8320,
            capacity: Some(12),
            participants_count: 3,
            places_left: Some(9),
            image_url: None,
            creator: UserRef {
                id: Uuid::from_u128(0x0190_9c1e_7a4b_7c3d_9e2f_1a2b_3c4d_5e6f),
                username: "nina_keys".into(),
            },
            genres: vec![GenreRef {
                genre_id: Uuid::from_u128(0x0190_9c1e_0000_7000_8000_0000_0000_0002),
                name: "Jazz".into(),
            }],
            instruments: vec![NeededInstrumentView::example()],
            distance_km: Some(0.4),
            created_at: Timestamp(example_time("2026-11-21T10:00:00Z")),
            updated_at: Timestamp(example_time("2026-11-21T10:00:00Z")),
        }
    }
}

#[derive(Debug, Object)]
pub struct NeededInput {
    pub instrument_id: Uuid,
    /// 1–1000.
    pub quantity: i32,
}

#[derive(Debug, Object)]
#[oai(example)]
pub struct NewEvent {
    /// 1–120 characters.
    pub title: String,
    /// At most 5,000 characters.
    pub description: Option<String>,
    #[oai(rename = "type")]
    pub kind: Choice<EventType>,
    /// At most 10.
    #[oai(default)]
    pub genre_ids: Vec<Uuid>,
    /// In the future.
    pub starts_at: Timestamp,
    /// After `starts_at`, at most 31 days later.
    pub ends_at: Timestamp,
    /// 1–300 characters.
    pub address: String,
    pub latitude: f64,
    pub longitude: f64,
    /// 1–100,000; absent: no limit.
    pub capacity: Option<i32>,
    pub image_url: Option<String>,
    /// Instruments needed; absent or empty: open to any instrument.
    #[oai(default)]
    pub instruments: Vec<NeededInput>,
}

impl Example for NewEvent {
    fn example() -> Self {
        let e = EventView::example();
        Self {
            title: e.title,
            description: e.description,
            kind: Choice(Ok(EventType::Jam)),
            genre_ids: vec![e.genres[0].genre_id],
            starts_at: e.starts_at,
            ends_at: e.ends_at,
            address: e.address,
            latitude: e.latitude,
            longitude: e.longitude,
            capacity: e.capacity,
            image_url: None,
            instruments: vec![NeededInput {
                instrument_id: e.instruments[0].instrument_id,
                quantity: 1,
            }],
        }
    }
}

/// Fields to change; absent fields stay, `null` clears a nullable one.
#[derive(Debug, Object)]
#[oai(example)]
pub struct EventChange {
    pub title: Option<String>,
    pub description: MaybeUndefined<String>,
    #[oai(rename = "type")]
    pub kind: Option<Choice<EventType>>,
    pub genre_ids: Option<Vec<Uuid>>,
    pub starts_at: Option<Timestamp>,
    pub ends_at: Option<Timestamp>,
    pub address: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub capacity: MaybeUndefined<i32>,
    pub image_url: MaybeUndefined<String>,
}

impl Example for EventChange {
    fn example() -> Self {
        Self {
            title: None,
            description: MaybeUndefined::Undefined,
            kind: None,
            genre_ids: None,
            starts_at: Some(Timestamp(example_time(MOVED_STARTS))),
            ends_at: Some(Timestamp(example_time(MOVED_ENDS))),
            address: None,
            latitude: None,
            longitude: None,
            capacity: MaybeUndefined::Value(15),
            image_url: MaybeUndefined::Undefined,
        }
    }
}

#[derive(Debug, Object)]
#[oai(example)]
pub struct Quantity {
    /// 1–1000.
    pub quantity: i32,
}

impl Example for Quantity {
    fn example() -> Self {
        Self { quantity: 2 }
    }
}

#[derive(Debug, Object)]
#[oai(example)]
pub struct JoinInput {
    /// The instrument you will play.
    pub instrument_id: Uuid,
}

impl Example for JoinInput {
    fn example() -> Self {
        Self {
            instrument_id: NeededInstrumentView::example().instrument_id,
        }
    }
}
