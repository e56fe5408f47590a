//! Safety between strangers: blocks (see [`blocks`]) and who sees whose presence (see
//! [`presence`]). Reports to the administrators are in `moderation`.

pub mod blocks;
pub mod presence;
