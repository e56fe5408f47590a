//! Browser origins (`ALLOWED_ORIGINS`): CORS for the REST API, and the same check for the
//! socket's upgrade (a page on another site must not open a socket with a user's token).
//!
//! Requests without `Origin` (the mobile app, curl, other servers) and same-origin requests
//! (Swagger UI at `/docs`) are never affected. When the list is empty there is no CORS at
//! all: browsers on other origins cannot read answers, and the socket accepts any origin.

use std::sync::Arc;

use poem::{
    Endpoint, IntoResponse, Middleware, Request, Response,
    http::{Method, header},
    middleware::{Cors, CorsEndpoint},
};

/// The allowed origins, normalised (`scheme://host[:port]`, lower case, no trailing `/`).
#[derive(Debug, Clone, Default)]
pub struct Origins {
    any: bool,
    list: Vec<String>,
}

impl Origins {
    pub fn new(list: &[String]) -> Self {
        Self {
            any: list.iter().any(|o| o == "*"),
            list: list.iter().filter(|o| *o != "*").cloned().collect(),
        }
    }

    pub fn is_configured(&self) -> bool {
        self.any || !self.list.is_empty()
    }

    /// A cross-origin `origin` that may call us.
    pub fn allows(&self, origin: &str) -> bool {
        let origin = origin.trim().trim_end_matches('/');
        self.any || self.list.iter().any(|o| o.eq_ignore_ascii_case(origin))
    }

    /// Whether CORS rules apply at all: a configured list and an `Origin` that is not the
    /// server's own (compared with `Host`).
    fn applies(&self, req: &Request) -> bool {
        let Some(origin) = req.header(header::ORIGIN) else {
            return false;
        };
        let own = req.header(header::HOST).is_some_and(|host| {
            origin
                .split_once("://")
                .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host))
        });
        self.is_configured() && !own
    }
}

/// CORS from the settings, bypassed for requests it does not concern.
pub struct OriginPolicy(pub Arc<Origins>);

impl<E: Endpoint> Middleware<E> for OriginPolicy {
    type Output = OriginEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        let inner = Arc::new(inner);
        let check = self.0.clone();
        let cors = Cors::new()
            .allow_origins_fn(move |origin| check.allows(origin))
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                "authorization",
                "content-type",
                "if-none-match",
                "x-request-id",
            ])
            .expose_headers(["x-request-id", "retry-after", "etag"])
            .max_age(600)
            .transform(inner.clone());
        OriginEndpoint {
            inner,
            cors,
            origins: self.0.clone(),
        }
    }
}

pub struct OriginEndpoint<E> {
    inner: Arc<E>,
    cors: CorsEndpoint<Arc<E>>,
    origins: Arc<Origins>,
}

impl<E: Endpoint> Endpoint for OriginEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        if self.origins.applies(&req) {
            self.cors.call(req).await
        } else {
            self.inner.call(req).await.map(IntoResponse::into_response)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_match_ignoring_case_and_a_trailing_slash() {
        let origins = Origins::new(&["https://app.example.com".into()]);
        assert!(origins.allows("https://APP.example.com/"));
        assert!(!origins.allows("https://evil.example.com"));
        assert!(!origins.allows("http://app.example.com"));
        assert!(Origins::new(&["*".into()]).allows("https://anything.test"));
        assert!(!Origins::new(&[]).is_configured());
    }
}
