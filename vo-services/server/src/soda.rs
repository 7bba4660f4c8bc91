//! SODA 1.0 at `/soda`: `sync`, `async` (UWS 1.1), VOSI capabilities and availability.
//!
//! Parameters: `ID`, a region (`CIRCLE`, `POLYGON` or `POS`), `BAND` (metres), `TIME` (MJD; a
//! dataset whose time range misses it gives no overlap), `POL` (repeatable; all states in one
//! output). No filter at all returns the whole image HDU. A sync request takes one value of each
//! (several POL); an async job takes several IDs, regions and bands and makes one cutout per
//! combination that overlaps the data, each a result named `cutout-N` (SODA 1.0 §3.2: multiple
//! values are the async mode's business). The answer is a FITS file (see [`crate::cutout`]), HTTP
//! 204 (sync) or no result (async) when the constraints miss the data, and errors are `text/plain`
//! starting with `UsageError:`, `MultiValuedParamNotSupported:` or `Error:` (SODA §5.2, DALI §4.2)
//! — in an async job, its `/error` resource.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use colo_astro::cutout::{CutoutSpec, cut};
use colo_astro::dali::{self, Shape};

use crate::AppState;
use crate::error::VoError;
use crate::fault::{self, Protocol};
use crate::http::Root;
use crate::images::ImageState;
use crate::obscore::ImageRecord;
use crate::params::Params;
use crate::uws::http::{JobRunner, Starter, UwsService};
use crate::uws::{Job, JobStore, ResultSink, ResultStream};

/// Most cutouts one async job may make (IDs × regions × bands).
pub const MAX_CUTOUTS_PER_JOB: usize = 1000;

pub fn routes(state: AppState) -> axum::Router {
    let jobs = UwsService {
        jobs: state.cutout_jobs.clone(),
        limits: state.tap.limits.clone(),
        runner: Arc::new(CutoutJobs {
            images: state.images.clone(),
        }),
    };
    axum::Router::new()
        .route("/sync", get(sync).post(sync))
        .route("/capabilities", get(capabilities))
        .route("/availability", get(crate::vosi::availability_handler))
        .with_state(state)
        .nest(
            "/async",
            crate::uws::http::routes()
                .route_layer(axum::middleware::from_fn_with_state(
                    jobs.clone(),
                    crate::uws::http::guard,
                ))
                .with_state(jobs),
        )
}

fn multi_valued(name: &str, message: &str) -> VoError {
    VoError::MultiValued {
        name: name.to_string(),
        message: message.to_string(),
    }
}

/// The constraints of a request, every value of each.
#[derive(Debug, Default)]
pub struct Constraints {
    pub regions: Vec<Shape>,
    /// Vacuum wavelength intervals, metres.
    pub bands_m: Vec<(f64, f64)>,
    /// MJD intervals.
    pub times_mjd: Vec<(f64, f64)>,
    /// Stokes names, all in one output.
    pub pol: Vec<String>,
}

impl Constraints {
    /// Reads CIRCLE, POLYGON, POS, BAND, TIME and POL; RESPONSEFORMAT must be FITS.
    pub fn parse(params: &Params) -> Result<Constraints, VoError> {
        let mut out = Constraints::default();
        for v in params.all("CIRCLE") {
            out.regions.push(dali::circle("CIRCLE", v)?);
        }
        for v in params.all("POLYGON") {
            out.regions.push(dali::polygon("POLYGON", v)?);
        }
        for v in params.all("POS") {
            out.regions.push(dali::pos("POS", v)?);
        }
        for v in params.all("BAND") {
            let (lo, hi) = dali::interval("BAND", v)?;
            if hi <= 0.0 {
                return Err(VoError::bad_parameter(
                    "BAND",
                    format!("{v:?}: wavelengths are positive metres"),
                ));
            }
            out.bands_m.push((lo, hi));
        }
        for v in params.all("TIME") {
            out.times_mjd.push(dali::interval("TIME", v)?);
        }
        out.pol = params
            .all("POL")
            .into_iter()
            .flat_map(|v| v.split_whitespace())
            .map(|s| s.to_ascii_uppercase())
            .collect();
        for format in params.all("RESPONSEFORMAT") {
            let f = format.to_ascii_lowercase();
            if !(f.is_empty() || f.contains("fits")) {
                return Err(VoError::bad_parameter(
                    "RESPONSEFORMAT",
                    format!("{format:?}: cutouts are FITS (application/fits)"),
                ));
            }
        }
        Ok(out)
    }

