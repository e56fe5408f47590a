//! What I play and like (`/users/me/instruments`, `/users/me/genres`) and finding musicians
//! (`GET /users`).

use std::collections::HashMap;

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
    choice::Choice,
    pagination::{Page, PageRequest},
    responses::Errors,
};
use crate::{
    api::guard::AuthUser,
    catalogue::{Category, SkillLevel},
    domain::{Coordinates, Validator, checked},
    envelope::{Envelope, FieldError, Nothing},
    error::ApiError,
    error_set,
    musicians::{self, Liked, Played, Search, SearchKey},
    state::AppState,
};

pub const MAX_RADIUS_KM: f64 = 500.0;

#[derive(Debug, Clone, Object)]
#[oai(example)]
pub struct PlayedInstrument {
    pub instrument_id: Uuid,
    pub name: String,
    pub category: Category,
    pub level: SkillLevel,
}

impl From<Played> for PlayedInstrument {
    fn from(p: Played) -> Self {
        Self {
            instrument_id: p.instrument_id,
            name: p.name,
            category: p.category,
            level: p.level,
        }
    }
}

impl Example for PlayedInstrument {
    fn example() -> Self {
        Self {
            instrument_id: Uuid::from_u128(0x0190_9c1e_0000_7000_8000_0000_0000_0001),
            name: "Double Bass".into(),
            category: Category::Strings,
            level: SkillLevel::Advanced,
        }
    }
}

#[derive(Debug, Clone, Object)]
#[oai(example)]
pub struct LikedGenre {
    pub genre_id: Uuid,
    pub name: String,
}

impl From<Liked> for LikedGenre {
    fn from(l: Liked) -> Self {
        Self {
            genre_id: l.genre_id,
            name: l.name,
        }
    }
}

impl Example for LikedGenre {
    fn example() -> Self {
        Self {
            genre_id: Uuid::from_u128(0x0190_9c1e_0000_7000_8000_0000_0000_0002),
            name: "Jazz".into(),
        }
    }
}

/// A musician in search results.
#[derive(Debug, Object)]
#[oai(example)]
pub struct MusicianCard {
    pub id: Uuid,
    pub username: String,
    pub bio: Option<String>,
    pub photo_url: Option<String>,
    pub city: Option<String>,
    /// Whole kilometres (at least 1) from the searched point to the musician's area, when a
    /// point was given. Never their exact place: see "Location privacy" in the README.
    pub distance_km: Option<f64>,
    pub instruments: Vec<PlayedInstrument>,
    pub genres: Vec<LikedGenre>,
}

impl Example for MusicianCard {
    fn example() -> Self {
        Self {
            id: Uuid::from_u128(0x0190_9c1e_7a4b_7c3d_9e2f_1a2b_3c4d_5e6f),
            username: "nina_keys".into(),
            bio: Some("Jazz pianist, looking for a rhythm section.".into()),
            photo_url: None,
            city: Some("Lyon".into()),
            distance_km: Some(2.0),
            instruments: vec![PlayedInstrument::example()],
            genres: vec![LikedGenre::example()],
        }
    }
}

#[derive(Debug, Object)]
#[oai(example)]
pub struct SetLevel {
    /// beginner, intermediate, advanced, expert or professional.
    pub level: Choice<SkillLevel>,
}

impl Example for SetLevel {
    fn example() -> Self {
        Self {
            level: Choice(Ok(SkillLevel::Advanced)),
        }
    }
}

#[derive(ApiResponse)]
pub enum SearchResponse {
    /// Matching musicians: by distance when `lat`/`lon` are given, by username otherwise.
    #[oai(status = 200)]
    Ok(Json<Envelope<Page<MusicianCard>>>),
}

#[derive(ApiResponse)]
pub enum PlayedPage {
    /// My instruments, by name.
    #[oai(status = 200)]
    Ok(Json<Envelope<Page<PlayedInstrument>>>),
}

