//! The functions ADQL knows, with their arities (ADQL 2.1 §2.3, §4) and the optional-feature
//! group each belongs to, so the validator can refuse unknown names and wrong argument counts, and
//! `/capabilities` can declare exactly what works.

/// What a function is, for validation and for the rewrite to DataFusion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FunctionKind {
    /// Numeric or string scalar function.
    Scalar,
    /// Aggregate (AVG, COUNT, ...): accepts `DISTINCT` and, for COUNT, `*`.
    Aggregate,
    /// Geometry constructor or predicate (the `adqlgeo` feature).
    Geometry,
    /// A user-defined function declared in TAPRegExt.
    UserDefined,
}

/// One function ADQL accepts.
#[derive(Debug, Clone, Copy)]
pub struct FunctionSpec {
    /// Upper-case ADQL name.
    pub name: &'static str,
    /// Fewest arguments.
    pub min_args: usize,
    /// Most arguments (`usize::MAX` for variadic).
    pub max_args: usize,
    /// What it is.
    pub kind: FunctionKind,
    /// The TAPRegExt language feature `/capabilities` declares it under (TAPRegExt 1.0 §2.3,
    /// ADQL 2.1 §4); `None` for core ADQL (always there) and for what colo refuses.
    pub feature: Option<&'static str>,
    /// A reserved word (ADQL 2.1 §2.1.3: ADQL 2.0's functions are; 2.1's optional ones are not).
    pub reserved: bool,
    /// For a UDF: its signature and what it does, as `/capabilities` declares them.
    pub declaration: Option<(&'static str, &'static str)>,
}

/// TAPRegExt feature types (`ivo://ivoa.net/std/TAPRegExt#features-...`).
pub mod feature {
    pub const GEOMETRY: &str = "ivo://ivoa.net/std/TAPRegExt#features-adqlgeo";
    pub const STRING: &str = "ivo://ivoa.net/std/TAPRegExt#features-adql-string";
    pub const SETS: &str = "ivo://ivoa.net/std/TAPRegExt#features-adql-sets";
    pub const COMMON_TABLE: &str = "ivo://ivoa.net/std/TAPRegExt#features-adql-common-table";
    pub const TYPE: &str = "ivo://ivoa.net/std/TAPRegExt#features-adql-type";
    pub const OFFSET: &str = "ivo://ivoa.net/std/TAPRegExt#features-adql-offset";
    pub const UNIT: &str = "ivo://ivoa.net/std/TAPRegExt#features-adql-unit";
    pub const UDF: &str = "ivo://ivoa.net/std/TAPRegExt#features-udf";
}

/// A core ADQL function: reserved, always there.
const fn core(
    name: &'static str,
    min_args: usize,
    max_args: usize,
    kind: FunctionKind,
) -> FunctionSpec {
    FunctionSpec {
        name,
        min_args,
        max_args,
        kind,
        feature: None,
        reserved: true,
        declaration: None,
    }
}

/// A geometry function (the `adqlgeo` feature): reserved, declared.
const fn geo(name: &'static str, min_args: usize, max_args: usize) -> FunctionSpec {
    FunctionSpec {
        feature: Some(feature::GEOMETRY),
        ..core(name, min_args, max_args, Geometry)
    }
}

/// An optional ADQL 2.1 function (not reserved), declared under `feature` when colo runs it.
const fn optional(
    name: &'static str,
    min_args: usize,
    max_args: usize,
    feature: Option<&'static str>,
) -> FunctionSpec {
    FunctionSpec {
        feature,
        reserved: false,
        ..core(name, min_args, max_args, Scalar)
    }
}

use FunctionKind::{Aggregate, Geometry, Scalar, UserDefined};

