//! The gateway against real loopback miners (the crate's echo miner behind the real wire
//! guard), over real sockets.

mod common;
mod errors;
mod python;
mod routing;
mod serving;
