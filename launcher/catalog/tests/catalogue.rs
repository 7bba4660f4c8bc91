//! Catalogue search over the real mission files (the sample's, and the operator examples for Gaia
//! and XMM-Newton in `catalogue/`): free text, facets, counts, and reloading a file.

use colo_catalog::{Catalog, ErrorKind, ItemKind, SealingKey, SearchQuery};

fn file(path: &str) -> String {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    std::fs::read_to_string(format!("{root}/{path}")).expect("mission file")
}

fn seeded() -> Catalog {
    let cat =
        Catalog::in_memory(SealingKey::from_bytes(&[1u8; 32]).expect("key")).expect("catalog");
    cat.load_mission_file("sample", &file("launcher/colo/src/sample/catalogue.toml"))
        .expect("sample");
    cat.load_mission_file("colo-tools", &file("launcher/colo/src/tools.toml"))
        .expect("tools");
    cat.load_mission_file("gaia.toml", &file("catalogue/gaia.toml"))
        .expect("gaia");
    cat.load_mission_file("xmm-newton.toml", &file("catalogue/xmm-newton.toml"))
        .expect("xmm");
    cat
}

fn keys(cat: &Catalog, q: &str) -> Vec<String> {
    let r = cat
        .search(&SearchQuery::parse(q).expect("query"), 100, 0)
        .expect("search");
    r.items.into_iter().map(|i| i.key).collect()
}

fn facet(cat: &Catalog, q: &str, name: &str) -> Vec<(String, u64)> {
    let r = cat
        .search(&SearchQuery::parse(q).expect("query"), 100, 0)
        .expect("search");
    r.facets[name].clone()
}

#[test]
fn facets_and_free_text_combine() {
    let cat = seeded();
    let all = cat.search(&SearchQuery::default(), 100, 0).expect("all");
    assert_eq!(all.total, 13);
    assert_eq!(
        facet(&cat, "", "type"),
        vec![
            ("dataset".into(), 8),
            ("datalab-image".into(), 3),
            ("volume".into(), 2)
        ]
    );
    assert_eq!(
        keys(&cat, r#"domain:"Space Science" type:dataset mission:Gaia"#),
        vec![
            "gaiadr3.xp_summary",
            "gaiadr3.gaia_source",
            "gaiadr3.vari_summary"
        ],
        "by title"
    );
    assert_eq!(
        keys(&cat, "mission:gaia parallax"),
        vec!["gaiadr3.gaia_source"],
        "case-insensitive facet"
    );
    let mut prefix = keys(&cat, "parall");
    prefix.sort();
    assert_eq!(
        prefix,
        vec!["gaiadr3.gaia_source", "sample.hip2"],
        "a prefix finds both"
    );
    assert_eq!(keys(&cat, "wavelength:X-ray type:dataset").len(), 2);
    assert_eq!(
        facet(&cat, "type:dataset wavelength:X-ray", "instrument"),
        vec![("EPIC".into(), 1), ("RGS".into(), 1)]
    );
    assert_eq!(
        keys(&cat, "type:datalab-image"),
        vec!["cwl-runner", "headless-python", "jupyterlab"]
    );
    assert_eq!(
        keys(&cat, "mission:Gaia mission:XMM-Newton type:dataset").len(),
        6,
        "one facet twice: either value"
    );
    assert!(keys(&cat, "no-such-word-anywhere").is_empty());
    let err = SearchQuery::parse("colour:red").expect_err("unknown facet");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

#[test]
fn pages_and_ranking() {
    let cat = seeded();
    let q = SearchQuery::parse("type:dataset").expect("query");
    let first = cat.search(&q, 3, 0).expect("page 1");
    let second = cat.search(&q, 3, 3).expect("page 2");
    assert_eq!(first.total, 8);
    assert_eq!(first.items.len(), 3);
    assert!(first.items.iter().all(|i| !second.items.contains(i)));
    // The word in the title ranks first.
    let r = cat
        .search(&SearchQuery::parse("ultraviolet").expect("q"), 10, 0)
        .expect("search");
    assert_eq!(r.items[0].key, "xsa.v_om_source");
    assert_eq!(r.items[0].kind, ItemKind::Dataset);
    assert_eq!(
        r.items[0].wavelength, "Ultraviolet",
        "the item's own value over the file's default"
    );
}

#[test]
fn reloading_a_file_replaces_its_items_and_bad_files_say_why() {
    let cat = seeded();
    let smaller = file("catalogue/gaia.toml").replace("[[volume]]", "[[unused]]");
    let err = cat
        .load_mission_file("gaia.toml", &smaller)
        .expect_err("unknown table");
    assert!(err.to_string().contains("gaia.toml"), "{err}");
    let others = cat
        .item_keys_not_from(ItemKind::Dataset, "toml:gaia.toml")
        .expect("keys");
    assert_eq!(
        others.len(),
        5,
        "the sample's 2 and XMM-Newton's 3 datasets: {others:?}"
    );
    let only_source = "mission = \"Gaia\"\n[[dataset]]\nkey = \"gaiadr3.gaia_source\"\n";
    let (now, removed) = cat
        .load_mission_file("gaia.toml", only_source)
        .expect("reload");
    assert_eq!((now, removed), (1, 3));
    assert_eq!(keys(&cat, "mission:Gaia"), vec!["gaiadr3.gaia_source"]);
    let twice = "[[dataset]]\nkey = \"a\"\n[[dataset]]\nkey = \"a\"\n";
    let err = cat
        .load_mission_file("x.toml", twice)
        .expect_err("duplicate");
    assert!(err.to_string().contains("described twice"), "{err}");
}
