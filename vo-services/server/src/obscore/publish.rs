//! The `ivoa.obscore` table: records kept in a manifest, published as a TAP table.
//!
//! The manifest (`<tables>/.obscore/records.toml`) is the source of truth: one [`ImageRecord`]
//! per published file, with the file's version. [`publish`] rebuilds the table from it with the
//! services' public URL in `access_url` (so the URL follows `--listen`), through the same ingest
//! as catalogues (HEALPix partitions on s_ra/s_dec), then writes the ObsCore 1.1 column metadata
//! (units, UCDs, utypes as taplint's OBS stage checks them) into the descriptor.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{
    Float64Builder, Int32Builder, Int64Builder, ListBuilder, StringBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{Field, Schema};
use serde::{Deserialize, Serialize};

use super::ImageRecord;
use colo_tap::TapError;
use colo_tap::catalog::{DESCRIPTOR_FILE, PositionDescriptor, REGION_XTYPE, TableDescriptor};
use colo_tap::ingest::{IngestRequest, InputFormat, ingest};

use crate::error::VoError;

/// ADQL name of the table.
pub const SCHEMA: &str = "ivoa";
pub const TABLE: &str = "obscore";
/// `access_format` of rows whose `access_url` is a DataLink document.
pub const DATALINK_FORMAT: &str = "application/x-votable+xml;content=datalink";

/// All published image records.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(default, rename = "record")]
    pub records: Vec<ImageRecord>,
}

fn manifest_path(tables_dir: &Path) -> PathBuf {
    tables_dir.join(".obscore").join("records.toml")
}