/// Core and optional ADQL 2.1 functions colo implements. Geometry arities here are the outer bounds;
/// [`super::validate`] checks the exact forms (coordinate system, POINT or coordinates).
pub const ADQL_FUNCTIONS: &[FunctionSpec] = &[
    // math (§2.3.1) and trig (§2.3.2)
    core("ABS", 1, 1, Scalar),
    core("CEILING", 1, 1, Scalar),
    core("DEGREES", 1, 1, Scalar),
    core("EXP", 1, 1, Scalar),
    core("FLOOR", 1, 1, Scalar),
    core("LOG", 1, 1, Scalar),
    core("LOG10", 1, 1, Scalar),
    core("MOD", 2, 2, Scalar),
    core("PI", 0, 0, Scalar),
    core("POWER", 2, 2, Scalar),
    core("RADIANS", 1, 1, Scalar),
    core("RAND", 0, 1, Scalar),
    core("ROUND", 1, 2, Scalar),
    core("SQRT", 1, 1, Scalar),
    core("TRUNCATE", 1, 2, Scalar),
    core("ACOS", 1, 1, Scalar),
    core("ASIN", 1, 1, Scalar),
    core("ATAN", 1, 1, Scalar),
    core("ATAN2", 2, 2, Scalar),
    core("COS", 1, 1, Scalar),
    core("COT", 1, 1, Scalar),
    core("SIN", 1, 1, Scalar),
    core("TAN", 1, 1, Scalar),
    // aggregates (§2.3.4)
    core("AVG", 1, 1, Aggregate),
    core("COUNT", 1, 1, Aggregate),
    core("MAX", 1, 1, Aggregate),
    core("MIN", 1, 1, Aggregate),
    core("SUM", 1, 1, Aggregate),
    // strings (§4.7)
    optional("LOWER", 1, 1, Some(feature::STRING)),
    optional("UPPER", 1, 1, Some(feature::STRING)),
    // conditional (§4.8): COALESCE works but `#features-adql-conditional` is not declared: STILTS
    // taplint 3.4.7 (Debian) reports that ADQL 2.1 key as unknown (E-CAP-KEYX).
    optional("COALESCE", 1, usize::MAX, None),
    // units (§4.9): converted by the factor between the column's unit and the one asked for
    optional("IN_UNIT", 2, 2, Some(feature::UNIT)),
    // geometry (§4.2)
    geo("AREA", 1, 1),
    geo("BOX", 3, 5),
    geo("CENTROID", 1, 1),
    geo("CIRCLE", 2, 4),
    geo("CONTAINS", 2, 2),
    geo("COORD1", 1, 1),
    geo("COORD2", 1, 1),
    geo("COORDSYS", 1, 1),
    geo("DISTANCE", 2, 4),
    geo("INTERSECTS", 2, 2),
    geo("POINT", 2, 3),
    geo("POLYGON", 3, usize::MAX),
    // deprecated in ADQL 2.1: reserved, refused by the rewrite, not declared
    core("REGION", 1, 1, Geometry),
];

/// A user-defined function a service declares (ADQL 2.1 §2.4).
pub const fn udf(name: &'static str, min_args: usize, max_args: usize) -> FunctionSpec {
    FunctionSpec {
        feature: Some(feature::UDF),
        reserved: false,
        ..core(name, min_args, max_args, UserDefined)
    }
}

/// User-defined functions colo implements (declared in `/capabilities`).
pub const COLO_UDFS: &[FunctionSpec] = &[FunctionSpec {
    declaration: Some((
        "ivo_healpix_index(order INTEGER, ra DOUBLE PRECISION, dec DOUBLE PRECISION) -> BIGINT",
        "Nested HEALPix index of a position at the given order",
    )),
    ..udf("IVO_HEALPIX_INDEX", 3, 3)
}];

/// ADQL keywords sqlparser would otherwise accept as names (ADQL 2.1 §2.1.3); with the reserved
/// function names they may not be used as regular (undelimited) identifiers.
pub const RESERVED_KEYWORDS: &[&str] = &[
    "TOP",
    "ALL",
    "AND",
    "AS",
    "ASC",
    "BETWEEN",
    "BY",
    "DESC",
    "DISTINCT",
    "EXISTS",
    "FROM",
    "FULL",
    "GROUP",
    "HAVING",
    "IN",
    "INNER",
    "IS",
    "JOIN",
    "LEFT",
    "LIKE",
    "NATURAL",
    "NOT",
    "NULL",
    "ON",
    "OR",
    "ORDER",
    "OUTER",
    "RIGHT",
    "SELECT",
    "USING",
    "WHERE",
    "OFFSET",
    "UNION",
    "EXCEPT",
    "INTERSECT",
    "WITH",
];

/// Optional ADQL 2.1 features that are syntax, not functions, and work here: (feature type, form).
pub const SYNTAX_FEATURES: &[(&str, &str)] = &[
    (feature::STRING, "ILIKE"),
    (feature::SETS, "UNION"),
    (feature::SETS, "EXCEPT"),
    (feature::SETS, "INTERSECT"),
    (feature::COMMON_TABLE, "WITH"),
    (feature::TYPE, "CAST"),
    (feature::OFFSET, "OFFSET"),
];

