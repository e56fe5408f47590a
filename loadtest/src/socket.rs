//! Opening authenticated sockets, spread over server URLs and local source addresses.

use std::{
    net::{IpAddr, SocketAddr},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        Message,
        client::IntoClientRequest,
        protocol::{WebSocketConfig, frame::coding::CloseCode},
    },
};

pub type Socket = WebSocketStream<TcpStream>;

/// Where the sockets go, and whose they are: shared by the socket scenarios.
#[derive(clap::Args, Debug, Clone)]
pub struct Servers {
    /// Written by `tunelink load-fixture`.
    #[arg(long, default_value = "fixture.json")]
    pub fixture: std::path::PathBuf,
    /// Server URLs (repeat, or separate with commas): sockets are spread over them, round
    /// robin, so each conversation has members on every server.
    #[arg(
        long = "url",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:8080"
    )]
    pub urls: Vec<String>,
    /// Local addresses to connect from, round robin (e.g. 127.0.0.2,127.0.0.3): each gives
    /// about 28,000 ports per server.
    #[arg(long = "source", value_delimiter = ',')]
    pub sources: Vec<IpAddr>,
}

impl Servers {
    pub async fn endpoints(&self) -> anyhow::Result<Endpoints> {
        Endpoints::resolve(&self.urls, &self.sources).await
    }
}

/// How long a socket may take from TCP connect to the server's `ready` frame.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);

/// A server's socket endpoint.
#[derive(Debug, Clone)]
pub struct Target {
    /// `ws://host:port/ws`
    pub url: String,
    addr: SocketAddr,
}

/// The servers and the local source addresses sockets are spread over, round robin.
#[derive(Debug, Clone)]
pub struct Endpoints {
    targets: Vec<Target>,
    sources: Vec<IpAddr>,
}

impl Endpoints {
    /// `urls`: server base URLs (`http://host:port`) or socket URLs (`ws://host:port/ws`).
    /// `sources`: local addresses to connect from (each gives ~28,000 ports per server);
    /// empty lets the kernel choose.
    pub async fn resolve(urls: &[String], sources: &[IpAddr]) -> anyhow::Result<Self> {
        if urls.is_empty() {
            bail!("give at least one server URL");
        }
        let mut targets = vec![];
        for url in urls {
            let url = ws_url(url)?;
            let request = url.as_str().into_client_request()?;
            let host = request.uri().host().context("the URL has no host")?;
            let port = request.uri().port_u16().unwrap_or(80);
            let addr = tokio::net::lookup_host((host, port))
                .await?
                .next()
                .with_context(|| format!("cannot resolve {host}"))?;
            targets.push(Target { url, addr });
        }
        Ok(Self {
            targets,
            sources: sources.to_vec(),
        })
    }

    pub fn urls(&self) -> Vec<String> {
        self.targets.iter().map(|t| t.url.clone()).collect()
    }

    /// The server and source address of the `i`th socket.
    pub fn pick(&self, i: usize) -> (&Target, Option<IpAddr>) {
        let target = &self.targets[i % self.targets.len()];
        let source = (!self.sources.is_empty())
            .then(|| self.sources[(i / self.targets.len()) % self.sources.len()]);
        (target, source)
    }

    /// How many servers.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Server `server`, from the source address of the `i`th socket (a reconnecting
    /// client keeps its source address and picks its server).
    pub fn pick_on(&self, i: usize, server: usize) -> (&Target, Option<IpAddr>) {
        let (_, source) = self.pick(i);
        (&self.targets[server % self.targets.len()], source)
    }

    /// The base URL (`http://host:port`) of the `i`th server, for REST calls.
    pub fn http_base(&self, i: usize) -> String {
        let url = &self.targets[i % self.targets.len()].url;
        url.replacen("ws://", "http://", 1)
            .trim_end_matches("/ws")
            .to_owned()
    }
}

fn ws_url(url: &str) -> anyhow::Result<String> {
    let url = url.trim_end_matches('/');
    if let Some(rest) = url.strip_prefix("http://") {
        Ok(format!("ws://{rest}/ws"))
    } else if url.starts_with("ws://") {
        Ok(url.to_owned())
    } else {
        bail!("{url}: use http://host:port or ws://host:port/ws (TLS is not supported)")
    }
}

