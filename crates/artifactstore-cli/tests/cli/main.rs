//! The one CLI integration test binary: every test of the `artifactstore` binary, as modules
//! sharing one test kit ([`kit`]): the process harness, builders, byte generators, the SSE
//! reader and the contract macro that runs each CLI contract test against both an embedded
//! store and a running server.

mod kit;
#[path = "../../../artifact-store-s3/tests/support/seaweed.rs"]
mod seaweed;

mod cli;
mod contract;
mod crash;
mod follow;
mod local_safety;
mod maintenance;
mod object_lock;
mod oci;
mod replicas;
mod s3;
mod server;
mod tlog;
