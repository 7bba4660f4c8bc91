//! The command line: what `colo` accepts, as clap parses it. Each command's arguments are one
//! struct, handed whole to its function in [`crate::commands`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::DEFAULT_METRICS_LISTEN;

#[derive(Parser)]
#[command(
    name = "colo",
    version,
    about = "Bring the questions to the data: mission data volumes, mounted and served"
)]
pub struct Cli {
    /// More logging (-v: info, -vv: debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Mount the configured volumes under the mount root and serve until Ctrl-C/SIGTERM.
    Mount(MountArgs),
    /// List the configured volumes, with credentials masked, and check that each answers.
    Volumes(VolumesArgs),
    /// The main job: mount the volumes and serve the VO services over the published tables (with
    /// no config: the built-in sample mission).
    Up(UpArgs),
    /// Print the non-zero metrics of a running colo (FUSE operations, origin requests, cache hits).
    Stats {
        /// The metrics endpoint.
        #[arg(long, default_value_t = format!("http://{DEFAULT_METRICS_LISTEN}/metrics"))]
        url: String,
    },
    /// Per read-write volume of a running colo: changes waiting for the origin (count, bytes, age
    /// of the oldest), uploads, conflicts, retries, failures and the last error.
    Status {
        /// The metrics endpoint.
        #[arg(long, default_value_t = format!("http://{DEFAULT_METRICS_LISTEN}/metrics"))]
        url: String,
    },
    /// Serve the IVOA services (TAP, SIA, DataLink, SODA) over the published tables, without
    /// mounting.
    Serve(ServeArgs),
    /// Publish data for the services.
    Ingest {
        #[command(subcommand)]
        what: IngestCommand,
    },
    /// Users of the platform (state in $COLO_HOME/colo.db).
    User {
        #[command(subcommand)]
        what: UserCommand,
    },
    /// API tokens: create (shown once), list (never shown again), revoke.
    Token {
        #[command(subcommand)]
        what: TokenCommand,
    },
    /// Teams: users that volumes can be granted to together.
    Team {
        #[command(subcommand)]
        what: TeamCommand,
    },
    /// Volumes as data: users' own, teams', the archive's; grants.
    Volume {
        #[command(subcommand)]
        what: VolumeCommand,
    },
    /// The catalogue of datasets, data volumes and datalab images.
    Catalog {
        #[command(subcommand)]
        what: CatalogCommand,
    },
    /// Selections: archive files chosen by a query, as a user's read-only volume; copies of them.
    Selection {
        #[command(subcommand)]
        what: SelectionCommand,
    },
    /// Datalabs on a running colo (`colo up`), through its API: create, ps, logs, events, open,
    /// renew, share, unshare, stop, delete. `--url`/`COLO_URL` and `--token`/`COLO_TOKEN` say where
    /// and who.
    Lab {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        what: LabCommand,
    },
    /// (internal) A datalab's first process, inside its mount namespace.
    #[command(hide = true)]
    LabInit { plan: PathBuf },
}

impl Command {
    /// Whether the command serves (mounts, HTTP) until stopped, rather than printing and ending.
    pub fn serves(&self) -> bool {
        matches!(
            self,
            Command::Mount(_) | Command::Up(_) | Command::Serve(_) | Command::LabInit { .. }
        )
    }
}

