//! `spawn_app()`: the real application on `127.0.0.1:0` with a fresh database, plus a small
//! HTTP client that returns status and JSON body.

use std::{sync::Once, time::Duration};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::oneshot;
use tunelink::{
    config::{AppEnv, LogFormat, Secret, Settings},
    limits::RateLimits,
    startup::Application,
};
use uuid::Uuid;

/// The PostgreSQL server tests use, without a database name.
pub fn postgres_base() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Settings for a database on the PostgreSQL server at `postgres` (a URL without database).
pub fn test_settings_on(postgres: &str, database: &str) -> Settings {
    Settings {
        app_env: AppEnv::Test,
        bind_addr: "127.0.0.1:0".into(),
        database_url: Secret::new(format!("{postgres}/{database}")),
        database_max_connections: 5,
        database_acquire_timeout: Duration::from_secs(5),
        redis_url: None,
        jwt_secret: Secret::new("hetic"),
        access_token_ttl: Duration::from_secs(900),
        refresh_token_ttl: Duration::from_secs(86_400),
        password_hash_concurrency: 2,
        max_body_bytes: 64 * 1024,
        log_format: LogFormat::Pretty,
        shutdown_grace: Duration::from_secs(1),
        rate_limits: RateLimits::default(),
        // Tests share the machine's Redis: each deployment (database) counts on its own.
        rate_limit_redis_prefix: format!("tunelink-test:{database}:rl:"),
        trusted_proxies: Default::default(),
        allowed_origins: Vec::new(),
        metrics_token: None,
        sends: tunelink::config::SendSettings::default(),
        connections: tunelink::config::ConnectionLimits::default(),
    }
}

pub struct TestApp {
    pub base: String,
    pub database: String,
    /// The PostgreSQL server (URL without database) the app's database lives on.
    pub postgres: String,
    pub db: PgPool,
    /// The running server's state (its hub, bus…), for tests that drive background work.
    pub state: tunelink::state::AppState,
    client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    owns_database: bool,
}

/// A response: status, headers and JSON body (`Value::Null` when the body is not JSON).
pub struct Resp {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Resp {
    /// Asserts the success envelope and returns `data`.
    #[track_caller]
    pub fn ok(&self, status: u16) -> &Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status, body: {}",
            self.body
        );
        assert_eq!(self.body["status"], "success", "{}", self.body);
        assert_eq!(self.body["code"], status, "{}", self.body);
        assert!(self.body["message"].is_string(), "{}", self.body);
        assert!(self.body["errors"].is_null(), "{}", self.body);
        &self.body["data"]
    }

    /// Asserts the error envelope with its HTTP status and stable code.
    #[track_caller]
    pub fn err(&self, status: u16, code: &str) -> &Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status, body: {}",
            self.body
        );
        assert_eq!(self.body["status"], "error", "{}", self.body);
        assert_eq!(self.body["code"], status, "{}", self.body);
        assert_eq!(self.body["error_code"], code, "{}", self.body);
        assert!(self.body["data"].is_null(), "{}", self.body);
        assert!(
            self.body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{}",
            self.body
        );
        &self.body["errors"]
    }

    /// The `field`s named in a validation error, in order.
    pub fn fields(&self) -> Vec<(String, String)> {
        self.body["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| {
                        (
                            e["field"].as_str().unwrap_or_default().to_owned(),
                            e["type"].as_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn init_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            tunelink::telemetry::init(LogFormat::Pretty);
        }
    });
}

/// The application on a fresh database of its own.
pub async fn spawn_app() -> TestApp {
    spawn_with(|_| {}).await
}

/// The same, with settings adjusted first.
pub async fn spawn_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_on(&postgres_base(), adjust).await
}

/// The same, on another PostgreSQL server (`postgres`: a URL without database).
pub async fn spawn_on(postgres: &str, adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let database = format!("tunelink_test_{}", Uuid::new_v4().simple());
    let mut settings = test_settings_on(postgres, &database);
    adjust(&mut settings);
    let mut app = start(postgres, settings).await;
    app.owns_database = true;
    app
}

/// Another instance sharing `other`'s database (as behind a load balancer).
pub async fn spawn_sibling(other: &TestApp) -> TestApp {
    spawn_sibling_with(other, |_| {}).await
}

