//! `/genres`: the genre catalogue. Anyone reads (cached, with ETags); admins write.

use poem::web::Data;
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Header, Path, Query},
    payload::Json,
    types::{Example, MaybeUndefined},
};
use uuid::Uuid;

use super::{
    ApiTags,
    caching::{CACHE_CONTROL, etag, not_modified, page_of},
    instruments::{CreateErrors, DeleteErrors, GetErrors, ListErrors, UpdateErrors, parse_name},
    pagination::{Page, PageRequest},
    responses::Errors,
};
use crate::{
    auth::AdminUser,
    catalogue::{GenreRow, cache::Kind, store},
    domain::{ProfileText, Validator, checked},
    envelope::{Envelope, Nothing},
    error::ApiError,
    state::AppState,
};

pub const DESCRIPTION_MAX: usize = 500;

#[derive(Debug, Clone, Object)]
#[oai(example)]
pub struct Genre {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
}

impl From<&GenreRow> for Genre {
    fn from(r: &GenreRow) -> Self {
        Self {
            id: r.id,
            name: r.name.clone(),
            description: r.description.clone(),
        }
    }
}

impl Example for Genre {
    fn example() -> Self {
        Self {
            id: Uuid::from_u128(0x0190_9c1e_0000_7000_8000_0000_0000_0002),
            name: "Jazz".into(),
            description: Some("Improvisation, swing and extended harmony.".into()),
        }
    }
}

#[derive(Debug, Object)]
#[oai(example)]
pub struct NewGenre {
    /// 1–60 characters, unique ignoring case.
    pub name: String,
    /// At most 500 characters.
    pub description: Option<String>,
}

impl Example for NewGenre {
    fn example() -> Self {
        Self {
            name: "Zouk".into(),
            description: Some("Caribbean dance music from the French Antilles.".into()),
        }
    }
}

/// Fields to change; `description: null` removes it.
#[derive(Debug, Object)]
#[oai(example)]
pub struct GenreChange {
    pub name: Option<String>,
    pub description: MaybeUndefined<String>,
}

impl Example for GenreChange {
    fn example() -> Self {
        Self {
            name: None,
            description: MaybeUndefined::Value(
                "Dance music from Guadeloupe and Martinique.".into(),
            ),
        }
    }
}

#[derive(ApiResponse)]
pub enum ListResponse {
    /// A page of the catalogue.
    #[oai(status = 200)]
    Ok(
        Json<Envelope<Page<Genre>>>,
        #[oai(header = "ETag")] String,
        #[oai(header = "Cache-Control")] String,
    ),
    /// Unchanged since the `If-None-Match` ETag (no body).
    #[oai(status = 304)]
    NotModified(
        #[oai(header = "ETag")] String,
        #[oai(header = "Cache-Control")] String,
    ),
}

#[derive(ApiResponse)]
pub enum OneResponse {
    /// The genre.
    #[oai(status = 200)]
    Ok(
        Json<Envelope<Genre>>,
        #[oai(header = "ETag")] String,
        #[oai(header = "Cache-Control")] String,
    ),
    /// Unchanged since the `If-None-Match` ETag (no body).
    #[oai(status = 304)]
    NotModified(
        #[oai(header = "ETag")] String,
        #[oai(header = "Cache-Control")] String,
    ),
}

#[derive(ApiResponse)]
pub enum WriteResponse {
    /// Created.
    #[oai(status = 201)]
    Created(Json<Envelope<Genre>>),
    /// Updated.
    #[oai(status = 200)]
    Ok(Json<Envelope<Genre>>),
}

#[derive(ApiResponse)]
pub enum DeleteResponse {
    /// Deleted.
    #[oai(status = 200)]
    Ok(Json<Envelope<Nothing>>),
}

pub struct GenresApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Catalogue")]
impl GenresApi {
    /// List genres
    ///
    /// Sorted by name. Served from memory; send the `ETag` back in `If-None-Match` to get a
    /// `304` when nothing changed.
    #[oai(path = "/genres", method = "get", operation_id = "genres_list")]
    async fn list(
        &self,
        state: Data<&AppState>,
        /// 1–100, default 20.
        limit: Query<Option<u32>>,
        cursor: Query<Option<String>>,
        #[oai(name = "If-None-Match")] if_none_match: Header<Option<String>>,
    ) -> Result<ListResponse, Errors<ListErrors>> {
        let page = PageRequest::<(String, Uuid)>::parse(limit.0, cursor.0.as_deref())
            .map_err(ApiError::validation)?;
        let snapshot = state.catalogue.genres(store::all_genres(&state.db)).await?;
        let tag = etag(&snapshot.etag, &format!("{}|{:?}", page.limit, page.after));
        if not_modified(if_none_match.0.as_deref(), &tag) {
            return Ok(ListResponse::NotModified(tag, CACHE_CONTROL.into()));
        }
        let (rows, next_cursor) = page_of(&snapshot.items, |_| true, &page);
        let items = rows.into_iter().map(Genre::from).collect();
        Ok(ListResponse::Ok(
            Json(Envelope::ok("Genres.", Page { items, next_cursor })),
            tag,
            CACHE_CONTROL.into(),
        ))
    }

