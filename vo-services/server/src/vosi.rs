//! VOSI 1.1 documents for TAP: capabilities with TAPRegExt (TAP 1.1 §2, TAPRegExt 1.0),
//! availability, the VODataService tableset (`/tables` and `/tables/{name}`, with ESA TAP+'s
//! `esatapplus:flags` on every column so astroquery's `TapPlus.load_tables()` works), and the
//! DALI examples page (RDFa, one `property="query"` per example).

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use colo_tap::adql::FunctionCatalog;
use colo_tap::catalog::{ColumnMeta, TableMeta, declared_type};
use colo_tap::output::Format;
use colo_tap::output::votable::xml_escape;

use crate::http::Root;

/// Limits declared in the capabilities and enforced by the handlers.
#[derive(Debug, Clone)]
pub struct ServiceLimits {
    /// MAXREC when the client gives none.
    pub default_maxrec: u64,
    /// The largest MAXREC honoured.
    pub hard_maxrec: u64,
    /// Largest accepted upload, bytes.
    pub upload_limit_bytes: u64,
    /// Default and hard async execution duration, seconds.
    pub execution_duration_secs: u64,
    /// Default and hard job retention, seconds.
    pub retention_secs: u64,
    /// The memory one query may hold in sorts, aggregations and joins, bytes
    /// ([`colo_tap::engine::Engine::with_query_memory_limit`]).
    pub query_memory_bytes: u64,
    /// The longest a synchronous query may run (planning and streaming its rows), seconds; longer
    /// work belongs in an async job.
    pub sync_query_secs: u64,
    /// Async jobs executing at once (each of TAP and SODA), and per caller; more wait in QUEUED.
    pub async_jobs_running: usize,
    pub async_jobs_per_caller: usize,
    /// Jobs of one caller not finished yet; more are refused (429).
    pub async_jobs_unfinished_per_caller: usize,
}

impl Default for ServiceLimits {
    fn default() -> Self {
        Self {
            default_maxrec: 100_000,
            hard_maxrec: 50_000_000,
            upload_limit_bytes: 64 * 1024 * 1024,
            execution_duration_secs: 3600,
            retention_secs: 7 * 24 * 3600,
            query_memory_bytes: colo_tap::engine::DEFAULT_QUERY_MEMORY_BYTES as u64,
            sync_query_secs: 600,
            async_jobs_running: 4,
            async_jobs_per_caller: 2,
            async_jobs_unfinished_per_caller: 100,
        }
    }
}

