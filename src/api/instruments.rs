//! `/instruments`: the instrument catalogue. Anyone reads (cached, with ETags); admins write.

use std::{future::Future, sync::Arc};

use poem::web::Data;
use poem_openapi::{
    Object, OpenApi,
    param::{Header, Path, Query},
    payload::Json,
    types::{Example, MaybeUndefined},
};
use sqlx::PgPool;
use uuid::Uuid;

use super::{
    ApiTags,
    catalogue_crud::{
        self, CatalogueEntry, CreateErrors, DeleteErrors, DeleteResponse, GetErrors, ListErrors,
        ListPage, ListResponse, OneResponse, UpdateErrors, WriteResponse, parse_name,
    },
    choice::Choice,
    responses::Errors,
};
use crate::{
    api::guard::AdminUser,
    catalogue::{Category, InstrumentRow, Snapshot, cache::Kind, store},
    domain::{Url, Validator, checked},
    error::ApiError,
    state::AppState,
};

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

impl CatalogueEntry for Instrument {
    type Row = InstrumentRow;
    type Filter = Option<Category>;

    const KIND: Kind = Kind::Instruments;
    const NOUN: &'static str = "Instrument";
    const PLURAL: &'static str = "Instruments";
    const ONE_DESCRIPTION: &'static str = "The instrument.";

    fn snapshot(
        state: &AppState,
    ) -> impl Future<Output = Result<Arc<Snapshot<InstrumentRow>>, ApiError>> + Send {
        state
            .catalogue
            .instruments(store::all_instruments(&state.db))
    }

    fn delete(db: &PgPool, id: Uuid) -> impl Future<Output = Result<bool, ApiError>> + Send {
        store::delete_instrument(db, id)
    }

    fn keeps(category: &Option<Category>, row: &InstrumentRow) -> bool {
        category.is_none_or(|c| row.category == c)
    }

    fn list_key(category: &Option<Category>, page: &ListPage) -> String {
        format!("{category:?}|{}|{:?}", page.limit, page.after)
    }
}

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
    ) -> Result<ListResponse<Instrument>, Errors<ListErrors>> {
        let mut v = Validator::new();
        let category = category.0.and_then(|c| v.check(c.parse("category")));
        Ok(catalogue_crud::list(
            &state,
            v,
            category,
            limit.0,
            cursor.0.as_deref(),
            if_none_match.0.as_deref(),
        )
        .await?)
    }

    /// One instrument
    ///
    /// One instrument, with an `ETag`: send it back in `If-None-Match` to get `304` when
    /// unchanged.
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
    ) -> Result<OneResponse<Instrument>, Errors<GetErrors>> {
        Ok(catalogue_crud::get(&state, id.0, if_none_match.0.as_deref()).await?)
    }

    /// Add an instrument (admin)
    ///
    /// Adds an instrument to the catalogue; administrators only. Names are unique ignoring case
    /// (`409 name_taken`).
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
    ) -> Result<WriteResponse<Instrument>, Errors<CreateErrors>> {
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
        Ok(catalogue_crud::added(&state, &row).await)
    }

    /// Change an instrument (admin)
    ///
    /// Renames an instrument or changes its category; administrators only. Fields left out
    /// stay.
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
    ) -> Result<WriteResponse<Instrument>, Errors<UpdateErrors>> {
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
        .await?;
        Ok(catalogue_crud::updated(&state, row).await?)
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
        Ok(catalogue_crud::delete::<Instrument>(&state, id.0).await?)
    }
}
