//! The workspace's layers, as the compiler sees them: dependencies point one way.
//!
//! connectors → cache → vfs; the VO services are three crates, server → tap → astro, that use
//! connectors and cache but never vfs; the launcher (`colo`) uses everything and nothing uses it.
//! `colo-astro` (the numerics) builds without axum, DataFusion, the cache or an async runtime.
//! Checked on the resolved dependency graph (`cargo tree`, normal dependencies, transitively), so an
//! edge added anywhere — directly or through another crate — fails here.

use std::collections::BTreeSet;
use std::process::Command;

/// The packages `package` depends on for its build (normal dependencies, transitively), by name.
fn normal_dependencies(package: &str) -> BTreeSet<String> {
    let output = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "--quiet",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
            "-p",
            package,
        ])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("cargo tree runs");
    assert!(
        output.status.success(),
        "cargo tree -p {package}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != package)
        .map(str::to_string)
        .collect()
}

fn assert_none_of(package: &str, forbidden: &[&str]) {
    let deps = normal_dependencies(package);
    let found: Vec<&&str> = forbidden
        .iter()
        .filter(|name| deps.contains(**name))
        .collect();
    assert!(found.is_empty(), "{package} depends on {found:?}");
}

fn assert_all_of(package: &str, required: &[&str]) {
    let deps = normal_dependencies(package);
    for name in required {
        assert!(deps.contains(*name), "{package} should depend on {name}");
    }
}

#[test]
fn astro_is_numerics_only() {
    assert_none_of(
        "colo-astro",
        &[
            "colo-tap",
            "colo-vo-services",
            "colo-cache",
            "colo-connectors",
            "colo-vfs",
            "colo",
            "axum",
            "datafusion",
            "reqwest",
            "tokio",
            "arrow-array",
        ],
    );
}

#[test]
fn tap_sits_on_astro_and_knows_no_http_edge() {
    assert_all_of("colo-tap", &["colo-astro", "datafusion"]);
    assert_none_of(
        "colo-tap",
        &["colo-vo-services", "colo-cache", "colo-vfs", "colo", "axum"],
    );
}

#[test]
fn services_use_tap_astro_cache_and_connectors_but_never_the_mount() {
    assert_all_of(
        "colo-vo-services",
        &[
            "colo-tap",
            "colo-astro",
            "colo-cache",
            "colo-connectors",
            "axum",
        ],
    );
    assert_none_of("colo-vo-services", &["colo-vfs", "colo", "fuser"]);
}

/// Every crate of the workspace, each layer above the ones before it.
const LAYERS: &[&str] = &[
    "colo-connectors",
    "colo-cache",
    "colo-vfs",
    "colo-astro",
    "colo-tap",
    "colo-vo-services",
    "colo-catalog",
    "colo-labs",
    "colo",
];

#[test]
fn the_data_layer_points_one_way() {
    // connectors → cache → vfs, and none of them knows the VO side or the launcher.
    for (i, package) in LAYERS[..3].iter().enumerate() {
        assert_none_of(package, &LAYERS[i + 1..]);
    }
}

#[test]
fn nothing_uses_the_launcher() {
    for package in LAYERS[..LAYERS.len() - 1]
        .iter()
        .chain(["colo-tests"].iter())
    {
        assert_none_of(package, &["colo"]);
    }
    assert_all_of(
        "colo",
        &[
            "colo-vfs",
            "colo-vo-services",
            "colo-tap",
            "colo-astro",
            "colo-catalog",
            "colo-labs",
        ],
    );
}

#[test]
fn the_catalog_knows_connectors_but_not_the_mount_or_the_vo_services() {
    // The platform's state and API: volumes are connector specs; the mount and the VO services
    // are wired to it by the launcher (views, caller identity, selections), not the other way.
    assert_all_of("colo-catalog", &["colo-connectors"]);
    assert_none_of(
        "colo-catalog",
        &[
            "colo-vfs",
            "colo-cache",
            "colo-vo-services",
            "colo-tap",
            "fuser",
            "datafusion",
        ],
    );
    for package in LAYERS[..LAYERS.len() - 3]
        .iter()
        .chain(["colo-labs"].iter())
    {
        assert_none_of(package, &["colo-catalog"]);
    }
}

#[test]
fn datalabs_bind_folders_and_know_nothing_of_how_they_are_served() {
    // A lab gets folders (the launcher passes a user's views of the mount); the backend itself
    // needs neither the data layers, the VO services nor the catalog.
    assert_none_of(
        "colo-labs",
        &[
            "colo-connectors",
            "colo-cache",
            "colo-vfs",
            "colo-vo-services",
            "colo-tap",
            "colo-catalog",
            "fuser",
            "datafusion",
        ],
    );
}
