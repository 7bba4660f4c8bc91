//! The catalog's behaviour through its public API, on a real SQLite file: users and tokens,
//! sessions and CSRF, volumes with sealed credentials, grants and what each user sees.

use colo_catalog::{
    Access, Caller, Catalog, CatalogError, ErrorKind, Grantee, Owner, Scope, Scopes,
};
use colo_connectors::{SecretSource, SecretString, VolumeConfig};

const DAV_PASSWORD: &str = "dav-secret-7f3a";
const S3_SECRET: &str = "s3-secret-91bc";

fn catalog() -> (tempfile::TempDir, Catalog) {
    let dir = tempfile::tempdir().expect("tempdir");
    let cat = Catalog::open(dir.path(), None).expect("open");
    (dir, cat)
}

fn caller(cat: &Catalog, token: &str) -> Caller {
    cat.authenticate(token).expect("a valid token")
}

fn webdav(name: &str) -> VolumeConfig {
    VolumeConfig {
        name: Some(name.into()),
        url: Some("webdav://127.0.0.1:18081/rw".into()),
        username: Some("colo".into()),
        password: Some(SecretSource::Inline(SecretString::new(DAV_PASSWORD))),
        mode: Some("read-write".into()),
        ..Default::default()
    }
}

fn archive(name: &str) -> VolumeConfig {
    VolumeConfig {
        name: Some(name.into()),
        url: Some("s3://archive/hipparcos".into()),
        endpoint: Some("http://127.0.0.1:18333".into()),
        access_key_id: Some("colotest".into()),
        secret_access_key: Some(SecretSource::Inline(SecretString::new(S3_SECRET))),
        ..Default::default()
    }
}

/// Every byte SQLite wrote: the database, its WAL and shared memory.
fn database_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut all = Vec::new();
    for f in ["colo.db", "colo.db-wal", "colo.db-shm"] {
        all.extend(std::fs::read(dir.join(f)).unwrap_or_default());
    }
    all
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn a_users_first_token_authenticates_with_their_scopes_and_only_its_hash_is_stored() {
    let (dir, cat) = catalog();
    let (alice, token) = cat.add_user("alice", false).expect("add");
    assert!(!alice.admin);
    let who = caller(&cat, &token.token);
    assert_eq!(who.user.name, "alice");
    assert_eq!(who.scopes.to_string(), "catalog:read volumes labs share");
    assert!(who.require(Scope::Volumes).is_ok());
    assert_eq!(
        who.require(Scope::Admin).err().map(|e| e.kind()),
        Some(ErrorKind::Forbidden)
    );
    assert!(token.expires_at.is_some(), "first tokens expire");
    assert!(
        !contains(&database_bytes(dir.path()), &token.token),
        "the token itself is not stored"
    );

    let (_, admin) = cat.add_user("olga", true).expect("admin");
    assert!(caller(&cat, &admin.token).is_admin());
}

#[test]
fn forged_expired_and_revoked_tokens_are_refused_and_say_which() {
    let (_dir, cat) = catalog();
    let (_, first) = cat.add_user("alice", false).expect("add");
    let reason = |t: &str| match cat.authenticate(t) {
        Err(CatalogError::Unauthenticated { reason }) => reason,
        other => panic!("expected 401, got {other:?}"),
    };
    assert_eq!(
        reason("colo_forgedforgedforgedforgedforgedforgedforg"),
        "unknown token"
    );
    assert_eq!(reason("Bearer something"), "not a colo token");
    let old = cat
        .create_token("alice", None, Some(-1), "old")
        .expect("token");
    assert_eq!(reason(&old.token), "the token expired");
    cat.revoke_token(first.id, None).expect("revoke");
    assert_eq!(reason(&first.token), "the token was revoked");
    let listed = cat.tokens(Some("alice")).expect("list");
    assert_eq!(listed.len(), 2);
    assert!(
        listed
            .iter()
            .any(|t| t.id == first.id && t.revoked_at.is_some())
    );
    assert!(
        !format!("{listed:?}").contains("colo_"),
        "listings never show token text"
    );
}

