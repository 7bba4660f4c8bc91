//! SIA 2.0 at `/sia/query` (+ VOSI capabilities and availability), over `ivoa.obscore`.
//!
//! Parameters become one ADQL query run by the TAP engine, following the mapping of the reference
//! implementation (CADC's `AdqlQueryGenerator`): OR between the values of one parameter, AND
//! between parameters; POS → `INTERSECTS(shape, s_region)` (a RANGE is an ADQL BOX, which colo
//! evaluates as a lon/lat rectangle), BAND and TIME → interval overlap with em_min/em_max and
//! t_min/t_max, POL → `pol_states LIKE '%/X/%'`, numeric ranges → comparisons with open ends left
//! out, string lists → `IN`, ID compared case-insensitively. Images without a footprint polygon
//! (all-sky maps) match any position. The result is a VOTable of the ObsCore columns with two
//! service descriptors: the query's own (`name="this"`, listing its inputs) and DataLink's, whose
//! ID is bound to `obs_publisher_did`. Errors are VOTable documents with `UsageFault:` (SIA 2.0
//! §2.3, DALI §4.2).

use axum::extract::{Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt;

use colo_astro::dali::{self, Shape};
use colo_tap::output::stream_result;
use colo_tap::output::votable::{VotableWriter, xml_escape};

use crate::AppState;
use crate::error::VoError;
use crate::fault::{self, Protocol};
use crate::http::Root;
use crate::params::Params;

pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/query", get(query).post(query))
        .route("/capabilities", get(capabilities))
        .route("/availability", get(crate::vosi::availability_handler))
}

/// (parameter, ObsCore column) for numeric interval parameters.
const NUMERIC: [(&str, &str); 5] = [
    ("FOV", "s_fov"),
    ("SPATRES", "s_resolution"),
    ("EXPTIME", "t_exptime"),
    ("TIMERES", "t_resolution"),
    ("SPECRP", "em_res_power"),
];

/// (parameter, ObsCore column) for string parameters.
const STRINGS: [(&str, &str); 6] = [
    ("COLLECTION", "obs_collection"),
    ("FACILITY", "facility_name"),
    ("INSTRUMENT", "instrument_name"),
    ("DPTYPE", "dataproduct_type"),
    ("TARGET", "target_name"),
    ("FORMAT", "access_format"),
];

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `lo <= column <= hi` with infinite ends left out; `None` for (-Inf, +Inf).
fn between(column: &str, lo: f64, hi: f64) -> Option<String> {
    match (lo.is_finite(), hi.is_finite()) {
        (true, true) => Some(format!("({column} BETWEEN {lo:?} AND {hi:?})")),
        (true, false) => Some(format!("({column} >= {lo:?})")),
        (false, true) => Some(format!("({column} <= {hi:?})")),
        (false, false) => Some(format!("({column} IS NOT NULL OR {column} IS NULL)")),
    }
}

/// Overlap of `[lo, hi]` with `[min_col, max_col]`.
fn overlap(min_col: &str, max_col: &str, lo: f64, hi: f64) -> String {
    let mut parts = Vec::new();
    if hi.is_finite() {
        parts.push(format!("{min_col} <= {hi:?}"));
    }
    if lo.is_finite() {
        parts.push(format!("{lo:?} <= {max_col}"));
    }
    if parts.is_empty() {
        parts.push(format!("{min_col} IS NOT NULL"));
    }
    format!("({})", parts.join(" AND "))
}

