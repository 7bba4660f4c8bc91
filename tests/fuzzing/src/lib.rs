//! What each fuzz target runs, as plain functions: `fuzz/fuzz_targets/*.rs` (libFuzzer, nightly)
//! call them with the fuzzer's bytes, and `tests/replay.rs` (stable, in the README's test
//! command) calls them with every seed in `fuzz/seeds/<target>/` and every input a fuzzer ever
//! found in `fuzz/regressions/<target>/` — so a crash found once stays a failing test until fixed.
//!
//! Each function feeds the bytes to one parser colo exposes to what users send, the way the
//! service does, and asserts nothing but the absence of a panic (the lab proxy's target also
//! checks what reaches the lab: no caller credential, the lab's own secret) (or an abort, a hang, an
//! allocation beyond libFuzzer's RSS limit): an error answer is a correct answer to garbage.
//! Where a parser sits behind HTTP (UWS, the DALI parameters of TAP/SIA/SODA/DataLink, GraphQL)
//! the request goes through the real axum router, in memory, so extractors and fault mapping are
//! fuzzed too. The services behind the routers are built once per process ([`runtime`],
//! [`services`]) over the 2,000-row Hipparcos sample that the server's own tests use.

mod graphql;
mod lab_proxy;
mod parsers;
mod services;

pub use graphql::graphql;
pub use lab_proxy::lab_proxy;
pub use parsers::{adql, config_toml, dali_params, fits, votable_upload};
pub use services::{uws, vo_requests};

use std::sync::OnceLock;

/// What a target runs: the fuzzer's bytes in, nothing out (a panic is the finding).
pub type Target = fn(&[u8]);

/// Every target by name, as `fuzz/fuzz_targets/` names them.
pub const TARGETS: &[(&str, Target)] = &[
    ("adql", adql),
    ("dali_params", dali_params),
    ("uws", uws),
    ("vo_requests", vo_requests),
    ("votable_upload", votable_upload),
    ("fits", fits),
    ("config_toml", config_toml),
    ("graphql", graphql),
    ("lab_proxy", lab_proxy),
];

/// One runtime per process: a current-thread one, so a fuzz iteration is deterministic in what
/// runs (background jobs advance only while a request is awaited).
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

/// The input as text, as a server sees a body it decodes leniently.
fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

/// `(first byte, the rest)`: targets pick an entry point with the first byte.
fn split_first(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((first, rest)) => (*first, rest),
        None => (0, data),
    }
}