#[test]
fn scopes_limit_a_token_and_admin_is_only_for_admins() {
    let (_dir, cat) = catalog();
    cat.add_user("alice", false).expect("add");
    let read_only = cat
        .create_token(
            "alice",
            Some(Scopes::parse("catalog:read").expect("scopes")),
            Some(1),
            "ro",
        )
        .expect("token");
    let who = caller(&cat, &read_only.token);
    assert!(who.require(Scope::CatalogRead).is_ok());
    let err = who.require(Scope::Volumes).expect_err("no volumes scope");
    assert_eq!(err.kind(), ErrorKind::Forbidden);
    assert!(err.to_string().contains("'volumes'"), "{err}");
    let err = cat
        .create_token("alice", Some(Scopes::of([Scope::Admin])), Some(1), "x")
        .expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::Forbidden);
    let err = Scopes::parse("catalog:read, root").expect_err("unknown scope");
    assert!(
        err.to_string().contains("'root'") && err.to_string().contains("catalog:read"),
        "{err}"
    );
    // A user may revoke their own tokens, not another user's (which they are not told exists).
    cat.add_user("bob", false).expect("bob");
    let bob = caller(
        &cat,
        &cat.create_token("bob", None, Some(1), "b")
            .expect("t")
            .token,
    );
    let err = cat
        .revoke_token(read_only.id, Some(&bob))
        .expect_err("not bob's");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    cat.revoke_token(read_only.id, Some(&who)).expect("her own");
}

#[test]
fn names_that_could_escape_a_path_or_collide_are_refused() {
    let (_dir, cat) = catalog();
    for bad in [
        "",
        "../x",
        "Alice",
        "a/b",
        "alice@x",
        &"a".repeat(33),
        "1abc",
    ] {
        let err = cat.add_user(bad, false).expect_err("refused");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad}: {err}");
    }
    cat.add_user("alice", false).expect("add");
    assert_eq!(
        cat.add_user("alice", true).err().map(|e| e.kind()),
        Some(ErrorKind::Conflict)
    );
    assert_eq!(
        cat.add_team("alice", &[]).err().map(|e| e.kind()),
        Some(ErrorKind::Conflict)
    );
    let (_, t) = cat.add_user("bob", false).expect("bob");
    let bob = caller(&cat, &t.token);
    for bad in ["..", "a/b", ".hidden", "x@y"] {
        let err = cat
            .add_volume(Some(&bob), Owner::User("bob".into()), false, webdav(bad))
            .expect_err("refused");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad}: {err}");
    }
}

#[test]
fn a_session_cookie_needs_its_csrf_token_for_changes_and_a_bearer_token_does_not() {
    let (_dir, cat) = catalog();
    let (_, api) = cat.add_user("alice", false).expect("add");
    let session = cat.create_session("alice", 8).expect("session");
    let csrf = session.csrf.clone().expect("a session has a CSRF token");
    let by_cookie = caller(&cat, &session.token);
    assert_eq!(
        cat.check_csrf(&by_cookie, None).err().map(|e| e.kind()),
        Some(ErrorKind::Forbidden)
    );
    assert!(
        cat.check_csrf(&by_cookie, Some(&api.token)).is_err(),
        "another value is refused"
    );
    cat.check_csrf(&by_cookie, Some(&csrf))
        .expect("its own CSRF token");
    cat.check_csrf(&caller(&cat, &api.token), None)
        .expect("bearer tokens are not CSRF-prone");
}

