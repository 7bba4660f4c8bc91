//! TAP_SCHEMA (TAP 1.1 §4): schemas, tables, columns, keys and key_columns, built from the
//! published tables' metadata and describing itself, with the five self foreign keys taplint
//! checks (E_TSLN). Queryable like any table (it is registered as in-memory tables).

use std::sync::Arc;

use arrow_array::{ArrayRef, Int32Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};

use crate::catalog::{ColumnDescriptor, ColumnMeta, TableMeta, declared_type};

use crate::error::TapError;

/// The schema name.
pub const SCHEMA: &str = "tap_schema";

struct Col {
    name: &'static str,
    data_type: DataType,
    description: &'static str,
}

const fn text(name: &'static str, description: &'static str) -> Col {
    Col {
        name,
        data_type: DataType::Utf8,
        description,
    }
}

const fn int(name: &'static str, description: &'static str) -> Col {
    Col {
        name,
        data_type: DataType::Int32,
        description,
    }
}

fn definitions() -> Vec<(&'static str, &'static str, Vec<Col>)> {
    vec![
        (
            "schemas",
            "Schemas in this service",
            vec![
                text(
                    "schema_name",
                    "schema name for reference to TAP_SCHEMA.schemas",
                ),
                text("utype", "lists the utypes of schemas in the tableset"),
                text("description", "describes schemas in the tableset"),
                int(
                    "schema_index",
                    "recommended sort order when listing schemas",
                ),
            ],
        ),
        (
            "tables",
            "Tables in this service",
            vec![
                text("schema_name", "the schema this table belongs to"),
                text("table_name", "the fully qualified table name"),
                text("table_type", "one of: table view"),
                text("utype", "lists the utype of tables in the tableset"),
                text("description", "describes tables in the tableset"),
                int("table_index", "recommended sort order when listing tables"),
            ],
        ),
        (
            "columns",
            "Columns of the tables in this service",
            vec![
                text("table_name", "the table this column belongs to"),
                text("column_name", "the column name"),
                text(
                    "datatype",
                    "lists the ADQL datatype of columns in the tableset",
                ),
                text(
                    "arraysize",
                    "lists the size of variable-length columns in the tableset",
                ),
                text("xtype", "a DALI or custom extended type annotation"),
                int("\"size\"", "deprecated: use arraysize"),
                text("description", "describes the columns in the tableset"),
                text("utype", "lists the utypes of columns in the tableset"),
                text(
                    "unit",
                    "lists the unit used for column values in the tableset",
                ),
                text("ucd", "lists the UCDs of columns in the tableset"),
                int("indexed", "an indexed column; 1 means true, 0 means false"),
                int(
                    "principal",
                    "a principal column; 1 means true, 0 means false",
                ),
                int("std", "a standard column; 1 means true, 0 means false"),
                int(
                    "column_index",
                    "recommended sort order when listing columns of a table",
                ),
            ],
        ),
        (
            "keys",
            "Foreign keys between the tables in this service",
            vec![
                text("key_id", "unique key to join to TAP_SCHEMA.key_columns"),
                text("from_table", "the table with the foreign key"),
                text("target_table", "the table with the primary key"),
                text("description", "describes keys in the tableset"),
                text("utype", "lists the utype of keys in the tableset"),
            ],
        ),
        (
            "key_columns",
            "Columns of the foreign keys in this service",
            vec![
                text("key_id", "key to join to TAP_SCHEMA.keys"),
                text("from_column", "column in the from_table"),
                text("target_column", "column in the target_table"),
            ],
        ),
    ]
}

/// The five TAP_SCHEMA tables as queryable tables.
pub fn table_metas() -> Vec<TableMeta> {
    definitions()
        .into_iter()
        .map(|(name, description, cols)| TableMeta {
            schema: SCHEMA.to_string(),
            name: name.to_string(),
            description: description.to_string(),
            utype: String::new(),
            columns: cols
                .into_iter()
                .map(|c| ColumnMeta {
                    name: c.name.to_string(),
                    arrow_type: Some(c.data_type),
                    xtype: None,
                    descriptor: ColumnDescriptor {
                        name: c.name.to_string(),
                        description: c.description.to_string(),
                        principal: true,
                        std: true,
                        ..Default::default()
                    },
                })
                .collect(),
            position: None,
            rows: None,
        })
        .collect()
}

/// Foreign keys: (key_id, from_table, target_table, from_column, target_column).
const KEYS: &[(&str, &str, &str, &str, &str)] = &[
    (
        "tables_schema",
        "tap_schema.tables",
        "tap_schema.schemas",
        "schema_name",
        "schema_name",
    ),
    (
        "columns_table",
        "tap_schema.columns",
        "tap_schema.tables",
        "table_name",
        "table_name",
    ),
    (
        "keys_from",
        "tap_schema.keys",
        "tap_schema.tables",
        "from_table",
        "table_name",
    ),
    (
        "keys_target",
        "tap_schema.keys",
        "tap_schema.tables",
        "target_table",
        "table_name",
    ),
    (
        "key_columns_key",
        "tap_schema.key_columns",
        "tap_schema.keys",
        "key_id",
        "key_id",
    ),
];