/// The `/capabilities` document. `base` is the TAP base URL (`http://host:port/tap`).
/// With `obscore`, the ObsCore 1.1 data model is declared (`ivoa.obscore` is published).
pub fn capabilities(
    base: &str,
    functions: &FunctionCatalog,
    limits: &ServiceLimits,
    obscore: bool,
) -> String {
    let base = xml_escape(base);
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <vosi:capabilities xmlns:vosi=\"http://www.ivoa.net/xml/VOSICapabilities/v1.0\" \
         xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
         xmlns:vs=\"http://www.ivoa.net/xml/VODataService/v1.1\" \
         xmlns:tr=\"http://www.ivoa.net/xml/TAPRegExt/v1.0\">\n",
    );
    for (standard, path) in [
        ("ivo://ivoa.net/std/VOSI#capabilities", "capabilities"),
        ("ivo://ivoa.net/std/VOSI#availability", "availability"),
        ("ivo://ivoa.net/std/VOSI#tables-1.1", "tables"),
    ] {
        out.push_str(&format!(
            "<capability standardID=\"{standard}\">\n<interface xsi:type=\"vs:ParamHTTP\" version=\"1.1\">\n\
             <accessURL use=\"full\">{base}/{path}</accessURL>\n</interface>\n</capability>\n"
        ));
    }
    out.push_str("<capability standardID=\"ivo://ivoa.net/std/DALI#examples\">\n<interface xsi:type=\"vs:ParamHTTP\">\n");
    out.push_str(&format!(
        "<accessURL use=\"full\">{base}/examples</accessURL>\n</interface>\n</capability>\n"
    ));
    out.push_str(
        "<capability standardID=\"ivo://ivoa.net/std/TAP\" xsi:type=\"tr:TableAccess\">\n",
    );
    out.push_str(&format!(
        "<interface role=\"std\" xsi:type=\"vs:ParamHTTP\" version=\"1.1\">\n<accessURL use=\"base\">{base}</accessURL>\n</interface>\n"
    ));
    if obscore {
        out.push_str(
            "<dataModel ivo-id=\"ivo://ivoa.net/std/ObsCore#core-1.1\">ObsCore-1.1</dataModel>\n",
        );
    }
    out.push_str("<language>\n<name>ADQL</name>\n<version ivo-id=\"ivo://ivoa.net/std/ADQL#v2.1\">2.1</version>\n");
    out.push_str("<version ivo-id=\"ivo://ivoa.net/std/ADQL#v2.0\">2.0</version>\n");
    out.push_str("<description>ADQL 2.1, executed by Apache DataFusion over HEALPix-partitioned Parquet</description>\n");
    for (kind, features) in functions.language_features() {
        out.push_str(&format!("<languageFeatures type=\"{kind}\">\n"));
        for feature in features {
            out.push_str(&format!(
                "<feature><form>{}</form>",
                xml_escape(&feature.form)
            ));
            if let Some(description) = feature.description {
                out.push_str(&format!(
                    "<description>{}</description>",
                    xml_escape(description)
                ));
            }
            out.push_str("</feature>\n");
        }
        out.push_str("</languageFeatures>\n");
    }
    out.push_str("</language>\n");
    for (mime, alias, extra) in Format::declared() {
        out.push_str(&format!(
            "<outputFormat>\n<mime>{}</mime>\n<alias>{alias}</alias>\n",
            xml_escape(mime)
        ));
        for alias in *extra {
            out.push_str(&format!("<alias>{alias}</alias>\n"));
        }
        out.push_str("</outputFormat>\n");
    }
    out.push_str("<uploadMethod ivo-id=\"ivo://ivoa.net/std/TAPRegExt#upload-inline\"/>\n");
    out.push_str("<uploadMethod ivo-id=\"ivo://ivoa.net/std/TAPRegExt#upload-http\"/>\n");
    out.push_str("<uploadMethod ivo-id=\"ivo://ivoa.net/std/TAPRegExt#upload-https\"/>\n");
    out.push_str(&format!(
        "<retentionPeriod>\n<default>{0}</default>\n<hard>{0}</hard>\n</retentionPeriod>\n\
         <executionDuration>\n<default>{1}</default>\n<hard>{1}</hard>\n</executionDuration>\n\
         <outputLimit>\n<default unit=\"row\">{2}</default>\n<hard unit=\"row\">{3}</hard>\n</outputLimit>\n\
         <uploadLimit>\n<hard unit=\"byte\">{4}</hard>\n</uploadLimit>\n",
        limits.retention_secs, limits.execution_duration_secs, limits.default_maxrec, limits.hard_maxrec, limits.upload_limit_bytes
    ));
    out.push_str("</capability>\n</vosi:capabilities>\n");
    out
}

/// VOSI capabilities of a simple DAL service (SIA, SODA, DataLink): its VOSI endpoints and each
/// `(standardID, path)` below `base`.
pub fn simple_capabilities(base: &str, services: &[(&str, &str)]) -> String {
    let base = xml_escape(base);
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <vosi:capabilities xmlns:vosi=\"http://www.ivoa.net/xml/VOSICapabilities/v1.0\" \
         xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
         xmlns:vs=\"http://www.ivoa.net/xml/VODataService/v1.1\">\n",
    );
    let vosi = [
        ("ivo://ivoa.net/std/VOSI#capabilities", "capabilities"),
        ("ivo://ivoa.net/std/VOSI#availability", "availability"),
    ];
    for (standard, path) in vosi.iter().chain(services.iter()) {
        out.push_str(&format!(
            "<capability standardID=\"{standard}\">\n<interface xsi:type=\"vs:ParamHTTP\" role=\"std\">\n\
             <accessURL use=\"base\">{base}/{path}</accessURL>\n</interface>\n</capability>\n"
        ));
    }
    out.push_str("</vosi:capabilities>\n");
    out
}

/// The VOSI capabilities of the image service mounted at `/<service>`, listing
/// `(standardID, path)`, with URLs as the client sees them.
pub fn image_capabilities(root: &Root, service: &str, endpoints: &[(&str, &str)]) -> Response {
    let base = format!("{}/{service}", root.0);
    (
        [(header::CONTENT_TYPE, "text/xml")],
        simple_capabilities(&base, endpoints),
    )
        .into_response()
}

