//! `colo`: the one binary of the platform. A thin CLI: [`cli`] says what it accepts, this file sets
//! up logging and the runtime and dispatches, [`commands`] does each command by wiring the parts
//! ([`stack`]: connectors → cache → mount, and the VO services; [`sample`]: the sample mission
//! behind `colo up` with no config). Errors print as one line, `colo: …`, saying what to fix;
//! anyhow lives only in this crate.

mod cli;
mod commands;
use colo::config;
mod datalabs;
mod lab_cli;
mod logging;
mod metrics;
mod platform;
mod sample;
mod selection_cli;
mod stack;
mod views;

use anyhow::Result;
use clap::Parser;

use cli::{Cli, Command, IngestCommand};

/// Runs one command; the exit code.
async fn run(command: Command) -> Result<i32> {
    match command {
        Command::Mount(args) => commands::mount(args).await?,
        Command::Volumes(args) => return commands::volumes(args).await,
        Command::Up(args) => commands::up(args).await?,
        Command::Stats { url } => metrics::stats(&url).await?,
        Command::Status { url } => metrics::status(&url).await?,
        Command::Serve(args) => commands::serve(args).await?,
        Command::Ingest {
            what: IngestCommand::Catalog(args),
        } => commands::ingest_catalog(args).await?,
        Command::Ingest {
            what: IngestCommand::Images(args),
        } => commands::ingest_images(args).await?,
        Command::User { what } => platform::user(what)?,
        Command::Token { what } => platform::token(what)?,
        Command::Team { what } => platform::team(what)?,
        Command::Volume { what } => platform::volume(what).await?,
        Command::Catalog { what } => platform::catalog(what)?,
        Command::Selection { what } => selection_cli::selection(what).await?,
        Command::Lab { api, what } => return lab_cli::lab(api, what).await,
        Command::LabInit { .. } => unreachable!("handled before the runtime starts"),
    }
    Ok(0)
}

/// jemalloc, not glibc's allocator. Every cache block is a fresh 1 MiB buffer: glibc (with its mmap
/// threshold fixed, which kept RSS near the budget) mapped each and took a page fault per 4 KiB —
/// half of colo's CPU on a cold sequential read. jemalloc reuses freed blocks' memory, and with
/// the settings below gives back what it no longer uses within 200 ms (one arena: freed memory is
/// reused by any thread). Measured on a cold 1 GiB read (BENCHMARKS.md, "allocator"): CPU 3.6 →
/// 2.2 s per GiB. The memory budget leaves an eighth to the allocator for what it keeps
/// (`stack::split_memory_budget`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings (its `malloc_conf`, read once at start).
#[allow(unsafe_code, non_upper_case_globals)]
// SAFETY: a NUL-terminated static string under the name jemalloc reads its settings from.
#[unsafe(export_name = "_rjem_malloc_conf")]
static malloc_conf: &[u8; 46] = b"narenas:1,dirty_decay_ms:200,muzzy_decay_ms:0\0";

fn main() {
    let cli = Cli::parse();
    // A datalab's first process (see colo_labs::init): no runtime, no logging of colo's; it
    // becomes the lab's tool or exits saying why.
    if let Command::LabInit { plan } = &cli.command {
        let err = colo_labs::init::run_plan(plan);
        eprintln!("colo lab-init: {err}");
        std::process::exit(125);
    }
    logging::init(cli.verbose);
    if !cli.command.serves() {
        // A command that prints and ends behaves as Unix tools do when its reader goes
        // (`colo token list | head -1`): it ends quietly on SIGPIPE instead of panicking on
        // EPIPE. Serving commands keep Rust's default (ignored: a client's closed socket is an
        // error to handle, not a reason to die).
        #[allow(unsafe_code)]
        // SAFETY: at start, before any thread: sets SIGPIPE's disposition to the default.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("colo: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = match rt.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            // One line: the error and its causes.
            let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!(
                "colo: {}",
                colo_connectors::scrub_secrets(&chain.join(": "))
            );
            1
        }
    };
    // Dropping the runtime drops its tasks, and with them each SFTP volume's SSH sessions,
    // whose drop closes their ssh masters (`ssh -O exit`); exiting with the runtime alive left
    // one ssh process and one sshd session behind per SFTP volume and mount.
    rt.shutdown_timeout(std::time::Duration::from_secs(5));
    std::process::exit(code);
}
