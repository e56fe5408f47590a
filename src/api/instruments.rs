//! `/instruments`: the instrument catalogue. Anyone reads (cached, with ETags); admins write.

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
    choice::Choice,
    pagination::{Page, PageRequest},
    responses::Errors,
};
use crate::{
    auth::AdminUser,
    catalogue::{Category, InstrumentRow, cache::Kind, store},
    domain::{ProfileText, Url, Validator, checked},
    envelope::{Envelope, FieldError, Nothing},
    error::ApiError,
    error_set,
    state::AppState,
};

pub const NAME_MAX: usize = 60;

#[derive(Debug, Clone, Object)]
#[oai(example)]
pub struct Instrument {
    pub id: Uuid,
    pub name: String,
    pub category: Category,
    pub icon_url: Option<String>,
}

impl From<&InstrumentRow> for Instrument {
    fn from(r: &InstrumentRow) -> Self {
        Self {
            id: r.id,
            name: r.name.clone(),
            category: r.category,
            icon_url: r.icon_url.clone(),
        }
    }
}

impl Example for Instrument {
    fn example() -> Self {
        Self {
            id: Uuid::from_u128(0x0190_9c1e_0000_7000_8000_0000_0000_0001),
            name: "Double Bass".into(),
            category: Category::Strings,
            icon_url: Some("https://cdn.example.com/icons/double-bass.svg".into()),
        }
    }
}

#[derive(Debug, Object)]
#[oai(example)]
pub struct NewInstrument {
    /// 1–60 characters, unique ignoring case.
    pub name: String,
    pub category: Choice<Category>,
    /// An absolute http(s) URL.
    pub icon_url: Option<String>,
}

impl Example for NewInstrument {
    fn example() -> Self {
        Self {
            name: "Nyckelharpa".into(),
            category: Choice(Ok(Category::Strings)),
            icon_url: None,
        }
    }
}

/// Fields to change; `icon_url: null` removes the icon.
#[derive(Debug, Object)]
#[oai(example)]
pub struct InstrumentChange {
    pub name: Option<String>,
    pub category: Option<Choice<Category>>,
    pub icon_url: MaybeUndefined<String>,
}

impl Example for InstrumentChange {
    fn example() -> Self {
        Self {
            name: Some("Upright Bass".into()),
            category: None,
            icon_url: MaybeUndefined::Undefined,
        }
    }
}

#[derive(ApiResponse)]
pub enum ListResponse {
    /// A page of the catalogue.
    #[oai(status = 200)]
    Ok(
        Json<Envelope<Page<Instrument>>>,
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
    /// The instrument.
    #[oai(status = 200)]
    Ok(
        Json<Envelope<Instrument>>,
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
    Created(Json<Envelope<Instrument>>),
    /// Updated.
    #[oai(status = 200)]
    Ok(Json<Envelope<Instrument>>),
}

#[derive(ApiResponse)]
pub enum DeleteResponse {
    /// Deleted.
    #[oai(status = 200)]
    Ok(Json<Envelope<Nothing>>),
}

error_set!(ListErrors: 400, 422, 500, 503);
error_set!(GetErrors: 400, 404, 500, 503);
error_set!(CreateErrors: 400, 401, 403, 409, 413, 415, 422, 500, 503);
error_set!(UpdateErrors: 400, 401, 403, 404, 409, 413, 415, 422, 500, 503);
error_set!(DeleteErrors: 400, 401, 403, 404, 409, 500, 503);

pub struct InstrumentsApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Catalogue")]
impl InstrumentsApi {
    /// List instruments
    ///
    /// Sorted by name. Served from memory; send the `ETag` back in `If-None-Match` to get a
    /// `304` when nothing changed.
    #[oai(
        path = "/instruments",
        method = "get",
        operation_id = "instruments_list"
    )]
    async fn list(
        &self,
        state: Data<&AppState>,
        /// Only this category.
        category: Query<Option<Choice<Category>>>,
        /// 1–100, default 20.
        limit: Query<Option<u32>>,
        cursor: Query<Option<String>>,
        #[oai(name = "If-None-Match")] if_none_match: Header<Option<String>>,
    ) -> Result<ListResponse, Errors<ListErrors>> {
        let mut v = Validator::new();
        let category = category.0.and_then(|c| v.check(c.parse("category")));
        let page = PageRequest::<(String, Uuid)>::parse(limit.0, cursor.0.as_deref());
        let page = page
            .map_err(|errs| errs.into_iter().for_each(|e| v.push(e)))
            .ok();
        v.finish()?;
        let page = checked(page)?;

        let snapshot = state
            .catalogue
            .instruments(store::all_instruments(&state.db))
            .await?;
        let tag = etag(
            &snapshot.etag,
            &format!("{category:?}|{}|{:?}", page.limit, page.after),
        );
        if not_modified(if_none_match.0.as_deref(), &tag) {
            return Ok(ListResponse::NotModified(tag, CACHE_CONTROL.into()));
        }
        let (rows, next_cursor) = page_of(
            &snapshot.items,
            |i| category.is_none_or(|c| i.category == c),
            &page,
        );
        let items = rows.into_iter().map(Instrument::from).collect();
        Ok(ListResponse::Ok(
            Json(Envelope::ok("Instruments.", Page { items, next_cursor })),
            tag,
            CACHE_CONTROL.into(),
        ))
    }