/// VOSI availability of the image services (they are up when TAP is).
pub async fn availability_handler(State(state): State<crate::AppState>) -> Response {
    crate::http::xml(availability(&state.tap.up_since))
}

/// The `/availability` document.
pub fn availability(up_since: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <vosi:availability xmlns:vosi=\"http://www.ivoa.net/xml/VOSIAvailability/v1.0\">\n\
         <vosi:available>true</vosi:available>\n<vosi:upSince>{up_since}</vosi:upSince>\n\
         <vosi:note>colo TAP service: accepting queries</vosi:note>\n</vosi:availability>\n"
    )
}

const TABLESET_OPEN: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
     <vosi:tableset xmlns:vosi=\"http://www.ivoa.net/xml/VOSITables/v1.0\" \
     xmlns:vs=\"http://www.ivoa.net/xml/VODataService/v1.1\" \
     xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
     xmlns:esatapplus=\"http://esa.int/xml/EsaTapPlus\">\n";

/// The `/tables` tableset. With `detail_min`, columns are left out (pyvo then fetches each
/// table's own document).
/// With `esa`, tables and columns carry ESA TAP+'s `esatapplus:` attributes (astroquery's TapPlus
/// needs `esatapplus:flags` on every column; the VODataService schema does not allow them, so
/// standard clients get the plain document).
pub fn tableset(tables: &[TableMeta], detail_min: bool, esa: bool) -> String {
    let mut out = String::from(TABLESET_OPEN);
    let mut schemas: Vec<&str> = tables.iter().map(|t| t.schema.as_str()).collect();
    schemas.sort();
    schemas.dedup();
    for schema in schemas {
        out.push_str(&format!("<schema>\n<name>{}</name>\n", xml_escape(schema)));
        for table in tables.iter().filter(|t| t.schema == schema) {
            out.push_str(&table_element(table, "table", detail_min, esa));
        }
        out.push_str("</schema>\n");
    }
    out.push_str("</vosi:tableset>\n");
    out
}

/// The `/tables/{name}` document (VOSI 1.1 §4.2: a single `Table` element).
pub fn table_document(table: &TableMeta, esa: bool) -> String {
    let mut element = table_element(table, "vosi:table", false, esa);
    let open = "<vosi:table ";
    if let Some(rest) = element.strip_prefix(open) {
        element = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<vosi:table xmlns:vosi=\"http://www.ivoa.net/xml/VOSITables/v1.0\" \
             xmlns:vs=\"http://www.ivoa.net/xml/VODataService/v1.1\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
             xmlns:esatapplus=\"http://esa.int/xml/EsaTapPlus\" {rest}"
        );
    }
    element
}

fn table_element(table: &TableMeta, tag: &str, detail_min: bool, esa: bool) -> String {
    let size = table
        .rows
        .filter(|_| esa)
        .map(|r| {
            format!(
                " esatapplus:size_bytes=\"{}\"",
                r * 8 * table.columns.len() as u64
            )
        })
        .unwrap_or_default();
    let mut out = format!(
        "<{tag} type=\"table\"{size}>\n<name>{}</name>\n",
        xml_escape(&table.qualified_name())
    );
    if !table.description.is_empty() {
        out.push_str(&format!(
            "<description>{}</description>\n",
            xml_escape(&table.description)
        ));
    }
    if !table.utype.is_empty() {
        out.push_str(&format!("<utype>{}</utype>\n", xml_escape(&table.utype)));
    }
    if let Some(rows) = table.rows {
        out.push_str(&format!("<nrows>{rows}</nrows>\n"));
    }
    if !detail_min {
        for column in &table.columns {
            out.push_str(&column_element(column, esa));
        }
        if table.schema == colo_tap::tap_schema::SCHEMA {
            out.push_str(&tap_schema_keys(&table.name));
        }
    }
    out.push_str(&format!("</{tag}>\n"));
    out
}