fn strings<'a>(values: impl IntoIterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(values.into_iter().collect::<StringArray>())
}

fn ints(values: impl IntoIterator<Item = Option<i32>>) -> ArrayRef {
    Arc::new(values.into_iter().collect::<Int32Array>())
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

/// The rows of the five tables describing `tables` (which include TAP_SCHEMA's own).
pub fn batches(tables: &[TableMeta]) -> Result<Vec<(&'static str, RecordBatch)>, TapError> {
    let mut schema_names: Vec<&str> = tables.iter().map(|t| t.schema.as_str()).collect();
    schema_names.dedup();
    schema_names.sort();
    schema_names.dedup();
    let schema_description = |s: &str| {
        if s == SCHEMA {
            Some("Metadata of the tables in this service (TAP 1.1 §4)")
        } else {
            None
        }
    };

    let schemas = vec![
        strings(schema_names.iter().map(|s| Some(*s))),
        strings(schema_names.iter().map(|_| None)),
        strings(schema_names.iter().map(|s| schema_description(s))),
        ints(schema_names.iter().enumerate().map(|(i, _)| Some(i as i32))),
    ];
    let names: Vec<String> = tables.iter().map(TableMeta::qualified_name).collect();
    let table_rows = vec![
        strings(tables.iter().map(|t| Some(t.schema.as_str()))),
        strings(names.iter().map(|n| Some(n.as_str()))),
        strings(tables.iter().map(|_| Some("table"))),
        strings(tables.iter().map(|t| non_empty(&t.utype))),
        strings(tables.iter().map(|t| non_empty(&t.description))),
        ints(tables.iter().enumerate().map(|(i, _)| Some(i as i32))),
    ];
    let mut cols: Vec<(String, &ColumnMeta, usize)> = Vec::new();
    for (t, name) in tables.iter().zip(&names) {
        for (i, c) in t.columns.iter().enumerate() {
            cols.push((name.clone(), c, i));
        }
    }
    let declared: Vec<(&str, Option<&str>, Option<String>)> =
        cols.iter().map(|(_, c, _)| declared_type(c)).collect();
    let types: Vec<(&str, Option<&str>)> = declared.iter().map(|(d, a, _)| (*d, *a)).collect();
    let column_rows = vec![
        strings(cols.iter().map(|(t, _, _)| Some(t.as_str()))),
        strings(cols.iter().map(|(_, c, _)| Some(c.name.as_str()))),
        strings(types.iter().map(|(d, _)| Some(*d))),
        strings(types.iter().map(|(_, a)| *a)),
        strings(declared.iter().map(|(_, _, x)| x.as_deref())),
        ints(types.iter().map(|(_, a)| a.and_then(|a| a.parse().ok()))),
        strings(
            cols.iter()
                .map(|(_, c, _)| non_empty(&c.descriptor.description)),
        ),
        strings(cols.iter().map(|(_, c, _)| non_empty(&c.descriptor.utype))),
        strings(cols.iter().map(|(_, c, _)| non_empty(&c.descriptor.unit))),
        strings(cols.iter().map(|(_, c, _)| non_empty(&c.descriptor.ucd))),
        ints(
            cols.iter()
                .map(|(_, c, _)| Some(i32::from(c.descriptor.indexed))),
        ),
        ints(
            cols.iter()
                .map(|(_, c, _)| Some(i32::from(c.descriptor.principal))),
        ),
        ints(
            cols.iter()
                .map(|(_, c, _)| Some(i32::from(c.descriptor.std))),
        ),
        ints(cols.iter().map(|(_, _, i)| Some(*i as i32))),
    ];
    let keys = vec![
        strings(KEYS.iter().map(|k| Some(k.0))),
        strings(KEYS.iter().map(|k| Some(k.1))),
        strings(KEYS.iter().map(|k| Some(k.2))),
        strings(KEYS.iter().map(|_| None)),
        strings(KEYS.iter().map(|_| None)),
    ];
    let key_columns = vec![
        strings(KEYS.iter().map(|k| Some(k.0))),
        strings(KEYS.iter().map(|k| Some(k.3))),
        strings(KEYS.iter().map(|k| Some(k.4))),
    ];
    let data = [schemas, table_rows, column_rows, keys, key_columns];
    definitions()
        .into_iter()
        .zip(data)
        .map(|((name, _, defs), arrays)| {
            let fields: Vec<Field> = defs
                .iter()
                .map(|c| Field::new(c.name.trim_matches('"'), c.data_type.clone(), true))
                .collect();
            let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
                .map_err(|e| TapError::Engine(e.into()))?;
            Ok((name, batch))
        })
        .collect()
}
