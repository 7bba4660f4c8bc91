//! colo-vfs: the FUSE filesystem that shows every volume as a directory under one mount root.
//!
//! Design (after mountpoint-s3): [`core::VfsCore`] is an async filesystem with no fuser types — inodes,
//! listing and attribute caches with per-volume TTLs, open handles pinned to one object version,
//! sequential prefetch — and is tested without a mount. [`fuse`] is the only fuser glue: each callback
//! spawns the core call on the tokio runtime and replies, or maps the error through [`errno`], the one
//! place errors become errno values. [`mount`] checks the machine (device, helper, busy or stale mount
//! points) and mounts.

mod backings;
pub mod calls;
pub mod change;
pub mod core;
pub mod direct;
pub mod errno;
pub mod error;
pub mod extents;
pub mod forget;
pub mod fuse;
pub mod inode;
pub mod kept;
pub mod kept_log;
pub mod metrics;
pub mod mount;
pub mod orphan;
pub mod passthrough;
pub mod plan;
pub mod prefetch;
pub mod read;
pub mod rename;
pub mod views;
pub mod write;

pub use crate::core::{
    Attr, DirListing, NodeType, Opened, PosixAttr, VfsCore, VfsOptions, VolumeMount,
};
pub use direct::Made;
pub use error::{Result, VfsError};
pub use mount::{KernelInvalidator, MountOptions, MountedFs, mount};
pub use write::{NewEntry, SetAttr};
