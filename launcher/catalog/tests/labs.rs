//! Lab plans through the catalog: the image must be a datalab image with a command, every volume
//! one the user sees (read-only grants stay read-only), resources within the image's bounds; a
//! lab is seen by its owner and admins only.

use colo_catalog::labs::LabRequest;
use colo_catalog::{Access, Catalog, ErrorKind, Grantee, Owner};
use colo_connectors::VolumeConfig;

const TOOLS: &str = r#"
[[datalab_image]]
key = "runner"
title = "Runner"
properties = { command = "python3 -u", default_cpu = "0.5", default_memory_mib = "512", max_cpu = "2", max_memory_mib = "4096" }

[[datalab_image]]
key = "desktop"
title = "A tool without a command"
"#;

fn local(name: &str, dir: &std::path::Path) -> VolumeConfig {
    VolumeConfig {
        name: Some(name.into()),
        url: Some(format!("file://{}", dir.display())),
        mode: Some("read-write".into()),
        ..Default::default()
    }
}

#[test]
fn a_lab_plan_holds_only_what_the_user_may_have() {
    let home = tempfile::tempdir().expect("home");
    let cat = Catalog::open(home.path(), None).expect("open");
    cat.load_mission_file("tools", TOOLS).expect("tools");
    let (alice_user, a) = cat.add_user("alice", false).expect("alice");
    let (_, b) = cat.add_user("bob", false).expect("bob");
    let (_, admin) = cat.add_user("root-like", true).expect("admin");
    let alice = cat.authenticate(&a.token).expect("a");
    let bob = cat.authenticate(&b.token).expect("b");
    let admin = cat.authenticate(&admin.token).expect("admin");
    cat.add_volume(
        None,
        Owner::User("alice".into()),
        false,
        local("mine", home.path()),
    )
    .expect("mine");
    cat.add_volume(
        None,
        Owner::User("bob".into()),
        false,
        local("his", home.path()),
    )
    .expect("his");
    cat.grant(
        None,
        "bob/his",
        &Grantee::User("alice".into()),
        Access::ReadOnly,
    )
    .expect("grant");

    let plan = cat
        .plan_lab(
            &alice,
            &LabRequest {
                name: "analysis".into(),
                image: "runner".into(),
                args: vec!["script.py".into()],
                ..Default::default()
            },
        )
        .expect("plan");
    assert_eq!(plan.command, ["python3", "-u", "script.py"]);
    assert_eq!((plan.cpu_millis, plan.memory_bytes), (500, 512 << 20));
    assert_eq!(plan.uid, alice_user.uid);
    assert_eq!(alice_user.uid, 100_001);
    let volumes: Vec<(String, bool)> = plan
        .volumes
        .iter()
        .map(|v| (v.view.clone(), v.read_only))
        .collect();
    assert_eq!(
        volumes,
        vec![("his@bob".into(), true), ("mine".into(), false)],
        "all her volumes when none are named; the grant stays read-only"
    );

    let refused = |by: &colo_catalog::Caller, req: LabRequest| {
        cat.plan_lab(by, &req).expect_err("refused").kind()
    };
    let req = |f: &dyn Fn(&mut LabRequest)| {
        let mut r = LabRequest {
            name: "x".into(),
            image: "runner".into(),
            ..Default::default()
        };
        f(&mut r);
        r
    };
    assert_eq!(
        refused(&bob, req(&|r| r.volumes = Some(vec!["mine@alice".into()]))),
        ErrorKind::NotFound
    );
    assert_eq!(
        refused(&alice, req(&|r| r.image = "nothing".into())),
        ErrorKind::NotFound
    );
    assert_eq!(
        refused(&alice, req(&|r| r.image = "desktop".into())),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        refused(&alice, req(&|r| r.cpu_millis = Some(2001))),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        refused(&alice, req(&|r| r.memory_mib = Some(8))),
        ErrorKind::InvalidInput
    );

    let lab = cat
        .add_lab(
            &alice,
            &req(&|r| r.volumes = Some(vec!["mine".into()])),
            &|_| false,
        )
        .expect("recorded");
    assert!(
        lab.id.starts_with("lab-") && lab.id.len() == 16,
        "{}",
        lab.id
    );
    assert_eq!(cat.lab(&alice, &lab.id).expect("hers").plan, lab.plan);
    assert_eq!(cat.lab(&admin, &lab.id).expect("an admin's").owner, "alice");
    assert_eq!(
        cat.lab(&bob, &lab.id).expect_err("not his").kind(),
        ErrorKind::NotFound
    );
    assert!(cat.labs(&bob).expect("bob's").is_empty());
    cat.remove_lab(&alice, &lab.id).expect("removed");
    assert!(cat.labs(&alice).expect("hers").is_empty());
}

#[test]
fn a_users_running_labs_stay_within_their_limits_and_names() {
    let home = tempfile::tempdir().expect("home");
    let cat = Catalog::open(home.path(), None).expect("open");
    cat.load_mission_file("tools", TOOLS).expect("tools");
    let (_, a) = cat.add_user("alice", false).expect("alice");
    let alice = cat.authenticate(&a.token).expect("a");
    let req = |name: &str, cpu: u32| LabRequest {
        name: name.into(),
        image: "runner".into(),
        volumes: Some(vec![]),
        cpu_millis: Some(cpu),
        memory_mib: Some(1024),
        ..Default::default()
    };
    let all_run = |_: &str| true;
    for n in 0..4 {
        cat.add_lab(&alice, &req(&format!("lab{n}"), 500), &all_run)
            .expect("within the limits");
    }
    let err = cat
        .add_lab(&alice, &req("lab4", 500), &all_run)
        .expect_err("a fifth");
    assert!(err.to_string().contains("5 labs"), "{err}");
    // Ended labs do not count; a running lab's name is taken, an ended one's is free again.
    let none_run = |_: &str| false;
    cat.add_lab(&alice, &req("lab0", 2000), &none_run)
        .expect("the others ended");
    let err = cat
        .add_lab(&alice, &req("lab1", 500), &|id: &str| !id.is_empty())
        .expect_err("a running lab's name");
    assert_eq!(err.kind(), ErrorKind::Conflict);
    let labs = cat.labs(&alice).expect("labs");
    let running: Vec<&str> = labs
        .iter()
        .filter(|l| l.plan.cpu_millis == 2000 || l.name == "lab2")
        .map(|l| l.id.as_str())
        .collect();
    assert_eq!(running.len(), 2);
    let err = cat
        .add_lab(&alice, &req("big", 2000), &|id: &str| running.contains(&id))
        .expect_err("over the CPU: 2 + 0.5 cores running, 2 more asked");
    assert!(err.to_string().contains("4000 millicores"), "{err}");
}
