//! The serving loop against clients that are slow or gone, over real TCP on 127.0.0.1 with a
//! 1 s client timeout: a slowloris request, a trickled body, a client that never reads its
//! response, and what must keep working beside them (a normal request, a slow handler, a body
//! that arrives slowly but steadily, the peer's address).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::routing::{get, post};
use colo_vo_services::serve::{ClientLimits, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TIMEOUT: Duration = Duration::from_secs(1);

/// Sets its flag when dropped: tells that a response body (the work behind it) was let go.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

async fn start(endless_dropped: Arc<AtomicBool>) -> SocketAddr {
    let app = axum::Router::new()
        .route("/ping", get(|| async { "pong" }))
        .route(
            "/peer",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.ip().to_string() }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(TIMEOUT * 3).await;
                "done"
            }),
        )
        .route(
            "/echo",
            post(|body: Body| async move {
                match axum::body::to_bytes(body, 1 << 20).await {
                    Ok(bytes) => format!("{} bytes", bytes.len()),
                    Err(e) => format!("unreadable: {e}"),
                }
            }),
        )
        .route(
            "/endless",
            get(move || {
                let flag = DropFlag(endless_dropped.clone());
                let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
                let stream = futures::stream::repeat(chunk).map(move |c| {
                    let _keep = &flag;
                    Ok::<_, std::io::Error>(c)
                });
                async move { Body::from_stream(stream) }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let address = listener.local_addr().expect("an address");
    let limits = ClientLimits {
        timeout: TIMEOUT,
        max_connections: 64,
    };
    tokio::spawn(serve(listener, app, limits));
    address
}

use futures::StreamExt;

/// Everything the server sends until it closes the connection (or `within` passes: `None`).
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut out = Vec::new();
    let read = tokio::time::timeout(within, stream.read_to_end(&mut out)).await;
    match read {
        Ok(_) => Some(String::from_utf8_lossy(&out).into_owned()),
        Err(_) => None,
    }
}

async fn request(address: SocketAddr, text: &str) -> String {
    let mut stream = TcpStream::connect(address).await.expect("connect");
    stream.write_all(text.as_bytes()).await.expect("send");
    read_until_closed(&mut stream, Duration::from_secs(10))
        .await
        .expect("an answer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_request_is_closed_while_others_are_served() {
    let address = start(Arc::default()).await;
    let mut slow = TcpStream::connect(address).await.expect("connect");
    slow.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("send");
    let started = Instant::now();
    // Meanwhile a normal client is answered.
    let answer = request(
        address,
        "GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("pong"),
        "{answer}"
    );
    let closed = read_until_closed(&mut slow, Duration::from_secs(10)).await;
    assert!(
        closed.is_some(),
        "the slowloris connection is still open after 10 s"
    );
    assert!(
        started.elapsed() >= TIMEOUT / 2,
        "closed before the header timeout: {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_body_fails_but_a_slow_steady_one_arrives_whole() {
    let address = start(Arc::default()).await;
    // 10 of 1,000 announced bytes, then silence: the body read fails after the timeout.
    let mut stalled = TcpStream::connect(address).await.expect("connect");
    stalled
        .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789")
        .await
        .expect("send");
    let answer = read_until_closed(&mut stalled, Duration::from_secs(10)).await;
    let answer = answer.expect("an answer or a close within 10 s");
    assert!(
        answer.is_empty() || answer.contains("unreadable"),
        "a stalled body was taken: {answer}"
    );
    // 1,000 bytes in 5 pieces 0.6 s apart (3 s in all, each gap under the timeout): all read.
    let mut steady = TcpStream::connect(address).await.expect("connect");
    steady
        .write_all(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n",
        )
        .await
        .expect("send");
    for _ in 0..5 {
        tokio::time::sleep(TIMEOUT * 6 / 10).await;
        steady.write_all(&[b'a'; 200]).await.expect("send a piece");
    }
    let answer = read_until_closed(&mut steady, Duration::from_secs(10))
        .await
        .expect("an answer");
    assert!(answer.ends_with("1000 bytes"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_cut_and_its_response_dropped() {
    let dropped = Arc::new(AtomicBool::new(false));
    let address = start(dropped.clone()).await;
    let mut reader = TcpStream::connect(address).await.expect("connect");
    reader
        .write_all(b"GET /endless HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("send");
    // Never read: the socket buffers fill, the server's write waits, and after the timeout the
    // connection fails and the endless body is dropped.
    let started = Instant::now();
    while !dropped.load(Ordering::SeqCst) {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the response to a client that reads nothing is still being produced"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(reader);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_handler_is_not_a_stall_and_the_peer_address_is_known() {
    let address = start(Arc::default()).await;
    let answer = request(
        address,
        "GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.ends_with("done"), "a 3 s handler was cut: {answer}");
    let answer = request(
        address,
        "GET /peer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.ends_with("127.0.0.1"), "{answer}");
}