#[derive(Subcommand)]
pub enum SelectionCommand {
    /// Make the selection NAME of USER: the archive files an ADQL query on `ivoa.obscore`
    /// selects (it must return `obs_publisher_did`), or those of the given dataset identifiers.
    Add {
        name: String,
        #[arg(long)]
        user: String,
        #[arg(long, conflicts_with = "did", required_unless_present = "did")]
        adql: Option<String>,
        /// A dataset identifier (`obs_publisher_did`); repeat for more.
        #[arg(long)]
        did: Vec<String>,
        /// The config whose published tables to query (default ./colo.toml, else the sample).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// The selections of USER.
    List {
        #[arg(long)]
        user: String,
    },
    /// Copy the files of USER's selection NAME into their writable volume INTO, under FOLDER
    /// (default: the selection's name); never over their own files, finishing an earlier copy.
    Copy {
        name: String,
        #[arg(long)]
        user: String,
        #[arg(long)]
        into: String,
        #[arg(long)]
        folder: Option<String>,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Remove USER's selection NAME (the archive files stay).
    Remove {
        name: String,
        #[arg(long)]
        user: String,
    },
}

#[derive(Subcommand)]
pub enum CatalogCommand {
    /// Load mission files (TOML: [[dataset]], [[volume]], [[datalab_image]]); each replaces what
    /// it loaded before.
    Load {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Search: free words and facets, e.g. `domain:"Space Science" type:dataset mission:Gaia
    /// parallax` (facets: type, domain, mission, instrument, wavelength).
    Search {
        #[arg(default_value = "")]
        query: String,
        #[arg(long, default_value_t = 20)]
        limit: u64,
        #[arg(long, default_value_t = 0)]
        offset: u64,
        /// The whole answer (items and facet counts) as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Add a user and print their first token (all the scopes they may hold, 90 days).
    Add {
        name: String,
        /// The user manages users, archive volumes and everyone's grants.
        #[arg(long)]
        admin: bool,
        /// The account their datalabs run as (default 100000 + their number).
        #[arg(long)]
        uid: Option<u32>,
    },
    List,
    /// Remove a user with their tokens and their own volumes.
    Remove {
        name: String,
    },
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// A new token for USER, printed once.
    Create {
        #[arg(long)]
        user: String,
        /// Space- or comma-separated: catalog:read, volumes, labs, share, admin (default: all
        /// the user may hold).
        #[arg(long)]
        scopes: Option<String>,
        /// Days until it expires.
        #[arg(long, default_value_t = colo_catalog::auth::DEFAULT_TOKEN_DAYS, conflicts_with = "never_expires")]
        expires_days: i64,
        #[arg(long)]
        never_expires: bool,
        /// What it is for (shown in listings).
        #[arg(long, default_value = "")]
        label: String,
    },
    /// Tokens (of USER), without their text.
    List {
        #[arg(long)]
        user: Option<String>,
    },
    Revoke {
        id: i64,
    },
}

#[derive(Subcommand)]
pub enum TeamCommand {
    Add {
        name: String,
        #[arg(long = "member")]
        members: Vec<String>,
    },
}

#[derive(Subcommand)]
pub enum VolumeCommand {
    /// Add the volume described in FILE (one `[[volume]]` table, the keys of colo.toml) for a
    /// user, a team or the archive. Its secrets are stored sealed.
    Add {
        /// A TOML file with one [[volume]] table (or its keys at the top).
        #[arg(long)]
        from: PathBuf,
        #[arg(long, conflicts_with_all = ["team", "archive"])]
        owner: Option<String>,
        #[arg(long, conflicts_with = "archive")]
        team: Option<String>,
        #[arg(long)]
        archive: bool,
        /// Archive volumes: seen (read-only) by every user.
        #[arg(long, requires = "archive")]
        public: bool,
        /// Add it without first checking that it answers.
        #[arg(long)]
        no_check: bool,
    },
    /// Every volume (or those USER sees, with their access), credentials masked.
    List {
        #[arg(long)]
        user: Option<String>,
    },
    /// Remove VOLUME (`name` for archive volumes, `owner/name` otherwise).
    Remove { volume: String },
    /// Grant VOLUME to a user or a team.
    Grant {
        volume: String,
        #[arg(long, conflicts_with = "team", required_unless_present = "team")]
        user: Option<String>,
        #[arg(long)]
        team: Option<String>,
        #[arg(long)]
        read_write: bool,
    },
    Revoke {
        volume: String,
        #[arg(long, conflicts_with = "team", required_unless_present = "team")]
        user: Option<String>,
        #[arg(long)]
        team: Option<String>,
    },
}

#[derive(Args)]
pub struct MountArgs {
    /// The config file (default: ./colo.toml).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Mount root (overrides `mount_root`; default /media/data).
    #[arg(long)]
    pub root: Option<PathBuf>,
}

#[derive(Args)]
pub struct VolumesArgs {
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Seconds to wait for each volume to answer.
    #[arg(long, default_value_t = 15)]
    pub timeout: u64,
}

#[derive(Args)]
pub struct UpArgs {
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// Address for the services (overrides `[services] listen`; default 127.0.0.1:8765).
    #[arg(long)]
    pub listen: Option<String>,
}

#[derive(Args)]
pub struct ServeArgs {
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Address to listen on (default 127.0.0.1:8765).
    #[arg(long)]
    pub listen: Option<String>,
}

#[derive(Subcommand)]
pub enum IngestCommand {
    /// Publish a catalogue (Parquet, CSV, VOTable or FITS binary table) as a TAP table,
    /// HEALPix-partitioned Parquet plus an editable descriptor.
    Catalog(CatalogArgs),
    /// Publish the FITS images and cubes under VOLUME[/PREFIX] in ivoa.obscore (SIA, DataLink,
    /// SODA): only headers are read, and a rerun reads only new or changed files.
    Images(ImagesArgs),
}

#[derive(Args)]
pub struct CatalogArgs {
    /// The catalogue: a local file, or a path inside --volume.
    pub source: String,
    /// ADQL name to publish it as: schema.table.
    #[arg(long)]
    pub table: String,
    /// Read the source from this configured volume (needs --config).
    #[arg(long)]
    pub volume: Option<String>,
    /// Right ascension column (degrees, ICRS); guessed from common names when absent.
    #[arg(long, requires = "dec")]
    pub ra: Option<String>,
    /// Declination column (degrees, ICRS).
    #[arg(long, requires = "ra")]
    pub dec: Option<String>,
    /// Table description.
    #[arg(long)]
    pub description: Option<String>,
    /// Publish to this folder on a configured volume (VOLUME or VOLUME/FOLDER, e.g.
    /// archive/tables; needs --config) instead of the local tables folder. The services read it
    /// there when [services] table_volumes lists it.
    #[arg(long, value_name = "VOLUME[/FOLDER]")]
    pub to: Option<String>,
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

#[derive(Args)]
pub struct ImagesArgs {
    /// VOLUME or VOLUME/PREFIX, a volume of the config.
    pub target: String,
    /// obs_collection (default: the volume name).
    #[arg(long)]
    pub collection: Option<String>,
    /// calib_level of the collection (default 2).
    #[arg(long)]
    pub calib_level: Option<i32>,
    /// facility_name where headers have no TELESCOP.
    #[arg(long)]
    pub facility: Option<String>,
    /// instrument_name where headers have no INSTRUME.
    #[arg(long)]
    pub instrument: Option<String>,
    /// Authority of the dataset identifiers (ivo://AUTHORITY/...; default colo.local).
    #[arg(long)]
    pub authority: Option<String>,
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct ApiArgs {
    /// The colo server (as `colo up` printed it).
    #[arg(
        long,
        env = "COLO_URL",
        default_value = "http://127.0.0.1:8765",
        global = true
    )]
    pub url: String,
    /// Your token (`colo user add` or `colo token create` printed it).
    #[arg(long, env = "COLO_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
}

#[derive(Subcommand)]
pub enum LabCommand {
    /// Launch IMAGE (a datalab image of the catalogue: `colo catalog search type:datalab-image`);
    /// what follows `--` is passed to it (a headless runner's script).
    Create {
        image: String,
        #[arg(long)]
        name: Option<String>,
        /// A volume of yours (its folder name); repeat for more; all of them if none is given.
        #[arg(long = "volume")]
        volumes: Vec<String>,
        /// Cores (0.5 = half a core).
        #[arg(long)]
        cpu: Option<f64>,
        #[arg(long)]
        memory_mib: Option<u64>,
        /// Seconds it may run before it expires (renew extends it).
        #[arg(long)]
        lifetime: Option<u64>,
        /// Forget it once it has ended.
        #[arg(long)]
        remove_when_finished: bool,
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Your labs (and those shared with you).
    Ps,
    /// Its output; `-f` follows it until the lab ends.
    Logs {
        id: String,
        #[arg(short, long)]
        follow: bool,
    },
    /// Its lifecycle, one event a line; `-f` follows it until the lab ends.
    Events {
        id: String,
        #[arg(short, long)]
        follow: bool,
    },
    /// Its address (web labs).
    Open {
        id: String,
    },
    Renew {
        id: String,
        #[arg(long)]
        seconds: Option<u64>,
    },
    Share {
        id: String,
        user: String,
    },
    Unshare {
        id: String,
        user: String,
    },
    Stop {
        id: String,
    },
    /// Stop it if it runs and forget it.
    Delete {
        id: String,
    },
}