/// The functions one service accepts: the ADQL set plus its declared UDFs.
#[derive(Debug, Clone)]
pub struct FunctionCatalog {
    udfs: Vec<FunctionSpec>,
}

impl Default for FunctionCatalog {
    fn default() -> Self {
        Self {
            udfs: COLO_UDFS.to_vec(),
        }
    }
}

impl FunctionCatalog {
    /// A catalogue with extra declared UDFs (tests use this for the IVOA corpus's UDF names).
    pub fn with_udfs(extra: impl IntoIterator<Item = FunctionSpec>) -> Self {
        let mut catalog = Self::default();
        catalog.udfs.extend(extra);
        catalog
    }

    /// Looks a function up by name, case-insensitively.
    pub fn lookup(&self, name: &str) -> Option<FunctionSpec> {
        ADQL_FUNCTIONS
            .iter()
            .chain(self.udfs.iter())
            .find(|spec| spec.name.eq_ignore_ascii_case(name))
            .copied()
    }

    /// The declared UDFs.
    pub fn udfs(&self) -> &[FunctionSpec] {
        &self.udfs
    }
}

/// True if `word` is reserved in ADQL (case-insensitive).
pub fn is_reserved(word: &str) -> bool {
    RESERVED_KEYWORDS
        .iter()
        .any(|reserved| reserved.eq_ignore_ascii_case(word))
        || ADQL_FUNCTIONS
            .iter()
            .any(|f| f.reserved && f.name.eq_ignore_ascii_case(word))
}

/// A language feature as `/capabilities` declares it: its form, and for UDFs a description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredFeature {
    pub form: String,
    pub description: Option<&'static str>,
}

impl FunctionCatalog {
    /// What `/capabilities` declares (TAPRegExt `languageFeatures`), by feature type in a stable
    /// order: the functions of the catalogue that carry a feature, then the syntax features.
    pub fn language_features(&self) -> Vec<(&'static str, Vec<DeclaredFeature>)> {
        let mut groups: Vec<(&'static str, Vec<DeclaredFeature>)> = Vec::new();
        let mut add = |kind: &'static str, feature: DeclaredFeature| match groups
            .iter_mut()
            .find(|(k, _)| *k == kind)
        {
            Some((_, list)) => list.push(feature),
            None => groups.push((kind, vec![feature])),
        };
        for spec in ADQL_FUNCTIONS.iter().chain(self.udfs.iter()) {
            let Some(kind) = spec.feature else { continue };
            let (form, description) = match spec.declaration {
                Some((signature, description)) => (signature.to_string(), Some(description)),
                None if spec.kind == UserDefined => {
                    (format!("{}(...)", spec.name.to_ascii_lowercase()), None)
                }
                None => (spec.name.to_string(), None),
            };
            add(kind, DeclaredFeature { form, description });
        }
        for &(kind, form) in SYNTAX_FEATURES {
            add(
                kind,
                DeclaredFeature {
                    form: form.to_string(),
                    description: None,
                },
            );
        }
        groups
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_words_are_adql_20_functions_and_keywords() {
        assert!(is_reserved("distance") && is_reserved("REGION") && is_reserved("top"));
        assert!(!is_reserved("lower") && !is_reserved("coalesce") && !is_reserved("ra"));
    }

    #[test]
    fn capabilities_declare_what_the_catalogue_runs() {
        let features = FunctionCatalog::default().language_features();
        let forms = |kind: &str| -> Vec<String> {
            features
                .iter()
                .find(|(k, _)| *k == kind)
                .map(|(_, list)| list.iter().map(|f| f.form.clone()).collect())
                .unwrap_or_default()
        };
        let geometry = forms(feature::GEOMETRY);
        assert_eq!(geometry.len(), 12, "{geometry:?}");
        assert!(geometry.contains(&"DISTANCE".to_string()));
        assert!(
            !geometry.contains(&"REGION".to_string()),
            "refused, so not declared"
        );
        assert_eq!(forms(feature::STRING), ["LOWER", "UPPER", "ILIKE"]);
        assert_eq!(forms(feature::UNIT), ["IN_UNIT"]);
        let udfs = forms(feature::UDF);
        assert!(
            udfs[0].starts_with("ivo_healpix_index(order INTEGER"),
            "{udfs:?}"
        );
    }
}