fn shape_adql(shape: &Shape) -> String {
    let geometry = match shape {
        Shape::Circle { ra, dec, radius } => format!("CIRCLE('ICRS', {ra:?}, {dec:?}, {radius:?})"),
        Shape::Range { lon, lat } => {
            let width = if lon.0 <= lon.1 {
                lon.1 - lon.0
            } else {
                lon.1 + 360.0 - lon.0
            };
            let centre = (lon.0 + width / 2.0).rem_euclid(360.0);
            format!(
                "BOX('ICRS', {centre:?}, {:?}, {width:?}, {:?})",
                (lat.0 + lat.1) / 2.0,
                lat.1 - lat.0
            )
        }
        Shape::Polygon(vertices) => {
            let coords: Vec<String> = vertices
                .iter()
                .map(|(a, b)| format!("{a:?}, {b:?}"))
                .collect();
            format!("POLYGON('ICRS', {})", coords.join(", "))
        }
    };
    format!("(1 = INTERSECTS({geometry}, s_region) OR s_region IS NULL)")
}

/// The ADQL query for SIA parameters.
pub fn to_adql(params: &Params) -> Result<String, VoError> {
    let mut conditions = vec!["dataproduct_type IN ('image', 'cube')".to_string()];
    let mut add = |alternatives: Vec<String>| {
        if !alternatives.is_empty() {
            conditions.push(format!("({})", alternatives.join(" OR ")));
        }
    };
    let pos: Result<Vec<String>, VoError> = params
        .all("POS")
        .into_iter()
        .map(|v| Ok(shape_adql(&dali::pos("POS", v)?)))
        .collect();
    add(pos?);
    for (param, lo_col, hi_col) in [("BAND", "em_min", "em_max"), ("TIME", "t_min", "t_max")] {
        let parts: Result<Vec<String>, VoError> = params
            .all(param)
            .into_iter()
            .map(|v| {
                let (lo, hi) = dali::interval(param, v)?;
                Ok(overlap(lo_col, hi_col, lo, hi))
            })
            .collect();
        add(parts?);
    }
    add(params
        .all("POL")
        .into_iter()
        .flat_map(|v| v.split_whitespace())
        .map(|p| {
            let p = p.to_ascii_uppercase();
            let known = colo_astro::wcs::stokes_code(&p).is_some();
            if known {
                Ok(format!("pol_states LIKE {}", quote(&format!("%/{p}/%"))))
            } else {
                Err(VoError::bad_parameter(
                    "POL",
                    format!("{p:?} is not a polarization state (I Q U V RR LL RL LR XX YY XY YX)"),
                ))
            }
        })
        .collect::<Result<Vec<_>, _>>()?);
    for (param, column) in NUMERIC {
        let parts: Result<Vec<String>, VoError> = params
            .all(param)
            .into_iter()
            .map(|v| {
                let (lo, hi) = dali::interval(param, v)?;
                Ok(between(column, lo, hi).unwrap_or_default())
            })
            .collect();
        add(parts?);
    }
    let ids: Vec<String> = params
        .all("ID")
        .into_iter()
        .map(|v| {
            format!(
                "LOWER(obs_publisher_did) = {}",
                quote(&v.to_ascii_lowercase())
            )
        })
        .collect();
    add(ids);
    for (param, column) in STRINGS {
        let list: Vec<String> = params.all(param).into_iter().map(quote).collect();
        if !list.is_empty() {
            conditions.push(format!("{column} IN ({})", list.join(", ")));
        }
    }
    let calib: Result<Vec<String>, VoError> = params
        .all("CALIB")
        .into_iter()
        .map(|v| {
            v.trim().parse::<i32>().map(|c| c.to_string()).map_err(|_| {
                VoError::bad_parameter(
                    "CALIB",
                    format!("{v:?} is not an integer calibration level"),
                )
            })
        })
        .collect();
    let calib = calib?;
    if !calib.is_empty() {
        conditions.push(format!("calib_level IN ({})", calib.join(", ")));
    }
    Ok(format!(
        "SELECT * FROM ivoa.obscore WHERE {} ORDER BY obs_publisher_did",
        conditions.join(" AND ")
    ))
}

fn fault(e: &VoError) -> Response {
    fault::response(Protocol::Sia, e)
}