    /// Refuses more than one region, band or time (a sync request).
    pub fn single(&self) -> Result<(), VoError> {
        if self.regions.len() > 1 {
            return Err(multi_valued(
                "POS",
                "give one region (CIRCLE, POLYGON or POS) per sync request, or use async",
            ));
        }
        if self.bands_m.len() > 1 {
            return Err(multi_valued(
                "BAND",
                "give one BAND per sync request, or use async",
            ));
        }
        if self.times_mjd.len() > 1 {
            return Err(multi_valued(
                "TIME",
                "give one TIME per sync request, or use async",
            ));
        }
        Ok(())
    }

    /// One cutout per region × band (a missing one is no constraint).
    pub fn specs(&self) -> Vec<CutoutSpec> {
        let regions: Vec<Option<Shape>> = if self.regions.is_empty() {
            vec![None]
        } else {
            self.regions.iter().cloned().map(Some).collect()
        };
        let bands: Vec<Option<(f64, f64)>> = if self.bands_m.is_empty() {
            vec![None]
        } else {
            self.bands_m.iter().copied().map(Some).collect()
        };
        let mut specs = Vec::new();
        for region in &regions {
            for band_m in &bands {
                specs.push(CutoutSpec {
                    region: region.clone(),
                    band_m: *band_m,
                    pol: self.pol.clone(),
                });
            }
        }
        specs
    }

    /// Whether the dataset's time range meets any TIME interval (no TIME, or no dates: yes).
    pub fn time_overlaps(&self, record: &ImageRecord) -> bool {
        let (Some(t0), Some(t1)) = (record.t_min, record.t_max) else {
            return true;
        };
        self.times_mjd.is_empty() || self.times_mjd.iter().any(|&(lo, hi)| t1 >= lo && t0 <= hi)
    }
}

/// One cutout of one dataset: the FITS bytes, or `None` when it misses the data.
async fn cut_dataset(
    images: &ImageState,
    record: &ImageRecord,
    spec: &CutoutSpec,
) -> Result<Option<Vec<u8>>, VoError> {
    let image = images.open_hdu(record, record.hdu).await?;
    Ok(cut(
        image.source.as_ref(),
        &image.header,
        image.data_offset,
        spec,
    )
    .await?)
}

async fn sync(State(state): State<AppState>, request: Request) -> Response {
    match sync_cutout(&state, request).await {
        Ok(Some((record, fits))) => {
            let stem = record.obs_id.rsplit('/').next().unwrap_or("cutout");
            (
                [
                    (header::CONTENT_TYPE, "application/fits".to_string()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("inline; filename=\"{stem}_cutout.fits\""),
                    ),
                ],
                fits,
            )
                .into_response()
        }
        Ok(None) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => fault::response(Protocol::Soda, &e),
    }
}

/// A sync cutout: one ID, one region, band and time; `None` when it misses the data.
async fn sync_cutout(
    state: &AppState,
    request: Request,
) -> Result<Option<(&ImageRecord, Vec<u8>)>, VoError> {
    let params = Params::read(request, &state.tap.limits).await?;
    let id = match params.all("ID").as_slice() {
        [] => {
            return Err(VoError::bad_parameter(
                "ID",
                "missing: name the dataset to cut out",
            ));
        }
        [one] => *one,
        _ => {
            return Err(multi_valued(
                "ID",
                "give one ID per sync request, or use async",
            ));
        }
    };
    let constraints = Constraints::parse(&params)?;
    constraints.single()?;
    let record = state.images.find(id)?;
    if !constraints.time_overlaps(record) {
        return Ok(None);
    }
    let spec = constraints.specs().remove(0);
    Ok(cut_dataset(&state.images, record, &spec)
        .await?
        .map(|fits| (record, fits)))
}

