//! A request body posted to `/graphql` through the catalogue's router: JSON decoding, GraphQL
//! parsing, validation (depth and complexity limits), every resolver reached, errors mapped. The
//! first byte picks the caller: anonymous, a user, or an admin. The catalogue is in memory, holds
//! the two sample missions and grows with what fuzzed mutations add.

use axum::body::Body;
use axum::http::{Request, header};
use colo_catalog::{Catalog, SealingKey};
use http_body_util::BodyExt;
use std::sync::{Arc, OnceLock};
use tower::ServiceExt;

use crate::{runtime, split_first};

struct Api {
    router: axum::Router,
    user_token: String,
    admin_token: String,
}

fn api() -> &'static Api {
    static API: OnceLock<Api> = OnceLock::new();
    API.get_or_init(|| {
        let catalog = Catalog::in_memory(SealingKey::from_bytes(&[7u8; 32]).expect("a key"))
            .expect("a catalogue");
        for (name, text) in [
            ("gaia.toml", include_str!("../../../catalogue/gaia.toml")),
            (
                "xmm-newton.toml",
                include_str!("../../../catalogue/xmm-newton.toml"),
            ),
        ] {
            catalog
                .load_mission_file(name, text)
                .expect("a mission file");
        }
        let (_, user) = catalog.add_user("alice", false).expect("a user");
        let (_, admin) = catalog.add_user("root", true).expect("an admin");
        let catalog = Arc::new(catalog);
        Api {
            router: colo_catalog::http::router(catalog, Default::default()),
            user_token: user.token,
            admin_token: admin.token,
        }
    })
}

pub fn graphql(data: &[u8]) {
    let (caller, body) = split_first(data);
    let api = api();
    let mut request = Request::post("/graphql").header(header::CONTENT_TYPE, "application/json");
    match caller % 3 {
        1 => request = request.header(header::AUTHORIZATION, format!("Bearer {}", api.user_token)),
        2 => request = request.header(header::AUTHORIZATION, format!("Bearer {}", api.admin_token)),
        _ => {}
    }
    let Ok(request) = request.body(Body::from(body.to_vec())) else {
        return;
    };
    runtime().block_on(async {
        let response = api
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router answers");
        let _ = response.into_body().collect().await;
    });
}
