//! Catalogue queries.

use sqlx::PgExecutor;
use uuid::Uuid;

use super::{Category, GenreRow, InstrumentRow};
use crate::error::{ApiError, ErrorCode, map_unique_violation};

const INSTRUMENT_UNIQUE: &[(&str, &str, ErrorCode, &str)] = &[(
    "instruments_name_key",
    "name",
    ErrorCode::NameTaken,
    "An instrument with this name already exists.",
)];

const GENRE_UNIQUE: &[(&str, &str, ErrorCode, &str)] = &[(
    "genres_name_key",
    "name",
    ErrorCode::NameTaken,
    "A genre with this name already exists.",
)];

pub async fn all_instruments(db: impl PgExecutor<'_>) -> Result<Vec<InstrumentRow>, ApiError> {
    Ok(sqlx::query_as!(
        InstrumentRow,
        r#"SELECT id, name, category AS "category: Category", icon_url, updated_at
           FROM instruments ORDER BY lower(name), id"#
    )
    .fetch_all(db)
    .await?)
}

pub async fn insert_instrument(
    db: impl PgExecutor<'_>,
    name: &str,
    category: Category,
    icon_url: Option<&str>,
) -> Result<InstrumentRow, ApiError> {
    sqlx::query_as!(
        InstrumentRow,
        r#"INSERT INTO instruments (name, category, icon_url) VALUES ($1, $2, $3)
           RETURNING id, name, category AS "category: Category", icon_url, updated_at"#,
        name,
        category as Category,
        icon_url,
    )
    .fetch_one(db)
    .await
    .map_err(|e| map_unique_violation(e, INSTRUMENT_UNIQUE))
}

/// `None` fields stay; `icon_url: Some(None)` clears the icon.
pub async fn update_instrument(
    db: impl PgExecutor<'_>,
    id: Uuid,
    name: Option<&str>,
    category: Option<Category>,
    icon_url: Option<Option<&str>>,
) -> Result<Option<InstrumentRow>, ApiError> {
    sqlx::query_as!(
        InstrumentRow,
        r#"UPDATE instruments SET
             name = COALESCE($2, name),
             category = COALESCE($3, category),
             icon_url = CASE WHEN $4 THEN $5 ELSE icon_url END,
             updated_at = now()
           WHERE id = $1
           RETURNING id, name, category AS "category: Category", icon_url, updated_at"#,
        id,
        name,
        category as Option<Category>,
        icon_url.is_some(),
        icon_url.flatten(),
    )
    .fetch_optional(db)
    .await
    .map_err(|e| map_unique_violation(e, INSTRUMENT_UNIQUE))
}

pub async fn all_genres(db: impl PgExecutor<'_>) -> Result<Vec<GenreRow>, ApiError> {
    Ok(sqlx::query_as!(
        GenreRow,
        "SELECT id, name, description, updated_at FROM genres ORDER BY lower(name), id"
    )
    .fetch_all(db)
    .await?)
}

pub async fn insert_genre(
    db: impl PgExecutor<'_>,
    name: &str,
    description: Option<&str>,
) -> Result<GenreRow, ApiError> {
    sqlx::query_as!(
        GenreRow,
        "INSERT INTO genres (name, description) VALUES ($1, $2)
         RETURNING id, name, description, updated_at",
        name,
        description,
    )
    .fetch_one(db)
    .await
    .map_err(|e| map_unique_violation(e, GENRE_UNIQUE))
}

pub async fn update_genre(
    db: impl PgExecutor<'_>,
    id: Uuid,
    name: Option<&str>,
    description: Option<Option<&str>>,
) -> Result<Option<GenreRow>, ApiError> {
    sqlx::query_as!(
        GenreRow,
        "UPDATE genres SET
             name = COALESCE($2, name),
             description = CASE WHEN $3 THEN $4 ELSE description END,
             updated_at = now()
         WHERE id = $1
         RETURNING id, name, description, updated_at",
        id,
        name,
        description.is_some(),
        description.flatten(),
    )
    .fetch_optional(db)
    .await
    .map_err(|e| map_unique_violation(e, GENRE_UNIQUE))
}

/// Deletes an instrument; `false` if it did not exist; 409 while musicians or events use it.
pub async fn delete_instrument(db: impl PgExecutor<'_>, id: Uuid) -> Result<bool, ApiError> {
    sqlx::query!("DELETE FROM instruments WHERE id = $1", id)
        .execute(db)
        .await
        .map(|r| r.rows_affected() > 0)
        .map_err(|e| in_use(e, "instrument"))
}

pub async fn delete_genre(db: impl PgExecutor<'_>, id: Uuid) -> Result<bool, ApiError> {
    sqlx::query!("DELETE FROM genres WHERE id = $1", id)
        .execute(db)
        .await
        .map(|r| r.rows_affected() > 0)
        .map_err(|e| in_use(e, "genre"))
}

/// A foreign key still pointing at the row: it is in use.
fn in_use(err: sqlx::Error, what: &str) -> ApiError {
    if let sqlx::Error::Database(db) = &err
        && db.is_foreign_key_violation()
    {
        return ApiError::new(
            poem::http::StatusCode::CONFLICT,
            ErrorCode::InUse,
            format!(
                "This {what} is in use by musicians or events and cannot be deleted; \
                 rename it instead, or remove it from them first."
            ),
        );
    }
    ApiError::from(err)
}
