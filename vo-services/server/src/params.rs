//! Request parameters, one way for every service (DALI 1.1 §3.1): names are case-insensitive
//! (kept upper-case), values keep their order, a name may repeat; they come from the query string,
//! a form post, or a multipart post whose file parts are uploads. A job's stored parameters are
//! read through the same type.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{Method, Uri, header};

use crate::error::VoError;
use crate::vosi::ServiceLimits;

/// Request parameters: upper-case names in order, plus multipart file parts by name.
#[derive(Debug, Default, Clone)]
pub struct Params {
    values: Vec<(String, String)>,
    files: HashMap<String, Bytes>,
}

impl Params {
    /// Parameters given as (name, value) pairs (names are upper-cased).
    pub fn from_pairs<K: AsRef<str>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Params {
            values: pairs
                .into_iter()
                .map(|(k, v)| (k.as_ref().to_ascii_uppercase(), v.into()))
                .collect(),
            files: HashMap::new(),
        }
    }

    /// The parameters of a URI's query string.
    pub fn from_query(uri: &Uri) -> Self {
        let mut params = Params::default();
        if let Some(query) = uri.query() {
            params.add_form(query.as_bytes());
        }
        params
    }

    /// Reads parameters from the query string and a form or multipart body (at most the upload
    /// limit, plus 1 MiB for the other fields).
    pub async fn read(request: Request, limits: &ServiceLimits) -> Result<Params, VoError> {
        let mut params = Params::from_query(request.uri());
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if content_type.starts_with("multipart/form-data") {
            params.add_multipart(request, limits).await?;
        } else if matches!(request.method(), &Method::POST | &Method::PUT) {
            let body = axum::body::to_bytes(
                request.into_body(),
                limits.upload_limit_bytes as usize + 1024 * 1024,
            )
            .await
            .map_err(|e| {
                VoError::bad_parameter("body", format!("request body too large or unreadable: {e}"))
            })?;
            params.add_form(&body);
        }
        Ok(params)
    }

    fn add_form(&mut self, text: &[u8]) {
        for (key, value) in url::form_urlencoded::parse(text) {
            self.values
                .push((key.to_ascii_uppercase(), value.into_owned()));
        }
    }

    async fn add_multipart(
        &mut self,
        request: Request,
        limits: &ServiceLimits,
    ) -> Result<(), VoError> {
        let mut multipart = axum::extract::Multipart::from_request(request, &())
            .await
            .map_err(|e| VoError::bad_parameter("body", e.to_string()))?;
        while let Some(field) = multipart.next_field().await.map_err(|e| {
            VoError::bad_parameter("body", format!("unreadable multipart body: {e}"))
        })? {
            let name = field.name().unwrap_or_default().to_string();
            let is_file = field.file_name().is_some();
            let data = field.bytes().await.map_err(|e| {
                VoError::from(colo_tap::TapError::Upload {
                    name: name.clone(),
                    message: format!(
                        "could not read the part ({e}); uploads are limited to {} bytes",
                        limits.upload_limit_bytes
                    ),
                })
            })?;
            // Small plain fields are parameters too; every part stays available as an upload.
            if !(is_file || data.len() > 4096 || name.eq_ignore_ascii_case("FILE")) {
                self.values.push((
                    name.to_ascii_uppercase(),
                    String::from_utf8_lossy(&data).into_owned(),
                ));
            }
            self.files.insert(name, data);
        }
        Ok(())
    }

    /// The value of `name` (the last one, when repeated).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, in order (`ID=a&ID=b`).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.values
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The value of a parameter that may be given at most once.
    pub fn single(&self, name: &str) -> Result<Option<&str>, VoError> {
        match self.all(name).as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one)),
            _ => Err(VoError::bad_parameter(name, "given more than once")),
        }
    }

    /// The value of `name` as a number of type `T`, if given.
    pub fn parse<T: std::str::FromStr>(
        &self,
        name: &str,
        what: &str,
    ) -> Result<Option<T>, VoError> {
        self.get(name)
            .map(|v| {
                v.trim()
                    .parse::<T>()
                    .map_err(|_| VoError::bad_parameter(name, format!("{v:?} is not {what}")))
            })
            .transpose()
    }

    /// Whether `name` was given with the value `value` (case-insensitive).
    pub fn is(&self, name: &str, value: &str) -> bool {
        self.get(name)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case(value))
    }

    /// All (name, value) pairs in order.
    pub fn values(&self) -> &[(String, String)] {
        &self.values
    }

    /// The pairs without the names in `names`.
    pub fn values_without(&self, names: &[&str]) -> Vec<(String, String)> {
        self.values
            .iter()
            .filter(|(k, _)| !names.contains(&k.as_str()))
            .cloned()
            .collect()
    }

    /// The multipart parts, by part name.
    pub fn files(&self) -> &HashMap<String, Bytes> {
        &self.files
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fold_to_upper_case_and_values_keep_their_order() {
        let uri: Uri = "/sync?query=SELECT+1&Id=a&ID=b&maxrec=5"
            .parse()
            .expect("uri");
        let params = Params::from_query(&uri);
        assert_eq!(params.get("QUERY"), Some("SELECT 1"));
        assert_eq!(params.all("ID"), ["a", "b"]);
        assert_eq!(params.get("ID"), Some("b"));
        assert!(params.single("ID").is_err());
        assert_eq!(
            params.parse::<u64>("MAXREC", "a number").ok(),
            Some(Some(5))
        );
        assert!(params.parse::<u64>("QUERY", "a number").is_err());
        assert_eq!(params.values_without(&["ID"]).len(), 2);
    }

    #[tokio::test]
    async fn form_and_multipart_bodies_are_read() {
        let limits = ServiceLimits::default();
        let form = Request::post("/sync")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(axum::body::Body::from("LANG=ADQL&query=SELECT%201"))
            .expect("request");
        let params = Params::read(form, &limits).await.expect("read");
        assert_eq!(params.get("LANG"), Some("ADQL"));
        assert_eq!(params.get("QUERY"), Some("SELECT 1"));
        let body = "--X\r\nContent-Disposition: form-data; name=\"QUERY\"\r\n\r\nSELECT 2\r\n\
                    --X\r\nContent-Disposition: form-data; name=\"t1\"; filename=\"t1.xml\"\r\n\r\n<VOTABLE/>\r\n--X--\r\n";
        let multipart = Request::post("/sync")
            .header(header::CONTENT_TYPE, "multipart/form-data; boundary=X")
            .body(axum::body::Body::from(body))
            .expect("request");
        let params = Params::read(multipart, &limits).await.expect("read");
        assert_eq!(params.get("QUERY"), Some("SELECT 2"));
        assert_eq!(
            params.get("T1"),
            None,
            "a file part is an upload, not a parameter"
        );
        assert_eq!(params.files()["t1"].as_ref(), b"<VOTABLE/>");
    }
}
