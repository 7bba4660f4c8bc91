//! The GraphQL API over the catalog: the schema (queries `me`, `search`, `volumes`, `datasets`,
//! `datalabImages`; mutations `addVolume`, `addVolumeFromCatalog`, `removeVolume`, `grantVolume`,
//! `revokeVolume`, `addSelectionToVolume`, `copySelection`, `createToken`; the datalabs' part in
//! [`crate::graphql_labs`], subscriptions in [`crate::graphql_live`]), each resolver a thin call into [`Catalog`] — which is where every
//! access decision is made — and one mapping of [`CatalogError`] to GraphQL errors with a `code`
//! extension (`BAD_USER_INPUT`, `UNAUTHENTICATED`, `FORBIDDEN`, `NOT_FOUND`, `CONFLICT`,
//! `INTERNAL`; an internal cause is logged, not shown).
//!
//! The caller (from the bearer token or the session cookie, [`crate::http`]) is in the request's
//! data; queries of public things (the catalogue) need none. Depth and complexity are limited so a
//! deeply nested or huge query is refused before it runs. The schema is committed as SDL
//! (`launcher/catalog/schema.graphql`); a test fails when it changes without that file.

use crate::Catalog;
use crate::auth::{Caller, Scope, Scopes};
use crate::error::{CatalogError, ErrorKind};
use crate::grants::{Access, Grantee, VisibleVolume};
use crate::graphql_labs::{Datalabs, LabMutation, LabQuery};
use crate::graphql_live::LabSubscription;
use crate::items::{CatalogItem as Item, SearchResult as Found};
use crate::search_query::SearchQuery;
use crate::selection_copy::CopyReport;
use crate::selections::{SelectedFile, SelectionRecord};
use crate::volumes::{Owner, check_volume_answers};
use async_graphql::{
    Context, Enum, ErrorExtensions, InputObject, MergedObject, MergedSubscription, Object, Schema,
    SimpleObject,
};
use colo_connectors::{SecretSource, SecretString, VolumeConfig};
use std::sync::Arc;
use std::time::Duration;

pub type ColoSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// The whole query and mutation roots: the catalog's and the datalabs' ([`crate::graphql_labs`]).
#[derive(MergedObject, Default)]
pub struct QueryRoot(CatalogQuery, LabQuery);

#[derive(MergedObject, Default)]
pub struct MutationRoot(CatalogMutation, LabMutation);

/// The subscriptions: a datalab's events and log as they happen.
#[derive(MergedSubscription, Default)]
pub struct SubscriptionRoot(LabSubscription);

/// What the launcher wires into the API: the archive's files (for selections) and the labs'
/// runner (for datalabs). Without them those parts answer that this server lacks them.
#[derive(Clone, Default)]
pub struct Wiring {
    pub archive: Option<Arc<dyn ArchiveFiles>>,
    pub labs: Option<Arc<dyn Datalabs>>,
}

/// The archive's files as the VO services know them (the catalog does not know `ivoa.obscore`,
/// nor the operator's volumes' credentials).
pub trait ArchiveFiles: Send + Sync {
    /// The files a selection names: from an ADQL query on `ivoa.obscore`, or from dataset
    /// identifiers. The error text says what is wrong with the selection.
    fn select<'a>(
        &'a self,
        adql: Option<String>,
        dids: Vec<String>,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<Output = std::result::Result<Vec<SelectedFile>, String>>
                + Send
                + 'a,
        >,
    >;

    /// The connector of the archive volume `volume` (to copy a selection's files from).
    fn connector(&self, volume: &str) -> Option<Arc<dyn colo_connectors::Connector>>;
}

/// Deepest nesting of a query: the schema's own queries need 4, the standard introspection query
/// that clients send to validate against the schema 13.
pub const MAX_DEPTH: usize = 16;
/// Most fields a query may select, all levels together (the standard introspection query: under
/// 300).
pub const MAX_COMPLEXITY: usize = 1000;

pub fn schema(catalog: Arc<Catalog>, wiring: Wiring) -> ColoSchema {
    Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        SubscriptionRoot::default(),
    )
    .data(catalog)
    .data(wiring.archive)
    .data(wiring.labs)
    .data(Arc::new(crate::graphql_live::StreamCounts::default()))
    .limit_depth(MAX_DEPTH)
    .limit_complexity(MAX_COMPLEXITY)
    .limit_recursive_depth(32)
    .finish()
}

