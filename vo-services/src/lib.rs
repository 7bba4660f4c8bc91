//! colo-vo-services: the IVOA services — TAP 1.1 with ADQL 2.1 over Parquet (DataFusion), DataLink
//! 1.1, SIA 2.0 over ObsCore, SODA 1.0 cutouts — reading through the same connectors and block cache
//! as the mounts (never through the VFS).
//!
//! Empty on purpose in this version: the volumes issue lays out the workspace, and the TAP issue
//! brings the first service here as `pub fn router(state: AppState) -> axum::Router`.
