//! The REST surface: one module per resource, combined into one OpenAPI service.

pub mod auth;
pub mod health;
pub mod responses;
pub mod users;

use poem_openapi::{OpenApiService, Tags};

#[derive(Tags)]
pub enum ApiTags {
    /// Accounts: register, log in, refresh, log out.
    Auth,
    /// Profiles and account settings.
    Users,
    /// Liveness and readiness.
    Operations,
}

pub type Apis = (auth::AuthApi, users::UsersApi, health::HealthApi);

/// The OpenAPI service; building it touches no database.
pub fn service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (auth::AuthApi, users::UsersApi, health::HealthApi),
        "TuneLink API",
        env!("CARGO_PKG_VERSION"),
    )
    .summary("Find musicians, organise jams, talk in real time.")
    .description(include_str!("openapi_intro.md"))
}

/// The OpenAPI document as pretty JSON (`tunelink openapi`, `/openapi.json`).
pub fn spec_json() -> String {
    service().spec()
}
