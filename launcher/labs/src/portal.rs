//! The web portal: one page (`/portal/`, HTML, CSS and a script served from this binary — no
//! CDN, it works air-gapped) over the GraphQL API: log in with a token, the catalogue with its
//! search box and facet counts, "my volumes" (+ from the catalogue, + custom, credentials
//! masked), the launch form, and the running datalabs with open, live logs, share, renew,
//! destroy and the time left.
//!
//! Logging in trades an API token for a session: an HttpOnly, SameSite=Strict cookie
//! `colo_session` (scripts cannot read it, other sites cannot send it), plus `colo_csrf`, which
//! the page's script reads and sends back as `X-CSRF-Token` on every change — the API refuses a
//! change made with the session cookie without it. Who may log in, and what a session may do, is
//! the catalog's ([`PortalLogin`]).

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use std::sync::Arc;

/// Sessions, as the catalog grants them.
pub trait PortalLogin: Send + Sync {
    /// For a valid API token: (user name, session token, CSRF token, seconds it lasts).
    fn login(&self, api_token: &str) -> Result<(String, String, String, i64), String>;
    /// Ends the session the request's cookie names.
    fn logout(&self, headers: &HeaderMap);
}

const INDEX: &str = include_str!("../portal/index.html");
const SCRIPT: &str = include_str!("../portal/app.js");
const STYLE: &str = include_str!("../portal/style.css");

fn asset(body: &'static str, kind: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// `/` (to the portal), `/portal/…`, `/portal/login`, `/portal/logout`.
pub fn router(login: Arc<dyn PortalLogin>) -> Router {
    let out = login.clone();
    Router::new()
        .route("/", get(|| async { Redirect::to("/portal/") }))
        .route("/portal", get(|| async { Redirect::to("/portal/") }))
        .route(
            "/portal/",
            get(|| async {
                let mut r = asset(INDEX, "text/html; charset=utf-8");
                r.headers_mut().insert(
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static(
                        "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
                    ),
                );
                r
            }),
        )
        .route(
            "/portal/app.js",
            get(|| async { asset(SCRIPT, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/portal/style.css",
            get(|| async { asset(STYLE, "text/css; charset=utf-8") }),
        )
        .route(
            "/portal/login",
            post(move |body: Bytes| async move { log_in(login.as_ref(), &body) }),
        )
        .route(
            "/portal/logout",
            post(move |headers: HeaderMap| async move {
                out.logout(&headers);
                let mut r = StatusCode::NO_CONTENT.into_response();
                for c in [
                    "colo_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
                    "colo_csrf=; Path=/; SameSite=Strict; Max-Age=0",
                ] {
                    r.headers_mut()
                        .append(header::SET_COOKIE, HeaderValue::from_static(c));
                }
                r
            }),
        )
}

fn log_in(login: &dyn PortalLogin, body: &[u8]) -> Response {
    let token = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["token"].as_str().map(|t| t.trim().to_string()))
        .unwrap_or_default();
    let refused = |text: String| {
        (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::json!({ "error": text }).to_string(),
        )
            .into_response()
    };
    if token.is_empty() {
        return refused("paste the token `colo up` or `colo user add` printed".into());
    }
    match login.login(&token) {
        Ok((user, session, csrf, max_age)) => {
            let mut r = (
                [(header::CONTENT_TYPE, "application/json")],
                serde_json::json!({ "user": user }).to_string(),
            )
                .into_response();
            for cookie in [
                format!(
                    "colo_session={session}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}"
                ),
                format!("colo_csrf={csrf}; Path=/; SameSite=Strict; Max-Age={max_age}"),
            ] {
                if let Ok(v) = HeaderValue::from_str(&cookie) {
                    r.headers_mut().append(header::SET_COOKIE, v);
                }
            }
            r
        }
        Err(e) => refused(e),
    }
}