pub async fn spawn_sibling_with(other: &TestApp, adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let mut settings = test_settings_on(&other.postgres, &other.database);
    adjust(&mut settings);
    start(&other.postgres, settings).await
}

async fn start(postgres: &str, settings: Settings) -> TestApp {
    init_logs();
    let database = settings
        .database_url
        .expose()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let app = Application::build(settings)
        .await
        .expect("application builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let db = app.state().db.clone();
    let state = app.state().clone();
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        app.run_until(async {
            let _ = rx.await;
        })
        .await
        .expect("server runs");
    });
    TestApp {
        base,
        database,
        postgres: postgres.to_owned(),
        db,
        state,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        shutdown: Some(tx),
        server: Some(server),
        owns_database: false,
    }
}

impl TestApp {
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        Self::read(req.send().await.expect("request sent")).await
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Resp {
        Self::read(req.send().await.expect("request sent")).await
    }

    pub fn raw(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base))
    }

    async fn read(resp: reqwest::Response) -> Resp {
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.expect("body read");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Resp {
        self.request(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Resp {
        self.request(Method::POST, path, token, Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: Option<&str>, body: Value) -> Resp {
        self.request(Method::PATCH, path, token, Some(body)).await
    }

    pub async fn put(&self, path: &str, token: Option<&str>, body: Value) -> Resp {
        self.request(Method::PUT, path, token, Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Resp {
        self.request(Method::DELETE, path, token, None).await
    }

    /// Registers `name` (email `name@example.com`, password `password-of-name`).
    pub async fn register(&self, name: &str) -> User {
        let resp = self
            .post(
                "/api/v1/auth/register",
                None,
                json!({"username": name, "email": format!("{name}@example.com"), "password": format!("password-of-{name}")}),
            )
            .await;
        User::from_session(resp.ok(201), name)
    }

    pub async fn login(&self, login: &str, password: &str) -> Resp {
        self.post(
            "/api/v1/auth/login",
            None,
            json!({"login": login, "password": password}),
        )
        .await
    }

    /// Stops the server and waits for it to finish.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if !self.owns_database {
            return;
        }
        // Drop is synchronous: use a thread with a runtime of its own.
        let name = self.database.clone();
        let postgres = self.postgres.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let mut conn = PgConnection::connect(&format!("{postgres}/postgres")).await?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                )))
                .execute(&mut conn)
                .await?;
                Ok::<_, anyhow::Error>(())
            })
        })
        .join();
    }
}

/// A registered user with a live session.
#[derive(Clone, Debug)]
pub struct User {
    pub id: String,

    pub email: String,
    pub password: String,
    pub access: String,
    pub refresh: String,
}

impl User {
    pub fn from_session(data: &Value, name: &str) -> Self {
        Self {
            id: data["user"]["id"].as_str().unwrap().to_owned(),

            email: format!("{name}@example.com"),
            password: format!("password-of-{name}"),
            access: data["access_token"].as_str().unwrap().to_owned(),
            refresh: data["refresh_token"].as_str().unwrap().to_owned(),
        }
    }

    pub fn token(&self) -> Option<&str> {
        Some(&self.access)
    }
}

/// Makes `user` an administrator directly in the database.
pub async fn make_admin(app: &TestApp, user: &User) {
    sqlx::query("UPDATE users SET role = 'admin' WHERE id = $1::uuid")
        .bind(&user.id)
        .execute(&app.db)
        .await
        .unwrap();
}

/// The id of a catalogue entry (`instruments` or `genres`) by name.
pub async fn catalogue_id(app: &TestApp, kind: &str, name: &str) -> String {
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/{kind}?limit=100&cursor={c}"),
            None => format!("/api/v1/{kind}?limit=100"),
        };
        let resp = app.get(&path, None).await;
        let data = resp.ok(200);
        if let Some(found) = data["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == name)
        {
            return found["id"].as_str().unwrap().to_owned();
        }
        match data["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => panic!("no {kind} named {name}"),
        }
    }
}

/// Follows `next_cursor` through every page of `path` (which has no `cursor` yet).
pub async fn all_pages(app: &TestApp, path: &str, token: Option<&str>) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    let sep = if path.contains('?') { '&' } else { '?' };
    for _ in 0..1000 {
        let url = match &cursor {
            Some(c) => format!("{path}{sep}cursor={c}"),
            None => path.to_owned(),
        };
        let resp = app.get(&url, token).await;
        let data = resp.ok(200);
        items.extend(data["items"].as_array().unwrap().iter().cloned());
        match data["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return items,
        }
    }
    panic!("pagination never ended");
}

