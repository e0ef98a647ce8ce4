mod concurrency;
mod gc;
mod integrity;
mod pilot;
mod read_only;
mod retention_model;
mod smoke;
mod support;
