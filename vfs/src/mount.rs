//! Mounting: check the machine, clean up after a crashed run, mount, and unmount cleanly.
//!
//! Before mounting: `/dev/fuse` must exist; a non-root user needs `fusermount3`; the mount root is
//! created if missing. If the root is already a mount point, it is either stale (a crashed colo: the
//! kernel answers `opendir` with ENOTCONN) and is lazily unmounted, or alive and the mount is refused
//! as busy. (`stat` would not do: the kernel answers it from attributes cached before the crash.)
//!
//! After mounting, the mount's kernel readahead is raised to `readahead_kib` (one cache block) via
//! `/sys/class/bdi/<dev>/read_ahead_kb`: the kernel then sends a `pread` of up to that size as one
//! FUSE read instead of 128 KiB pieces, so colo sees the reader's real request (one ranged GET for
//! a 256 KiB random read, not two) and sequential streams arrive in block-sized reads. Only root
//! may write it; otherwise the kernel default stays and colo still works, with smaller reads.

use crate::core::VfsCore;
use crate::error::{Result, VfsError};
use crate::fuse::ColoFs;
use fuser::{BackgroundSession, Config, MountOption, SessionACL};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct MountOptions {
    pub root: PathBuf,
    /// FUSE worker threads.
    pub threads: usize,
    /// Let every user read the mount (as a platform's notebooks need); root only.
    pub allow_other: bool,
    /// Kernel readahead for the mount, KiB (0: leave the kernel's default).
    pub readahead_kib: u32,
    /// Mount read-write (some volume is writable); read-only volumes still refuse changes.
    pub writable: bool,
    /// Whole-file copies files may pass through to, if the kernel grants passthrough
    /// ([`crate::passthrough`]).
    pub whole_files: Option<Arc<colo_cache::WholeFiles>>,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            root: PathBuf::from("/media/data"),
            threads: 4,
            allow_other: true,
            readahead_kib: 1024,
            writable: false,
            whole_files: None,
        }
    }
}

/// A live mount; dropping it unmounts.
pub struct MountedFs {
    session: Option<BackgroundSession>,
    root: PathBuf,
}

/// Tells the kernel to forget what it cached about names and attributes (FUSE notify), so the
/// next `ls`/`stat` asks colo again. Cheap to clone; usable while the mount serves.
#[derive(Clone)]
pub struct KernelInvalidator {
    notifier: fuser::Notifier,
}

impl KernelInvalidator {
    /// Forgets directory entries `(parent inode, name)` and the attributes of `inodes`.
    /// Returns how many notifications the kernel accepted (unknown entries are simply skipped).
    pub fn forget(&self, entries: &[(u64, String)], inodes: &[u64]) -> usize {
        let mut accepted = 0;
        for (parent, name) in entries {
            if self
                .notifier
                .inval_entry(fuser::INodeNo(*parent), std::ffi::OsStr::new(name))
                .is_ok()
            {
                accepted += 1;
            }
        }
        for ino in inodes {
            // A negative offset: attributes only, the page cache stays (it is keyed by version).
            if self
                .notifier
                .inval_inode(fuser::INodeNo(*ino), -1, 0)
                .is_ok()
            {
                accepted += 1;
            }
        }
        accepted
    }
}

impl MountedFs {
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A handle that invalidates the kernel's entry and attribute caches of this mount.
    pub fn invalidator(&self) -> Option<KernelInvalidator> {
        self.session.as_ref().map(|s| KernelInvalidator {
            notifier: s.notifier(),
        })
    }

    /// Unmount and wait for the FUSE threads to finish.
    pub fn unmount(mut self) -> Result<()> {
        match self.session.take() {
            Some(s) => s.umount_and_join().map_err(|e| VfsError::Mount {
                root: self.root.clone(),
                detail: format!("unmount: {e}"),
            }),
            None => Ok(()),
        }
    }
}

impl Drop for MountedFs {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            let _ = s.umount_and_join();
        }
    }
}

fn is_root_user() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

fn in_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
}

/// Whether `root` is currently a mount point (per /proc/self/mountinfo).
pub fn is_mount_point(root: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = root.to_string_lossy().replace(' ', "\\040");
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|mp| mp == want)
}