/// A valid new-event body starting in `days` days, at (lat, lon).
pub fn event_body(title: &str, days: i64, lat: f64, lon: f64) -> Value {
    let start = chrono::Utc::now() + chrono::Duration::days(days);
    json!({
        "title": title,
        "type": "jam",
        "starts_at": start.to_rfc3339(),
        "ends_at": (start + chrono::Duration::hours(3)).to_rfc3339(),
        "address": format!("1 place de la Musique ({title})"),
        "latitude": lat,
        "longitude": lon,
    })
}

/// Creates an event and returns its id.
pub async fn create_event(app: &TestApp, owner: &User, body: Value) -> String {
    let resp = app.post("/api/v1/events", owner.token(), body).await;
    resp.ok(201)["id"].as_str().unwrap().to_owned()
}

/// The notification types a user has, oldest first.
pub async fn notification_types(app: &TestApp, user: &User) -> Vec<String> {
    let mut all = all_pages(app, "/api/v1/notifications?limit=100", user.token()).await;
    all.reverse();
    all.iter()
        .map(|n| n["type"].as_str().unwrap().to_owned())
        .collect()
}

/// Starts a conversation between `by` and `with` (a direct one for one person and no title).
pub async fn start_conversation(
    app: &TestApp,
    by: &User,
    with: &[&User],
    title: Option<&str>,
) -> String {
    let ids: Vec<&str> = with.iter().map(|u| u.id.as_str()).collect();
    let resp = app
        .post(
            "/api/v1/conversations",
            by.token(),
            json!({"participant_ids": ids, "title": title}),
        )
        .await;
    assert!(resp.status == 201 || resp.status == 200, "{}", resp.body);
    resp.body["data"]["id"].as_str().unwrap().to_owned()
}

/// Sends a message over REST and returns the stored message (`data`).
pub async fn post_message(app: &TestApp, by: &User, conv: &str, body: &str) -> Value {
    let resp = app
        .post(
            &format!("/api/v1/conversations/{conv}/messages"),
            by.token(),
            json!({"body": body}),
        )
        .await;
    resp.ok(201).clone()
}

