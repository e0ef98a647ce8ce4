mod anchors;
mod concurrency;
mod gc;
mod history;
mod insider;
mod integrity;
mod pilot;
mod read_only;
mod retention_model;
#[path = "../../crates/artifact-store-s3/tests/support/seaweed.rs"]
mod seaweed;
mod smoke;
mod support;
mod tlog;
mod tokens;