/// The GraphQL code of an error kind.
pub fn code(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidInput => "BAD_USER_INPUT",
        ErrorKind::Unauthenticated => "UNAUTHENTICATED",
        ErrorKind::Forbidden => "FORBIDDEN",
        ErrorKind::NotFound => "NOT_FOUND",
        ErrorKind::Conflict => "CONFLICT",
        ErrorKind::Internal => "INTERNAL",
    }
}

pub(crate) fn gql(e: CatalogError) -> async_graphql::Error {
    let kind = e.kind();
    async_graphql::Error::new(e.shown_message("a GraphQL request"))
        .extend_with(|_, ext| ext.set("code", code(kind)))
}

type Result<T> = std::result::Result<T, async_graphql::Error>;

pub(crate) fn catalog<'a>(ctx: &Context<'a>) -> Result<&'a Arc<Catalog>> {
    ctx.data::<Arc<Catalog>>()
}

fn archive_files<'a>(ctx: &Context<'a>) -> Result<&'a Arc<dyn ArchiveFiles>> {
    ctx.data::<Option<Arc<dyn ArchiveFiles>>>()?
        .as_ref()
        .ok_or_else(|| {
            gql(CatalogError::BadRequest {
                detail: "selections need the VO services (colo up or colo serve)".into(),
            })
        })
}

/// The caller, holding `scope`.
pub(crate) fn caller<'a>(ctx: &Context<'a>, scope: Scope) -> Result<&'a Caller> {
    let caller = ctx.data_opt::<Caller>().ok_or_else(|| {
        gql(CatalogError::Unauthenticated {
            reason: "this needs a token (Authorization: Bearer colo_…)",
        })
    })?;
    caller.require(scope).map_err(gql)?;
    Ok(caller)
}

#[derive(SimpleObject)]
pub struct User {
    pub name: String,
    pub admin: bool,
    /// The scopes of the token used.
    pub scopes: Vec<String>,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "crate::grants::Access")]
pub enum VolumeAccess {
    ReadOnly,
    ReadWrite,
}

#[derive(SimpleObject)]
pub struct Volume {
    /// Its folder name in the caller's view (`/media/data/<name>` in a datalab).
    pub name: String,
    /// How to name it in mutations: `name` (archive) or `owner/name`.
    pub reference: String,
    /// archive, user or team.
    pub kind: String,
    pub owner: Option<String>,
    pub access: VolumeAccess,
    /// The URL, without any password.
    pub url: String,
    /// `key=*****` for each stored secret: what is set, never its value.
    pub credentials: Vec<String>,
    /// Selection volumes: the query (or identifiers) that chose the files, and how many.
    pub selection_query: Option<String>,
    pub files: Option<u64>,
}

impl From<SelectionRecord> for Volume {
    fn from(s: SelectionRecord) -> Volume {
        Volume {
            reference: format!("{}/{}", s.owner, s.name),
            kind: "selection".into(),
            owner: Some(s.owner),
            access: VolumeAccess::ReadOnly,
            url: format!(
                "selection of {} file(s) on volume {}",
                s.files.len(),
                s.volume
            ),
            credentials: Vec::new(),
            selection_query: Some(s.query),
            files: Some(s.files.len() as u64),
            name: s.name,
        }
    }
}

impl From<VisibleVolume> for Volume {
    fn from(v: VisibleVolume) -> Volume {
        Volume {
            reference: v.record.reference(),
            kind: v.record.owner.kind().as_str().into(),
            owner: v.record.owner.name().map(str::to_string),
            access: v.access.into(),
            url: v.record.display_url().to_string(),
            credentials: v
                .record
                .secret_keys
                .iter()
                .map(|k| format!("{k}=*****"))
                .collect(),
            selection_query: None,
            files: None,
            name: v.view_name,
        }
    }
}

/// What `copySelection` did.
#[derive(SimpleObject)]
pub struct SelectionCopy {
    /// The volume and the folder in it that hold the copies.
    pub volume: String,
    pub folder: String,
    /// Files copied now, and their bytes.
    pub copied: u64,
    pub bytes: u64,
    /// Files that an earlier copy had put there.
    pub already_there: u64,
}

impl From<CopyReport> for SelectionCopy {
    fn from(r: CopyReport) -> SelectionCopy {
        SelectionCopy {
            volume: r.volume,
            folder: r.folder,
            copied: r.copied,
            bytes: r.bytes,
            already_there: r.already_there,
        }
    }
}

#[derive(SimpleObject)]
pub struct Property {
    pub name: String,
    pub value: String,
}

