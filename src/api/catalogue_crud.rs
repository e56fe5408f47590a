//! What `/instruments` and `/genres` share: reads served from the catalogue cache with
//! ETags, admin writes that drop it, their answers, error statuses and the name rule.
//!
//! Each kind implements [`CatalogueEntry`] on its DTO and keeps its own `#[OpenApi]` impl
//! (paths, operation ids, documentation); the handler bodies they share live here.

use std::{future::Future, sync::Arc};

use poem::{IntoResponse, Response};
use poem_openapi::{
    ApiResponse,
    payload::Json,
    registry::{MetaResponses, Registry},
    types::{Example, ParseFromJSON, ToJSON},
};
use sqlx::PgPool;
use uuid::Uuid;

use super::{
    caching::{CACHE_CONTROL, etag, not_modified, page_of},
    pagination::{Page, PageRequest},
};
use crate::{
    catalogue::{Snapshot, Versioned, cache::Kind},
    domain::{ProfileText, Validator, checked},
    envelope::{Envelope, FieldError, Nothing},
    error::ApiError,
    error_set,
    state::AppState,
};

pub const NAME_MAX: usize = 60;

error_set!(ListErrors: 400, 422, 500, 503);
error_set!(GetErrors: 400, 404, 422, 500, 503);
error_set!(CreateErrors: 400, 401, 403, 409, 413, 415, 422, 500, 503);
error_set!(UpdateErrors: 400, 401, 403, 404, 409, 413, 415, 422, 500, 503);
error_set!(DeleteErrors: 400, 401, 403, 404, 409, 422, 500, 503);

/// The page key of a catalogue listing: (name ignoring case, id).
pub type ListPage = PageRequest<(String, Uuid)>;

/// A kind of catalogue entry, as the API shows it (implemented on its DTO).
pub trait CatalogueEntry:
    ParseFromJSON + ToJSON + Example + for<'a> From<&'a Self::Row> + 'static
{
    type Row: Versioned + Send + Sync + 'static;
    /// What a listing can be narrowed by (`()`: nothing).
    type Filter: Send;

    const KIND: Kind;
    /// `Instrument`: in messages and in `404`s.
    const NOUN: &'static str;
    /// `Instruments`: the list's message.
    const PLURAL: &'static str;
    /// The description of a `200` answering one entry.
    const ONE_DESCRIPTION: &'static str;

    /// The cached catalogue of this kind.
    fn snapshot(
        state: &AppState,
    ) -> impl Future<Output = Result<Arc<Snapshot<Self::Row>>, ApiError>> + Send;
    /// `false` if it did not exist.
    fn delete(db: &PgPool, id: Uuid) -> impl Future<Output = Result<bool, ApiError>> + Send;
    fn keeps(filter: &Self::Filter, row: &Self::Row) -> bool;
    /// What a listing asked, for its ETag.
    fn list_key(filter: &Self::Filter, page: &ListPage) -> String;
}

