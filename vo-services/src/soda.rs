//! SODA 1.0 sync at `/soda/sync` (+ VOSI capabilities and availability).
//!
//! Parameters: `ID` (exactly one), one region (`CIRCLE`, `POLYGON` or `POS`), `BAND` (metres),
//! `TIME` (MJD; a dataset whose time range misses it gives no overlap), `POL` (repeatable; all
//! states in one output). No filter at all returns the whole image HDU. The answer is a FITS file
//! (see [`crate::cutout`]), HTTP 204 when the constraints miss the data, and errors are
//! `text/plain` starting with `UsageError:`, `MultiValuedParamNotSupported:` or `Error:` (SODA
//! §5.2, DALI §4.2).

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::AppState;
use crate::cutout::{CutoutSpec, cut};
use crate::dali;
use crate::error::VoError;
use crate::images::all;
use crate::tap::read_params;

pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/sync", get(sync).post(sync))
        .route("/capabilities", get(capabilities))
        .route("/availability", get(crate::images::availability))
}

/// A SODA error: status and `text/plain` with the standard prefix.
fn error(status: StatusCode, prefix: &str, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain")],
        format!("{prefix}: {message}\n"),
    )
        .into_response()
}

fn from_vo(e: &VoError) -> Response {
    match e {
        VoError::BadParameter { .. } | VoError::NotFound { .. } => {
            error(e.status(), "UsageError", &e.client_message())
        }
        VoError::Origin { .. } => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            &e.client_message(),
        ),
        _ => error(e.status(), "Error", &e.client_message()),
    }
}

/// The cutout request from SODA parameters; errors as (prefix, message).
pub fn parse_spec(values: &[(String, String)]) -> Result<CutoutSpec, (&'static str, String)> {
    let usage = |e: dali::BadValue| ("UsageError", e.to_string());
    let mut regions = Vec::new();
    for v in all(values, "CIRCLE") {
        regions.push(dali::circle("CIRCLE", v).map_err(usage)?);
    }
    for v in all(values, "POLYGON") {
        regions.push(dali::polygon("POLYGON", v).map_err(usage)?);
    }
    for v in all(values, "POS") {
        regions.push(dali::pos("POS", v).map_err(usage)?);
    }
    if regions.len() > 1 {
        return Err((
            "MultiValuedParamNotSupported",
            "give one region (CIRCLE, POLYGON or POS) per sync request".into(),
        ));
    }
    let bands = all(values, "BAND");
    if bands.len() > 1 {
        return Err((
            "MultiValuedParamNotSupported",
            "give one BAND per sync request".into(),
        ));
    }
    let band_m = match bands.first() {
        Some(v) => {
            let (lo, hi) = dali::interval("BAND", v).map_err(usage)?;
            if hi <= 0.0 {
                return Err((
                    "UsageError",
                    format!("BAND: {v:?}: wavelengths are positive metres"),
                ));
            }
            Some((lo, hi))
        }
        None => None,
    };
    let pol = all(values, "POL")
        .into_iter()
        .flat_map(|v| v.split_whitespace())
        .map(|s| s.to_ascii_uppercase())
        .collect();
    Ok(CutoutSpec {
        region: regions.pop(),
        band_m,
        pol,
    })
}

async fn sync(State(state): State<AppState>, request: Request) -> Response {
    let params = match read_params(request, &state.tap.limits).await {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, "UsageError", &e.to_string()),
    };
    let ids = all(&params.values, "ID");
    let id = match ids.as_slice() {
        [] => return error(StatusCode::BAD_REQUEST, "UsageError", "ID is required"),
        [one] => *one,
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "MultiValuedParamNotSupported",
                "give one ID per sync request",
            );
        }
    };
    if let Some(format) = params.get("RESPONSEFORMAT") {
        let f = format.to_ascii_lowercase();
        if !(f.is_empty() || f.contains("fits")) {
            return error(
                StatusCode::BAD_REQUEST,
                "UsageError",
                &format!("RESPONSEFORMAT {format:?}: cutouts are FITS (application/fits)"),
            );
        }
    }
    let spec = match parse_spec(&params.values) {
        Ok(spec) => spec,
        Err((prefix, message)) => return error(StatusCode::BAD_REQUEST, prefix, &message),
    };
    let record = match state.images.find(id) {
        Ok(r) => r,
        Err(e) => return from_vo(&e),
    };
    let times = all(&params.values, "TIME");
    if times.len() > 1 {
        return error(
            StatusCode::BAD_REQUEST,
            "MultiValuedParamNotSupported",
            "give one TIME",
        );
    }
    if let Some(t) = times.first() {
        match dali::interval("TIME", t) {
            Err(e) => return error(StatusCode::BAD_REQUEST, "UsageError", &e.to_string()),
            Ok((lo, hi)) => {
                if let (Some(t0), Some(t1)) = (record.t_min, record.t_max)
                    && (t1 < lo || t0 > hi)
                {
                    return StatusCode::NO_CONTENT.into_response();
                }
            }
        }
    }
    let result = async {
        let image = state.images.open_hdu(record, record.hdu).await?;
        cut(
            image.source.as_ref(),
            &image.header,
            image.data_offset,
            &spec,
        )
        .await
    }
    .await;
    match result {
        Ok(Some(fits)) => {
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
        Err(e) => from_vo(&e),
    }
}

async fn capabilities(headers: HeaderMap) -> Response {
    crate::images::capabilities(
        &headers,
        "soda",
        &[("ivo://ivoa.net/std/SODA#sync-1.0", "sync")],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn spec_from_parameters_and_the_errors_soda_names() {
        let spec = parse_spec(&values(&[
            ("CIRCLE", "10 20 0.1"),
            ("BAND", "0.0033 0.0034"),
            ("POL", "I"),
            ("POL", "V"),
        ]))
        .expect("valid");
        assert!(spec.region.is_some());
        assert_eq!(spec.pol, vec!["I", "V"]);
        let two = parse_spec(&values(&[
            ("CIRCLE", "10 20 0.1"),
            ("POS", "RANGE 1 2 3 4"),
        ]));
        assert_eq!(
            two.expect_err("two regions").0,
            "MultiValuedParamNotSupported"
        );
        let bad = parse_spec(&values(&[("POLYGON", "1 2 3")]));
        assert_eq!(bad.expect_err("bad polygon").0, "UsageError");
        let band = parse_spec(&values(&[("BAND", "-2 -1")]));
        assert_eq!(band.expect_err("negative band").0, "UsageError");
    }
}
