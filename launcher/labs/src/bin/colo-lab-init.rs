//! The lab's first process (see `colo_labs::init`), for the crate's own tests; colo itself runs
//! the same steps as `colo lab-init`.

fn main() {
    let Some(plan) = std::env::args_os().nth(1) else {
        eprintln!("usage: colo-lab-init PLAN.json");
        std::process::exit(2);
    };
    let err = colo_labs::init::run_plan(std::path::Path::new(&plan));
    eprintln!("colo-lab-init: {err}");
    std::process::exit(125);
}
