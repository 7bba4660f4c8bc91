//! The datalab part of the GraphQL API: `datalabs`, `datalab(id)`, `createDatalab` (ESA
//! Datalabs' `createDatalab(sapId: "…") { datalab { id base } }` verbatim, or a full `input`),
//! `stopDatalab`, `destroyDatalab`, `renewDatalab`, `shareDatalab`, `unshareDatalab`. The catalog decides (image, volumes, resources, who may see a
//! lab: [`crate::labs`]); the launcher behind [`Datalabs`] runs the lab and knows its events and
//! log. A lab of someone else's is "no such lab", as everywhere.

use crate::Catalog;
use crate::auth::Scope;
use crate::error::CatalogError;
use crate::graphql::{caller, catalog, gql};
use crate::labs::{LabRecord, LabRequest};
use async_graphql::{Context, InputObject, Object, SimpleObject};
use std::sync::Arc;

type Result<T> = std::result::Result<T, async_graphql::Error>;

/// One step of a lab's lifecycle.
#[derive(SimpleObject, Clone, Debug, PartialEq, Eq)]
pub struct LabStep {
    /// PENDING, MOUNTING, STARTING, RUNNING, STOPPING, STOPPED or FAILED.
    pub state: String,
    pub reason: String,
    pub at_secs: u64,
}

/// The launcher that runs labs (colo's local backend), as the API needs it.
pub trait Datalabs: Send + Sync {
    /// Starts the recorded lab; an error says why it could not even begin.
    fn start(&self, lab: &LabRecord) -> std::result::Result<(), String>;
    /// Asks the lab to stop (its events say when it has).
    fn stop(&self, lab_id: &str) -> std::result::Result<(), String>;
    /// Its steps so far (empty for a lab this colo never ran).
    fn steps(&self, lab_id: &str) -> Vec<LabStep>;
    /// The end of its log (stdout and stderr).
    fn log_tail(&self, lab_id: &str, bytes: u64) -> std::result::Result<String, String>;
    /// When it expires (seconds since the epoch), while it runs.
    fn expires_at(&self, lab_id: &str) -> Option<u64>;
    /// Moves its expiry to `secs` from now; the new expiry.
    fn renew(&self, lab_id: &str, secs: u64) -> std::result::Result<u64, String>;
    /// Its steps so far and then each one as it happens (`None`: this launcher never ran it).
    fn watch(&self, lab_id: &str) -> Option<(Vec<LabStep>, LabStepStream)>;
    /// At most `max_bytes` of its log from byte `offset` on, and the log's length now.
    fn log_from(
        &self,
        lab_id: &str,
        offset: u64,
        max_bytes: u64,
    ) -> std::result::Result<(Vec<u8>, u64), String>;
}

/// A lab's steps as they happen.
pub type LabStepStream = std::pin::Pin<Box<dyn futures::Stream<Item = LabStep> + Send>>;

pub(crate) fn is_running(runner: &Arc<dyn Datalabs>, lab_id: &str) -> bool {
    runner
        .steps(lab_id)
        .last()
        .is_some_and(|s| s.state != "STOPPED" && s.state != "FAILED")
}

pub(crate) fn launcher<'a>(ctx: &Context<'a>) -> Result<&'a Arc<dyn Datalabs>> {
    ctx.data::<Option<Arc<dyn Datalabs>>>()?
        .as_ref()
        .ok_or_else(|| {
            gql(CatalogError::BadRequest {
                detail: "datalabs run under `colo up` (this server has no launcher)".into(),
            })
        })
}

#[derive(SimpleObject)]
pub struct LabVolumeView {
    /// Its folder at /media/data/ in the lab.
    pub name: String,
    pub read_only: bool,
}

pub struct Datalab(LabRecord);

