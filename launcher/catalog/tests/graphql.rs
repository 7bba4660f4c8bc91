//! The GraphQL API through its axum router (no socket): who may ask what, the status codes of
//! refusals, limits on hostile queries, the committed schema, and GraphiQL served without a CDN.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use colo_catalog::{Catalog, Scopes, SealingKey};
use http_body_util::BodyExt;
use std::sync::Arc;
use tower::ServiceExt;

fn seeded() -> Arc<Catalog> {
    let cat =
        Catalog::in_memory(SealingKey::from_bytes(&[3u8; 32]).expect("key")).expect("catalog");
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    for (name, path) in [
        ("gaia.toml", "catalogue/gaia.toml"),
        ("xmm-newton.toml", "catalogue/xmm-newton.toml"),
    ] {
        let text = std::fs::read_to_string(format!("{root}/{path}")).expect("file");
        cat.load_mission_file(name, &text).expect("load");
    }
    Arc::new(cat)
}

struct Answer {
    status: StatusCode,
    json: serde_json::Value,
}

async fn call(
    cat: &Arc<Catalog>,
    token: Option<&str>,
    query: &str,
    extra: &[(&str, &str)],
) -> Answer {
    let mut req = Request::post("/graphql").header(header::CONTENT_TYPE, "application/json");
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let body = serde_json::json!({ "query": query }).to_string();
    let res = colo_catalog::http::router(cat.clone(), Default::default())
        .oneshot(req.body(Body::from(body)).expect("request"))
        .await
        .expect("answer");
    let status = res.status();
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    Answer {
        status,
        json: serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    }
}