    /// One genre
    #[oai(path = "/genres/:id", method = "get", operation_id = "genres_get")]
    async fn get(
        &self,
        state: Data<&AppState>,
        id: Path<Uuid>,
        #[oai(name = "If-None-Match")] if_none_match: Header<Option<String>>,
    ) -> Result<OneResponse, Errors<GetErrors>> {
        let snapshot = state.catalogue.genres(store::all_genres(&state.db)).await?;
        let row = snapshot
            .items
            .iter()
            .find(|g| g.id == id.0)
            .ok_or_else(|| ApiError::not_found("Genre"))?;
        let tag = etag(&snapshot.etag, &id.0.to_string());
        if not_modified(if_none_match.0.as_deref(), &tag) {
            return Ok(OneResponse::NotModified(tag, CACHE_CONTROL.into()));
        }
        Ok(OneResponse::Ok(
            Json(Envelope::ok("Genre.", row.into())),
            tag,
            CACHE_CONTROL.into(),
        ))
    }

    /// Add a genre (admin)
    #[oai(path = "/genres", method = "post", operation_id = "genres_create")]
    async fn create(
        &self,
        state: Data<&AppState>,
        _admin: AdminUser,
        body: Json<NewGenre>,
    ) -> Result<WriteResponse, Errors<CreateErrors>> {
        let mut v = Validator::new();
        let name = v.check(parse_name(&body.0.name));
        let description = match body.0.description.as_deref() {
            Some(raw) => v
                .check(ProfileText::parse("description", raw, DESCRIPTION_MAX))
                .flatten(),
            None => None,
        };
        v.finish()?;
        let row = store::insert_genre(&state.db, &checked(name)?, description.as_deref()).await?;
        state.catalogue.changed(&state.bus, Kind::Genres).await;
        Ok(WriteResponse::Created(Json(Envelope::created(
            "Genre added.",
            (&row).into(),
        ))))
    }

    /// Change a genre (admin)
    #[oai(path = "/genres/:id", method = "patch", operation_id = "genres_update")]
    async fn update(
        &self,
        state: Data<&AppState>,
        _admin: AdminUser,
        id: Path<Uuid>,
        body: Json<GenreChange>,
    ) -> Result<WriteResponse, Errors<UpdateErrors>> {
        let body = body.0;
        let mut v = Validator::new();
        let name = body.name.as_deref().and_then(|n| v.check(parse_name(n)));
        let description = match body.description {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(raw) => {
                v.check(ProfileText::parse("description", &raw, DESCRIPTION_MAX))
            }
        };
        v.finish()?;
        let row = store::update_genre(
            &state.db,
            id.0,
            name.as_deref(),
            description.as_ref().map(|d| d.as_deref()),
        )
        .await?
        .ok_or_else(|| ApiError::not_found("Genre"))?;
        state.catalogue.changed(&state.bus, Kind::Genres).await;
        Ok(WriteResponse::Ok(Json(Envelope::ok(
            "Genre updated.",
            (&row).into(),
        ))))
    }

    /// Delete a genre (admin)
    ///
    /// Refused with `409 in_use` while musicians like it or events are tagged with it.
    #[oai(
        path = "/genres/:id",
        method = "delete",
        operation_id = "genres_delete"
    )]
    async fn delete(
        &self,
        state: Data<&AppState>,
        _admin: AdminUser,
        id: Path<Uuid>,
    ) -> Result<DeleteResponse, Errors<DeleteErrors>> {
        if !store::delete_genre(&state.db, id.0).await? {
            return Err(ApiError::not_found("Genre").into());
        }
        state.catalogue.changed(&state.bus, Kind::Genres).await;
        Ok(DeleteResponse::Ok(Json(Envelope::ok(
            "Genre deleted.",
            Nothing,
        ))))
    }
}