#[derive(SimpleObject)]
pub struct CatalogItem {
    /// dataset, volume or datalab-image.
    #[graphql(name = "type")]
    pub kind: String,
    pub key: String,
    pub title: String,
    pub description: String,
    pub mission: String,
    pub instrument: String,
    pub domain: String,
    pub wavelength: String,
    pub properties: Vec<Property>,
}

impl From<Item> for CatalogItem {
    fn from(i: Item) -> CatalogItem {
        CatalogItem {
            kind: i.kind.as_str().into(),
            key: i.key,
            title: i.title,
            description: i.description,
            mission: i.mission,
            instrument: i.instrument,
            domain: i.domain,
            wavelength: i.wavelength,
            properties: i
                .properties
                .into_iter()
                .map(|(name, value)| Property { name, value })
                .collect(),
        }
    }
}

#[derive(SimpleObject)]
pub struct FacetValue {
    pub value: String,
    pub count: u64,
}

#[derive(SimpleObject)]
pub struct FacetCounts {
    /// type, domain, mission, instrument or wavelength.
    pub name: String,
    pub values: Vec<FacetValue>,
}

#[derive(SimpleObject)]
pub struct SearchResult {
    pub total: u64,
    pub items: Vec<CatalogItem>,
    pub facets: Vec<FacetCounts>,
}

impl From<Found> for SearchResult {
    fn from(r: Found) -> SearchResult {
        SearchResult {
            total: r.total,
            items: r.items.into_iter().map(Into::into).collect(),
            facets: r
                .facets
                .into_iter()
                .map(|(name, values)| FacetCounts {
                    name: name.to_string(),
                    values: values
                        .into_iter()
                        .map(|(value, count)| FacetValue { value, count })
                        .collect(),
                })
                .collect(),
        }
    }
}

#[derive(SimpleObject)]
pub struct NewToken {
    pub id: i64,
    /// The token: shown in this answer only.
    pub token: String,
    pub scopes: Vec<String>,
    /// Unix seconds; null: never.
    pub expires_at: Option<i64>,
}

/// A volume of the caller's own ("+ add custom"): the keys of colo.toml's `[[volume]]`.
#[derive(InputObject)]
pub struct AddVolumeInput {
    pub name: String,
    /// s3://bucket/prefix, webdav(s)://host/path, ftp://user@host/path, sftp://user@host/path, …
    pub url: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// SFTP: the private key itself (OpenSSH format).
    pub private_key: Option<String>,
    /// SFTP: host-key policy, strict (default), accept or add.
    pub known_hosts: Option<String>,
    /// Default read-write.
    pub access: Option<VolumeAccess>,
    /// For a team's volume: the team (the caller must be a member).
    pub team: Option<String>,
}

fn scopes_text(s: Scopes) -> Vec<String> {
    s.iter().map(|s| s.as_str().to_string()).collect()
}

#[derive(Default)]
pub struct CatalogQuery;

#[Object]
impl CatalogQuery {
    /// Who the token belongs to.
    async fn me(&self, ctx: &Context<'_>) -> Result<User> {
        let c = caller(ctx, Scope::CatalogRead)?;
        Ok(User {
            name: c.user.name.clone(),
            admin: c.user.admin,
            scopes: scopes_text(c.scopes),
        })
    }

    /// The catalogue: free words and facets (`domain:"Space Science" type:dataset mission:Gaia
    /// parallax`), with counts per facet value. Public: no token needed.
    async fn search(
        &self,
        ctx: &Context<'_>,
        #[graphql(default)] q: String,
        #[graphql(default = 20)] first: u64,
        #[graphql(default)] offset: u64,
    ) -> Result<SearchResult> {
        let query = SearchQuery::parse(&q).map_err(gql)?;
        Ok(catalog(ctx)?
            .search(&query, first, offset)
            .map_err(gql)?
            .into())
    }

    /// The volumes the caller sees, as their datalabs mount them.
    async fn volumes(&self, ctx: &Context<'_>) -> Result<Vec<Volume>> {
        let c = caller(ctx, Scope::Volumes)?;
        let cat = catalog(ctx)?;
        let visible = cat.visible_volumes(&c.user.name).map_err(gql)?;
        let selections = cat.selections(&c.user.name).map_err(gql)?;
        Ok(visible
            .into_iter()
            .map(Volume::from)
            .chain(selections.into_iter().map(Volume::from))
            .collect())
    }