#[test]
fn credentials_are_sealed_at_rest_masked_everywhere_and_open_only_with_the_key() {
    let (dir, cat) = catalog();
    let (_, t) = cat.add_user("alice", false).expect("add");
    let alice = caller(&cat, &t.token);
    let mut cfg = webdav("home");
    cfg.password = None;
    cfg.url = Some(format!("webdav://colo:{DAV_PASSWORD}@127.0.0.1:18081/rw"));
    let record = cat
        .add_volume(Some(&alice), Owner::User("alice".into()), false, cfg)
        .expect("add");
    assert_eq!(record.secret_keys, vec!["password"]);
    assert_eq!(
        record.display_url(),
        "webdav://colo@127.0.0.1:18081/rw",
        "the password left the URL"
    );
    assert!(!format!("{record:?}").contains(DAV_PASSWORD));
    assert!(
        !contains(&database_bytes(dir.path()), DAV_PASSWORD),
        "not in clear on disk"
    );
    let full = cat.volume_config_with_secrets(&record).expect("open");
    match full.password {
        Some(SecretSource::Inline(s)) => assert_eq!(s.expose(), DAV_PASSWORD),
        other => panic!("password not restored: {other:?}"),
    }
    drop(cat);
    // The same database under another key: the volume is listed, its secrets do not open.
    let other_key = dir.path().join("other.key");
    let err = Catalog::open(dir.path(), Some(&other_key))
        .expect("open")
        .all_volumes()
        .expect_err("unsealing fails");
    assert!(
        err.to_string().contains("'home'") && !err.to_string().contains(DAV_PASSWORD),
        "{err}"
    );
}

#[test]
fn volumes_added_through_the_api_cannot_reach_into_the_server() {
    let (_dir, cat) = catalog();
    let (_, t) = cat.add_user("alice", false).expect("add");
    let alice = caller(&cat, &t.token);
    let me = || Owner::User("alice".into());
    let mut local = webdav("etc");
    local.url = Some("file:///etc".into());
    let mut keyed = webdav("keyed");
    keyed.url = Some("sftp://root@127.0.0.1:18022/tmp".into());
    keyed.password = None;
    keyed.key_file = Some("/root/.ssh/id_ed25519".into());
    let mut env = webdav("env");
    env.password = Some(SecretSource::Env { env: "HOME".into() });
    for (cfg, says) in [
        (local, "file://"),
        (keyed, "key_file"),
        (env, "environment"),
    ] {
        let err = cat
            .add_volume(Some(&alice), me(), false, cfg)
            .expect_err("refused");
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.to_string().contains(says), "{err}");
    }
    let mut bad = webdav("bad");
    bad.url = Some("gopher://host/x".into());
    let err = cat
        .add_volume(Some(&alice), me(), false, bad)
        .expect_err("refused");
    assert!(
        err.to_string().contains("'bad'") && err.to_string().contains("gopher"),
        "{err}"
    );
    // For someone else: refused.
    cat.add_user("bob", false).expect("bob");
    let err = cat
        .add_volume(Some(&alice), Owner::User("bob".into()), false, webdav("x"))
        .expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::Forbidden);
    // Archive volumes are the admins'.
    let err = cat
        .add_volume(Some(&alice), Owner::Archive, true, archive("a"))
        .expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::Forbidden);
}

