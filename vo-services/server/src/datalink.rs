//! DataLink 1.1 (`{links}` at `/datalink/links`) and the endpoints its rows point at: the dataset
//! itself (`/datalink/download`, also one HDU of it; streamed as it is read), and a PNG quick-look
//! (`/datalink/preview`).
//!
//! A links document has, per ID and consecutively: `#this` (the file), `#preview` (PNG),
//! `#cutout` (a SODA service descriptor), one `#auxiliary` row per other image HDU; an unknown ID
//! gets one row with a `NotFoundFault:` error message. Each dataset gets its own SODA descriptor
//! (`RESOURCE type="meta" utype="adhoc:service"`) whose `ID` parameter is bound to the `ID` column
//! by `ref`, with the dataset's own ranges: the smallest circle and the footprint polygon holding
//! it, its band, its polarization states. `ID` may repeat and may hold a comma-separated list
//! (astroquery sends one). TABLEDATA, `INFO name="standardID"` for 1.1, MIME
//! `application/x-votable+xml;content=datalink`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use colo_astro::cutout::StandaloneImage;
use colo_astro::fits::stream_range;
use colo_tap::output::votable::xml_escape;

use crate::AppState;
use crate::error::VoError;
use crate::fault::{self, Protocol};
use crate::http::Root;
use crate::obscore::ImageRecord;
use crate::params::Params;

/// DataLink's MIME type.
pub const LINKS_CONTENT_TYPE: &str = "application/x-votable+xml;content=datalink";

pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/links", get(links).post(links))
        .route("/download", get(download))
        .route("/preview", get(preview))
}

async fn links(State(state): State<AppState>, root: Root, request: Request) -> Response {
    let params = match Params::read(request, &state.tap.limits).await {
        Ok(p) => p,
        Err(e) => return fault::response(Protocol::DataLink, &e),
    };
    if let Some(format) = params.get("RESPONSEFORMAT") {
        let f = format.trim().to_ascii_lowercase();
        let known = f.is_empty()
            || f == "votable"
            || f == "application/x-votable+xml"
            || f.starts_with("application/x-votable+xml;content=datalink");
        if !known {
            let e = VoError::bad_parameter(
                "RESPONSEFORMAT",
                format!("{format:?} is not supported (only VOTable)"),
            );
            return fault::response(Protocol::DataLink, &e);
        }
    }
    let mut ids: Vec<String> = Vec::new();
    for value in params.all("ID") {
        // One value may be a comma-separated list (astroquery); an ID that itself contains a
        // comma and is published wins over the split.
        if state.images.find(value).is_ok() || !value.contains(',') {
            ids.push(value.trim().to_string());
        } else {
            ids.extend(
                value
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty()),
            );
        }
    }
    let base = root.0;
    let found: Vec<(String, Option<&ImageRecord>)> = ids
        .iter()
        .map(|id| (id.clone(), state.images.find(id).ok()))
        .collect();
    (
        [(header::CONTENT_TYPE, LINKS_CONTENT_TYPE)],
        links_document(&found, &base),
    )
        .into_response()
}

/// The links document for (ID, record if published) pairs.
pub fn links_document(ids: &[(String, Option<&ImageRecord>)], base: &str) -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <VOTABLE version=\"1.4\" xmlns=\"http://www.ivoa.net/xml/VOTable/v1.3\">\n\
         <RESOURCE type=\"results\">\n\
         <INFO name=\"standardID\" value=\"ivo://ivoa.net/std/DataLink#links-1.1\"/>\n\
         <TABLE name=\"links\">\n\
         <FIELD ID=\"dl_id\" name=\"ID\" datatype=\"char\" arraysize=\"*\" ucd=\"meta.id;meta.main\"/>\n\
         <FIELD name=\"access_url\" datatype=\"char\" arraysize=\"*\" ucd=\"meta.ref.url\"/>\n\
         <FIELD name=\"service_def\" datatype=\"char\" arraysize=\"*\" ucd=\"meta.ref\"/>\n\
         <FIELD name=\"error_message\" datatype=\"char\" arraysize=\"*\" ucd=\"meta.code.error\"/>\n\
         <FIELD name=\"description\" datatype=\"char\" arraysize=\"*\" ucd=\"meta.note\"/>\n\
         <FIELD name=\"semantics\" datatype=\"char\" arraysize=\"*\" ucd=\"meta.code\"/>\n\
         <FIELD name=\"content_type\" datatype=\"char\" arraysize=\"*\" ucd=\"meta.code.mime\"/>\n\
         <FIELD name=\"content_length\" datatype=\"long\" unit=\"byte\" ucd=\"phys.size;meta.file\"/>\n\
         <DATA><TABLEDATA>\n",
    );
    let enc = |s: &str| -> String { url::form_urlencoded::byte_serialize(s.as_bytes()).collect() };
    let mut descriptors = String::new();
    for (n, (id, record)) in ids.iter().enumerate() {
        let Some(r) = record else {
            row(
                &mut out,
                [
                    id,
                    "",
                    "",
                    &fault::message(Protocol::DataLink, &VoError::NotFound { id: id.clone() }),
                    "",
                    "#this",
                    "",
                    "",
                ],
            );
            continue;
        };
        let did = enc(&r.obs_publisher_did);
        let content_type = if r.gzipped {
            "application/gzip"
        } else {
            "application/fits"
        };
        row(
            &mut out,
            [
                id,
                &format!("{base}/datalink/download?ID={did}"),
                "",
                "",
                "The dataset: the whole FITS file",
                "#this",
                content_type,
                &r.size.to_string(),
            ],
        );
        row(
            &mut out,
            [
                id,
                &format!("{base}/datalink/preview?ID={did}"),
                "",
                "",
                "Quick-look PNG (first plane, asinh stretch)",
                "#preview",
                "image/png",
                "",
            ],
        );
        let service = format!("soda-{n}");
        row(
            &mut out,
            [
                id,
                "",
                &service,
                "",
                "SODA cutout: a region (CIRCLE, POLYGON, POS), a band (BAND, metres), polarization states (POL)",
                "#cutout",
                "application/fits",
                "",
            ],
        );
        for aux in &r.auxiliary {
            let name = aux
                .extname
                .clone()
                .unwrap_or_else(|| format!("HDU {}", aux.index));
            row(
                &mut out,
                [
                    id,
                    &format!("{base}/datalink/download?ID={did}&HDU={}", aux.index),
                    "",
                    "",
                    &format!("Extension {} ({name}) of the file, as FITS", aux.index),
                    "#auxiliary",
                    "application/fits",
                    "",
                ],
            );
        }
        descriptors.push_str(&soda_descriptor(&service, r, base));
    }
    out.push_str("</TABLEDATA></DATA>\n</TABLE>\n</RESOURCE>\n");
    out.push_str(&descriptors);
    out.push_str("</VOTABLE>\n");
    out
}