#[derive(ApiResponse)]
pub enum ListResponse<T: ParseFromJSON + ToJSON + Example> {
    /// A page of the catalogue.
    #[oai(status = 200)]
    Ok(
        Json<Envelope<Page<T>>>,
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

/// One entry. Documented as [`Found`], but the `200` is described by its kind
/// ([`CatalogueEntry::ONE_DESCRIPTION`]).
pub struct OneResponse<T: CatalogueEntry>(Found<T>);

#[derive(ApiResponse)]
enum Found<T: ParseFromJSON + ToJSON + Example> {
    /// The entry (replaced by the kind's own description).
    #[oai(status = 200)]
    Ok(
        Json<Envelope<T>>,
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

impl<T: CatalogueEntry> ApiResponse for OneResponse<T> {
    fn meta() -> MetaResponses {
        let mut meta = Found::<T>::meta();
        for response in &mut meta.responses {
            if response.status == Some(200) {
                response.description = T::ONE_DESCRIPTION;
            }
        }
        meta
    }

    fn register(registry: &mut Registry) {
        Found::<T>::register(registry);
    }
}

impl<T: CatalogueEntry> IntoResponse for OneResponse<T> {
    fn into_response(self) -> Response {
        self.0.into_response()
    }
}

#[derive(ApiResponse)]
pub enum WriteResponse<T: ParseFromJSON + ToJSON + Example> {
    /// Created.
    #[oai(status = 201)]
    Created(Json<Envelope<T>>),
    /// Updated.
    #[oai(status = 200)]
    Ok(Json<Envelope<T>>),
}

#[derive(ApiResponse)]
pub enum DeleteResponse {
    /// Deleted.
    #[oai(status = 200)]
    Ok(Json<Envelope<Nothing>>),
}

/// A page of the catalogue, sorted by name. `checks` holds the kind's own checks of its
/// filter; bad `limit` or `cursor` are reported with them.
pub async fn list<T: CatalogueEntry>(
    state: &AppState,
    mut checks: Validator,
    filter: T::Filter,
    limit: Option<u32>,
    cursor: Option<&str>,
    if_none_match: Option<&str>,
) -> Result<ListResponse<T>, ApiError> {
    let page = ListPage::parse(limit, cursor)
        .map_err(|errs| errs.into_iter().for_each(|e| checks.push(e)))
        .ok();
    checks.finish()?;
    let page = checked(page)?;

    let snapshot = T::snapshot(state).await?;
    let tag = etag(&snapshot.etag, &T::list_key(&filter, &page));
    if not_modified(if_none_match, &tag) {
        return Ok(ListResponse::NotModified(tag, CACHE_CONTROL.into()));
    }
    let (rows, next_cursor) = page_of(&snapshot.items, |row| T::keeps(&filter, row), &page);
    let items = rows.into_iter().map(T::from).collect();
    Ok(ListResponse::Ok(
        Json(Envelope::ok(
            format!("{}.", T::PLURAL),
            Page { items, next_cursor },
        )),
        tag,
        CACHE_CONTROL.into(),
    ))
}

/// One entry, by id.
pub async fn get<T: CatalogueEntry>(
    state: &AppState,
    id: Uuid,
    if_none_match: Option<&str>,
) -> Result<OneResponse<T>, ApiError> {
    let snapshot = T::snapshot(state).await?;
    let row = snapshot
        .items
        .iter()
        .find(|row| row.id() == id)
        .ok_or_else(|| ApiError::not_found(T::NOUN))?;
    let tag = etag(&snapshot.etag, &id.to_string());
    if not_modified(if_none_match, &tag) {
        return Ok(OneResponse(Found::NotModified(tag, CACHE_CONTROL.into())));
    }
    Ok(OneResponse(Found::Ok(
        Json(Envelope::ok(format!("{}.", T::NOUN), row.into())),
        tag,
        CACHE_CONTROL.into(),
    )))
}

/// After an insert: drops the cache and answers `201`.
pub async fn added<T: CatalogueEntry>(state: &AppState, row: &T::Row) -> WriteResponse<T> {
    state.catalogue.changed(&state.bus, T::KIND).await;
    WriteResponse::Created(Json(Envelope::created(
        format!("{} added.", T::NOUN),
        row.into(),
    )))
}

/// After an update (`None`: no such entry): drops the cache and answers `200`.
pub async fn updated<T: CatalogueEntry>(
    state: &AppState,
    row: Option<T::Row>,
) -> Result<WriteResponse<T>, ApiError> {
    let row = row.ok_or_else(|| ApiError::not_found(T::NOUN))?;
    state.catalogue.changed(&state.bus, T::KIND).await;
    Ok(WriteResponse::Ok(Json(Envelope::ok(
        format!("{} updated.", T::NOUN),
        (&row).into(),
    ))))
}

/// Deletes an entry and drops the cache.
pub async fn delete<T: CatalogueEntry>(
    state: &AppState,
    id: Uuid,
) -> Result<DeleteResponse, ApiError> {
    if !T::delete(&state.db, id).await? {
        return Err(ApiError::not_found(T::NOUN));
    }
    state.catalogue.changed(&state.bus, T::KIND).await;
    Ok(DeleteResponse::Ok(Json(Envelope::ok(
        format!("{} deleted.", T::NOUN),
        Nothing,
    ))))
}

/// A catalogue name: 1–60 characters of text.
pub fn parse_name(raw: &str) -> Result<String, FieldError> {
    match ProfileText::line("name", raw, NAME_MAX)? {
        Some(name) if !name.contains('\n') => Ok(name),
        Some(_) => Err(FieldError::new(
            "name",
            "invalid_format",
            "name must be on one line",
        )),
        None => Err(FieldError::new("name", "missing", "name is required")),
    }
}
