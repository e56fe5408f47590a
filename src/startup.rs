//! Building and running the application, in a way tests can drive: bind first (port 0 picks
//! a free port), read `port()`, then run until a shutdown signal.

use std::{future::Future, net::SocketAddr, time::Duration};

use anyhow::Context;
use poem::{
    EndpointExt, Route, Server,
    listener::{Acceptor, Listener, TcpListener},
    middleware::CatchPanic,
};

use crate::{
    api,
    config::Settings,
    connections::Guarded,
    db,
    error::ApiError,
    http,
    limits::client_ip::ResolveClientIp,
    metrics,
    origins::{OriginPolicy, Origins},
    realtime,
    state::AppState,
};

pub struct Application {
    acceptor: Guarded,
    addr: SocketAddr,
    state: AppState,
}

impl Application {
    /// Connects to PostgreSQL (and Redis when configured), migrates, and binds the listener.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let db = db::connect_and_migrate(&settings).await?;
        let redis = match &settings.redis_url {
            Some(url) => Some(
                deadpool_redis::Config::from_url(url.expose())
                    .builder()
                    .context("REDIS_URL is not valid")?
                    .max_size(16)
                    .wait_timeout(Some(Duration::from_secs(2)))
                    .create_timeout(Some(Duration::from_secs(2)))
                    .runtime(deadpool_redis::Runtime::Tokio1)
                    .build()
                    .context("cannot build the Redis pool")?,
            ),
            None => None,
        };
        let acceptor = Guarded::new(
            TcpListener::bind(settings.bind_addr.clone())
                .into_acceptor()
                .await
                .with_context(|| format!("cannot bind {}", settings.bind_addr))?,
            settings.connections,
            settings.trusted_proxies.clone(),
        );
        let addr = acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().copied())
            .context("the listener has no socket address")?;
        let metrics = metrics::Metrics::new(api::route_names());
        let state = AppState::new(settings, db, redis, metrics)?;
        realtime::upkeep::start(state.hub.clone(), state.db.clone());
        metrics_upkeep(&state);
        realtime::presence::register_instance(&state.db, state.hub.instance())
            .await
            .map_err(|e| anyhow::anyhow!("cannot register this instance: {}", e.message))?;
        Ok(Self {
            acceptor,
            addr,
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
        let grace = self.state.settings.shutdown_grace;
        tracing::info!(
            addr = %self.addr,
            docs = %format!("http://{}/docs", self.addr),
            "TuneLink listening"
        );
        let hub = self.state.hub.clone();
        let db = self.state.db.clone();
        let app = routes(self.state);
        // Sockets are told to reconnect elsewhere as soon as shutdown starts.
        let stopping = hub.clone();
        let shutdown = async move {
            shutdown.await;
            stopping.shutdown();
        };
        let served = Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(app, shutdown, Some(grace))
            .await
            .context("server error");
        // Sockets are upgraded connections the server no longer tracks: wait for each to
        // be closed (1001) and its presence removed, then for what is left of this
        // instance's presence (sockets that did not finish in time).
        if !hub.drained(grace).await {
            tracing::warn!("some sockets did not close within the shutdown grace");
        }
        if let Err(err) = realtime::presence::unregister_instance(&db, hub.instance()).await {
            tracing::warn!(error = %err, "cannot remove this instance's presence");
        }
        served
    }
}

/// Drains the metrics' histogram buffers every few seconds, until the hub shuts down.
fn metrics_upkeep(state: &AppState) {
    let (hub, metrics) = (state.hub.clone(), state.metrics.clone());
    tokio::spawn(async move {
        let mut every = tokio::time::interval(metrics::UPKEEP_EVERY);
        loop {
            tokio::select! {
                () = hub.shutting_down() => return,
                _ = every.tick() => metrics.upkeep(),
            }
        }
    });
}

/// Every route, with the middleware stack.
pub fn routes(state: AppState) -> impl poem::Endpoint {
    let service = api::service();
    let max_body = state.settings.max_body_bytes;
    let spec = api::spec_json();
    let contract = api::strict::contract(&spec);
    let spec_endpoint = poem::endpoint::make_sync(move |_| {
        poem::Response::builder()
            .content_type("application/json; charset=utf-8")
            .body(spec.clone())
    });
    let trusted = std::sync::Arc::new(state.settings.trusted_proxies.clone());
    let origins = std::sync::Arc::new(Origins::new(&state.settings.allowed_origins));
    let metered = metrics::Metered(state.metrics.clone());
    let everything_else = Route::new()
        .nest("/docs", service.swagger_ui())
        .at("/openapi.json", spec_endpoint)
        .at("/ws", realtime::route::ws)
        .at("/metrics", poem::get(api::metrics::serve))
        .nest("/", service.with(api::strict::Strict(contract)));
    WithRoot(everything_else)
        .with(http::LimitBody(max_body))
        .with(ResolveClientIp(trusted))
        .with(OriginPolicy(origins))
        .with(metered)
        .data(state)
        .with(CatchPanic::new().with_handler(|_| {
            ApiError::internal(anyhow::anyhow!("a handler panicked")).to_response()
        }))
        .around(http::around)
}

/// `/` itself answers where the docs are; the service nested at `/` would otherwise take it
/// (poem's router gives a nest at `/` the root too).
struct WithRoot<E>(E);

impl<E: poem::Endpoint> poem::Endpoint for WithRoot<E> {
    type Output = poem::Response;

    async fn call(&self, req: poem::Request) -> poem::Result<poem::Response> {
        if req.uri().path() == "/" {
            return Ok(api::health::root(req.method()));
        }
        self.0
            .call(req)
            .await
            .map(poem::IntoResponse::into_response)
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received");
}
