//! `latency_proxy LISTEN UPSTREAM LATENCY_MS MBIT_PER_S`: a loopback server answering like a
//! remote store (see `colo_tests::latency_proxy`); runs until killed.

use std::time::Duration;

use colo_tests::latency_proxy::{Link, serve};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, upstream, latency_ms, mbit] = args.as_slice() else {
        eprintln!("usage: latency_proxy LISTEN UPSTREAM LATENCY_MS MBIT_PER_S");
        std::process::exit(2);
    };
    let parse = |what: &str, text: &str| -> f64 {
        text.parse().unwrap_or_else(|_| {
            eprintln!("latency_proxy: {what} {text:?} is not a number");
            std::process::exit(2)
        })
    };
    let link = Link {
        latency: Duration::from_secs_f64(parse("LATENCY_MS", latency_ms) / 1000.0),
        bytes_per_sec: parse("MBIT_PER_S", mbit) * 1e6 / 8.0,
    };
    let upstream = upstream.parse().unwrap_or_else(|_| {
        eprintln!("latency_proxy: UPSTREAM {upstream:?} is not HOST:PORT");
        std::process::exit(2)
    });
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .unwrap_or_else(|e| {
            eprintln!("latency_proxy: cannot listen on {listen}: {e}");
            std::process::exit(1)
        });
    if let Err(e) = serve(listener, upstream, link).await {
        eprintln!("latency_proxy: {e}");
        std::process::exit(1);
    }
}