    /// The catalogue's datasets (optionally narrowed by a search).
    async fn datasets(
        &self,
        ctx: &Context<'_>,
        #[graphql(default)] q: String,
    ) -> Result<Vec<CatalogItem>> {
        let mut query = SearchQuery::parse(&q).map_err(gql)?;
        query
            .filters
            .push((crate::search_query::Facet::Type, "dataset".into()));
        let found = catalog(ctx)?
            .search(&query, crate::items::MAX_PAGE, 0)
            .map_err(gql)?;
        Ok(found.items.into_iter().map(Into::into).collect())
    }

    /// The tools a datalab can be launched with.
    async fn datalab_images(&self, ctx: &Context<'_>) -> Result<Vec<CatalogItem>> {
        let query = SearchQuery::parse("type:datalab-image").map_err(gql)?;
        let found = catalog(ctx)?
            .search(&query, crate::items::MAX_PAGE, 0)
            .map_err(gql)?;
        Ok(found.items.into_iter().map(Into::into).collect())
    }
}

#[derive(Default)]
pub struct CatalogMutation;

fn find_visible(cat: &Catalog, c: &Caller, reference: &str) -> Result<Volume> {
    cat.visible_volume(c, reference)
        .map_err(gql)?
        .map(Into::into)
        .ok_or_else(|| {
            gql(CatalogError::NotFound {
                what: "volume",
                name: reference.chars().take(200).collect(),
            })
        })
}

#[Object]
impl CatalogMutation {
    /// Adds a volume of the caller's own (or their team's). It is checked first: a wrong URL or
    /// password is refused here, naming the volume, with the secret masked.
    async fn add_volume(&self, ctx: &Context<'_>, input: AddVolumeInput) -> Result<Volume> {
        let c = caller(ctx, Scope::Volumes)?;
        let cat = catalog(ctx)?;
        let secret = |s: Option<String>| s.map(|v| SecretSource::Inline(SecretString::new(v)));
        let config = VolumeConfig {
            name: Some(input.name.clone()),
            url: Some(input.url),
            username: input.username,
            password: secret(input.password),
            endpoint: input.endpoint,
            region: input.region,
            access_key_id: input.access_key_id,
            secret_access_key: secret(input.secret_access_key),
            private_key: secret(input.private_key),
            known_hosts: input.known_hosts,
            mode: Some(match input.access.map(Access::from) {
                Some(Access::ReadOnly) => "read-only".into(),
                _ => "read-write".into(),
            }),
            ..Default::default()
        };
        let owner = match input.team {
            Some(t) => Owner::Team(t),
            None => Owner::User(c.user.name.clone()),
        };
        // Refusals that need no connection come first (names, schemes, server files).
        let record = {
            let probe = cat
                .validate_volume(Some(c), &owner, false, &config)
                .map_err(gql)?;
            check_volume_answers(&probe, Duration::from_secs(15))
                .await
                .map_err(gql)?;
            cat.add_volume(Some(c), owner, false, config).map_err(gql)?
        };
        find_visible(cat, c, &record.reference())
    }

    /// Puts a volume the catalogue describes (an archive volume) among the caller's volumes: public
    /// ones are there already; others need a grant from an admin.
    async fn add_volume_from_catalog(&self, ctx: &Context<'_>, key: String) -> Result<Volume> {
        let c = caller(ctx, Scope::Volumes)?;
        find_visible(catalog(ctx)?, c, &key)
    }

    /// Removes one of the caller's volumes (admins: any).
    async fn remove_volume(&self, ctx: &Context<'_>, reference: String) -> Result<bool> {
        let c = caller(ctx, Scope::Volumes)?;
        catalog(ctx)?
            .remove_volume(Some(c), &reference)
            .map_err(gql)?;
        Ok(true)
    }

    /// Shares one of the caller's volumes with a user or a team.
    async fn grant_volume(
        &self,
        ctx: &Context<'_>,
        reference: String,
        user: Option<String>,
        team: Option<String>,
        #[graphql(default_with = "VolumeAccess::ReadOnly")] access: VolumeAccess,
    ) -> Result<bool> {
        let c = caller(ctx, Scope::Share)?;
        let to = grantee(user, team)?;
        catalog(ctx)?
            .grant(Some(c), &reference, &to, access.into())
            .map_err(gql)?;
        Ok(true)
    }

    async fn revoke_volume(
        &self,
        ctx: &Context<'_>,
        reference: String,
        user: Option<String>,
        team: Option<String>,
    ) -> Result<bool> {
        let c = caller(ctx, Scope::Share)?;
        let from = grantee(user, team)?;
        catalog(ctx)?
            .revoke(Some(c), &reference, &from)
            .map_err(gql)?;
        Ok(true)
    }

