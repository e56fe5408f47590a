//! `/genres`: the genre catalogue. Anyone reads (cached, with ETags); admins write.

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
    responses::Errors,
};
use crate::{
    api::guard::AdminUser,
    catalogue::{GenreRow, Snapshot, cache::Kind, store},
    domain::{ProfileText, Validator, checked},
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

impl CatalogueEntry for Genre {
    type Row = GenreRow;
    type Filter = ();

    const KIND: Kind = Kind::Genres;
    const NOUN: &'static str = "Genre";
    const PLURAL: &'static str = "Genres";
    const ONE_DESCRIPTION: &'static str = "The genre.";

    fn snapshot(
        state: &AppState,
    ) -> impl Future<Output = Result<Arc<Snapshot<GenreRow>>, ApiError>> + Send {
        state.catalogue.genres(store::all_genres(&state.db))
    }

    fn delete(db: &PgPool, id: Uuid) -> impl Future<Output = Result<bool, ApiError>> + Send {
        store::delete_genre(db, id)
    }

    fn keeps(_: &(), _: &GenreRow) -> bool {
        true
    }

    fn list_key(_: &(), page: &ListPage) -> String {
        format!("{}|{:?}", page.limit, page.after)
    }
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
    ) -> Result<ListResponse<Genre>, Errors<ListErrors>> {
        Ok(catalogue_crud::list(
            &state,
            Validator::new(),
            (),
            limit.0,
            cursor.0.as_deref(),
            if_none_match.0.as_deref(),
        )
        .await?)
    }

    /// One genre
    ///
    /// One genre, with an `ETag`: send it back in `If-None-Match` to get `304` when unchanged.
    #[oai(path = "/genres/:id", method = "get", operation_id = "genres_get")]
    async fn get(
        &self,
        state: Data<&AppState>,
        id: Path<Uuid>,
        #[oai(name = "If-None-Match")] if_none_match: Header<Option<String>>,
    ) -> Result<OneResponse<Genre>, Errors<GetErrors>> {
        Ok(catalogue_crud::get(&state, id.0, if_none_match.0.as_deref()).await?)
    }

    /// Add a genre (admin)
    ///
    /// Adds a genre to the catalogue; administrators only. Names are unique ignoring case (`409
    /// name_taken`).
    #[oai(path = "/genres", method = "post", operation_id = "genres_create")]
    async fn create(
        &self,
        state: Data<&AppState>,
        _admin: AdminUser,
        body: Json<NewGenre>,
    ) -> Result<WriteResponse<Genre>, Errors<CreateErrors>> {
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
        Ok(catalogue_crud::added(&state, &row).await)
    }

    /// Change a genre (admin)
    ///
    /// Renames a genre or changes its description; administrators only. Fields left out stay.
    #[oai(path = "/genres/:id", method = "patch", operation_id = "genres_update")]
    async fn update(
        &self,
        state: Data<&AppState>,
        _admin: AdminUser,
        id: Path<Uuid>,
        body: Json<GenreChange>,
    ) -> Result<WriteResponse<Genre>, Errors<UpdateErrors>> {
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
        .await?;
        Ok(catalogue_crud::updated(&state, row).await?)
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
        Ok(catalogue_crud::delete::<Genre>(&state, id.0).await?)
    }
}
