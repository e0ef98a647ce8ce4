mod concurrency;
mod gc;
mod integrity;
mod pilot;
mod retention_model;
mod smoke;
mod support;
mod tlog;
