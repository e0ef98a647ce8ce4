mod concurrency;
mod gc;
mod insider;
mod integrity;
mod pilot;
mod retention_model;
mod smoke;
mod support;