/// Why a socket could not be opened, as a short category for the report.
#[derive(Debug)]
pub struct OpenError {
    pub reason: String,
    /// Seconds the server asked to wait (`rate_limited` before a 4029 close).
    pub retry_after: Option<u64>,
}

impl OpenError {
    fn new(reason: String) -> Self {
        Self {
            reason,
            retry_after: None,
        }
    }
}

#[derive(Deserialize)]
struct First<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    retry_after: Option<u64>,
}

fn config() -> WebSocketConfig {
    // tungstenite reads through a 128 KiB buffer by default: far too much for thousands.
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_message_size(Some(1 << 20))
}

/// Connects with a bearer token, waits for `ready`, and sends a first `ping` so that the
/// server goes live at once. Returns the socket and the time to `ready`.
pub async fn open(
    target: &Target,
    source: Option<IpAddr>,
    token: &str,
) -> Result<(Socket, Duration), OpenError> {
    open_with(target, source, token, r#"{"type":"ping"}"#).await
}

/// The same, with another first frame (a `resume`).
pub async fn open_with(
    target: &Target,
    source: Option<IpAddr>,
    token: &str,
    first: &str,
) -> Result<(Socket, Duration), OpenError> {
    let started = Instant::now();
    match tokio::time::timeout(OPEN_TIMEOUT, open_inner(target, source, token, first)).await {
        Ok(Ok(socket)) => Ok((socket, started.elapsed())),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(OpenError::new("timeout".into())),
    }
}

async fn open_inner(
    target: &Target,
    source: Option<IpAddr>,
    token: &str,
    first: &str,
) -> Result<Socket, OpenError> {
    let fail = |what: &str, e: &dyn std::fmt::Display| OpenError::new(format!("{what}: {e}"));
    let socket = match target.addr {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(|e| fail("socket", &e))?;
    if let Some(ip) = source {
        socket
            .bind(SocketAddr::new(ip, 0))
            .map_err(|e| fail("bind", &e))?;
    }
    let stream = socket
        .connect(target.addr)
        .await
        .map_err(|e| fail("connect", &e.kind()))?;
    let _ = stream.set_nodelay(true);
    let mut request = target
        .url
        .as_str()
        .into_client_request()
        .map_err(|e| fail("request", &e))?;
    let bearer = format!("Bearer {token}")
        .parse()
        .map_err(|e| fail("token", &e))?;
    request.headers_mut().insert("authorization", bearer);
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(request, stream, Some(config()))
        .await
        .map_err(|e| fail("handshake", &e))?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => {
                let frame: First<'_> =
                    serde_json::from_str(text.as_str()).map_err(|e| fail("bad frame", &e))?;
                if frame.kind != "ready" {
                    return Err(OpenError {
                        reason: format!("refused: {}", frame.code.as_deref().unwrap_or(frame.kind)),
                        retry_after: frame.retry_after,
                    });
                }
                break;
            }
            Some(Ok(Message::Close(frame))) => {
                let code = frame.map_or(CloseCode::Status, |f| f.code);
                return Err(OpenError::new(format!("closed: {}", u16::from(code))));
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(fail("read", &e)),
            None => return Err(OpenError::new("closed before ready".into())),
        }
    }
    ws.send(Message::text(first))
        .await
        .map_err(|e| fail("write", &e))?;
    Ok(ws)
}

/// Fails early when this process may not open `sockets` more files.
pub fn ensure_fd_room(sockets: usize) -> anyhow::Result<()> {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let soft = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|n| n.parse::<usize>().ok());
    if let Some(soft) = soft
        && sockets + 64 > soft
    {
        bail!(
            "{sockets} sockets need {} files but this process may open {soft}: split the \
             users over several processes (--offset/--count) or raise `ulimit -n`",
            sockets + 64
        );
    }
    Ok(())
}

/// Resident memory of a process, in KiB (Linux).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
