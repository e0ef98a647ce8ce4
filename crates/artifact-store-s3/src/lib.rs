//! # artifact-store-s3
//!
//! The S3-compatible blob backend of artifactstore (AWS S3, MinIO, Ceph RGW, Cloudflare R2,
//! Garage, SeaweedFS…), built on the `object_store` crate.
//!
//! **Status: not implemented yet.** This crate holds only the workspace slot so that the
//! dependency graph (`artifact-core` ← `artifact-store-s3`) and the configuration keys
//! (`[blobs] backend = "s3"`, `bucket`, `prefix`, `endpoint`, `region`, `allow_http`) are fixed.
//! Selecting `backend = "s3"` today is a configuration error that says so. The plan (multipart
//! uploads to a staging key, ranged gets, the shared blob-backend conformance suite run against
//! a real SeaweedFS on loopback) is in ROADMAP.md, milestone 5.
#![warn(missing_docs, unreachable_pub)]
