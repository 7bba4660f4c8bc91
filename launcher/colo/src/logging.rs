//! colo's log: one subscriber for every command, on stderr, at the level `-v`/`RUST_LOG` ask for —
//! and no secret in it at any level. Every line passes through
//! [`colo_connectors::scrub_secrets`] on its way out, so a credential printed by any crate (a
//! request signer's debug dump of its provider, an FTP client echoing `PASS` at trace level, a URL
//! with a password) shows as `*****`; the dependencies known to print credentials are also capped
//! below the level where they do ([`CAPPED_TARGETS`]), whatever `RUST_LOG` says (a cap only
//! lowers: at the default level they stay at warn). A panic's message
//! goes through the same scrubbing.

use std::io::Write;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;

/// Dependencies capped at a level, whatever `RUST_LOG` or `-v` ask for (a cap never raises a
/// level): the AWS request signer dumps its credential provider at debug; the FTP client logs its
/// commands, `PASS` among them, at trace.
pub const CAPPED_TARGETS: &[(&str, LevelFilter)] = &[
    ("reqsign", LevelFilter::INFO),
    ("reqsign_core", LevelFilter::INFO),
    ("reqsign_aws_v4", LevelFilter::INFO),
    ("suppaftp", LevelFilter::DEBUG),
];

/// The level filter (`RUST_LOG` if given, else from `-v`) and the caps; an event is logged only
/// if both let it through.
pub fn filters(rust_log: Option<&str>, verbose: u8) -> (EnvFilter, Targets) {
    // fuser reports every request colo answers with ENOSYS (ioctl, xattrs) as a warning: noise in
    // the terminal of whoever runs `ls` or astropy on the mount; its errors still show.
    let default_level = match verbose {
        0 => "warn,fuser=error",
        1 => "info,fuser=error",
        _ => "debug",
    };
    let levels = rust_log
        .and_then(|text| EnvFilter::try_new(text).ok())
        .unwrap_or_else(|| EnvFilter::new(default_level));
    let caps = Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_targets(CAPPED_TARGETS.iter().copied());
    (levels, caps)
}

/// Installs the subscriber and the panic hook.
pub fn init(verbose: u8) {
    let rust_log = std::env::var("RUST_LOG").ok();
    let (levels, caps) = filters(rust_log.as_deref(), verbose);
    tracing_subscriber::registry()
        .with(levels)
        .with(caps)
        .with(tracing_subscriber::fmt::layer().with_writer(ScrubbedStderr))
        .init();
    std::panic::set_hook(Box::new(|info| {
        let text = info.to_string();
        let _ = writeln!(
            std::io::stderr().lock(),
            "{}",
            colo_connectors::scrub_secrets(&text)
        );
    }));
}

/// A writer whose every write is scrubbed of secrets (the formatter writes each event whole, in
/// one call, so a secret is never split between two).
pub struct Scrubbed<W: Write>(pub W);

impl<W: Write> Write for Scrubbed<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        self.0
            .write_all(colo_connectors::scrub_secrets(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// stderr, scrubbed.
#[derive(Clone, Copy)]
pub struct ScrubbedStderr;

impl<'a> MakeWriter<'a> for ScrubbedStderr {
    type Writer = Scrubbed<std::io::StderrLock<'static>>;

    fn make_writer(&'a self) -> Self::Writer {
        Scrubbed(std::io::stderr().lock())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_dependency_s_trace_line_with_a_secret_shows_a_mask() {
        let secret = colo_connectors::SecretSource::Inline(colo_connectors::SecretString::new(
            "logging-test-secret-4711",
        ))
        .resolve()
        .unwrap();
        let captured = Captured::default();
        let sink = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || Scrubbed(sink.clone()))
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::trace!(
                target: "some_dependency",
                "provider {{ secret: {:?} }} via ftp://u:url-password@h/ and PASS {}",
                secret.expose(),
                secret.expose()
            );
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(
            text.contains("provider { secret: \"*****\" } via ftp://u:*****@h/ and PASS *****"),
            "{text}"
        );
        assert!(
            !text.contains("4711") && !text.contains("url-password"),
            "{text}"
        );
    }

    /// What `filters(rust_log, verbose)` lets through, of a debug line of `target`.
    fn shows_debug_of(target_is_suppaftp: bool, rust_log: Option<&str>, verbose: u8) -> bool {
        let captured = Captured::default();
        let sink = captured.clone();
        let (levels, caps) = filters(rust_log, verbose);
        let subscriber = tracing_subscriber::registry()
            .with(levels)
            .with(caps)
            .with(tracing_subscriber::fmt::layer().with_writer(move || sink.clone()));
        tracing::subscriber::with_default(subscriber, || {
            if target_is_suppaftp {
                tracing::debug!(target: "suppaftp::async_ftp", "PASV command");
            } else {
                tracing::debug!(target: "reqsign_core::api", "Trying credential provider");
            }
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        !text.is_empty()
    }

    #[test]
    fn caps_lower_levels_and_never_raise_them() {
        // At the default level nothing of the FTP client's debug shows (a cap is not a level).
        assert!(!shows_debug_of(true, None, 0));
        assert!(!shows_debug_of(true, None, 1));
        assert!(shows_debug_of(true, None, 2));
        assert!(shows_debug_of(true, Some("trace"), 0));
        // The request signer's debug never shows.
        assert!(!shows_debug_of(false, Some("trace"), 0));
        assert!(!shows_debug_of(false, Some("reqsign_core=trace"), 2));
    }
}