#[Object]
impl Datalab {
    async fn id(&self) -> &str {
        &self.0.id
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// The catalogue's datalab image it runs.
    async fn image(&self) -> &str {
        &self.0.image
    }
    async fn owner(&self) -> &str {
        &self.0.owner
    }
    /// Where its web interface is (`/labs/<id>/` on this server), for labs that have one.
    async fn base(&self) -> Option<String> {
        self.0
            .plan
            .interface
            .as_ref()
            .map(|_| format!("/labs/{}/", self.0.id))
    }
    /// The users it is shared with.
    async fn shared_with(&self) -> &[String] {
        &self.0.shared_with
    }
    async fn cpu_millis(&self) -> u32 {
        self.0.plan.cpu_millis
    }
    async fn memory_mib(&self) -> u64 {
        self.0.plan.memory_bytes >> 20
    }
    async fn volumes(&self) -> Vec<LabVolumeView> {
        self.0
            .plan
            .volumes
            .iter()
            .map(|v| LabVolumeView {
                name: v.view.clone(),
                read_only: v.read_only,
            })
            .collect()
    }
    /// Its current state (STOPPED for a lab no launcher runs any more).
    async fn state(&self, ctx: &Context<'_>) -> Result<String> {
        Ok(launcher(ctx)?
            .steps(&self.0.id)
            .last()
            .map_or_else(|| "STOPPED".to_string(), |s| s.state.clone()))
    }
    /// Why it is in that state.
    async fn reason(&self, ctx: &Context<'_>) -> Result<String> {
        Ok(launcher(ctx)?.steps(&self.0.id).last().map_or_else(
            || "not running under this colo".to_string(),
            |s| s.reason.clone(),
        ))
    }
    /// When it expires unless renewed (seconds since the epoch), while it runs.
    async fn expires_at(&self, ctx: &Context<'_>) -> Result<Option<u64>> {
        Ok(launcher(ctx)?.expires_at(&self.0.id))
    }
    /// Web labs: culled after this many seconds unused (never while a kernel computes).
    async fn idle_timeout_seconds(&self) -> Option<u64> {
        self.0.plan.idle_timeout_secs
    }
    async fn remove_when_finished(&self) -> bool {
        self.0.plan.remove_when_finished
    }
    /// Every step so far, first first.
    async fn events(&self, ctx: &Context<'_>) -> Result<Vec<LabStep>> {
        Ok(launcher(ctx)?.steps(&self.0.id))
    }
    /// The last `tailBytes` of its output.
    async fn log(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 65536)] tail_bytes: u64,
    ) -> Result<String> {
        launcher(ctx)?
            .log_tail(&self.0.id, tail_bytes.min(1 << 20))
            .map_err(|detail| gql(CatalogError::BadRequest { detail }))
    }
}

#[derive(InputObject)]
pub struct CreateDatalabInput {
    pub name: String,
    /// The key of a datalab image of the catalogue (`search(q: "type:datalab-image")`).
    pub image: String,
    /// Folder names of the caller's volumes (as in `volumes { name }`); all of them if omitted.
    pub volumes: Option<Vec<String>>,
    pub cpu_millis: Option<u32>,
    pub memory_mib: Option<u64>,
    /// Appended to the image's command (a headless runner's script).
    #[graphql(default)]
    pub args: Vec<String>,
    /// How long it may run before it expires (renewDatalab extends it); the image's default if
    /// omitted.
    pub lifetime_seconds: Option<u64>,
    /// Web labs: culled after this long unused.
    pub idle_timeout_seconds: Option<u64>,
    /// Forget the lab once it has ended (headless runs).
    #[graphql(default)]
    pub remove_when_finished: bool,
}

/// What `createDatalab` answers (the shape ESA Datalabs' API has).
#[derive(SimpleObject)]
pub struct CreatedDatalab {
    pub datalab: Datalab,
}

#[derive(Default)]
pub struct LabQuery;

#[Object]
impl LabQuery {
    /// The caller's datalabs (an admin's: everyone's), newest first.
    async fn datalabs(&self, ctx: &Context<'_>) -> Result<Vec<Datalab>> {
        let c = caller(ctx, Scope::Labs)?;
        Ok(catalog(ctx)?
            .labs(c)
            .map_err(gql)?
            .into_iter()
            .map(Datalab)
            .collect())
    }

    async fn datalab(&self, ctx: &Context<'_>, id: String) -> Result<Datalab> {
        let c = caller(ctx, Scope::Labs)?;
        Ok(Datalab(catalog(ctx)?.lab(c, &id).map_err(gql)?))
    }
}

#[derive(Default)]
pub struct LabMutation;

fn stop_lab(cat: &Catalog, ctx: &Context<'_>, id: &str) -> Result<LabRecord> {
    let c = caller(ctx, Scope::Labs)?;
    let lab = cat.managed_lab(c, id).map_err(gql)?;
    if is_running(launcher(ctx)?, &lab.id) {
        launcher(ctx)?
            .stop(&lab.id)
            .map_err(|detail| gql(CatalogError::BadRequest { detail }))?;
    }
    Ok(lab)
}

