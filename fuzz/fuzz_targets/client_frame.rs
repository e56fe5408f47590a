//! Fuzzes the WebSocket protocol's client-frame parser: any bytes a client can send must
//! be answered (parsed or refused), never panic; and a frame that parses survives a
//! round trip through its serialised form unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tunelink::frames::ClientFrame;

fuzz_target!(|data: &[u8]| {
    // The socket only parses text frames, which tungstenite has checked to be UTF-8.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(frame) = ClientFrame::parse(text) {
        let again = serde_json::to_string(&frame).expect("a parsed frame serialises");
        assert_eq!(
            ClientFrame::parse(&again).expect("a serialised frame parses"),
            frame
        );
    }
});
