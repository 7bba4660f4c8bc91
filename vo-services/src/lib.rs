//! colo-vo-services: the IVOA services — TAP 1.1 with ADQL 2.1 over Parquet (DataFusion), and
//! later DataLink 1.1, SIA 2.0 over ObsCore and SODA 1.0 cutouts — reading through the same
//! connectors and block cache as the mounts (never through the VFS).
//!
//! The app is `router(state) -> axum::Router`; protocol logic lives in plain modules (ADQL
//! translation in [`adql`], query execution in [`engine`], serialisations in [`output`], jobs in
//! [`uws`]) and the handlers in [`tap`] only convert.

pub mod adql;
pub mod sky;