#[derive(ApiResponse)]
pub enum PlayedOne {
    /// The instrument and level as now stored.
    #[oai(status = 200)]
    Ok(Json<Envelope<PlayedInstrument>>),
}

#[derive(ApiResponse)]
pub enum LikedPage {
    /// My genres, by name.
    #[oai(status = 200)]
    Ok(Json<Envelope<Page<LikedGenre>>>),
}

#[derive(ApiResponse)]
pub enum Done {
    /// Done.
    #[oai(status = 200)]
    Ok(Json<Envelope<Nothing>>),
}

error_set!(SearchErrors: 400, 401, 422, 429, 500, 503);
error_set!(MineErrors: 400, 401, 422, 500, 503);
error_set!(SetErrors: 400, 401, 404, 413, 415, 422, 500, 503);
error_set!(RemoveErrors: 400, 401, 404, 422, 500, 503);

pub struct MusiciansApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Musicians")]
impl MusiciansApi {
    /// Find musicians
    ///
    /// Filters combine: `q` (at least 3 characters, in the username or city), `instrument_id`
    /// with an optional `min_level`, `genre_id`, and `lat` + `lon` + `radius_km` (at most 500,
    /// at least 1: a smaller radius counts as 1; results are then sorted by distance).
    /// Distances are to each musician's area (their point rounded to 0.01°) and answered in
    /// whole kilometres, so that no combination of searches locates a person better than
    /// that area. Deactivated accounts never appear, nor anyone you blocked or who blocked you.
    #[oai(path = "/users", method = "get", operation_id = "musicians_search")]
    #[allow(clippy::too_many_arguments)]
    async fn search(
        &self,
        state: Data<&AppState>,
        auth: AuthUser,
        q: Query<Option<String>>,
        instrument_id: Query<Option<Uuid>>,
        /// Only with `instrument_id`: this level or better.
        min_level: Query<Option<Choice<SkillLevel>>>,
        genre_id: Query<Option<Uuid>>,
        lat: Query<Option<f64>>,
        lon: Query<Option<f64>>,
        radius_km: Query<Option<f64>>,
        /// 1–100, default 20.
        limit: Query<Option<u32>>,
        cursor: Query<Option<String>>,
    ) -> Result<SearchResponse, Errors<SearchErrors>> {
        let _pass = super::costs::search(&state, auth.0.id).await?;
        let mut v = Validator::new();
        let text = v.check(crate::domain::search_text(q.0)).flatten();
        let min_level = min_level.0.and_then(|l| v.check(l.parse("min_level")));
        if min_level.is_some() && instrument_id.0.is_none() {
            v.push(FieldError::new(
                "min_level",
                "value_error",
                "min_level needs instrument_id",
            ));
        }
        let near = match Coordinates::parse("lat", "lon", lat.0, lon.0) {
            Ok(point) => match (point, radius_km.0) {
                (Some(p), Some(r)) if r > 0.0 && r <= MAX_RADIUS_KM => {
                    Some((p.latitude, p.longitude, crate::domain::radius_metres(r)))
                }
                (Some(_), Some(_)) => {
                    v.push(FieldError::new(
                        "radius_km",
                        "out_of_range",
                        format!("radius_km must be more than 0 and at most {MAX_RADIUS_KM}"),
                    ));
                    None
                }
                (Some(_), None) => {
                    v.push(FieldError::new(
                        "radius_km",
                        "missing",
                        "radius_km is required with lat and lon",
                    ));
                    None
                }
                (None, Some(_)) => {
                    v.push(FieldError::new(
                        "lat",
                        "missing",
                        "radius_km needs lat and lon",
                    ));
                    None
                }
                (None, None) => None,
            },
            Err(errors) => {
                errors.into_iter().for_each(|e| v.push(e));
                None
            }
        };
        let page = PageRequest::<SearchKey>::parse(limit.0, cursor.0.as_deref())
            .map_err(|errs| errs.into_iter().for_each(|e| v.push(e)))
            .ok();
        v.finish()?;
        let page = checked(page)?;

        let filter = Search {
            text,
            instrument: instrument_id.0,
            min_level,
            genre: genre_id.0,
            near,
        };
        let rows = musicians::search(
            &state.db,
            auth.0.id,
            &filter,
            page.after.as_ref(),
            page.fetch(),
        )
        .await?;
        let (rows, next_cursor) = page.finish(rows, |r| (r.key_num, r.key_text.clone(), r.id));
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        let (mut played, mut liked) = details_of(&state, &ids).await?;
        let items = rows
            .into_iter()
            .map(|r| MusicianCard {
                instruments: played.remove(&r.id).unwrap_or_default(),
                genres: liked.remove(&r.id).unwrap_or_default(),
                id: r.id,
                username: r.username,
                bio: r.bio,
                photo_url: r.photo_url,
                city: r.city,
                // Whole kilometres, at least 1: a musician's place is only ever their area.
                distance_km: r.distance_m.map(|m| (m / 1000.0).round().max(1.0)),
            })
            .collect();
        Ok(SearchResponse::Ok(Json(Envelope::ok(
            "Musicians.",
            Page { items, next_cursor },
        ))))
    }