/// SODA's async jobs: every ID × region × band, one result per cutout that has data.
struct CutoutJobs {
    images: ImageState,
}

impl JobRunner for CutoutJobs {
    fn start(&self, jobs: &Arc<JobStore>, id: &str, _starter: &Starter) -> Result<Job, VoError> {
        let images = self.images.clone();
        jobs.start(id, move |job, sink| {
            Box::pin(async move { run_cutout_job(&images, &job, &sink).await })
        })
    }
}

async fn run_cutout_job(images: &ImageState, job: &Job, sink: &ResultSink) -> Result<(), VoError> {
    let params = job.params();
    let ids = params.all("ID");
    if ids.is_empty() {
        return Err(VoError::bad_parameter(
            "ID",
            "missing: name the datasets to cut out",
        ));
    }
    let constraints = Constraints::parse(&params)?;
    let records = ids
        .iter()
        .flat_map(|v| v.split(','))
        .filter(|v| !v.trim().is_empty())
        .map(|id| images.find(id))
        .collect::<Result<Vec<_>, _>>()?;
    let specs = constraints.specs();
    let count = records.len() * specs.len();
    if count > MAX_CUTOUTS_PER_JOB {
        return Err(VoError::bad_parameter(
            "ID",
            format!(
                "{count} cutouts requested (IDs × regions × bands); one job makes at most {MAX_CUTOUTS_PER_JOB}"
            ),
        ));
    }
    let mut made = 0usize;
    for record in records {
        if !constraints.time_overlaps(record) {
            continue;
        }
        for spec in &specs {
            if let Some(fits) = cut_dataset(images, record, spec).await? {
                made += 1;
                let stream: ResultStream = Box::pin(futures::stream::once(async move {
                    Ok(bytes::Bytes::from(fits))
                }));
                sink.write(
                    &format!("cutout-{made}"),
                    "fits",
                    "application/fits".into(),
                    false,
                    stream,
                )
                .await?;
            }
        }
    }
    Ok(())
}

async fn capabilities(root: Root) -> Response {
    crate::vosi::image_capabilities(
        &root,
        "soda",
        &[
            ("ivo://ivoa.net/std/SODA#sync-1.0", "sync"),
            ("ivo://ivoa.net/std/SODA#async-1.0", "async"),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, &str)]) -> Params {
        Params::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn spec_from_parameters_and_the_errors_soda_names() {
        let one = Constraints::parse(&values(&[
            ("CIRCLE", "10 20 0.1"),
            ("BAND", "0.0033 0.0034"),
            ("POL", "I"),
            ("POL", "V"),
        ]))
        .expect("valid");
        one.single().expect("one of each");
        let specs = one.specs();
        assert_eq!(specs.len(), 1);
        assert!(specs[0].region.is_some());
        assert_eq!(specs[0].pol, vec!["I", "V"]);
        let two = Constraints::parse(&values(&[
            ("CIRCLE", "10 20 0.1"),
            ("POS", "RANGE 1 2 3 4"),
            ("BAND", "0.1 0.2"),
            ("BAND", "0.3 0.4"),
            ("BAND", "0.5 0.6"),
        ]))
        .expect("valid");
        // The fault word SODA spells each error with.
        let fault = |e: VoError| {
            let message = fault::message(Protocol::Soda, &e);
            message.split(':').next().unwrap_or_default().to_string()
        };
        assert_eq!(
            fault(two.single().expect_err("two regions")),
            "MultiValuedParamNotSupported"
        );
        assert_eq!(two.specs().len(), 6, "regions × bands for async");
        let bad = Constraints::parse(&values(&[("POLYGON", "1 2 3")]));
        assert_eq!(fault(bad.expect_err("bad polygon")), "UsageError");
        let band = Constraints::parse(&values(&[("BAND", "-2 -1")]));
        assert_eq!(fault(band.expect_err("negative band")), "UsageError");
        let format = Constraints::parse(&values(&[("RESPONSEFORMAT", "text/csv")]));
        assert_eq!(fault(format.expect_err("csv")), "UsageError");
    }
}