#[Object]
impl LabMutation {
    /// Launches a datalab: the image's command as the caller's own account, with the chosen
    /// volumes (and nothing else) at /media/data/<name>, read-only grants read-only, within the
    /// CPU and memory asked. It answers at once (PENDING); `events` and `state` follow it.
    ///
    /// `sapId` alone (as ESA Datalabs' API takes it) launches that image with its defaults and
    /// all the caller's volumes.
    async fn create_datalab(
        &self,
        ctx: &Context<'_>,
        sap_id: Option<String>,
        input: Option<CreateDatalabInput>,
    ) -> Result<CreatedDatalab> {
        let c = caller(ctx, Scope::Labs)?;
        let cat = catalog(ctx)?;
        let runner = launcher(ctx)?;
        let request = match (sap_id, input) {
            (Some(image), None) => LabRequest {
                name: image.clone(),
                image,
                ..Default::default()
            },
            (None, Some(input)) => LabRequest {
                name: input.name,
                image: input.image,
                volumes: input.volumes,
                cpu_millis: input.cpu_millis,
                memory_mib: input.memory_mib,
                args: input.args,
                lifetime_secs: input.lifetime_seconds,
                idle_timeout_secs: input.idle_timeout_seconds,
                remove_when_finished: input.remove_when_finished,
            },
            _ => {
                return Err(gql(CatalogError::BadRequest {
                    detail: "give either sapId (an image key) or input".into(),
                }));
            }
        };
        let lab = cat
            .add_lab(c, &request, &|id| is_running(runner, id))
            .map_err(gql)?;
        if let Err(detail) = runner.start(&lab) {
            let _ = cat.remove_lab(c, &lab.id);
            return Err(gql(CatalogError::BadRequest { detail }));
        }
        Ok(CreatedDatalab {
            datalab: Datalab(lab),
        })
    }

    /// Stops a lab (SIGTERM, then SIGKILL after 10 s); it stays listed, STOPPED.
    async fn stop_datalab(&self, ctx: &Context<'_>, id: String) -> Result<Datalab> {
        Ok(Datalab(stop_lab(catalog(ctx)?, ctx, &id)?))
    }

    /// Moves a running lab's expiry to `seconds` from now (default: its lifetime again).
    async fn renew_datalab(
        &self,
        ctx: &Context<'_>,
        id: String,
        seconds: Option<u64>,
    ) -> Result<Datalab> {
        let c = caller(ctx, Scope::Labs)?;
        let cat = catalog(ctx)?;
        let lab = cat.managed_lab(c, &id).map_err(gql)?;
        let secs = seconds.unwrap_or(lab.plan.lifetime_secs);
        if !(10..=7 * 24 * 3600).contains(&secs) {
            return Err(gql(CatalogError::BadRequest {
                detail: "seconds: 10 to 604800 (7 days)".into(),
            }));
        }
        launcher(ctx)?
            .renew(&lab.id, secs)
            .map_err(|detail| gql(CatalogError::BadRequest { detail }))?;
        Ok(Datalab(lab))
    }

    /// Shares a lab with `user`: they may open it at its `base` and see it (not stop or share it).
    async fn share_datalab(&self, ctx: &Context<'_>, id: String, user: String) -> Result<Datalab> {
        let c = caller(ctx, Scope::Share)?;
        Ok(Datalab(
            catalog(ctx)?.share_lab(c, &id, &user).map_err(gql)?,
        ))
    }

    /// Takes a share back: the user's next request to the lab is refused.
    async fn unshare_datalab(
        &self,
        ctx: &Context<'_>,
        id: String,
        user: String,
    ) -> Result<Datalab> {
        let c = caller(ctx, Scope::Share)?;
        Ok(Datalab(
            catalog(ctx)?.unshare_lab(c, &id, &user).map_err(gql)?,
        ))
    }

    /// Stops a lab if it runs and forgets it.
    async fn destroy_datalab(&self, ctx: &Context<'_>, id: String) -> Result<bool> {
        let cat = catalog(ctx)?;
        let lab = stop_lab(cat, ctx, &id)?;
        let c = caller(ctx, Scope::Labs)?;
        cat.remove_lab(c, &lab.id).map_err(gql)?;
        Ok(true)
    }
}
