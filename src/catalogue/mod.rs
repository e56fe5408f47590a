//! The catalogue of instruments and genres: types, queries, and the read cache.

pub mod cache;
pub mod store;

pub use cache::{CatalogueCache, Snapshot};

use chrono::{DateTime, Utc};
use poem_openapi::Enum;
use uuid::Uuid;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Enum, sqlx::Type, serde::Serialize, serde::Deserialize,
)]
#[sqlx(type_name = "instrument_category", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
#[oai(rename_all = "lowercase")]
pub enum Category {
    Strings,
    Keys,
    Percussion,
    Brass,
    Woodwind,
    Voice,
    Electronic,
    Other,
}

/// How well a musician plays an instrument, in increasing order.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Enum,
    sqlx::Type,
    serde::Serialize,
    serde::Deserialize,
)]
#[sqlx(type_name = "skill_level", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
#[oai(rename_all = "lowercase")]
pub enum SkillLevel {
    Beginner,
    Intermediate,
    Advanced,
    Expert,
    Professional,
}

impl SkillLevel {
    pub const NAMES: &'static str = "beginner, intermediate, advanced, expert, professional";

    pub fn parse(field: &str, raw: &str) -> Result<Self, crate::envelope::FieldError> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "beginner" => Ok(Self::Beginner),
            "intermediate" => Ok(Self::Intermediate),
            "advanced" => Ok(Self::Advanced),
            "expert" => Ok(Self::Expert),
            "professional" => Ok(Self::Professional),
            _ => Err(crate::envelope::FieldError::new(
                field,
                "invalid",
                format!("{field} must be one of: {}", Self::NAMES),
            )),
        }
    }
}

#[derive(Debug, Clone)]
pub struct InstrumentRow {
    pub id: Uuid,
    pub name: String,
    pub category: Category,
    pub icon_url: Option<String>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct GenreRow {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// What identifies a catalogue entry's version, for ETags.
pub trait Versioned {
    fn id(&self) -> Uuid;
    fn version(&self) -> DateTime<Utc>;
    fn sort_name(&self) -> &str;
}

impl Versioned for InstrumentRow {
    fn id(&self) -> Uuid {
        self.id
    }
    fn version(&self) -> DateTime<Utc> {
        self.updated_at
    }
    fn sort_name(&self) -> &str {
        &self.name
    }
}

impl Versioned for GenreRow {
    fn id(&self) -> Uuid {
        self.id
    }
    fn version(&self) -> DateTime<Utc> {
        self.updated_at
    }
    fn sort_name(&self) -> &str {
        &self.name
    }
}