    /// My instruments
    ///
    /// The instruments I play, with my level on each.
    #[oai(
        path = "/users/me/instruments",
        method = "get",
        operation_id = "my_instruments_list"
    )]
    async fn my_instruments(
        &self,
        state: Data<&AppState>,
        auth: AuthUser,
        /// 1–100, default 20.
        limit: Query<Option<u32>>,
        cursor: Query<Option<String>>,
    ) -> Result<PlayedPage, Errors<MineErrors>> {
        let page = PageRequest::<(String, Uuid)>::parse(limit.0, cursor.0.as_deref())
            .map_err(ApiError::validation)?;
        let all = musicians::instruments_of(&state.db, &[auth.0.id]).await?;
        let key = |p: &Played| (p.name.to_lowercase(), p.instrument_id);
        let mut all: Vec<Played> = all
            .into_iter()
            .filter(|p| page.after.as_ref().is_none_or(|a| key(p) > *a))
            .collect();
        all.sort_by_cached_key(key);
        all.truncate(page.fetch() as usize);
        let (rows, next_cursor) = page.finish(all, key);
        let items = rows.into_iter().map(PlayedInstrument::from).collect();
        Ok(PlayedPage::Ok(Json(Envelope::ok(
            "Your instruments.",
            Page { items, next_cursor },
        ))))
    }

    /// Set an instrument I play, with my level
    ///
    /// Idempotent: repeating it changes nothing; another level replaces the old one.
    #[oai(
        path = "/users/me/instruments/:instrument_id",
        method = "put",
        operation_id = "my_instruments_set"
    )]
    async fn set_instrument(
        &self,
        state: Data<&AppState>,
        auth: AuthUser,
        instrument_id: Path<Uuid>,
        body: Json<SetLevel>,
    ) -> Result<PlayedOne, Errors<SetErrors>> {
        let level = body
            .0
            .level
            .parse("level")
            .map_err(|e| ApiError::validation(vec![e]))?;
        let played =
            musicians::set_instrument(&state.db, auth.0.id, instrument_id.0, level).await?;
        Ok(PlayedOne::Ok(Json(Envelope::ok(
            "Instrument saved.",
            played.into(),
        ))))
    }

    /// Stop listing an instrument
    ///
    /// Removes an instrument from the ones I play. 404 when it was not among them.
    #[oai(
        path = "/users/me/instruments/:instrument_id",
        method = "delete",
        operation_id = "my_instruments_remove"
    )]
    async fn remove_instrument(
        &self,
        state: Data<&AppState>,
        auth: AuthUser,
        instrument_id: Path<Uuid>,
    ) -> Result<Done, Errors<RemoveErrors>> {
        if !musicians::remove_instrument(&state.db, auth.0.id, instrument_id.0).await? {
            return Err(ApiError::not_found("Instrument in your list").into());
        }
        Ok(Done::Ok(Json(Envelope::ok("Instrument removed.", Nothing))))
    }

    /// My genres
    ///
    /// The genres I like.
    #[oai(
        path = "/users/me/genres",
        method = "get",
        operation_id = "my_genres_list"
    )]
    async fn my_genres(
        &self,
        state: Data<&AppState>,
        auth: AuthUser,
        /// 1–100, default 20.
        limit: Query<Option<u32>>,
        cursor: Query<Option<String>>,
    ) -> Result<LikedPage, Errors<MineErrors>> {
        let page = PageRequest::<(String, Uuid)>::parse(limit.0, cursor.0.as_deref())
            .map_err(ApiError::validation)?;
        let all = musicians::genres_of(&state.db, &[auth.0.id]).await?;
        let key = |l: &Liked| (l.name.to_lowercase(), l.genre_id);
        let mut all: Vec<Liked> = all
            .into_iter()
            .filter(|l| page.after.as_ref().is_none_or(|a| key(l) > *a))
            .collect();
        all.sort_by_cached_key(key);
        all.truncate(page.fetch() as usize);
        let (rows, next_cursor) = page.finish(all, key);
        let items = rows.into_iter().map(LikedGenre::from).collect();
        Ok(LikedPage::Ok(Json(Envelope::ok(
            "Your genres.",
            Page { items, next_cursor },
        ))))
    }

    /// Like a genre
    ///
    /// Idempotent.
    #[oai(
        path = "/users/me/genres/:genre_id",
        method = "put",
        operation_id = "my_genres_add"
    )]
    async fn add_genre(
        &self,
        state: Data<&AppState>,
        auth: AuthUser,
        genre_id: Path<Uuid>,
    ) -> Result<Done, Errors<RemoveErrors>> {
        let added = musicians::add_genre(&state.db, auth.0.id, genre_id.0).await?;
        let message = if added {
            "Genre added."
        } else {
            "Genre already in your list."
        };
        Ok(Done::Ok(Json(Envelope::ok(message, Nothing))))
    }

    /// Stop liking a genre
    ///
    /// Removes a genre from the ones I like. 404 when it was not among them.
    #[oai(
        path = "/users/me/genres/:genre_id",
        method = "delete",
        operation_id = "my_genres_remove"
    )]
    async fn remove_genre(
        &self,
        state: Data<&AppState>,
        auth: AuthUser,
        genre_id: Path<Uuid>,
    ) -> Result<Done, Errors<RemoveErrors>> {
        if !musicians::remove_genre(&state.db, auth.0.id, genre_id.0).await? {
            return Err(ApiError::not_found("Genre in your list").into());
        }
        Ok(Done::Ok(Json(Envelope::ok("Genre removed.", Nothing))))
    }
}

/// Instruments and genres of several musicians, grouped by musician (two queries in all).
pub async fn details_of(
    state: &AppState,
    ids: &[Uuid],
) -> Result<
    (
        HashMap<Uuid, Vec<PlayedInstrument>>,
        HashMap<Uuid, Vec<LikedGenre>>,
    ),
    ApiError,
> {
    let mut played: HashMap<Uuid, Vec<PlayedInstrument>> = HashMap::new();
    for p in musicians::instruments_of(&state.db, ids).await? {
        played.entry(p.user_id).or_default().push(p.into());
    }
    let mut liked: HashMap<Uuid, Vec<LikedGenre>> = HashMap::new();
    for l in musicians::genres_of(&state.db, ids).await? {
        liked.entry(l.user_id).or_default().push(l.into());
    }
    Ok((played, liked))
}