fn code(a: &Answer) -> String {
    a.json["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[tokio::test]
async fn the_catalogue_is_public_and_everything_else_needs_a_valid_token_with_its_scope() {
    let cat = seeded();
    let a = call(&cat, None, r#"{ search(q: "mission:Gaia") { total items { key } facets { name values { value count } } } }"#, &[]).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.json);
    assert_eq!(a.json["data"]["search"]["total"], 4);

    let a = call(&cat, None, "{ me { name } }", &[]).await;
    assert_eq!(
        (a.status, code(&a).as_str()),
        (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED")
    );

    let (_, first) = cat.add_user("alice", false).expect("alice");
    let a = call(
        &cat,
        Some(&first.token),
        "{ me { name admin scopes } }",
        &[],
    )
    .await;
    assert_eq!(a.json["data"]["me"]["name"], "alice", "{}", a.json);

    for bad in ["colo_forgedforgedforgedforgedforgedforgedforg", "nonsense"] {
        let a = call(&cat, Some(bad), r#"{ search { total } }"#, &[]).await;
        assert_eq!(
            a.status,
            StatusCode::UNAUTHORIZED,
            "a bad token is refused even for public queries"
        );
    }
    let expired = cat
        .create_token("alice", None, Some(-1), "old")
        .expect("token");
    let a = call(&cat, Some(&expired.token), "{ me { name } }", &[]).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(
        a.json["errors"][0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("expired"),
        "{}",
        a.json
    );
    let revoked = cat
        .create_token("alice", None, Some(1), "r")
        .expect("token");
    cat.revoke_token(revoked.id, None).expect("revoke");
    assert_eq!(
        call(&cat, Some(&revoked.token), "{ me { name } }", &[])
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );

    let reader = cat
        .create_token(
            "alice",
            Some(Scopes::parse("catalog:read").expect("s")),
            Some(1),
            "ro",
        )
        .expect("token");
    let a = call(&cat, Some(&reader.token), "{ volumes { name } }", &[]).await;
    assert_eq!(
        (a.status, code(&a).as_str()),
        (StatusCode::FORBIDDEN, "FORBIDDEN"),
        "{}",
        a.json
    );
    let a = call(
        &cat,
        Some(&reader.token),
        r#"mutation { createToken(scopes: ["volumes"]) { token } }"#,
        &[],
    )
    .await;
    assert_eq!(
        a.status,
        StatusCode::FORBIDDEN,
        "no token with more scopes than its own"
    );
    let a = call(
        &cat,
        Some(&first.token),
        r#"mutation { createToken(scopes: ["catalog:read"], expiresDays: 7) { token scopes } }"#,
        &[],
    )
    .await;
    let made = a.json["data"]["createToken"]["token"]
        .as_str()
        .expect("a token")
        .to_string();
    assert_eq!(
        call(&cat, Some(&made), "{ me { name } }", &[]).await.json["data"]["me"]["name"],
        "alice"
    );
}

#[tokio::test]
async fn mutations_with_a_session_cookie_need_the_csrf_token() {
    let cat = seeded();
    cat.add_user("bob", false).expect("bob");
    let session = cat.create_session("bob", 1).expect("session");
    let cookie = format!("colo_session={}", session.token);
    let q = r#"mutation { createToken(expiresDays: 1) { id } }"#;
    let mut req = Request::post("/graphql")
        .header(header::COOKIE, &cookie)
        .body(Body::from(serde_json::json!({ "query": q }).to_string()))
        .expect("request");
    let res = colo_catalog::http::router(cat.clone(), Default::default())
        .oneshot(req)
        .await
        .expect("answer");
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let csrf = session.csrf.clone().expect("csrf");
    req = Request::post("/graphql")
        .header(header::COOKIE, &cookie)
        .header("x-csrf-token", &csrf)
        .body(Body::from(serde_json::json!({ "query": q }).to_string()))
        .expect("request");
    let res = colo_catalog::http::router(cat.clone(), Default::default())
        .oneshot(req)
        .await
        .expect("answer");
    assert_eq!(res.status(), StatusCode::OK);
    // A query (no change) with the cookie needs no CSRF token.
    let a = call(&cat, None, "{ me { name } }", &[("cookie", &cookie)]).await;
    assert_eq!(a.json["data"]["me"]["name"], "bob");
}

#[tokio::test]
async fn hostile_queries_are_refused_by_the_limits() {
    let cat = seeded();
    let deep = format!("{{ search {{ items {{ {} }} }} }}", "properties { name } ");
    assert_eq!(call(&cat, None, &deep, &[]).await.status, StatusCode::OK);
    // Nesting beyond the depth limit: an introspection query nested 20 deep.
    let mut nested = String::from("name");
    for _ in 0..20 {
        nested = format!("ofType {{ {nested} }}");
    }
    let a = call(
        &cat,
        None,
        &format!("{{ __type(name: \"Volume\") {{ {nested} }} }}"),
        &[],
    )
    .await;
    let msg = a.json["errors"][0]["message"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(msg.to_lowercase().contains("nested too deep"), "{}", a.json);
    // Hundreds of aliases: over the complexity limit.
    let wide: String = (0..700)
        .map(|i| format!("a{i}: search {{ total }} "))
        .collect();
    let a = call(&cat, None, &format!("{{ {wide} }}"), &[]).await;
    let msg = a.json["errors"][0]["message"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(msg.to_lowercase().contains("complex"), "{}", a.json);
    // A body over the limit is refused before parsing.
    let huge = "x".repeat(colo_catalog::http::MAX_BODY_BYTES + 10);
    let res = colo_catalog::http::router(cat.clone(), Default::default())
        .oneshot(
            Request::post("/graphql")
                .body(Body::from(huge))
                .expect("request"),
        )
        .await
        .expect("answer");
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Bad facet syntax says what is wrong.
    let a = call(&cat, None, r#"{ search(q: "colour:red") { total } }"#, &[]).await;
    assert_eq!(code(&a), "BAD_USER_INPUT");
    assert!(
        a.json["errors"][0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("unknown facet 'colour'")
    );
}

#[tokio::test]
async fn the_schema_is_the_committed_sdl() {
    let cat = seeded();
    let sdl = colo_catalog::graphql::schema(cat, Default::default()).sdl();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql");
    if std::env::var_os("COLO_UPDATE_SCHEMA").is_some() {
        std::fs::write(path, &sdl).expect("write");
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == sdl,
        "the GraphQL schema changed: review it, then run COLO_UPDATE_SCHEMA=1 cargo test -p colo-catalog --test graphql"
    );
}

#[tokio::test]
async fn graphiql_is_served_from_this_server_only() {
    let cat = seeded();
    let res = colo_catalog::http::router(cat.clone(), Default::default())
        .oneshot(
            Request::get("/graphql")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("answer");
    let page = String::from_utf8(
        res.into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec(),
    )
    .expect("utf8");
    assert!(page.contains("/graphql/assets/graphiql.min.js"));
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "no outside address: works air-gapped"
    );
    for asset in [
        "graphiql.min.js",
        "graphiql.min.css",
        "react.production.min.js",
        "react-dom.production.min.js",
    ] {
        let res = colo_catalog::http::router(cat.clone(), Default::default())
            .oneshot(
                Request::get(format!("/graphql/assets/{asset}"))
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("answer");
        assert_eq!(res.status(), StatusCode::OK, "{asset}");
        assert_eq!(res.headers()[header::CONTENT_ENCODING], "gzip");
        let body = res.into_body().collect().await.expect("body").to_bytes();
        assert!(
            body.len() > 1000 && body[0] == 0x1f && body[1] == 0x8b,
            "{asset} is gzip"
        );
    }
}

#[tokio::test]
async fn the_rest_form_answers_like_graphql() {
    let cat = seeded();
    let get = |uri: &str, token: Option<&str>| {
        let mut req = Request::get(uri);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        colo_catalog::http::router(cat.clone(), Default::default())
            .oneshot(req.body(Body::empty()).expect("request"))
    };
    let res = get("/api/v1/search?q=mission:Gaia%20type:dataset&first=2", None)
        .await
        .expect("answer");
    assert_eq!(res.status(), StatusCode::OK);
    let body: serde_json::Value =
        serde_json::from_slice(&res.into_body().collect().await.expect("body").to_bytes())
            .expect("json");
    assert_eq!(body["total"], 3);
    assert_eq!(body["items"].as_array().map(Vec::len), Some(2));
    let res = get("/api/v1/search?q=colour:red", None)
        .await
        .expect("answer");
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        get("/api/v1/volumes", None).await.expect("answer").status(),
        StatusCode::UNAUTHORIZED
    );
    let (_, t) = cat.add_user("carol", false).expect("carol");
    let res = get("/api/v1/volumes", Some(&t.token))
        .await
        .expect("answer");
    assert_eq!(res.status(), StatusCode::OK);
    let ro = cat
        .create_token(
            "carol",
            Some(Scopes::parse("catalog:read").expect("s")),
            Some(1),
            "",
        )
        .expect("t");
    assert_eq!(
        get("/api/v1/volumes", Some(&ro.token))
            .await
            .expect("answer")
            .status(),
        StatusCode::FORBIDDEN
    );
}
