//! What every service does with a request: DALI 1.1 parameters (§3.1: case-insensitive names,
//! GET query strings, form posts and multipart posts whose file parts are uploads) and the small
//! responses the services share (XML, plain text, 303, the base URL as the client sees it).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, OriginalUri, Request};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::VoError;
use crate::vosi::ServiceLimits;

/// Request parameters: upper-case names in order, plus multipart file parts by name.
#[derive(Debug, Default)]
pub struct Params {
    pub(crate) values: Vec<(String, String)>,
    pub(crate) files: HashMap<String, Bytes>,
}

impl Params {
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

pub(crate) fn parse_pairs(text: &[u8], into: &mut Vec<(String, String)>) {
    for (key, value) in url::form_urlencoded::parse(text) {
        into.push((key.to_ascii_uppercase(), value.into_owned()));
    }
}

/// Reads parameters from the query string and a form or multipart body.
pub async fn read_params(request: Request, limits: &ServiceLimits) -> Result<Params, VoError> {
    let mut params = Params::default();
    if let Some(query) = request.uri().query() {
        parse_pairs(query.as_bytes(), &mut params.values);
    }
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.starts_with("multipart/form-data") {
        let mut multipart = axum::extract::Multipart::from_request(request, &())
            .await
            .map_err(|e| VoError::BadParameter {
                name: "body".into(),
                message: e.to_string(),
            })?;
        while let Some(field) = multipart
            .next_field()
            .await
            .map_err(|e| VoError::BadParameter {
                name: "body".into(),
                message: format!("unreadable multipart body: {e}"),
            })?
        {
            let name = field.name().unwrap_or_default().to_string();
            let is_file = field.file_name().is_some();
            let data = field.bytes().await.map_err(|e| VoError::Upload {
                name: name.clone(),
                message: format!(
                    "could not read the part ({e}); uploads are limited to {} bytes",
                    limits.upload_limit_bytes
                ),
            })?;
            if is_file || data.len() > 4096 || name.eq_ignore_ascii_case("FILE") {
                params.files.insert(name, data);
            } else {
                params.values.push((
                    name.to_ascii_uppercase(),
                    String::from_utf8_lossy(&data).into_owned(),
                ));
                params.files.insert(name, data);
            }
        }
    } else if matches!(request.method(), &Method::POST | &Method::PUT) {
        let body = axum::body::to_bytes(
            request.into_body(),
            limits.upload_limit_bytes as usize + 1024 * 1024,
        )
        .await
        .map_err(|e| VoError::BadParameter {
            name: "body".into(),
            message: format!("request body too large or unreadable: {e}"),
        })?;
        parse_pairs(&body, &mut params.values);
    }
    Ok(params)
}

/// A service's base URL as the client sees it (scheme, host and the path before `suffix`).
pub(crate) fn base_url(headers: &HeaderMap, uri: &OriginalUri, suffix: &str) -> String {
    let path = uri.path();
    let mount = path.find(suffix).map_or(path, |at| &path[..at]);
    format!(
        "{}{}",
        crate::images::root_url(headers),
        mount.trim_end_matches('/')
    )
}

pub(crate) fn xml(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/xml")], body).into_response()
}

pub(crate) fn text(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain")], body).into_response()
}

pub(crate) fn see_other(location: String) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}

/// astroquery's TapPlus (its User-Agent says so) wants HTTP 200 where UWS says 303.
pub(crate) fn is_tapplus(headers: &HeaderMap) -> bool {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ua| ua.to_ascii_lowercase().contains("astroquery"))
}

/// Parameters as [`read_params`] gives them, from literals (tests).
#[cfg(test)]
pub(crate) fn owned_pairs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
