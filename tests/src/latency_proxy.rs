//! A TCP proxy that makes a loopback server answer like a remote object store, for the mount
//! benches' "real store" rows (issue 19): each response's first byte leaves no earlier than
//! `latency` after the request that asked for it arrived, and each connection's responses flow at
//! most `bytes_per_sec`. It works below HTTP: a request is whatever the client sends after the
//! previous response began (HTTP/1.1 clients wait for a response before the next request on a
//! connection — S3 clients do not pipeline), so it needs no parsing and passes signed requests
//! (SigV4 signs the `Host` the client sent, which it forwards unchanged) as they are. Requests
//! (and uploads) go upstream undelayed and unthrottled.
//!
//! The binary `latency_proxy LISTEN UPSTREAM LATENCY_MS MBIT_PER_S` runs one until killed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// What the proxy adds to each connection.
#[derive(Debug, Clone, Copy)]
pub struct Link {
    pub latency: Duration,
    pub bytes_per_sec: f64,
}

/// Accept connections on `listener` and relay each to `upstream` through `link`, until the task is
/// dropped.
pub async fn serve(listener: TcpListener, upstream: SocketAddr, link: Link) -> std::io::Result<()> {
    loop {
        let (client, _) = listener.accept().await?;
        tokio::spawn(async move {
            if let Ok(server) = TcpStream::connect(upstream).await {
                let _ = relay(client, server, link).await;
            }
        });
    }
}

/// One connection: requests up as they come, responses down delayed and paced.
async fn relay(client: TcpStream, server: TcpStream, link: Link) -> std::io::Result<()> {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut server_rx, mut server_tx) = server.into_split();
    // When the request the next response answers arrived (None: no request waiting).
    let asked: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    let asked_up = asked.clone();
    let up = async move {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = client_rx.read(&mut buf).await?;
            if n == 0 {
                server_tx.shutdown().await?;
                return Ok::<(), std::io::Error>(());
            }
            asked_up.lock().get_or_insert_with(Instant::now);
            server_tx.write_all(&buf[..n]).await?;
        }
    };
    let down = async move {
        let mut buf = vec![0u8; 64 << 10];
        // When the bytes sent so far may have left at the link's rate.
        let mut paced_until = Instant::now();
        loop {
            let n = server_rx.read(&mut buf).await?;
            if n == 0 {
                client_tx.shutdown().await?;
                return Ok::<(), std::io::Error>(());
            }
            let request = asked.lock().take();
            if let Some(at) = request {
                tokio::time::sleep_until(at + link.latency).await;
                paced_until = Instant::now();
            }
            paced_until = paced_until.max(Instant::now() - Duration::from_millis(2))
                + Duration::from_secs_f64(n as f64 / link.bytes_per_sec);
            tokio::time::sleep_until(paced_until).await;
            client_tx.write_all(&buf[..n]).await?;
        }
    };
    let _ = tokio::try_join!(up, down);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An upstream that answers every line it receives with `answer_bytes` bytes.
    async fn upstream(answer_bytes: usize) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&vec![7u8; answer_bytes]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    /// Every request on a kept-alive connection waits the latency for its first byte, and a
    /// large answer flows at the link's rate, not loopback's.
    #[tokio::test]
    async fn requests_pay_the_latency_and_answers_the_rate() {
        let answer = 2_000_000;
        let up = upstream(answer).await;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let proxy = listener.local_addr().expect("addr");
        let link = Link {
            latency: Duration::from_millis(30),
            bytes_per_sec: 20e6,
        };
        tokio::spawn(serve(listener, up, link));
        let mut s = TcpStream::connect(proxy).await.expect("connect");
        let mut buf = vec![0u8; answer];
        for _ in 0..3 {
            let asked = std::time::Instant::now();
            s.write_all(b"GET\n").await.expect("ask");
            s.read_exact(&mut buf[..1]).await.expect("first byte");
            let first = asked.elapsed();
            s.read_exact(&mut buf[1..]).await.expect("answer");
            let all = asked.elapsed();
            assert!(
                first >= Duration::from_millis(30),
                "first byte after {first:?}"
            );
            assert!(
                first < Duration::from_millis(300),
                "first byte after {first:?}"
            );
            // 2 MB at 20 MB/s: 100 ms after the latency.
            assert!(all >= Duration::from_millis(120), "answer after {all:?}");
            assert!(all < Duration::from_millis(800), "answer after {all:?}");
        }
    }
}