#[test]
fn each_user_sees_exactly_their_own_public_and_granted_volumes() {
    let (_dir, cat) = catalog();
    let (_, a) = cat.add_user("alice", false).expect("alice");
    let (_, b) = cat.add_user("bob", false).expect("bob");
    let (_, o) = cat.add_user("olga", true).expect("olga");
    let (alice, bob, olga) = (
        caller(&cat, &a.token),
        caller(&cat, &b.token),
        caller(&cat, &o.token),
    );
    cat.add_volume(Some(&olga), Owner::Archive, true, archive("hipparcos"))
        .expect("public");
    cat.add_volume(Some(&olga), Owner::Archive, false, archive("proprietary"))
        .expect("closed");
    cat.add_volume(
        Some(&alice),
        Owner::User("alice".into()),
        false,
        webdav("home"),
    )
    .expect("home");
    cat.add_volume(Some(&bob), Owner::User("bob".into()), false, webdav("home"))
        .expect("bob's home");
    let seen = |user: &str| -> Vec<(String, Access)> {
        cat.visible_volumes(user)
            .expect("visible")
            .into_iter()
            .map(|v| (v.view_name, v.access))
            .collect()
    };
    assert_eq!(
        seen("alice"),
        vec![
            ("hipparcos".into(), Access::ReadOnly),
            ("home".into(), Access::ReadWrite)
        ]
    );
    // Bob cannot see, remove or grant alice's volume, and is not told it exists.
    for result in [
        cat.resolve_for(&bob, "alice/home").map(|_| ()),
        cat.resolve_for(&bob, "home@alice").map(|_| ()),
        cat.remove_volume(Some(&bob), "alice/home"),
        cat.grant(
            Some(&bob),
            "alice/home",
            &Grantee::User("bob".into()),
            Access::ReadWrite,
        ),
    ] {
        let err = result.expect_err("refused");
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    }
    // A user volume may not take a public archive name.
    let err = cat
        .add_volume(
            Some(&bob),
            Owner::User("bob".into()),
            false,
            webdav("hipparcos"),
        )
        .expect_err("taken");
    assert_eq!(err.kind(), ErrorKind::Conflict);

    cat.grant(
        Some(&alice),
        "home",
        &Grantee::User("bob".into()),
        Access::ReadOnly,
    )
    .expect("grant");
    assert!(seen("bob").contains(&("home@alice".into(), Access::ReadOnly)));
    assert!(
        seen("bob").contains(&("home".into(), Access::ReadWrite)),
        "his own home too"
    );
    cat.grant(
        Some(&alice),
        "home",
        &Grantee::User("bob".into()),
        Access::ReadWrite,
    )
    .expect("widen");
    assert!(seen("bob").contains(&("home@alice".into(), Access::ReadWrite)));
    cat.revoke(Some(&alice), "home", &Grantee::User("bob".into()))
        .expect("revoke");
    assert!(
        !seen("bob").iter().any(|(n, _)| n == "home@alice"),
        "revoked at once"
    );

    // Teams: a grant to a team reaches its members; the closed archive volume only by grant.
    cat.add_team("gaia", &["bob"]).expect("team");
    cat.grant(
        Some(&olga),
        "proprietary",
        &Grantee::Team("gaia".into()),
        Access::ReadWrite,
    )
    .expect("grant");
    assert!(
        seen("bob").contains(&("proprietary".into(), Access::ReadOnly)),
        "capped by the volume's read-only mode"
    );
    assert!(!seen("alice").iter().any(|(n, _)| n == "proprietary"));
    let err = cat
        .grant(
            Some(&alice),
            "hipparcos",
            &Grantee::User("bob".into()),
            Access::ReadOnly,
        )
        .expect_err("archive grants are admins'");
    assert_eq!(err.kind(), ErrorKind::Forbidden);

    // Removing a user removes their volumes and what was granted from them.
    cat.grant(
        Some(&alice),
        "home",
        &Grantee::User("bob".into()),
        Access::ReadOnly,
    )
    .expect("grant");
    cat.remove_user("alice").expect("remove");
    assert!(!seen("bob").iter().any(|(n, _)| n == "home@alice"));
}

#[test]
fn the_configs_volumes_are_public_archive_volumes_kept_in_step_with_the_config() {
    let (_dir, cat) = catalog();
    cat.add_user("alice", false).expect("alice");
    let config = |names: &[&str]| -> Vec<(String, String)> {
        names
            .iter()
            .map(|n| (n.to_string(), format!("file:///data/{n}")))
            .collect()
    };
    cat.sync_config_volumes(&config(&["sample", "gaia"]))
        .expect("sync");
    cat.sync_config_volumes(&config(&["sample", "gaia"]))
        .expect("again: no duplicates");
    let seen: Vec<(String, bool)> = cat
        .visible_volumes("alice")
        .expect("visible")
        .into_iter()
        .map(|v| (v.view_name, v.record.from_config))
        .collect();
    assert_eq!(seen, vec![("gaia".into(), true), ("sample".into(), true)]);
    cat.sync_config_volumes(&config(&["sample"]))
        .expect("gaia left the config");
    let names: Vec<String> = cat
        .all_volumes()
        .expect("all")
        .into_iter()
        .map(|v| v.name)
        .collect();
    assert_eq!(names, vec!["sample"]);
    let (_, t) = cat.add_user("bob", false).expect("bob");
    let bob = caller(&cat, &t.token);
    let err = cat
        .add_volume(
            Some(&bob),
            Owner::User("bob".into()),
            false,
            webdav("sample"),
        )
        .expect_err("an archive name");
    assert_eq!(err.kind(), ErrorKind::Conflict);
}
