//! # artifact-server
//!
//! The thin axum HTTP server of artifactstore over the `artifact-core` library (SPEC §4.4):
//! resumable upload sessions, blobs with ranges, packages, retention, the event stream, bearer
//! token auth, problem+json errors, health, metrics and the scheduled sweeper.
//!
//! **Status: not implemented yet.** This crate holds only the workspace slot; the CLI works on
//! the embedded store in the meantime. The plan is in ROADMAP.md, milestone 3.
#![warn(missing_docs, unreachable_pub)]
