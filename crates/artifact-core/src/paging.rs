//! Page sizes of listings: the one place the defaults and maxima live.
//!
//! The front ends keep their visible behaviour: the CLI lists up to
//! [`DEFAULT_LIST_LIMIT`] packages (what the library returns when asked for no limit), while
//! the HTTP API answers pages of [`DEFAULT_PAGE_LIMIT`] unless asked for more, up to
//! [`MAX_LIST_LIMIT`]. Events page separately ([`DEFAULT_EVENT_LIMIT`],
//! [`MAX_EVENT_LIMIT`]).

/// Packages the library (and the CLI's `list --limit`) returns when no limit is given.
pub const DEFAULT_LIST_LIMIT: u32 = 1000;

/// The largest page of packages or checkpoints an HTTP client may ask for.
pub const MAX_LIST_LIMIT: u32 = 1000;

/// The page of packages or checkpoints the HTTP API answers without `limit` (smaller than
/// [`DEFAULT_LIST_LIMIT`] so one request stays small; clients follow `next_cursor`). Also the
/// CLI's `log checkpoints --limit` default.
pub const DEFAULT_PAGE_LIMIT: u32 = 100;

/// Events `GET /events` answers without `limit` (and the library reads when given none).
pub const DEFAULT_EVENT_LIMIT: u32 = 1000;

/// The largest page of events an HTTP client may ask for.
pub const MAX_EVENT_LIMIT: u32 = 10_000;
