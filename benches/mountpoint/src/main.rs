//! `mount-s3 BUCKET DIR --endpoint-url URL [--cache DIR] [--read-only] [--prefix P]`: mountpoint-s3
//! for benchmarks against a local S3 server, built from the library its `mount-s3` binary is made
//! of, with that binary's defaults (mountpoint-s3 1.24.0, `mountpoint-s3/src/run.rs` and `cli.rs`):
//! 8 MiB parts, 16 FUSE threads, the default throughput target, 95 % of memory as the limit, 1 MiB
//! cache blocks, a 60 s metadata TTL with `--cache` and the minimal one without, path-style
//! addressing, credentials from the environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`).
//! Runs in the foreground until unmounted.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use mountpoint_s3_client::config::{AddressingStyle, S3ClientAuthConfig};
use mountpoint_s3_client::instance_info::InstanceInfo;
use mountpoint_s3_client::user_agent::UserAgent;
use mountpoint_s3_fs::data_cache::{
    CacheLimit, DataCacheConfig, DiskDataCacheConfig, ManagedCacheDir,
};
use mountpoint_s3_fs::fs::{CacheConfig, TimeToLive};
use mountpoint_s3_fs::fuse::config::{FuseOptions, FuseSessionConfig, MountPoint};
use mountpoint_s3_fs::memory::{
    effective_total_memory, CandidateSize, PagedPool, MINIMUM_MEM_LIMIT,
};
use mountpoint_s3_fs::s3::config::{
    ClientConfig, MemoryLimitSetting, PartConfig, Region, TargetThroughputSetting,
};
use mountpoint_s3_fs::s3::{Bucket, Prefix, S3Path, S3Personality};
use mountpoint_s3_fs::{
    metrics, MountpointConfig, Runtime, S3FilesystemConfig, Superblock, SuperblockConfig,
};

const PART_SIZE_BYTES: usize = 8 << 20;
const CACHE_BLOCK_BYTES: u64 = 1 << 20;
const FUSE_THREADS: usize = 16;

struct Args {
    bucket: String,
    mount_point: PathBuf,
    endpoint_url: String,
    prefix: String,
    cache_dir: Option<PathBuf>,
    read_only: bool,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut positional = Vec::new();
    let (mut endpoint_url, mut prefix, mut cache_dir, mut read_only) =
        (None, String::new(), None, false);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| anyhow!("{arg} needs a value"));
        match arg.as_str() {
            "--endpoint-url" => endpoint_url = Some(value()?),
            "--prefix" => prefix = value()?,
            "--cache" => cache_dir = Some(PathBuf::from(value()?)),
            "--read-only" => read_only = true,
            flag if flag.starts_with("--") => bail!("unknown option {flag}"),
            _ => positional.push(arg),
        }
    }
    let [bucket, mount_point] = <[String; 2]>::try_from(positional).map_err(|_| {
        anyhow!("usage: mount-s3 BUCKET DIR --endpoint-url URL [--cache DIR] [--read-only]")
    })?;
    Ok(Args {
        bucket,
        mount_point: mount_point.into(),
        endpoint_url: endpoint_url.context("--endpoint-url is required")?,
        prefix,
        cache_dir,
        read_only,
    })
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let _metrics = metrics::install(None).map_err(|e| anyhow!("metrics: {e}"))?;
    let memory_limit = MemoryLimitSetting::Default(
        ((effective_total_memory() as f64 * 0.95) as usize).max(MINIMUM_MEM_LIMIT),
    );
    let client_config = ClientConfig {
        region: Region::new_user_specified("us-east-1".to_string()),
        endpoint_url: Some(args.endpoint_url.clone()),
        addressing_style: AddressingStyle::Path,
        dual_stack: false,
        transfer_acceleration: false,
        auth_config: S3ClientAuthConfig::Default,
        requester_pays: false,
        expected_bucket_owner: None,
        throughput_target: TargetThroughputSetting::Default,
        bind: None,
        part_config: PartConfig::with_read_write_sizes(PART_SIZE_BYTES, PART_SIZE_BYTES)
            .validate(memory_limit)?,
        user_agent: UserAgent::new_with_instance_info(
            Some("mountpoint-s3/1.24.0 colo-bench".into()),
            &InstanceInfo::new(),
        ),
        tls_config: None,
    };
    let pool = PagedPool::config()
        .with_candidate_sizes([
            CandidateSize::prunable(CACHE_BLOCK_BYTES as usize),
            CandidateSize::prunable(client_config.part_config.read_size_bytes),
            CandidateSize::new(client_config.part_config.write_size_bytes),
        ])
        .with_memory_limit(memory_limit.bytes())
        .with_maintenance_interval(Duration::from_secs(60))
        .build();
    let s3_path = S3Path::new(
        Bucket::new(args.bucket.clone())?,
        Prefix::new(&args.prefix)?,
    );
    let client = client_config
        .create_client(pool.clone(), Some(&s3_path))
        .context("S3 client")?;
    let runtime = Runtime::new(client.event_loop_group());

    let ttl = if args.cache_dir.is_some() {
        TimeToLive::Duration(Duration::from_secs(60))
    } else {
        TimeToLive::Minimal
    };
    let mut filesystem_config = S3FilesystemConfig::default();
    filesystem_config.read_only = args.read_only;
    filesystem_config.s3_personality = S3Personality::Standard;
    filesystem_config.cache_config = CacheConfig::new(ttl);
    // Read-only benches; `mount-s3` would ask for CRC32C checksums on uploads.
    filesystem_config.upload_checksum_algorithm = None;

    let mut data_cache_config = DataCacheConfig {
        disk_cache_config: args.cache_dir.as_ref().map(|dir| DiskDataCacheConfig {
            cache_directory: dir.clone(),
            block_size: CACHE_BLOCK_BYTES,
            limit: CacheLimit::default(),
        }),
        express_cache_config: None,
    };
    let managed_cache_dir = match &mut data_cache_config.disk_cache_config {
        Some(disk) => {
            let managed =
                ManagedCacheDir::new_from_parent_with_cache_key(&disk.cache_directory, None, true)?;
            disk.cache_directory = managed.as_path_buf();
            Some(managed)
        }
        None => None,
    };

    let fuse_options = FuseOptions {
        read_only: args.read_only,
        auto_unmount: false,
        allow_root: false,
        allow_other: false,
        clone_fd: false,
    };
    let session_config = FuseSessionConfig::new(
        MountPoint::new(&args.mount_point)?,
        fuse_options,
        FUSE_THREADS,
    )?;
    let superblock = Superblock::new(
        client.clone(),
        s3_path,
        SuperblockConfig {
            cache_config: filesystem_config.cache_config.clone(),
            s3_personality: filesystem_config.s3_personality,
        },
    );
    let session = MountpointConfig::new(session_config, filesystem_config, data_cache_config)?
        .create_fuse_session(superblock, client, runtime, pool)?;
    println!(
        "{} is mounted at {}",
        args.bucket,
        args.mount_point.display()
    );
    session.join().context("FUSE session")?;
    drop(managed_cache_dir);
    Ok(())
}