    /// "Add the selected to a data volume": a read-only volume `name` of the caller's whose files
    /// are the archive files an ADQL query on `ivoa.obscore` selects (it must return
    /// `obs_publisher_did`), or those of the given dataset identifiers. Nothing is copied: each
    /// file is fetched when first read.
    async fn add_selection_to_volume(
        &self,
        ctx: &Context<'_>,
        name: String,
        adql: Option<String>,
        dids: Option<Vec<String>>,
    ) -> Result<Volume> {
        let dids = dids.unwrap_or_default();
        let c = caller(ctx, Scope::Volumes)?;
        let cat = catalog(ctx)?;
        let selector = archive_files(ctx)?;
        if adql.is_some() != dids.is_empty() {
            return Err(gql(CatalogError::BadRequest {
                detail: "give either adql or dids".into(),
            }));
        }
        let query = adql.clone().unwrap_or_else(|| dids.join(" "));
        let files = selector.select(adql, dids).await.map_err(|detail| {
            gql(CatalogError::BadVolume {
                volume: name.chars().take(64).collect(),
                detail,
            })
        })?;
        Ok(cat
            .add_selection(c, &name, &query, &files)
            .map_err(gql)?
            .into())
    }

    /// Copies the files of the caller's selection `name` into their writable volume `into`, under
    /// `folder` (default: the selection's name), for them to change or keep. Nothing of theirs is
    /// overwritten; running it again finishes a copy cut off half-way.
    async fn copy_selection(
        &self,
        ctx: &Context<'_>,
        name: String,
        into: String,
        folder: Option<String>,
    ) -> Result<SelectionCopy> {
        let c = caller(ctx, Scope::Volumes)?;
        let cat = catalog(ctx)?;
        let archive = archive_files(ctx)?;
        let volume = cat
            .selections(&c.user.name)
            .map_err(gql)?
            .into_iter()
            .find(|s| s.name == name)
            .map(|s| s.volume)
            .ok_or_else(|| {
                gql(CatalogError::NotFound {
                    what: "selection",
                    name: name.chars().take(64).collect(),
                })
            })?;
        let source = archive.connector(&volume).ok_or_else(|| {
            gql(CatalogError::BadRequest {
                detail: format!(
                    "the archive volume '{volume}' of selection '{name}' is not served here"
                ),
            })
        })?;
        let report = cat
            .copy_selection(c, &name, &into, folder.as_deref(), source)
            .await
            .map_err(gql)?;
        Ok(report.into())
    }

    /// Removes one of the caller's selection volumes (the archive files stay).
    async fn remove_selection(&self, ctx: &Context<'_>, name: String) -> Result<bool> {
        let c = caller(ctx, Scope::Volumes)?;
        catalog(ctx)?.remove_selection(c, &name).map_err(gql)?;
        Ok(true)
    }

    /// A new token for the caller, with at most the scopes of the token used.
    async fn create_token(
        &self,
        ctx: &Context<'_>,
        scopes: Option<Vec<String>>,
        #[graphql(default = 90)] expires_days: i64,
        #[graphql(default)] label: String,
    ) -> Result<NewToken> {
        let c = caller(ctx, Scope::CatalogRead)?;
        let wanted = match scopes {
            Some(list) => Scopes::parse(&list.join(" ")).map_err(gql)?,
            None => c.scopes,
        };
        if !wanted.is_subset_of(c.scopes) {
            return Err(gql(CatalogError::Forbidden {
                reason: "a token cannot make a token with more scopes than its own".into(),
            }));
        }
        if !(1..=3650).contains(&expires_days) {
            return Err(gql(CatalogError::BadRequest {
                detail: "expiresDays: 1 to 3650".into(),
            }));
        }
        let t = catalog(ctx)?
            .create_token(&c.user.name, Some(wanted), Some(expires_days), &label)
            .map_err(gql)?;
        Ok(NewToken {
            id: t.id,
            scopes: scopes_text(t.scopes),
            expires_at: t.expires_at,
            token: t.token,
        })
    }
}

fn grantee(user: Option<String>, team: Option<String>) -> Result<Grantee> {
    match (user, team) {
        (Some(u), None) => Ok(Grantee::User(u)),
        (None, Some(t)) => Ok(Grantee::Team(t)),
        _ => Err(gql(CatalogError::BadRequest {
            detail: "give either user or team".into(),
        })),
    }
}
