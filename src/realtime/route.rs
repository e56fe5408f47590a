//! `GET /ws`: the WebSocket upgrade.

use poem::{
    IntoResponse, Request, handler,
    web::{
        Data,
        websocket::{WebSocket, WebSocketConfig},
    },
};

use super::connection;
use crate::{
    error::ApiError,
    limits::{ClientIp, Key},
    state::AppState,
};

/// Largest client frame or message accepted (a message body is at most 4,000 characters).
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// Socket buffers sized for tens of thousands of connections: tungstenite's defaults are
/// 128 KiB to read and 128 KiB to write, per socket. The read buffer is filled (and so
/// paid for) whole on every socket; a frame larger than it grows it as needed, and most
/// client frames are a few hundred bytes.
pub fn socket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(512)
        .write_buffer_size(4 * 1024)
        .max_write_buffer_size(1024 * 1024)
        .max_message_size(Some(MAX_FRAME_BYTES))
        .max_frame_size(Some(MAX_FRAME_BYTES))
}

/// The upgrade. A socket without `Authorization` waits up to 5 s for its `auth` frame; a
/// client address may have only so many waiting at once (more answer 429 before
/// upgrading), so that nobody holds thousands of sockets open without logging in.
#[handler]
pub fn ws(
    req: &Request,
    ws: WebSocket,
    state: Data<&AppState>,
    ip: Data<&ClientIp>,
) -> poem::Response {
    let token = req
        .header("authorization")
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_owned());
    let waiting = match token {
        Some(_) => None,
        None => match state.unauthenticated.take(Key::ip(ip.0.0)) {
            Some(slot) => Some(slot),
            None => {
                return ApiError::rate_limited(connection::AUTH_TIMEOUT).to_response();
            }
        },
    };
    let state = state.0.clone();
    ws.config(socket_config())
        .on_upgrade(move |socket| connection::serve(state, socket, token, waiting))
        .into_response()
}
