//! The platform's HTTP endpoints, merged into colo's one axum server: `POST /graphql` (and `GET`
//! with `?query=` for tools), the GraphiQL page on `GET /graphql` from a browser (vendored assets,
//! no CDN: it works air-gapped), subscriptions over a WebSocket upgrade of `GET /graphql`
//! ([`crate::graphql_ws`]), and the SDL at `/graphql/schema.graphql`.
//!
//! Who calls: `Authorization: Bearer colo_…`, or the web pages' session cookie `colo_session`
//! (then a mutation must also send the session's CSRF token as `X-CSRF-Token`). No credential is
//! fine for public queries (the catalogue); a forged, expired or revoked one is refused with 401
//! before anything runs. Answers with an error coded `UNAUTHENTICATED` are sent as HTTP 401 and
//! with `FORBIDDEN` as 403, so plain HTTP clients see them too; other errors keep GraphQL's 200.
//! Bodies are capped at [`MAX_BODY_BYTES`].

use crate::Catalog;
use crate::auth::Caller;
use crate::graphql::{ColoSchema, Wiring, schema};
use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::Arc;

/// Largest GraphQL request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
pub const SESSION_COOKIE: &str = "colo_session";
pub const CSRF_HEADER: &str = "x-csrf-token";

#[derive(Clone)]
struct Api {
    catalog: Arc<Catalog>,
    schema: ColoSchema,
}

pub fn router(catalog: Arc<Catalog>, wiring: Wiring) -> Router {
    let api = Api {
        schema: schema(catalog.clone(), wiring),
        catalog,
    };
    Router::new()
        .route("/graphql", get(get_graphql).post(post_graphql))
        .route("/graphql/schema.graphql", get(sdl))
        .route("/graphql/assets/{file}", get(asset))
        .route("/api/v1/search", get(rest_search))
        .route("/api/v1/volumes", get(rest_volumes))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(api)
}

/// The schema as SDL (what `schema.graphql` in the repository holds).
async fn sdl(State(api): State<Api>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        api.schema.sdl(),
    )
        .into_response()
}

/// Whether the document holds a mutation (any of its operations: conservative). A document that
/// does not parse is left to the executor, which reports it.
fn has_mutation(query: &str) -> bool {
    use async_graphql::parser::types::{DocumentOperations, OperationType};
    match async_graphql::parser::parse_query(query) {
        Ok(doc) => match doc.operations {
            DocumentOperations::Single(op) => op.node.ty == OperationType::Mutation,
            DocumentOperations::Multiple(ops) => {
                ops.values().any(|op| op.node.ty == OperationType::Mutation)
            }
        },
        Err(_) => false,
    }
}

fn json_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({
        "data": null,
        "errors": [{ "message": message, "extensions": { "code": code } }],
    });
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// The caller `headers` carry credentials for (a bearer token, else the session cookie):
/// `Ok(None)` without any, `Unauthenticated` for credentials that are not valid.
pub fn caller_of(catalog: &Catalog, headers: &HeaderMap) -> crate::Result<Option<Caller>> {
    match bearer_token(headers).or_else(|| session_cookie(headers)) {
        Some(token) => catalog.authenticate(&token).map(Some),
        None => Ok(None),
    }
}

/// The token of an `Authorization: Bearer` header.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.strip_prefix("Bearer ").unwrap_or(v).trim().to_string())
}

/// The session cookie's token.
pub(crate) fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_string())
}

/// The caller the request's credential stands for: `Ok(None)` without one.
fn authenticate(api: &Api, headers: &HeaderMap) -> Result<Option<Caller>, Box<Response>> {
    caller_of(&api.catalog, headers).map_err(|e| {
        let mut r = json_error(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", &e.to_string());
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        Box::new(r)
    })
}

async fn execute(api: &Api, headers: &HeaderMap, request: async_graphql::Request) -> Response {
    let caller = match authenticate(api, headers) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let is_mutation = has_mutation(&request.query);
    if let Some(c) = &caller
        && is_mutation
        && let Err(e) = api
            .catalog
            .check_csrf(c, headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()))
    {
        return json_error(StatusCode::FORBIDDEN, "FORBIDDEN", &e.to_string());
    }
    let request = match caller {
        Some(c) => request.data(c),
        None => request,
    };
    let response = api.schema.execute(request).await;
    let code_of = |code: &str| {
        response.errors.iter().any(|e| {
            e.extensions
                .as_ref()
                .and_then(|x| x.get("code"))
                .is_some_and(|v| v == &async_graphql::Value::from(code))
        })
    };
    let status = if code_of("UNAUTHENTICATED") {
        StatusCode::UNAUTHORIZED
    } else if code_of("FORBIDDEN") {
        StatusCode::FORBIDDEN
    } else {
        StatusCode::OK
    };
    let body = serde_json::to_string(&response).unwrap_or_else(|_| "{}".into());
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn post_graphql(State(api): State<Api>, headers: HeaderMap, body: Bytes) -> Response {
    let request: async_graphql::Request = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                &format!("the body is not a GraphQL request ({{\"query\": ...}}): {e}"),
            );
        }
    };
    execute(&api, &headers, request).await
}

#[derive(serde::Deserialize)]
struct SearchParams {
    #[serde(default)]
    q: String,
    #[serde(default = "default_first")]
    first: u64,
    #[serde(default)]
    offset: u64,
}

fn default_first() -> u64 {
    20
}