fn column_element(column: &ColumnMeta, esa: bool) -> String {
    let d = &column.descriptor;
    let (datatype, arraysize, xtype) = declared_type(column);
    let mut out = if esa {
        format!(
            "<column esatapplus:flags=\"{}\">\n<name>{}</name>\n",
            d.flags,
            xml_escape(&column.name)
        )
    } else {
        format!("<column>\n<name>{}</name>\n", xml_escape(&column.name))
    };
    for (tag, value) in [
        ("description", &d.description),
        ("unit", &d.unit),
        ("ucd", &d.ucd),
        ("utype", &d.utype),
    ] {
        if !value.is_empty() {
            out.push_str(&format!("<{tag}>{}</{tag}>\n", xml_escape(value)));
        }
    }
    let arraysize = match xtype.as_deref() {
        Some("point") => Some("2"),
        Some("circle") => Some("3"),
        _ => arraysize,
    };
    out.push_str("<dataType xsi:type=\"vs:VOTableType\"");
    if let Some(arraysize) = arraysize {
        out.push_str(&format!(" arraysize=\"{arraysize}\""));
    }
    if let Some(xtype) = &xtype {
        out.push_str(&format!(" extendedType=\"{}\"", xml_escape(xtype)));
    }
    out.push_str(&format!(">{datatype}</dataType>\n"));
    for (flag, on) in [
        ("indexed", d.indexed),
        ("principal", d.principal),
        ("std", d.std),
    ] {
        if on {
            out.push_str(&format!("<flag>{flag}</flag>\n"));
        }
    }
    out.push_str("</column>\n");
    out
}

fn tap_schema_keys(table: &str) -> String {
    let keys: &[(&str, &str, &str, &str)] = &[
        ("tables", "tap_schema.schemas", "schema_name", "schema_name"),
        ("columns", "tap_schema.tables", "table_name", "table_name"),
        ("keys", "tap_schema.tables", "from_table", "table_name"),
        ("keys", "tap_schema.tables", "target_table", "table_name"),
        ("key_columns", "tap_schema.keys", "key_id", "key_id"),
    ];
    keys.iter()
        .filter(|(from, ..)| *from == table)
        .map(|(_, target, from_column, target_column)| {
            format!(
                "<foreignKey>\n<targetTable>{target}</targetTable>\n<fkColumn>\n<fromColumn>{from_column}</fromColumn>\n\
                 <targetColumn>{target_column}</targetColumn>\n</fkColumn>\n</foreignKey>\n"
            )
        })
        .collect()
}

/// The DALI examples document (XHTML with RDFa, DALI 1.1 §2.3).
pub fn examples(tables: &[TableMeta]) -> String {
    let mut examples: Vec<(String, String, String)> = vec![(
        "tap-schema".into(),
        "The tables of this service".into(),
        "SELECT table_name, description FROM TAP_SCHEMA.tables ORDER BY table_name".into(),
    )];
    if let Some(table) = tables.iter().find(|t| t.position.is_some()) {
        let position = table
            .position
            .as_ref()
            .map(|p| (p.lon.clone(), p.lat.clone()))
            .unwrap_or_default();
        let (ra, dec) = position;
        let name = table.qualified_name();
        examples.push((
            "cone".into(),
            format!("Cone search on {name}"),
            format!("SELECT TOP 100 * FROM {name} WHERE 1=CONTAINS(POINT('ICRS', {ra}, {dec}), CIRCLE('ICRS', 56.75, 24.12, 1.0))"),
        ));
        examples.push((
            "distance".into(),
            format!("Nearest sources with their distance from a position, {name}"),
            format!(
                "SELECT TOP 10 DISTANCE(POINT('ICRS', {ra}, {dec}), POINT('ICRS', 83.82, -5.39)) AS dist, * FROM {name} \
                 WHERE 1=CONTAINS(POINT('ICRS', {ra}, {dec}), CIRCLE('ICRS', 83.82, -5.39, 2)) ORDER BY dist"
            ),
        ));
    }
    let mut out = String::from(
        "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n<head><title>colo TAP examples</title></head>\n\
         <body vocab=\"http://www.ivoa.net/rdf/examples#\">\n<h1>Example queries</h1>\n",
    );
    for (id, title, query) in examples {
        out.push_str(&format!(
            "<div typeof=\"example\" id=\"{id}\" resource=\"#{id}\">\n<h2 property=\"name\">{}</h2>\n\
             <pre property=\"query\">{}</pre>\n</div>\n",
            xml_escape(&title),
            xml_escape(&query)
        ));
    }
    out.push_str("</body>\n</html>\n");
    out
}