/// Opens `root` as a directory: `opendir` always reaches the filesystem (unlike `stat`, which the
/// kernel may answer from attributes it cached before the filesystem died), so a dead FUSE mount
/// gives ENOTCONN.
fn probe(root: &Path) -> std::io::Result<()> {
    std::fs::read_dir(root).map(drop)
}

/// Check the machine and the mount root; clean up a stale mount left by a crashed run.
pub fn prepare(root: &Path) -> Result<()> {
    if !Path::new("/dev/fuse").exists() {
        return Err(VfsError::NoFuseDevice);
    }
    if !is_root_user() && !in_path("fusermount3") && !in_path("fusermount") {
        return Err(VfsError::NoFusermount);
    }
    if is_mount_point(root) {
        match probe(root) {
            Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
                tracing::warn!(root = %root.display(), "cleaning up a stale mount from a crashed run");
                let ok = Command::new("fusermount3")
                    .arg("-uz")
                    .arg(root)
                    .status()
                    .is_ok_and(|s| s.success())
                    || Command::new("umount")
                        .arg("-l")
                        .arg(root)
                        .status()
                        .is_ok_and(|s| s.success());
                if !ok || is_mount_point(root) {
                    return Err(VfsError::MountRoot {
                        root: root.to_path_buf(),
                        detail: "a stale mount is there and could not be unmounted (try `fusermount3 -uz`)".into(),
                    });
                }
            }
            _ => {
                return Err(VfsError::MountRootBusy {
                    root: root.to_path_buf(),
                });
            }
        }
    }
    std::fs::create_dir_all(root).map_err(|e| VfsError::MountRoot {
        root: root.to_path_buf(),
        detail: e.to_string(),
    })?;
    Ok(())
}

/// Mount `core` at `options.root`; requests run on the runtime behind `rt`.
pub fn mount(
    core: Arc<VfsCore>,
    rt: tokio::runtime::Handle,
    options: &MountOptions,
) -> Result<MountedFs> {
    prepare(&options.root)?;
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName("colo".into()),
        MountOption::Subtype("colo".into()),
        if options.writable {
            MountOption::RW
        } else {
            MountOption::RO
        },
        MountOption::NoAtime,
        MountOption::DefaultPermissions,
    ];
    if options.allow_other && is_root_user() {
        config.acl = SessionACL::All;
    }
    config.n_threads = Some(options.threads.max(1));
    let fs = ColoFs::new(core.clone(), rt).with_passthrough(options.whole_files.clone());
    let session = fuser::spawn_mount(fs, &options.root, &config).map_err(|e| VfsError::Mount {
        root: options.root.clone(),
        detail: e.to_string(),
    })?;
    let notifier = session.notifier();
    core.drop_kernel_pages_with(Arc::new(move |ino| {
        // From offset 0 to the end: the pages (and the cached attributes, asked again at once).
        let dropped = notifier.inval_inode(fuser::INodeNo(ino), 0, 0);
        if let Err(e) = &dropped {
            tracing::debug!(ino, error = %e, "the kernel's pages of a file were not dropped");
        }
        dropped.is_ok()
    }));
    if options.readahead_kib > 0 {
        set_readahead(&options.root, options.readahead_kib);
    }
    Ok(MountedFs {
        session: Some(session),
        root: options.root.clone(),
    })
}

/// Sets the kernel readahead of the mount at `root`. The `stat` first waits for the FUSE handshake,
/// which would otherwise lower the value again. Failure (not root, no sysfs) only logs.
fn set_readahead(root: &Path, kib: u32) {
    let result = std::fs::metadata(root).and_then(|m| {
        let dev = m.dev();
        let bdi = format!(
            "/sys/class/bdi/{}:{}/read_ahead_kb",
            libc::major(dev),
            libc::minor(dev)
        );
        std::fs::write(&bdi, kib.to_string()).map(|()| bdi)
    });
    match result {
        Ok(bdi) => tracing::debug!(%bdi, kib, "kernel readahead set"),
        Err(e) => tracing::info!(error = %e, "kernel readahead left at its default"),
    }
}
