mod retention_model;
mod smoke;
mod support;
