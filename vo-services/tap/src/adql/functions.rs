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
}

const fn f(
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
    }
}

use FunctionKind::{Aggregate, Geometry, Scalar, UserDefined};

/// Core and optional ADQL 2.1 functions colo implements. Geometry arities here are the outer bounds;
/// [`super::validate`] checks the exact forms (coordinate system, POINT or coordinates).
pub const ADQL_FUNCTIONS: &[FunctionSpec] = &[
    // math (§2.3.1) and trig (§2.3.2)
    f("ABS", 1, 1, Scalar),
    f("CEILING", 1, 1, Scalar),
    f("DEGREES", 1, 1, Scalar),
    f("EXP", 1, 1, Scalar),
    f("FLOOR", 1, 1, Scalar),
    f("LOG", 1, 1, Scalar),
    f("LOG10", 1, 1, Scalar),
    f("MOD", 2, 2, Scalar),
    f("PI", 0, 0, Scalar),
    f("POWER", 2, 2, Scalar),
    f("RADIANS", 1, 1, Scalar),
    f("RAND", 0, 1, Scalar),
    f("ROUND", 1, 2, Scalar),
    f("SQRT", 1, 1, Scalar),
    f("TRUNCATE", 1, 2, Scalar),
    f("ACOS", 1, 1, Scalar),
    f("ASIN", 1, 1, Scalar),
    f("ATAN", 1, 1, Scalar),
    f("ATAN2", 2, 2, Scalar),
    f("COS", 1, 1, Scalar),
    f("COT", 1, 1, Scalar),
    f("SIN", 1, 1, Scalar),
    f("TAN", 1, 1, Scalar),
    // aggregates (§2.3.4)
    f("AVG", 1, 1, Aggregate),
    f("COUNT", 1, 1, Aggregate),
    f("MAX", 1, 1, Aggregate),
    f("MIN", 1, 1, Aggregate),
    f("SUM", 1, 1, Aggregate),
    // strings (§4.7) and conditional (§4.8)
    f("LOWER", 1, 1, Scalar),
    f("UPPER", 1, 1, Scalar),
    f("COALESCE", 1, usize::MAX, Scalar),
    // units (§4.9): parsed; the rewrite refuses it until column units drive a conversion
    f("IN_UNIT", 2, 2, Scalar),
    // geometry (§4.2)
    f("AREA", 1, 1, Geometry),
    f("BOX", 3, 5, Geometry),
    f("CENTROID", 1, 1, Geometry),
    f("CIRCLE", 2, 4, Geometry),
    f("CONTAINS", 2, 2, Geometry),
    f("COORD1", 1, 1, Geometry),
    f("COORD2", 1, 1, Geometry),
    f("COORDSYS", 1, 1, Geometry),
    f("DISTANCE", 2, 4, Geometry),
    f("INTERSECTS", 2, 2, Geometry),
    f("POINT", 2, 3, Geometry),
    f("POLYGON", 3, usize::MAX, Geometry),
    f("REGION", 1, 1, Geometry),
];

/// User-defined functions colo implements (declared in `/capabilities`).
pub const COLO_UDFS: &[FunctionSpec] = &[f("IVO_HEALPIX_INDEX", 3, 3, UserDefined)];

/// ADQL words that may not be used as regular (undelimited) identifiers: the function names and the
/// ADQL keywords sqlparser would otherwise accept as names (ADQL 2.1 §2.1.3).
pub const RESERVED_WORDS: &[&str] = &[
    "ABS",
    "ACOS",
    "AREA",
    "ASIN",
    "ATAN",
    "ATAN2",
    "BOX",
    "CEILING",
    "CENTROID",
    "CIRCLE",
    "CONTAINS",
    "COORD1",
    "COORD2",
    "COORDSYS",
    "COS",
    "COT",
    "DEGREES",
    "DISTANCE",
    "EXP",
    "FLOOR",
    "INTERSECTS",
    "LOG",
    "LOG10",
    "MOD",
    "PI",
    "POINT",
    "POLYGON",
    "POWER",
    "RADIANS",
    "REGION",
    "RAND",
    "ROUND",
    "SIN",
    "SQRT",
    "TAN",
    "TOP",
    "TRUNCATE",
    "ALL",
    "AND",
    "AS",
    "ASC",
    "AVG",
    "BETWEEN",
    "BY",
    "COUNT",
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
    "MAX",
    "MIN",
    "NATURAL",
    "NOT",
    "NULL",
    "ON",
    "OR",
    "ORDER",
    "OUTER",
    "RIGHT",
    "SELECT",
    "SUM",
    "USING",
    "WHERE",
    "OFFSET",
    "UNION",
    "EXCEPT",
    "INTERSECT",
    "WITH",
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
    RESERVED_WORDS
        .iter()
        .any(|reserved| reserved.eq_ignore_ascii_case(word))
}
