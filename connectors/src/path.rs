//! Object paths inside a volume, validated once so that no name can step outside the volume.
//!
//! An [`ObjectPath`] is a relative, `/`-separated path with no empty, `.` or `..` segments, no NUL,
//! and no segment that decodes (percent-encoding, as HTTP servers do) to `.`, `..` or a name with a
//! `/`. The root of the volume is the empty path. Backends join it under their own prefix; because it
//! cannot climb, the result stays inside the volume whatever the backend does with it.

use crate::error::ConnectorError;
use std::fmt;

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ObjectPath(String);

impl ObjectPath {
    /// The root of a volume.
    pub fn root() -> Self {
        ObjectPath(String::new())
    }

    /// Parse a path relative to the volume root. Leading and trailing `/` are ignored.
    pub fn parse(raw: &str) -> Result<Self, ConnectorError> {
        let trimmed = raw.trim_matches('/');
        let mut out = ObjectPath::root();
        if trimmed.is_empty() {
            return Ok(out);
        }
        for segment in trimmed.split('/') {
            out = out
                .child(segment)
                .map_err(|reason| ConnectorError::InvalidPath {
                    path: raw.to_string(),
                    reason,
                })?;
        }
        Ok(out)
    }

    /// This path with one more segment; `name` must be a single, safe file name.
    pub fn child(&self, name: &str) -> Result<Self, &'static str> {
        validate_segment(name)?;
        if self.0.is_empty() {
            Ok(ObjectPath(name.to_string()))
        } else {
            Ok(ObjectPath(format!("{}/{}", self.0, name)))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The last segment, or "" for the root.
    pub fn name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or("")
    }

    /// The folder holding this path (the root for a top-level name); `None` for the root itself.
    pub fn parent(&self) -> Option<ObjectPath> {
        if self.is_root() {
            return None;
        }
        Some(match self.0.rsplit_once('/') {
            Some((parent, _)) => ObjectPath(parent.to_string()),
            None => ObjectPath::root(),
        })
    }

    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|s| !s.is_empty())
    }
}

fn validate_segment(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty path segment");
    }
    if name == "." || name == ".." {
        return Err("'.' and '..' are not allowed");
    }
    if name.contains('/') {
        return Err("a name may not contain '/'");
    }
    if name.contains('\0') {
        return Err("a name may not contain NUL");
    }
    if name.contains('\\') {
        return Err("a name may not contain '\\'");
    }
    // Servers decode percent-escapes; a name that decodes to a traversal is refused too.
    let decoded = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
    if decoded != name {
        let d = decoded.as_ref();
        if d == "." || d == ".." || d.contains('/') || d.contains('\\') || d.contains('\0') {
            return Err("a name may not encode '.', '..' or a separator");
        }
    }
    Ok(())
}

impl fmt::Display for ObjectPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}", self.0)
    }
}

impl fmt::Debug for ObjectPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectPath(/{})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_paths_parse() {
        assert_eq!(ObjectPath::parse("/a/b.fits").unwrap().as_str(), "a/b.fits");
        assert_eq!(ObjectPath::parse("a/b/").unwrap().as_str(), "a/b");
        assert!(ObjectPath::parse("/").unwrap().is_root());
        assert_eq!(ObjectPath::parse("x y/ü.txt").unwrap().name(), "ü.txt");
    }

    #[test]
    fn parents_climb_to_the_root() {
        let p = ObjectPath::parse("a/b/c.fits").unwrap();
        assert_eq!(p.parent().unwrap().as_str(), "a/b");
        assert!(ObjectPath::parse("a").unwrap().parent().unwrap().is_root());
        assert_eq!(ObjectPath::root().parent(), None);
    }

    #[test]
    fn traversal_is_refused_in_every_form() {
        for bad in [
            "..",
            "a/../b",
            "a/./b",
            "a//b",
            "%2e%2e",
            "%2E%2E/etc",
            "a/..%2fb",
            "a%2f..",
            "a\\..\\b",
            "a\0b",
        ] {
            assert!(ObjectPath::parse(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn child_refuses_separators() {
        let p = ObjectPath::parse("dir").unwrap();
        assert!(p.child("a/b").is_err());
        assert!(p.child("..").is_err());
        assert_eq!(p.child("f").unwrap().as_str(), "dir/f");
    }
}
