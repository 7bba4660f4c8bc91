//! Data types as the outputs and TAP_SCHEMA see them: every Arrow type maps to one canonical type
//! (VOTable's datatypes, VOTable 1.4 §2.1), which every writer writes and TAP_SCHEMA declares, and
//! floats are written as their shortest round-tripping text. One place, so results, `/tables` and
//! TAP_SCHEMA can never disagree.

use std::sync::Arc;

use arrow_schema::{DataType, Field};

/// The canonical Arrow type each output writes for a column type (VOTable's datatypes).
pub fn canonical_type(data_type: &DataType) -> DataType {
    match data_type {
        DataType::Boolean => DataType::Boolean,
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => DataType::Int16,
        DataType::Int32 | DataType::UInt16 => DataType::Int32,
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => DataType::Int64,
        DataType::Float16 | DataType::Float32 => DataType::Float32,
        DataType::Float64 | DataType::Decimal128(..) | DataType::Decimal256(..) => {
            DataType::Float64
        }
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) => {
            DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true)))
        }
        _ => DataType::Utf8,
    }
}

/// VOTable datatype and arraysize for an Arrow type (VOTable 1.4 §2.1; TAP 1.1 §4.3 uses the same
/// names in TAP_SCHEMA). Geometry lists are `double` arrays; timestamps are `char` with xtype.
pub fn votable_type(data_type: &DataType) -> (&'static str, Option<&'static str>) {
    match data_type {
        DataType::Boolean => ("boolean", None),
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => ("short", None),
        DataType::Int32 | DataType::UInt16 => ("int", None),
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => ("long", None),
        DataType::Float16 | DataType::Float32 => ("float", None),
        DataType::Float64 | DataType::Decimal128(..) | DataType::Decimal256(..) => ("double", None),
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) => {
            ("double", Some("*"))
        }
        _ => ("char", Some("*")),
    }
}

/// DALI xtype implied by an Arrow type alone.
pub fn implied_xtype(data_type: &DataType) -> Option<&'static str> {
    match data_type {
        DataType::Timestamp(..) | DataType::Date32 | DataType::Date64 => Some("timestamp"),
        _ => None,
    }
}

/// Shortest round-tripping text of a float (`NaN`, `+Inf`, `-Inf` as VOTable writes them).
pub fn format_float(value: f64, single: bool) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else if single {
        format!("{:?}", value as f32)
    } else {
        format!("{value:?}")
    }
}
