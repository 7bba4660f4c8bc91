//! colo-tap: the TAP engine. ADQL 2.1 in, streamed results out, over published catalogues stored as
//! HEALPix-partitioned Parquet — with no HTTP here (the services in `colo-vo-services` speak TAP).
//!
//! The layers, each using only those above it in this list:
//! * [`error`], [`names`], [`types`], [`units`]: the error type; name suggestions; the canonical
//!   data types and float text every output and TAP_SCHEMA share; units for `IN_UNIT`.
//! * [`adql`]: parse (sqlparser, an ADQL dialect), validate against ADQL's grammar, rewrite for
//!   DataFusion (geometry to UDFs, cones and crossmatches to HEALPix index ranges and cell joins).
//! * [`catalog`]: what is published — table descriptors (operator-editable TOML), column and table
//!   metadata, tables found in a local folder or on an object store.
//! * [`partitions`]: a table's HEALPix partition files, picked by a query's index ranges before
//!   any byte is read.
//! * [`tap_schema`]: TAP_SCHEMA built from that metadata.
//! * [`upload`]: table uploads (VOTable) for one query, inline or fetched from a URL.
//! * [`engine`]: the DataFusion session over the catalogue, TAP_SCHEMA and a query's uploads;
//!   results as a stream of record batches.
//! * [`output`]: result writers (VOTable TABLEDATA/BINARY2, CSV, TSV, ECSV, JSON, FITS, Parquet).
//! * [`ingest`]: catalogues (Parquet, CSV, VOTable, FITS) to published tables.
//!
//! Positions and HEALPix indices come from `colo-astro`'s `sky`.

pub mod adql;
pub mod catalog;
pub mod engine;
pub mod error;
pub mod ingest;
pub mod names;
pub mod output;
pub mod partitions;
pub mod tap_schema;
pub mod types;
pub mod units;
pub mod upload;

pub use error::TapError;