fn rest_error(e: crate::CatalogError) -> Response {
    let status = match e.kind() {
        crate::ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
        crate::ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
        crate::ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        crate::ErrorKind::NotFound => StatusCode::NOT_FOUND,
        crate::ErrorKind::Conflict => StatusCode::CONFLICT,
        crate::ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let message = e.shown_message("a REST request");
    let body = serde_json::json!({ "error": message, "code": crate::graphql::code(e.kind()) });
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// `GET /api/v1/search?q=…&first=…&offset=…`: the GraphQL `search` for curl users (public).
async fn rest_search(
    State(api): State<Api>,
    headers: HeaderMap,
    Query(p): Query<SearchParams>,
) -> Response {
    if let Err(r) = authenticate(&api, &headers) {
        return *r;
    }
    let found =
        crate::SearchQuery::parse(&p.q).and_then(|q| api.catalog.search(&q, p.first, p.offset));
    match found {
        Ok(r) => (
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::to_string(&r).unwrap_or_default(),
        )
            .into_response(),
        Err(e) => rest_error(e),
    }
}

/// `GET /api/v1/volumes`: the caller's volumes (name, kind, access, URL without secrets).
async fn rest_volumes(State(api): State<Api>, headers: HeaderMap) -> Response {
    let caller = match authenticate(&api, &headers) {
        Ok(Some(c)) => c,
        Ok(None) => {
            return rest_error(crate::CatalogError::Unauthenticated {
                reason: "this needs a token (Authorization: Bearer colo_…)",
            });
        }
        Err(r) => return *r,
    };
    if let Err(e) = caller.require(crate::Scope::Volumes) {
        return rest_error(e);
    }
    match api.catalog.visible_volumes(&caller.user.name) {
        Ok(list) => {
            let rows: Vec<serde_json::Value> = list
                .iter()
                .map(|v| {
                    serde_json::json!({
                        "name": v.view_name,
                        "reference": v.record.reference(),
                        "kind": v.record.owner.kind().as_str(),
                        "access": v.access.as_str(),
                        "url": v.record.display_url(),
                        "credentials": v.record.secret_keys.iter().map(|k| format!("{k}=*****")).collect::<Vec<_>>(),
                    })
                })
                .collect();
            (
                [(header::CONTENT_TYPE, "application/json")],
                serde_json::Value::Array(rows).to_string(),
            )
                .into_response()
        }
        Err(e) => rest_error(e),
    }
}

#[derive(serde::Deserialize)]
struct GetParams {
    query: Option<String>,
    variables: Option<String>,
    #[serde(rename = "operationName")]
    operation_name: Option<String>,
}

/// A browser gets GraphiQL; `?query=` runs a query (never a mutation: GET must not change state);
/// a WebSocket upgrade serves subscriptions ([`crate::graphql_ws`]).
async fn get_graphql(
    State(api): State<Api>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    Query(p): Query<GetParams>,
) -> Response {
    if let Ok(ws) = upgrade {
        return crate::graphql_ws::upgrade(api.schema, api.catalog, &headers, ws);
    }
    let Some(query) = p.query else {
        return (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            GRAPHIQL_PAGE,
        )
            .into_response();
    };
    if has_mutation(&query) {
        return json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "BAD_REQUEST",
            "mutations need POST",
        );
    }
    let mut request = async_graphql::Request::new(query);
    if let Some(v) = p.variables.and_then(|v| serde_json::from_str(&v).ok()) {
        request = request.variables(async_graphql::Variables::from_json(v));
    }
    if let Some(op) = p.operation_name {
        request = request.operation_name(op);
    }
    execute(&api, &headers, request).await
}

async fn asset(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    let (body, kind): (&'static [u8], &str) = match file.as_str() {
        "graphiql.min.js" => (
            include_bytes!("../assets/graphiql/graphiql.min.js.gz"),
            "text/javascript",
        ),
        "graphiql.min.css" => (
            include_bytes!("../assets/graphiql/graphiql.min.css.gz"),
            "text/css",
        ),
        "react.production.min.js" => (
            include_bytes!("../assets/graphiql/react.production.min.js.gz"),
            "text/javascript",
        ),
        "react-dom.production.min.js" => (
            include_bytes!("../assets/graphiql/react-dom.production.min.js.gz"),
            "text/javascript",
        ),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CONTENT_ENCODING, "gzip"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        body,
    )
        .into_response()
}

/// GraphiQL, every asset from this server. The token is asked for once and kept in the page's
/// session storage (sent as a bearer header, so no cookie and no CSRF concern).
const GRAPHIQL_PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>colo GraphQL</title>
<link rel="stylesheet" href="/graphql/assets/graphiql.min.css">
<style>body { margin: 0; height: 100vh; } #graphiql { height: 100vh; }</style>
</head>
<body>
<div id="graphiql">Loading GraphiQL…</div>
<script src="/graphql/assets/react.production.min.js"></script>
<script src="/graphql/assets/react-dom.production.min.js"></script>
<script src="/graphql/assets/graphiql.min.js"></script>
<script>
  const token = sessionStorage.getItem('colo_token') ?? (prompt('colo token (empty: public queries only)') || '');
  sessionStorage.setItem('colo_token', token);
  const fetcher = GraphiQL.createFetcher({
    url: '/graphql',
    headers: token ? { Authorization: 'Bearer ' + token } : {},
  });
  ReactDOM.createRoot(document.getElementById('graphiql')).render(
    React.createElement(GraphiQL, {
      fetcher,
      defaultQuery: '{\n  search(q: "type:dataset") {\n    total\n    items { key title mission }\n    facets { name values { value count } }\n  }\n}\n',
    }),
  );
</script>
</body>
</html>
"#;
