//! The REST surface: one module per resource, combined into one OpenAPI service.

pub mod auth;
pub mod caching;
pub mod choice;
pub mod conversations;
pub mod events;
pub mod genres;
pub mod health;
pub mod instruments;
pub mod musicians;
pub mod notifications;
pub mod pagination;
pub mod participations;
pub mod responses;
pub mod users;

use poem_openapi::{OpenApiService, Tags};

#[derive(Tags)]
pub enum ApiTags {
    /// Accounts: register, log in, refresh, log out.
    Auth,
    /// Profiles and account settings.
    Users,
    /// Instruments and genres.
    Catalogue,
    /// What musicians play and like, and finding them.
    Musicians,
    /// Events and participations.
    Events,
    /// Notifications.
    Notifications,
    /// Conversations and messages.
    Chat,
    /// Liveness and readiness.
    Operations,
}

pub type Apis = (
    auth::AuthApi,
    users::UsersApi,
    musicians::MusiciansApi,
    instruments::InstrumentsApi,
    genres::GenresApi,
    events::EventsApi,
    participations::ParticipationsApi,
    notifications::NotificationsApi,
    conversations::ConversationsApi,
    health::HealthApi,
);

/// The OpenAPI service; building it touches no database.
pub fn service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (
            auth::AuthApi,
            users::UsersApi,
            musicians::MusiciansApi,
            instruments::InstrumentsApi,
            genres::GenresApi,
            events::EventsApi,
            participations::ParticipationsApi,
            notifications::NotificationsApi,
            conversations::ConversationsApi,
            health::HealthApi,
        ),
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