async fn query(State(state): State<AppState>, root: Root, request: Request) -> Response {
    let params = match Params::read(request, &state.tap.limits).await {
        Ok(p) => p,
        Err(e) => return fault(&e),
    };
    if let Some(format) = params.get("RESPONSEFORMAT") {
        let f = format.to_ascii_lowercase();
        if !(f.is_empty() || f.contains("votable")) {
            return fault(&VoError::bad_parameter(
                "RESPONSEFORMAT",
                format!("{format:?} is not supported (only VOTable)"),
            ));
        }
    }
    let limits = &state.tap.limits;
    let maxrec = match params.parse::<u64>("MAXREC", "a non-negative integer") {
        Ok(m) => m.map_or(limits.default_maxrec, |m| m.min(limits.hard_maxrec)),
        Err(e) => return fault(&e),
    };
    let has_obscore = state
        .tap
        .engine
        .tables()
        .iter()
        .any(|t| t.qualified_name() == "ivoa.obscore");
    if !has_obscore {
        return fault(&VoError::bad_parameter(
            "service",
            "no images are published yet (colo ingest images VOLUME[/PREFIX])",
        ));
    }
    let adql = match to_adql(&params) {
        Ok(q) => q,
        Err(e) => return fault(&e),
    };
    match run(&state, &adql, maxrec, &root.0).await {
        Ok(body) => ([(header::CONTENT_TYPE, "application/x-votable+xml")], body).into_response(),
        Err(e) => fault(&e),
    }
}

async fn run(state: &AppState, adql: &str, maxrec: u64, root: &str) -> Result<String, VoError> {
    let result = state.tap.engine.execute(adql, Some(maxrec), &[]).await?;
    let writer = Box::new(VotableWriter::new(&result.columns, false));
    let mut body = Vec::new();
    let mut chunks = std::pin::pin!(stream_result(result, writer, Some(root.to_string())));
    while let Some(chunk) = chunks.next().await {
        body.extend_from_slice(&chunk?);
    }
    let text = String::from_utf8_lossy(&body).into_owned();
    // The DataLink descriptor binds its ID to obs_publisher_did, which needs an XML ID.
    let text = text.replacen(
        "<FIELD name=\"obs_publisher_did\"",
        "<FIELD ID=\"obs_publisher_did\" name=\"obs_publisher_did\"",
        1,
    );
    let resources = format!("{}{}", self_descriptor(root), datalink_descriptor(root));
    Ok(text.replacen("</VOTABLE>", &format!("{resources}</VOTABLE>"), 1))
}

fn param(name: &str, datatype: &str, arraysize: &str, extra: &str) -> String {
    let size = if arraysize.is_empty() {
        String::new()
    } else {
        format!(" arraysize=\"{arraysize}\"")
    };
    format!("<PARAM name=\"{name}\" datatype=\"{datatype}\"{size}{extra} value=\"\"/>\n")
}