fn row(out: &mut String, cells: [&str; 8]) {
    out.push_str("<TR>");
    for cell in cells {
        if cell.is_empty() {
            out.push_str("<TD/>");
        } else {
            out.push_str("<TD>");
            out.push_str(&xml_escape(cell));
            out.push_str("</TD>");
        }
    }
    out.push_str("</TR>\n");
}

/// The SODA service descriptor of one dataset, with its ranges.
fn soda_descriptor(id: &str, r: &ImageRecord, base: &str) -> String {
    let mut out = format!(
        "<RESOURCE ID=\"{id}\" name=\"{id}\" type=\"meta\" utype=\"adhoc:service\">\n\
         <PARAM name=\"standardID\" datatype=\"char\" arraysize=\"*\" value=\"ivo://ivoa.net/std/SODA#sync-1.0\"/>\n\
         <PARAM name=\"accessURL\" datatype=\"char\" arraysize=\"*\" value=\"{}/soda/sync\"/>\n\
         <PARAM name=\"contentType\" datatype=\"char\" arraysize=\"*\" value=\"application/fits\"/>\n\
         <GROUP name=\"inputParams\">\n\
         <PARAM name=\"ID\" datatype=\"char\" arraysize=\"*\" ucd=\"meta.id;meta.dataset\" value=\"\" ref=\"dl_id\"/>\n",
        xml_escape(base)
    );
    let radius = r.s_fov.map(|f| (f / 2.0).min(180.0)).unwrap_or(180.0);
    out.push_str(&format!(
        "<PARAM name=\"CIRCLE\" datatype=\"double\" arraysize=\"3\" xtype=\"circle\" unit=\"deg\" ucd=\"phys.angArea;obs\" value=\"\">\n\
         <DESCRIPTION>The circle to cut out (ra dec radius, ICRS degrees)</DESCRIPTION>\n\
         <VALUES><MAX value=\"{} {} {}\"/></VALUES>\n</PARAM>\n",
        r.s_ra, r.s_dec, radius
    ));
    out.push_str("<PARAM name=\"POLYGON\" datatype=\"double\" arraysize=\"*\" xtype=\"polygon\" unit=\"deg\" ucd=\"pos.outline;obs\" value=\"\">\n<DESCRIPTION>The polygon to cut out (ra dec of each vertex, ICRS degrees)</DESCRIPTION>\n");
    if let Some(region) = &r.s_region {
        let text: Vec<String> = region.iter().map(|v| v.to_string()).collect();
        out.push_str(&format!(
            "<VALUES><MAX value=\"{}\"/></VALUES>\n",
            text.join(" ")
        ));
    }
    out.push_str("</PARAM>\n");
    out.push_str("<PARAM name=\"POS\" datatype=\"char\" arraysize=\"*\" ucd=\"pos.outline;obs\" value=\"\">\n<DESCRIPTION>The region to cut out: CIRCLE ra dec r, RANGE lon1 lon2 lat1 lat2, or POLYGON ra1 dec1 ... (ICRS degrees)</DESCRIPTION>\n</PARAM>\n");
    out.push_str("<PARAM name=\"BAND\" datatype=\"double\" arraysize=\"2\" xtype=\"interval\" unit=\"m\" ucd=\"em.wl;stat.interval\" value=\"\">\n<DESCRIPTION>Vacuum wavelength interval to keep (metres)</DESCRIPTION>\n");
    if let (Some(lo), Some(hi)) = (r.em_min, r.em_max) {
        out.push_str(&format!(
            "<VALUES><MIN value=\"{lo}\"/><MAX value=\"{hi}\"/></VALUES>\n"
        ));
    }
    out.push_str("</PARAM>\n");
    out.push_str("<PARAM name=\"POL\" datatype=\"char\" arraysize=\"*\" ucd=\"meta.code;phys.polarization\" value=\"\">\n<DESCRIPTION>Polarization states to keep (repeat for several)</DESCRIPTION>\n");
    if let Some(states) = &r.pol_states {
        out.push_str("<VALUES>");
        for s in states.split('/').filter(|s| !s.is_empty()) {
            out.push_str(&format!("<OPTION value=\"{s}\"/>"));
        }
        out.push_str("</VALUES>\n");
    }
    out.push_str("</PARAM>\n</GROUP>\n</RESOURCE>\n");
    out
}

