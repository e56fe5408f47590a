//! Events as answered: rows with their genres and needed instruments, in one query each
//! for any number of events.

use crate::api::timestamp::Timestamp;
use std::collections::HashMap;

use uuid::Uuid;

use super::models::*;
use crate::{
    error::ApiError,
    events::{EventRow, store},
    state::AppState,
};

pub(super) async fn load_one(
    state: &AppState,
    id: Uuid,
    origin: Option<(f64, f64)>,
) -> Result<EventView, ApiError> {
    // One round trip: the event with its genres and needed instruments.
    let (row, genres, needed) = store::fetch_detailed(&state.db, id, origin)
        .await?
        .ok_or_else(|| ApiError::not_found("Event"))?;
    assemble(vec![row], genres, needed)
        .pop()
        .ok_or_else(|| ApiError::not_found("Event"))
}

/// Builds views with genres and needed instruments (one query for any number of events).
pub async fn load_views(state: &AppState, rows: Vec<EventRow>) -> Result<Vec<EventView>, ApiError> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let (genres, needed) = store::details_of(&state.db, &ids).await?;
    Ok(assemble(rows, genres, needed))
}

/// Views of `rows` with their genres and needed instruments.
fn assemble(
    rows: Vec<EventRow>,
    all_genres: Vec<store::EventGenre>,
    all_needed: Vec<store::NeededInstrument>,
) -> Vec<EventView> {
    let mut genres: HashMap<Uuid, Vec<GenreRef>> = HashMap::new();
    for g in all_genres {
        genres.entry(g.event_id).or_default().push(GenreRef {
            genre_id: g.genre_id,
            name: g.name,
        });
    }
    let mut needed: HashMap<Uuid, Vec<NeededInstrumentView>> = HashMap::new();
    for n in all_needed {
        needed
            .entry(n.event_id)
            .or_default()
            .push(NeededInstrumentView {
                instrument_id: n.instrument_id,
                name: n.name,
                category: n.category,
                quantity: n.quantity,
                filled: n.filled,
                available: (n.quantity - n.filled).max(0),
            });
    }
    rows.into_iter()
        .map(|r| EventView {
            status: r.status(),
            genres: genres.remove(&r.id).unwrap_or_default(),
            instruments: needed.remove(&r.id).unwrap_or_default(),
            places_left: r.capacity.map(|c| (c - r.participants_count).max(0)),
            distance_km: r.distance_m.map(|m| (m / 10.0).round() / 100.0),
            creator: UserRef {
                id: r.creator_id,
                username: r.creator_username,
            },
            id: r.id,
            title: r.title,
            description: r.description,
            kind: r.kind,
            starts_at: Timestamp(r.starts_at),
            ends_at: Timestamp(r.ends_at),
            address: r.address,
            latitude: r.latitude,
            longitude: r.longitude,
            capacity: r.capacity,
            participants_count: r.participants_count,
            image_url: r.image_url,
            created_at: Timestamp(r.created_at),
            updated_at: Timestamp(r.updated_at),
        })
        .collect()
}