/// The query's self-description (SIA 2.0 §3.1.2).
fn self_descriptor(root: &str) -> String {
    let mut out = format!(
        "<RESOURCE type=\"meta\" utype=\"adhoc:service\" name=\"this\">\n\
         <PARAM name=\"standardID\" datatype=\"char\" arraysize=\"*\" value=\"ivo://ivoa.net/std/SIA#query-2.0\"/>\n\
         <PARAM name=\"accessURL\" datatype=\"char\" arraysize=\"*\" value=\"{}/sia/query\"/>\n\
         <GROUP name=\"inputParams\">\n",
        xml_escape(root)
    );
    out.push_str(&param("POS", "char", "*", " ucd=\"pos.outline;obs\""));
    out.push_str(&param(
        "BAND",
        "double",
        "2",
        " xtype=\"interval\" unit=\"m\" ucd=\"em.wl;stat.interval\"",
    ));
    out.push_str(&param(
        "TIME",
        "double",
        "2",
        " xtype=\"interval\" unit=\"d\" ucd=\"time.interval;obs.exposure\"",
    ));
    out.push_str(&param(
        "POL",
        "char",
        "*",
        " ucd=\"meta.code;phys.polarization\"",
    ));
    out.push_str(&param(
        "FOV",
        "double",
        "2",
        " xtype=\"interval\" unit=\"deg\" ucd=\"phys.angSize;instr.fov\"",
    ));
    out.push_str(&param(
        "SPATRES",
        "double",
        "2",
        " xtype=\"interval\" unit=\"arcsec\" ucd=\"pos.angResolution\"",
    ));
    out.push_str(&param(
        "EXPTIME",
        "double",
        "2",
        " xtype=\"interval\" unit=\"s\" ucd=\"time.duration;obs.exposure\"",
    ));
    out.push_str(&param(
        "TIMERES",
        "double",
        "2",
        " xtype=\"interval\" unit=\"s\" ucd=\"time.resolution\"",
    ));
    out.push_str(&param(
        "SPECRP",
        "double",
        "2",
        " xtype=\"interval\" ucd=\"spect.resolution\"",
    ));
    out.push_str(&param("ID", "char", "*", " ucd=\"meta.ref.ivoid\""));
    for (name, _) in STRINGS {
        out.push_str(&param(name, "char", "*", ""));
    }
    out.push_str(&param("CALIB", "int", "", " ucd=\"meta.code;obs.calib\""));
    out.push_str(&param("MAXREC", "int", "", ""));
    out.push_str("</GROUP>\n</RESOURCE>\n");
    out
}

/// DataLink for every row, bound to `obs_publisher_did`.
fn datalink_descriptor(root: &str) -> String {
    format!(
        "<RESOURCE type=\"meta\" utype=\"adhoc:service\" name=\"datalink\">\n\
         <PARAM name=\"standardID\" datatype=\"char\" arraysize=\"*\" value=\"ivo://ivoa.net/std/DataLink#links-1.1\"/>\n\
         <PARAM name=\"accessURL\" datatype=\"char\" arraysize=\"*\" value=\"{}/datalink/links\"/>\n\
         <GROUP name=\"inputParams\">\n\
         <PARAM name=\"ID\" datatype=\"char\" arraysize=\"*\" ucd=\"meta.id;meta.main\" value=\"\" ref=\"obs_publisher_did\"/>\n\
         </GROUP>\n</RESOURCE>\n",
        xml_escape(root)
    )
}

async fn capabilities(root: Root) -> Response {
    crate::vosi::image_capabilities(
        &root,
        "sia",
        &[("ivo://ivoa.net/std/SIA#query-2.0", "query")],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, &str)]) -> Params {
        Params::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn or_within_and_across_parameters() {
        let q = to_adql(&values(&[
            ("POS", "CIRCLE 10 20 1"),
            ("POS", "RANGE 350 10 -5 5"),
            ("BAND", "-Inf 2e-6"),
            ("COLLECTION", "sample"),
            ("COLLECTION", "o'brien"),
            ("CALIB", "2"),
        ]))
        .expect("valid");
        assert!(q.contains("CIRCLE('ICRS', 10.0, 20.0, 1.0)"), "{q}");
        assert!(
            q.contains(" OR (1 = INTERSECTS(BOX('ICRS', 0.0, 0.0, 20.0, 10.0)"),
            "{q}"
        );
        assert!(q.contains("(em_min <= 2e-6)"), "{q}");
        assert!(
            q.contains("obs_collection IN ('sample', 'o''brien')"),
            "{q}"
        );
        assert!(q.contains("calib_level IN (2)"), "{q}");
    }

    #[test]
    fn bad_values_name_the_parameter() {
        for (p, v) in [
            ("POS", "CIRCLE 1 2"),
            ("BAND", "3 1"),
            ("CALIB", "two"),
            ("POL", "Z"),
        ] {
            let err = to_adql(&values(&[(p, v)])).expect_err(v);
            assert!(err.to_string().starts_with(p), "{err}");
        }
    }
}