async fn download(State(state): State<AppState>, request: Request) -> Response {
    let params = match Params::read(request, &state.tap.limits).await {
        Ok(p) => p,
        Err(e) => return fault::response(Protocol::DataLinkFile, &e),
    };
    match download_stream(&state, params.get("ID").unwrap_or(""), params.get("HDU")).await {
        Ok(download) => {
            let body = axum::body::Body::from_stream(download.body.map_err(|e| {
                tracing::warn!(error = %e, "download stopped");
                std::io::Error::other(VoError::from(e).client_message())
            }));
            (
                [
                    (header::CONTENT_TYPE, download.content_type.to_string()),
                    (header::CONTENT_LENGTH, download.size_bytes.to_string()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"{}\"", download.file_name),
                    ),
                ],
                body,
            )
                .into_response()
        }
        Err(e) => fault::response(Protocol::DataLinkFile, &e),
    }
}

/// A `#this` or `#auxiliary` download: its bytes as they are read.
struct Download {
    body: futures::stream::BoxStream<'static, Result<Bytes, colo_astro::AstroError>>,
    size_bytes: u64,
    content_type: &'static str,
    file_name: String,
}

/// The whole file, or (with `HDU`) one image HDU as a FITS file of its own — streamed, so a 1 GiB
/// file never sits in memory.
async fn download_stream(
    state: &AppState,
    id: &str,
    hdu: Option<&str>,
) -> Result<Download, VoError> {
    let record = state.images.find(id)?;
    let file_name = record
        .path
        .rsplit('/')
        .next()
        .unwrap_or("data.fits")
        .to_string();
    match hdu {
        None => {
            let file = state
                .images
                .volumes
                .open(&record.volume, &record.path)
                .await?;
            let size_bytes = file.version().size;
            let body = stream_range(Arc::new(file), 0, size_bytes).boxed();
            let content_type = if record.gzipped {
                "application/gzip"
            } else {
                "application/fits"
            };
            Ok(Download {
                body,
                size_bytes,
                content_type,
                file_name,
            })
        }
        Some(text) => {
            let index: usize = text.trim().parse().map_err(|_| {
                VoError::bad_parameter("HDU", format!("{text:?} is not an HDU number"))
            })?;
            if !record.auxiliary.iter().any(|a| a.index == index) && index != record.hdu {
                return Err(VoError::bad_parameter(
                    "HDU",
                    format!("HDU {index} is not an image of this dataset"),
                ));
            }
            let image = state.images.open_hdu(record, index).await?;
            let file = StandaloneImage::new(&image.header);
            let size_bytes = file.size_bytes();
            let header = Bytes::from(file.header_bytes);
            let padding = Bytes::from(vec![0u8; file.padding_bytes as usize]);
            let body = futures::stream::iter([Ok(header)])
                .chain(stream_range(
                    image.source,
                    image.data_offset,
                    file.data_bytes,
                ))
                .chain(futures::stream::iter([Ok(padding)]))
                .boxed();
            Ok(Download {
                body,
                size_bytes,
                content_type: "application/fits",
                file_name: format!("{index}-{file_name}"),
            })
        }
    }
}

async fn preview(State(state): State<AppState>, request: Request) -> Response {
    let result = async {
        let params = Params::read(request, &state.tap.limits).await?;
        let record = state.images.find(params.get("ID").unwrap_or(""))?;
        let image = state.images.open_hdu(record, record.hdu).await?;
        let png =
            colo_astro::preview::render(image.source.as_ref(), &image.header, image.data_offset)
                .await?;
        Ok::<_, VoError>(png)
    }
    .await;
    match result {
        Ok(png) => ([(header::CONTENT_TYPE, "image/png")], png).into_response(),
        Err(e) => fault::response(Protocol::DataLinkFile, &e),
    }
}