impl Manifest {
    /// The manifest under `tables_dir` (empty when there is none yet).
    pub fn read(tables_dir: &Path) -> Result<Manifest, VoError> {
        let path = manifest_path(tables_dir);
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).map_err(|e| VoError::Corrupt {
                path,
                message: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Manifest::default()),
            Err(source) => Err(VoError::Io { path, source }),
        }
    }

    /// Writes the manifest atomically (temporary file renamed into place).
    pub fn write(&self, tables_dir: &Path) -> Result<(), VoError> {
        let path = manifest_path(tables_dir);
        let io = |source| VoError::Io {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let text = toml::to_string(self).map_err(|e| VoError::Corrupt {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let temporary = path.with_extension(format!("toml.tmp-{}", std::process::id()));
        std::fs::write(&temporary, text).map_err(io)?;
        std::fs::rename(&temporary, &path).map_err(io)
    }
}

/// The DataLink URL of a dataset, as a path on this service (made absolute, with the root the
/// client sees, in every response: see `colo_tap::output::absolute_urls`).
pub fn links_path(did: &str) -> String {
    let encoded: String = url::form_urlencoded::byte_serialize(did.as_bytes()).collect();
    format!("/datalink/links?ID={encoded}")
}

/// (name, unit, UCD, utype, description) of the ObsCore 1.1 columns, in the standard's order.
const COLUMNS: [(&str, &str, &str, &str, &str); 30] = [
    (
        "dataproduct_type",
        "",
        "meta.code.class",
        "ObsDataset.dataProductType",
        "Data product type (image, cube)",
    ),
    (
        "calib_level",
        "",
        "meta.code;obs.calib",
        "ObsDataset.calibLevel",
        "Calibration level (0 raw … 4 analysis product)",
    ),
    (
        "obs_collection",
        "",
        "meta.id",
        "DataID.Collection",
        "Name of the data collection",
    ),
    (
        "obs_id",
        "",
        "meta.id",
        "DataID.observationID",
        "Observation identifier within the collection",
    ),
    (
        "obs_publisher_did",
        "",
        "meta.ref.ivoid",
        "Curation.PublisherDID",
        "Dataset identifier given by the publisher",
    ),
    (
        "access_url",
        "",
        "meta.ref.url",
        "Access.Reference",
        "DataLink document of the dataset",
    ),
    (
        "access_format",
        "",
        "meta.code.mime",
        "Access.Format",
        "Format of what access_url returns",
    ),
    (
        "access_estsize",
        "kbyte",
        "phys.size;meta.file",
        "Access.Size",
        "Size of the dataset file",
    ),
    (
        "target_name",
        "",
        "meta.id;src",
        "Target.Name",
        "Object of interest (OBJECT keyword)",
    ),
    (
        "s_ra",
        "deg",
        "pos.eq.ra",
        "Char.SpatialAxis.Coverage.Location.Coord.Position2D.Value2.C1",
        "Right ascension of the image centre (ICRS)",
    ),
    (
        "s_dec",
        "deg",
        "pos.eq.dec",
        "Char.SpatialAxis.Coverage.Location.Coord.Position2D.Value2.C2",
        "Declination of the image centre (ICRS)",
    ),
    (
        "s_fov",
        "deg",
        "phys.angSize;instr.fov",
        "Char.SpatialAxis.Coverage.Bounds.Extent.diameter",
        "Diameter of the circle around the centre that holds the footprint",
    ),
    (
        "s_region",
        "",
        "pos.outline;obs.field",
        "Char.SpatialAxis.Coverage.Support.Area",
        "Footprint: the image outline through its WCS (ICRS)",
    ),
    (
        "s_resolution",
        "arcsec",
        "pos.angResolution",
        "Char.SpatialAxis.Resolution.Refval.value",
        "Spatial resolution (beam major axis, else pixel size)",
    ),
    (
        "s_xel1",
        "",
        "meta.number",
        "Char.SpatialAxis.numBins1",
        "Pixels along the first celestial axis",
    ),
    (
        "s_xel2",
        "",
        "meta.number",
        "Char.SpatialAxis.numBins2",
        "Pixels along the second celestial axis",
    ),
    (
        "t_min",
        "d",
        "time.start;obs.exposure",
        "Char.TimeAxis.Coverage.Bounds.Limits.StartTime",
        "Start of the exposure (MJD)",
    ),
    (
        "t_max",
        "d",
        "time.end;obs.exposure",
        "Char.TimeAxis.Coverage.Bounds.Limits.StopTime",
        "End of the exposure (MJD)",
    ),
    (
        "t_exptime",
        "s",
        "time.duration;obs.exposure",
        "Char.TimeAxis.Coverage.Support.Extent",
        "Exposure time",
    ),
    (
        "t_resolution",
        "s",
        "time.resolution",
        "Char.TimeAxis.Resolution.Refval.value",
        "Temporal resolution",
    ),
    (
        "t_xel",
        "",
        "meta.number",
        "Char.TimeAxis.numBins",
        "Samples along the time axis",
    ),
    (
        "em_min",
        "m",
        "em.wl;stat.min",
        "Char.SpectralAxis.Coverage.Bounds.Limits.LoLimit",
        "Shortest vacuum wavelength covered",
    ),
    (
        "em_max",
        "m",
        "em.wl;stat.max",
        "Char.SpectralAxis.Coverage.Bounds.Limits.HiLimit",
        "Longest vacuum wavelength covered",
    ),
    (
        "em_res_power",
        "",
        "spect.resolution",
        "Char.SpectralAxis.Resolution.ResolPower.refVal",
        "Spectral resolving power λ/Δλ",
    ),
    (
        "em_xel",
        "",
        "meta.number",
        "Char.SpectralAxis.numBins",
        "Channels along the spectral axis",
    ),
    (
        "o_ucd",
        "",
        "meta.ucd",
        "Char.ObservableAxis.ucd",
        "UCD of the observable (pixel values)",
    ),
    (
        "pol_states",
        "",
        "meta.code;phys.polarization",
        "Char.PolarizationAxis.stateList",
        "Polarization states present (/I/Q/U/V/ ...)",
    ),
    (
        "pol_xel",
        "",
        "meta.number",
        "Char.PolarizationAxis.numBins",
        "Samples along the polarization axis",
    ),
    (
        "facility_name",
        "",
        "meta.id;instr.tel",
        "Provenance.ObsConfig.facility.name",
        "Observatory or telescope (TELESCOP)",
    ),
    (
        "instrument_name",
        "",
        "meta.id;instr",
        "Provenance.ObsConfig.instrument.name",
        "Instrument (INSTRUME)",
    ),
];

/// The records as one Arrow batch with the ObsCore columns.
pub fn record_batch(records: &[ImageRecord]) -> Result<RecordBatch, VoError> {
    let text = |f: &dyn Fn(&ImageRecord) -> Option<String>| -> ArrayRef {
        let mut b = StringBuilder::new();
        for r in records {
            b.append_option(f(r));
        }
        Arc::new(b.finish())
    };
    let float = |f: &dyn Fn(&ImageRecord) -> Option<f64>| -> ArrayRef {
        let mut b = Float64Builder::new();
        for r in records {
            b.append_option(f(r));
        }
        Arc::new(b.finish())
    };
    let long = |f: &dyn Fn(&ImageRecord) -> Option<i64>| -> ArrayRef {
        let mut b = Int64Builder::new();
        for r in records {
            b.append_option(f(r));
        }
        Arc::new(b.finish())
    };
    let mut calib = Int32Builder::new();
    for r in records {
        calib.append_value(r.calib_level);
    }
    let mut region = ListBuilder::new(Float64Builder::new());
    for r in records {
        match &r.s_region {
            Some(v) => {
                region.values().append_slice(v);
                region.append(true);
            }
            None => region.append(false),
        }
    }
    let columns: Vec<ArrayRef> = vec![
        text(&|r| Some(r.dataproduct_type.clone())),
        Arc::new(calib.finish()),
        text(&|r| Some(r.obs_collection.clone())),
        text(&|r| Some(r.obs_id.clone())),
        text(&|r| Some(r.obs_publisher_did.clone())),
        text(&|r| Some(links_path(&r.obs_publisher_did))),
        text(&|_| Some(DATALINK_FORMAT.to_string())),
        long(&|r| Some(r.size.div_ceil(1024) as i64)),
        text(&|r| r.target_name.clone()),
        float(&|r| Some(r.s_ra)),
        float(&|r| Some(r.s_dec)),
        float(&|r| r.s_fov),
        Arc::new(region.finish()),
        float(&|r| r.s_resolution),
        long(&|r| Some(r.s_xel1)),
        long(&|r| Some(r.s_xel2)),
        float(&|r| r.t_min),
        float(&|r| r.t_max),
        float(&|r| r.t_exptime),
        float(&|_| None),
        long(&|r| r.t_xel),
        float(&|r| r.em_min),
        float(&|r| r.em_max),
        float(&|_| None),
        long(&|r| r.em_xel),
        text(&|r| r.o_ucd.clone()),
        text(&|r| r.pol_states.clone()),
        long(&|r| r.pol_xel),
        text(&|r| r.facility_name.clone()),
        text(&|r| r.instrument_name.clone()),
    ];
    let fields: Vec<Field> = COLUMNS
        .iter()
        .zip(&columns)
        .map(|((name, ..), array)| {
            let not_null = matches!(
                *name,
                "calib_level" | "obs_collection" | "obs_id" | "obs_publisher_did"
            );
            Field::new(*name, array.data_type().clone(), !not_null)
        })
        .collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(obscore_ingest)
}

/// A failure writing `ivoa.obscore`'s rows.
fn obscore_ingest(e: impl std::fmt::Display) -> VoError {
    VoError::Tap(TapError::Ingest {
        source_name: "ivoa.obscore".into(),
        message: e.to_string(),
    })
}

/// Publishes `ivoa.obscore` from the manifest under `tables_dir`. Returns the number of rows.
pub fn publish(tables_dir: &Path) -> Result<usize, VoError> {
    let manifest = Manifest::read(tables_dir)?;
    let batch = record_batch(&manifest.records)?;
    let mut bytes = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut bytes, batch.schema(), None)
        .and_then(|mut w| w.write(&batch).map(|()| w))
        .map_err(obscore_ingest)?;
    writer.flush().map_err(obscore_ingest)?;
    writer.close().map_err(obscore_ingest)?;
    let request = IngestRequest {
        source_name: format!("colo ingest images ({} file(s))", manifest.records.len()),
        bytes: bytes::Bytes::from(bytes),
        format: InputFormat::Parquet,
        schema: SCHEMA.into(),
        table: TABLE.into(),
        position: Some(PositionDescriptor {
            ra: "s_ra".into(),
            dec: "s_dec".into(),
        }),
        description: Some("ObsCore 1.1: the images and cubes published here".into()),
    };
    let report = ingest(tables_dir, &request, &mut |_, _| {})?;
    let path = report.dir.join(DESCRIPTOR_FILE);
    let mut descriptor = TableDescriptor::read(&path)?;
    describe_columns(&mut descriptor);
    descriptor.write(&path)?;
    Ok(manifest.records.len())
}

/// Standard metadata on every ObsCore column (operator edits to descriptions are not kept: the
/// standard fixes these).
fn describe_columns(descriptor: &mut TableDescriptor) {
    descriptor.utype = "ivo://ivoa.net/std/ObsCore#core-1.1".into();
    descriptor.description =
        "ObsCore 1.1: the images and cubes published by this service, one row per file".into();
    for column in &mut descriptor.columns {
        let Some((_, unit, ucd, utype, description)) =
            COLUMNS.iter().find(|(n, ..)| *n == column.name)
        else {
            continue;
        };
        column.unit = unit.to_string();
        column.ucd = ucd.to_string();
        column.utype = format!("obscore:{utype}");
        column.description = description.to_string();
        column.std = true;
        column.principal = true;
        column.flags = 0;
        column.indexed = matches!(column.name.as_str(), "s_ra" | "s_dec" | "obs_publisher_did");
        column.service_relative = column.name == "access_url";
        column.xtype = if column.name == "s_region" {
            REGION_XTYPE.into()
        } else {
            String::new()
        };
    }
}