/// Waits (bounded) until `app` is subscribed to Redis: frames cross instances from then on.
pub async fn redis_up(app: &TestApp) {
    let mut redis = Value::Null;
    for _ in 0..100 {
        redis = app.get("/readyz", None).await.ok(200)["redis"].clone();
        if redis == "ok" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the instance never subscribed to Redis: {redis}");
}

/// Two instances sharing the database and a Redis of the test's own, both subscribed;
/// `adjust` tunes the second one's settings.
pub async fn pair_with(adjust: impl FnOnce(&mut Settings)) -> (OwnRedis, TestApp, TestApp) {
    let redis = OwnRedis::start(free_port()).await;
    let url = redis.url();
    let one = spawn_with(|s| s.redis_url = Some(Secret::new(url.clone()))).await;
    let two = spawn_sibling_with(&one, |s| {
        s.redis_url = Some(Secret::new(url.clone()));
        adjust(s);
    })
    .await;
    redis_up(&one).await;
    redis_up(&two).await;
    (redis, one, two)
}

/// Two instances as [`pair_with`], with every rate limit off on both (load-like tests).
pub async fn pair_unthrottled() -> (OwnRedis, TestApp, TestApp) {
    let redis = OwnRedis::start(free_port()).await;
    let url = redis.url();
    let one = spawn_with(|s| {
        s.redis_url = Some(Secret::new(url.clone()));
        s.rate_limits = RateLimits::off();
    })
    .await;
    let two = spawn_sibling_with(&one, |s| {
        s.redis_url = Some(Secret::new(url.clone()));
        s.rate_limits = RateLimits::off();
    })
    .await;
    redis_up(&one).await;
    redis_up(&two).await;
    (redis, one, two)
}

/// A free TCP port on 127.0.0.1 (free when asked; servers started on it bind it next).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A Redis server of a test's own, so that stopping it disturbs no other test.
pub struct OwnRedis {
    pub port: u16,
    child: Option<std::process::Child>,
}

impl OwnRedis {
    /// Starts `redis-server` on `port` and waits until it accepts connections.
    pub async fn start(port: u16) -> Self {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        let redis = Self {
            port,
            child: Some(child),
        };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return redis;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis never came up");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A PostgreSQL cluster of a test's own (initdb in a temporary directory, on a free port),
/// so that a test can stop and start it without disturbing the machine's shared server.
/// Runs as the `postgres` OS user when the tests run as root (PostgreSQL refuses root).
pub struct OwnPostgres {
    pub port: u16,
    dir: std::path::PathBuf,
}

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

impl OwnPostgres {
    /// Creates the cluster and starts it.
    pub fn start() -> Self {
        let bin = pg_bin();
        let dir = std::env::temp_dir().join(format!("tunelink-pg-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let pg = Self {
            port: free_port(),
            dir,
        };
        if running_as_root() {
            let status = std::process::Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&pg.dir)
                .status()
                .unwrap();
            assert!(status.success(), "chown the cluster directory");
        }
        pg.run(
            &format!("{bin}/initdb"),
            &[
                "-D",
                &pg.data(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        pg.start_server();
        pg
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    /// Runs a PostgreSQL program (as `postgres` when we are root) and checks it succeeded.
    fn run(&self, program: &str, args: &[&str]) {
        let out = as_postgres(program)
            .args(args)
            .output()
            .expect("PostgreSQL programs run");
        assert!(
            out.status.success(),
            "{program} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn pg_ctl(&self, args: &[&str]) {
        let data = self.data();
        let mut all = vec!["-D", &data];
        all.extend_from_slice(args);
        self.run(&format!("{}/pg_ctl", pg_bin()), &all);
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start_server(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("log").display().to_string();
        self.pg_ctl(&["-l", &log, "-o", &options, "-w", "start"]);
    }

    /// Stops the server (fast: open connections are cut, as in a real restart).
    pub fn stop_server(&self) {
        self.pg_ctl(&["-m", "fast", "-w", "stop"]);
    }

    /// The server's URL without a database name.
    pub fn base(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let _ = as_postgres(&format!("{}/pg_ctl", pg_bin()))
            .args(["-D", &self.data(), "-m", "immediate", "-w", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn pg_bin() -> String {
    std::env::var("TEST_PG_BIN").unwrap_or_else(|_| PG_BIN.into())
}

/// A command running `program` as the `postgres` OS user if we are root.
fn as_postgres(program: &str) -> std::process::Command {
    if running_as_root() {
        let mut c = std::process::Command::new("runuser");
        c.args(["-u", "postgres", "--", program]);
        c
    } else {
        std::process::Command::new(program)
    }
}

fn running_as_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A TCP link to a local server (Redis) that a test can hold: while held, what the server
/// sends is kept back (read, not forwarded) until the link is released; what the client
/// sends goes through. Models a slow network between one instance and Redis.
pub struct HeldLink {
    pub port: u16,
    held: tokio::sync::watch::Sender<bool>,
    accept: tokio::task::JoinHandle<()>,
}

impl HeldLink {
    /// Listens on a free port and forwards every connection to `127.0.0.1:target`.
    pub async fn start(target: u16) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (held, watch) = tokio::sync::watch::channel(false);
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await else {
                    continue;
                };
                let mut watch = watch.clone();
                tokio::spawn(async move {
                    let (mut from_client, mut to_client) = client.into_split();
                    let (mut from_server, mut to_server) = server.into_split();
                    let up = tokio::io::copy(&mut from_client, &mut to_server);
                    let down = async {
                        let mut buf = vec![0u8; 16 * 1024];
                        loop {
                            let n = from_server.read(&mut buf).await?;
                            if n == 0 {
                                return Ok::<_, std::io::Error>(());
                            }
                            // Bytes read while held wait for the release.
                            let _ = watch.wait_for(|held| !*held).await;
                            to_client.write_all(&buf[..n]).await?;
                        }
                    };
                    tokio::select! {
                        _ = up => {}
                        _ = down => {}
                    }
                });
            }
        });
        Self { port, held, accept }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// From now on, what the server sends is kept back.
    pub fn hold(&self) {
        self.held.send_replace(true);
    }

    /// Forwards what was kept back, in order, and everything after.
    pub fn release(&self) {
        self.held.send_replace(false);
    }
}

impl Drop for HeldLink {
    fn drop(&mut self) {
        self.release();
        self.accept.abort();
    }
}
