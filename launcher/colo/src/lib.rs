//! The parts of the `colo` command that other crates test directly: `colo.toml` parsing (the
//! fuzz harness feeds it arbitrary text). Everything else is the binary's own (`main.rs`).

pub mod config;
