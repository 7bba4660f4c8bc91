//! GraphQL subscriptions over WebSocket, on `GET /graphql` with `Upgrade: websocket` (a plain GET
//! still serves GraphiQL and queries): the protocol the client asks for in
//! `Sec-WebSocket-Protocol`, graphql-transport-ws (what `gql`, Apollo and GraphiQL speak today)
//! or the older graphql-ws; without one, graphql-transport-ws.
//!
//! Who connects: the upgrade request's `Authorization: Bearer colo_…`, else the
//! `connection_init` payload's `Authorization` (browsers cannot set headers on a WebSocket), else
//! the session cookie — which counts only when the request comes from a page of this server
//! (`Origin` absent or equal to `Host`), so a page of another site cannot ride on a logged-in
//! user's cookie (cross-site WebSocket hijacking). A credential that is not valid is refused at
//! `connection_init` with close code 4403 and the reason. Messages are capped at
//! [`crate::http::MAX_BODY_BYTES`], like request bodies.

use crate::Catalog;
use crate::graphql::ColoSchema;
use crate::graphql_live::Credential;
use crate::http::{MAX_BODY_BYTES, bearer_token, session_cookie};
use async_graphql::http::{ALL_WEBSOCKET_PROTOCOLS, WebSocketProtocols as Protocols, WsMessage};
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// graphql-transport-ws's close code for a refused `connection_init`.
const FORBIDDEN_CLOSE: u16 = 4403;

/// Whether the upgrade request comes from a page of this server (or from no page at all).
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let authority = origin.split_once("://").map(|(_, rest)| rest);
    matches!((authority, host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h))
}

/// The token in a `connection_init` payload: `{"Authorization": "Bearer colo_…"}` (any case of
/// the key), or `{"token": "colo_…"}`.
fn token_in_payload(payload: &serde_json::Value) -> Option<String> {
    let map = payload.as_object()?;
    map.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization") || k.as_str() == "token")
        .and_then(|(_, v)| v.as_str())
        .map(|v| v.strip_prefix("Bearer ").unwrap_or(v).trim().to_string())
}

/// Answers an upgrade request to `/graphql`.
pub(crate) fn upgrade(
    schema: ColoSchema,
    catalog: Arc<Catalog>,
    headers: &HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let upgrade_token = bearer_token(headers).or_else(|| {
        if same_origin(headers) {
            session_cookie(headers)
        } else {
            None
        }
    });
    ws.protocols(ALL_WEBSOCKET_PROTOCOLS)
        .max_message_size(MAX_BODY_BYTES)
        .max_frame_size(MAX_BODY_BYTES)
        .on_upgrade(move |socket| async move {
            let protocol = socket
                .protocol()
                .and_then(|p| p.to_str().ok())
                .and_then(|p| p.parse().ok())
                .unwrap_or(Protocols::GraphQLWS);
            serve(schema, catalog, socket, protocol, upgrade_token).await;
        })
}

async fn serve(
    schema: ColoSchema,
    catalog: Arc<Catalog>,
    socket: WebSocket,
    protocol: Protocols,
    upgrade_token: Option<String>,
) {
    let (mut to_client, from_client) = socket.split();
    let incoming = from_client
        .take_while(|m| std::future::ready(matches!(m, Ok(m) if !matches!(m, Message::Close(_)))))
        .filter_map(|m| {
            std::future::ready(match m {
                Ok(Message::Text(text)) => Some(text.as_str().as_bytes().to_vec()),
                Ok(Message::Binary(bytes)) => Some(bytes.to_vec()),
                _ => None,
            })
        });
    let refused = Arc::new(AtomicBool::new(false));
    let refused_at_init = refused.clone();
    let on_init = move |payload: serde_json::Value| async move {
        let mut data = async_graphql::Data::default();
        if let Some(token) = upgrade_token.or_else(|| token_in_payload(&payload)) {
            match catalog.authenticate(&token) {
                Ok(caller) => {
                    data.insert(caller);
                    data.insert(Credential(token));
                }
                Err(e) => {
                    refused_at_init.store(true, Ordering::SeqCst);
                    return Err(async_graphql::Error::new(e.to_string()));
                }
            }
        }
        Ok(data)
    };
    let mut replies =
        async_graphql::http::WebSocket::new(schema, incoming, protocol).on_connection_init(on_init);
    while let Some(reply) = replies.next().await {
        let frame = match reply {
            WsMessage::Text(text) => Message::Text(text.into()),
            WsMessage::Close(code, reason) => {
                let code = if refused.load(Ordering::SeqCst) {
                    FORBIDDEN_CLOSE
                } else {
                    code
                };
                Message::Close(Some(CloseFrame {
                    code,
                    reason: reason.into(),
                }))
            }
        };
        if to_client.send(frame).await.is_err() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn a_cookie_counts_only_from_this_servers_pages() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8765"));
        assert!(same_origin(&h), "no Origin: not a browser page");
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8765"),
        );
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(!same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&h));
    }

    #[test]
    fn tokens_are_found_in_the_init_payload() {
        let p = serde_json::json!({"Authorization": "Bearer colo_abc"});
        assert_eq!(token_in_payload(&p).as_deref(), Some("colo_abc"));
        let p = serde_json::json!({"authorization": "colo_abc"});
        assert_eq!(token_in_payload(&p).as_deref(), Some("colo_abc"));
        let p = serde_json::json!({"token": "colo_abc"});
        assert_eq!(token_in_payload(&p).as_deref(), Some("colo_abc"));
        assert_eq!(token_in_payload(&serde_json::json!({})), None);
        assert_eq!(token_in_payload(&serde_json::Value::Null), None);
    }
}