    /// One instrument
    #[oai(
        path = "/instruments/:id",
        method = "get",
        operation_id = "instruments_get"
    )]
    async fn get(
        &self,
        state: Data<&AppState>,
        id: Path<Uuid>,
        #[oai(name = "If-None-Match")] if_none_match: Header<Option<String>>,
    ) -> Result<OneResponse, Errors<GetErrors>> {
        let snapshot = state
            .catalogue
            .instruments(store::all_instruments(&state.db))
            .await?;
        let row = snapshot
            .items
            .iter()
            .find(|i| i.id == id.0)
            .ok_or_else(|| ApiError::not_found("Instrument"))?;
        let tag = etag(&snapshot.etag, &id.0.to_string());
        if not_modified(if_none_match.0.as_deref(), &tag) {
            return Ok(OneResponse::NotModified(tag, CACHE_CONTROL.into()));
        }
        Ok(OneResponse::Ok(
            Json(Envelope::ok("Instrument.", row.into())),
            tag,
            CACHE_CONTROL.into(),
        ))
    }

    /// Add an instrument (admin)
    #[oai(
        path = "/instruments",
        method = "post",
        operation_id = "instruments_create"
    )]
    async fn create(
        &self,
        state: Data<&AppState>,
        _admin: AdminUser,
        body: Json<NewInstrument>,
    ) -> Result<WriteResponse, Errors<CreateErrors>> {
        let mut v = Validator::new();
        let name = v.check(parse_name(&body.0.name));
        let category = v.check(body.0.category.parse("category"));
        let icon = match body.0.icon_url.as_deref() {
            Some(raw) => v.check(Url::parse("icon_url", raw)).flatten(),
            None => None,
        };
        v.finish()?;
        let row = store::insert_instrument(
            &state.db,
            &checked(name)?,
            checked(category)?,
            icon.as_deref(),
        )
        .await?;
        state.catalogue.changed(&state.bus, Kind::Instruments).await;
        Ok(WriteResponse::Created(Json(Envelope::created(
            "Instrument added.",
            (&row).into(),
        ))))
    }

    /// Change an instrument (admin)
    #[oai(
        path = "/instruments/:id",
        method = "patch",
        operation_id = "instruments_update"
    )]
    async fn update(
        &self,
        state: Data<&AppState>,
        _admin: AdminUser,
        id: Path<Uuid>,
        body: Json<InstrumentChange>,
    ) -> Result<WriteResponse, Errors<UpdateErrors>> {
        let body = body.0;
        let mut v = Validator::new();
        let name = body.name.as_deref().and_then(|n| v.check(parse_name(n)));
        let category = body.category.and_then(|c| v.check(c.parse("category")));
        let icon = match body.icon_url {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(raw) => v.check(Url::parse("icon_url", &raw)),
        };
        v.finish()?;
        let row = store::update_instrument(
            &state.db,
            id.0,
            name.as_deref(),
            category,
            icon.as_ref().map(|i| i.as_deref()),
        )
        .await?
        .ok_or_else(|| ApiError::not_found("Instrument"))?;
        state.catalogue.changed(&state.bus, Kind::Instruments).await;
        Ok(WriteResponse::Ok(Json(Envelope::ok(
            "Instrument updated.",
            (&row).into(),
        ))))
    }

    /// Delete an instrument (admin)
    ///
    /// Refused with `409 in_use` while musicians play it or events need it: rename it, or
    /// have it removed from them first.
    #[oai(
        path = "/instruments/:id",
        method = "delete",
        operation_id = "instruments_delete"
    )]
    async fn delete(
        &self,
        state: Data<&AppState>,
        _admin: AdminUser,
        id: Path<Uuid>,
    ) -> Result<DeleteResponse, Errors<DeleteErrors>> {
        if !store::delete_instrument(&state.db, id.0).await? {
            return Err(ApiError::not_found("Instrument").into());
        }
        state.catalogue.changed(&state.bus, Kind::Instruments).await;
        Ok(DeleteResponse::Ok(Json(Envelope::ok(
            "Instrument deleted.",
            Nothing,
        ))))
    }
}

/// A catalogue name: 1–60 characters of text.
pub fn parse_name(raw: &str) -> Result<String, FieldError> {
    match ProfileText::parse("name", raw, NAME_MAX)? {
        Some(name) if !name.contains('\n') => Ok(name),
        Some(_) => Err(FieldError::new(
            "name",
            "invalid_format",
            "name must be on one line",
        )),
        None => Err(FieldError::new("name", "missing", "name is required")),
    }
}
