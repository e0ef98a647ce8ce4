//! Reading the views and the log: the queries, and decoding rows into [`super::rows`] types.

use std::collections::{BTreeMap, HashMap};

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row as _};

use super::view_row::ViewRow;
use crate::blob::Tier;
use crate::cbor::Value;
use crate::digest::{AnyDigest, BlobInfo, PackageId};
use crate::error::{Error, Result};
use crate::event::{Event, types};
use crate::time::Timestamp;

use super::project::VIEW_TABLES;
use super::rows::*;

const TOKEN_SELECT: &str = "SELECT t.token_sha256, t.principal, t.roles, t.created_seq, t.expires_at, t.revoked_seq, e.at \
     FROM auth_tokens t JOIN events e ON e.seq = t.created_seq";

/// The minted token with this hash, revoked or expired ones included.
pub(crate) async fn token_by_hash(
    conn: &mut AnyConnection,
    token_sha256: &str,
) -> Result<Option<TokenRecord>> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "{TOKEN_SELECT} WHERE t.token_sha256 = $1"
    )))
    .bind(token_sha256)
    .fetch_optional(&mut *conn)
    .await?
    .as_ref()
    .map(TokenRecord::from_row)
    .transpose()
}

/// The minted token of event `created_seq`.
pub(crate) async fn token_by_seq(
    conn: &mut AnyConnection,
    created_seq: u64,
) -> Result<Option<TokenRecord>> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "{TOKEN_SELECT} WHERE t.created_seq = $1"
    )))
    .bind(created_seq as i64)
    .fetch_optional(&mut *conn)
    .await?
    .as_ref()
    .map(TokenRecord::from_row)
    .transpose()
}

/// Every minted token, oldest first.
pub(crate) async fn list_tokens(conn: &mut AnyConnection) -> Result<Vec<TokenRecord>> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "{TOKEN_SELECT} ORDER BY t.created_seq"
    )))
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(TokenRecord::from_row)
    .collect()
}

impl TokenRecord {
    fn from_row(row: &AnyRow) -> Result<Self> {
        let mut view = ViewRow::named(row, 0, "auth_tokens row".to_owned());
        let created_seq = view.count("created_seq")?;
        view = ViewRow::named(
            row,
            created_seq,
            format!("auth_tokens row {}", Self::id_of(created_seq)),
        );
        let roles = match view.json("roles")? {
            Value::Array(items) => items
                .iter()
                .map(|item| {
                    item.as_str()
                        .and_then(|r| r.parse().ok())
                        .ok_or_else(|| view.corrupt(format!("`roles` holds {item:?}, not a role")))
                })
                .collect::<Result<_>>()?,
            other => return Err(view.corrupt(format!("`roles` is {other:?}, not an array"))),
        };
        let at: String = view.text("at")?;
        Ok(TokenRecord {
            token_id: Self::id_of(created_seq),
            token_sha256: view.text("token_sha256")?,
            principal: view.text("principal")?,
            roles,
            created_seq,
            created_at: at
                .parse()
                .map_err(|e| view.corrupt(format!("its event's `at`: {e}")))?,
            expires_at: view.opt_ts("expires_at")?,
            revoked_seq: view.opt_count("revoked_seq")?,
        })
    }
}

pub(super) fn integrity(seq: u64, what: impl std::fmt::Display) -> Error {
    Error::Integrity {
        seq,
        reason: what.to_string(),
    }
}

impl BlobRecord {
    fn from_row(row: &AnyRow) -> Result<Self> {
        let view = ViewRow::keyed(row, "blobs", "blake3", "stored_seq")?;
        let tier = view.text("tier")?;
        Ok(BlobRecord {
            info: view.blob_info()?,
            tier: Tier::parse(&tier)
                .ok_or_else(|| view.corrupt(format!("`tier` is `{tier}`, not a known tier")))?,
            stored_seq: view.seq,
            stored_at: view.ts("stored_at")?,
            deleting_seq: view.opt_count("deleting_seq")?,
        })
    }
}

/// Looks a blob up by either digest.
pub(crate) async fn blob(
    conn: &mut AnyConnection,
    digest: &AnyDigest,
) -> Result<Option<BlobRecord>> {
    let row = match digest {
        AnyDigest::Blake3(d) => {
            sqlx::query("SELECT * FROM blobs WHERE blake3 = $1")
                .bind(d.to_string())
                .fetch_optional(&mut *conn)
                .await?
        }
        AnyDigest::Sha256(d) => {
            sqlx::query("SELECT * FROM blobs WHERE sha256 = $1")
                .bind(d.to_string())
                .fetch_optional(&mut *conn)
                .await?
        }
    };
    row.as_ref().map(BlobRecord::from_row).transpose()
}

/// Reads a package's retention state; `None` if it has none.
pub(crate) async fn retention_status(
    conn: &mut AnyConnection,
    package_id: &PackageId,
) -> Result<Option<RetentionStatus>> {
    Ok(retention_statuses(conn, std::slice::from_ref(package_id))
        .await?
        .remove(package_id))
}

/// How many ids one `IN (…)` list binds: far below SQLite's and PostgreSQL's parameter limits,
/// and a page of `ls` (at most [`crate::paging::DEFAULT_LIST_LIMIT`] packages) in one query.
const IN_LIST_CHUNK: usize = 1000;

/// `$<first>, $<first + 1>, …` for `n` values.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The retention states of `packages` (those that have one), each with its active holds: two
/// queries per [`IN_LIST_CHUNK`] packages (`retention_state` by primary key, `holds` through
/// `holds_by_package`), instead of two per package.
pub(crate) async fn retention_statuses(
    conn: &mut AnyConnection,
    packages: &[PackageId],
) -> Result<HashMap<PackageId, RetentionStatus>> {
    let mut statuses = HashMap::with_capacity(packages.len());
    for chunk in packages.chunks(IN_LIST_CHUNK) {
        let keys: Vec<String> = chunk.iter().map(|p| p.to_string()).collect();
        let list = placeholders(1, keys.len());
        // Only numbered placeholders are formatted in; every value is bound.
        let mut holds_query = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT * FROM holds WHERE package_id IN ({list}) AND released_seq IS NULL \
             ORDER BY package_id, applied_seq"
        )));
        for key in &keys {
            holds_query = holds_query.bind(key.as_str());
        }
        let mut holds: HashMap<String, Vec<HoldRecord>> = HashMap::new();
        for row in holds_query.fetch_all(&mut *conn).await? {
            let hold = ViewRow::keyed(&row, "holds", "hold_id", "applied_seq")?;
            let package: String = hold.text("package_id")?;
            holds.entry(package).or_default().push(HoldRecord {
                applied_at: hold.ts("applied_at")?,
                hold_id: hold.text("hold_id")?,
                reason: hold.text("reason")?,
                actor: hold.text("actor")?,
                applied_seq: hold.seq,
                released_seq: hold.opt_count("released_seq")?,
            });
        }
        let mut state_query = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT * FROM retention_state WHERE package_id IN ({list})"
        )));
        for key in &keys {
            state_query = state_query.bind(key.as_str());
        }
        for row in state_query.fetch_all(&mut *conn).await? {
            let view = ViewRow::keyed(&row, "retention_state", "package_id", "updated_seq")?;
            let key: String = view.text("package_id")?;
            let package_id: PackageId = view.parse("package_id")?;
            statuses.insert(
                package_id,
                RetentionStatus {
                    package_id,
                    retention_class: view.text("retention_class")?,
                    default_period: view.text("default_period")?,
                    default_expires_at: view.opt_ts("default_expires_at")?,
                    current_expires_at: view.opt_ts("current_expires_at")?,
                    active_holds: holds.remove(&key).unwrap_or_default(),
                    eligible_for_deletion: view.flag("eligible_for_deletion")?,
                    eligible_seq: view.opt_count("eligible_seq")?,
                    updated_seq: view.seq,
                },
            );
        }
    }
    Ok(statuses)
}

impl PackageRecord {
    fn from_row(row: &AnyRow) -> Result<Self> {
        let view = ViewRow::keyed(row, "packages", "package_id", "created_seq")?;
        let labels = match view.json("labels")? {
            Value::Map(map) => map
                .into_iter()
                .map(|(k, v)| match v {
                    Value::Text(text) => Ok((k, text)),
                    other => Err(view.corrupt(format!("label `{k}` is {other:?}, not text"))),
                })
                .collect::<Result<_>>()?,
            other => return Err(view.corrupt(format!("`labels` is {other:?}, not a map"))),
        };
        Ok(PackageRecord {
            package_id: view.parse("package_id")?,
            name: view.text("name")?,
            version: view.text("version")?,
            retention_class: view.text("retention_class")?,
            created_at: view.ts("created_at")?,
            created_seq: view.seq,
            actor: view.text("actor")?,
            file_count: view.count("file_count")?,
            total_size: view.count("total_size")?,
            manifest_size: view.count("manifest_size")?,
            labels,
            purged_seq: view.opt_count("purged_seq")?,
        })
    }
}

/// Looks a package up by id.
pub(crate) async fn package(
    conn: &mut AnyConnection,
    package_id: &PackageId,
) -> Result<Option<PackageRecord>> {
    sqlx::query("SELECT * FROM packages WHERE package_id = $1")
        .bind(package_id.to_string())
        .fetch_optional(&mut *conn)
        .await?
        .as_ref()
        .map(PackageRecord::from_row)
        .transpose()
}

/// Looks a package id up by name and version.
pub(crate) async fn package_id_by_name(
    conn: &mut AnyConnection,
    name: &str,
    version: &str,
) -> Result<Option<PackageId>> {
    let row = sqlx::query("SELECT package_id FROM packages WHERE name = $1 AND version = $2")
        .bind(name)
        .bind(version)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|row| {
        ViewRow::named(&row, 0, format!("packages row {name}@{version}")).parse("package_id")
    })
    .transpose()
}

/// A bound value of a query built by [`Filters`].
enum Bind {
    Int(i64),
    Text(String),
}

/// A query's optional filters: only the filters that are set become conditions (plain
/// `col = $n`), so the planner sees equalities it can serve from an index — never
/// `($n IS NULL OR col = $n)`, which hides them.
#[derive(Default)]
struct Filters {
    sql: String,
    binds: Vec<Bind>,
}

impl Filters {
    /// Adds `AND <column> <op> $n` bound to `value`.
    fn and(&mut self, column: &str, op: &str, value: Bind) {
        self.binds.push(value);
        self.sql
            .push_str(&format!(" AND {column} {op} ${}", self.binds.len()));
    }

    /// Adds `AND <column> = $n` if `value` is set.
    fn and_eq_text(&mut self, column: &str, value: Option<&str>) {
        if let Some(value) = value {
            self.and(column, "=", Bind::Text(value.to_owned()));
        }
    }

    /// The next placeholder's number (for a trailing `LIMIT`).
    fn next(&self) -> usize {
        self.binds.len() + 1
    }

    fn query<'q>(&self, sql: String) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for bind in &self.binds {
            query = match bind {
                Bind::Int(n) => query.bind(*n),
                Bind::Text(text) => query.bind(text.clone()),
            };
        }
        query
    }
}

/// Lists packages in creation order.
pub(crate) async fn list_packages(
    conn: &mut AnyConnection,
    filter: &PackageFilter,
) -> Result<Vec<PackageRecord>> {
    let mut filters = Filters::default();
    filters.and("p.created_seq", ">", Bind::Int(filter.after_seq as i64));
    filters.and_eq_text("p.name", filter.name.as_deref());
    filters.and_eq_text("p.retention_class", filter.retention_class.as_deref());
    filters.and_eq_text("p.version", filter.version.as_deref());
    if filter.eligible {
        filters.sql.push_str(" AND r.eligible_for_deletion = 1");
    }
    let sql = format!(
        "SELECT p.* FROM packages p LEFT JOIN retention_state r ON r.package_id = p.package_id \
         WHERE 1 = 1{} ORDER BY p.created_seq LIMIT ${}",
        filters.sql,
        filters.next()
    );
    let rows = filters
        .query(sql)
        .bind(i64::from(
            filter.limit.unwrap_or(crate::paging::DEFAULT_LIST_LIMIT),
        ))
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(PackageRecord::from_row).collect()
}

/// Reads events in seq order (decoded from their canonical bodies, the source of truth).
pub(crate) async fn events(conn: &mut AnyConnection, query: &EventQuery) -> Result<Vec<Event>> {
    let (sql, filters) = events_sql(query);
    let rows = filters
        .query(sql)
        .bind(i64::from(
            query.limit.unwrap_or(crate::paging::DEFAULT_EVENT_LIMIT),
        ))
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(event_of_row).collect()
}

/// The stored canonical bytes of the events after `after` up to `upto`, in seq order, at most
/// `limit` of them: what replays the log (view rebuilds, Merkle leaves) read page by page.
pub(crate) async fn bodies_page(
    conn: &mut AnyConnection,
    after: u64,
    upto: u64,
    limit: i64,
) -> Result<Vec<(u64, Vec<u8>)>> {
    let rows = sqlx::query(
        "SELECT seq, body FROM events WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3",
    )
    .bind(i64::try_from(after).unwrap_or(i64::MAX))
    .bind(i64::try_from(upto).unwrap_or(i64::MAX))
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            let seq: i64 = row.try_get("seq")?;
            let seq = u64::try_from(seq)
                .map_err(|_| integrity(0, format!("events row with seq {seq}")))?;
            Ok((seq, row.try_get("body")?))
        })
        .collect()
}

/// The SQL of [`events`] (the `LIMIT` is the last placeholder) and its bound filters.
fn events_sql(query: &EventQuery) -> (String, Filters) {
    let mut filters = Filters::default();
    filters.and("seq", ">", Bind::Int(query.after as i64));
    filters.and_eq_text("type", query.event_type.as_deref());
    let package_id = query.package_id.map(|p| p.to_string());
    filters.and_eq_text("package_id", package_id.as_deref());
    let sql = format!(
        "SELECT seq, body FROM events WHERE 1 = 1{} ORDER BY seq LIMIT ${}",
        filters.sql,
        filters.next()
    );
    (sql, filters)
}

/// Every view's rows as sorted lines.
pub(crate) async fn dump_views(
    conn: &mut AnyConnection,
) -> Result<BTreeMap<&'static str, Vec<String>>> {
    let mut dump = BTreeMap::new();
    for table in VIEW_TABLES {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT * FROM {table}")))
            .fetch_all(&mut *conn)
            .await?;
        let mut lines: Vec<String> = rows
            .iter()
            .map(|row| {
                use sqlx::Column as _;
                row.columns()
                    .iter()
                    .map(|column| {
                        let index = column.ordinal();
                        if let Ok(v) = row.try_get::<Option<i64>, _>(index) {
                            format!("{}={v:?}", column.name())
                        } else if let Ok(v) = row.try_get::<Option<String>, _>(index) {
                            format!("{}={v:?}", column.name())
                        } else {
                            format!("{}=<unreadable>", column.name())
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        lines.sort();
        dump.insert(table, lines);
    }
    Ok(dump)
}

/// Packages the view says are due to become eligible at `as_of`, oldest expiry first, one page
/// after the cursor `after` (the last `(expiry, package)` of the previous page; `None` for the
/// first), through the partial `retention_sweep` index (cost grows with the packages due, not
/// with the store). Candidates only: the sweeper re-derives each from the log.
pub(crate) async fn due_for_sweep(
    conn: &mut AnyConnection,
    as_of: Timestamp,
    after: Option<(Timestamp, PackageId)>,
    limit: i64,
) -> Result<Vec<(PackageId, Timestamp)>> {
    let (after_expiry, after_id) = match &after {
        Some((t, id)) => (t.unix_millis(), id.to_string()),
        None => (i64::MIN, String::new()),
    };
    let rows = sqlx::query(
        "SELECT package_id, current_expires_at FROM retention_state \
         WHERE eligible_for_deletion = 0 AND active_holds = 0 AND current_expires_at IS NOT NULL \
           AND current_expires_at <= $1 \
           AND (current_expires_at > $3 OR (current_expires_at = $3 AND package_id > $4)) \
         ORDER BY current_expires_at, package_id LIMIT $2",
    )
    .bind(as_of.unix_millis())
    .bind(limit)
    .bind(after_expiry)
    .bind(after_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            let view = ViewRow::keyed_unsequenced(row, "retention_state", "package_id")?;
            Ok((view.parse("package_id")?, view.ts("current_expires_at")?))
        })
        .collect()
}

/// Eligible, unpurged packages without active holds, oldest eligibility first, one page after
/// the cursor `after_eligible_seq` (0 for the first page): each with its `eligible_seq`, the
/// cursor of the next page (index `retention_by_eligible_seq`, so a page costs its size).
pub(crate) async fn eligible_unpurged(
    conn: &mut AnyConnection,
    after_eligible_seq: u64,
    limit: i64,
) -> Result<Vec<(PackageId, u64)>> {
    let rows = sqlx::query(
        "SELECT r.package_id, r.eligible_seq FROM retention_state r JOIN packages p ON p.package_id = r.package_id \
         WHERE r.eligible_seq > $1 AND r.eligible_for_deletion = 1 AND r.active_holds = 0 AND p.purged_seq IS NULL \
         ORDER BY r.eligible_seq LIMIT $2",
    )
    .bind(after_eligible_seq as i64)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            let view = ViewRow::keyed(row, "retention_state", "package_id", "eligible_seq")?;
            Ok((view.parse("package_id")?, view.seq))
        })
        .collect()
}

/// Recorded blobs stored at or before `cutoff` that no live package references and that are not
/// a manifest (manifests are kept forever). With `assume_eligible_purged`, packages that are
/// eligible (and unheld) count as purged already (for dry runs).
///
/// One page in stored order after the cursor `after_stored_seq` (0 for the first page; index
/// `blobs_by_stored_seq`, so a run walks the blobs once instead of once per page).
pub(crate) async fn unreferenced_blobs(
    conn: &mut AnyConnection,
    cutoff: Timestamp,
    assume_eligible_purged: bool,
    after_stored_seq: u64,
    limit: i64,
) -> Result<Vec<BlobRecord>> {
    let rows = sqlx::query(
        "SELECT b.* FROM blobs b WHERE b.stored_seq > $4 AND b.stored_at <= $1 AND b.deleting_seq IS NULL \
           AND NOT EXISTS (SELECT 1 FROM packages m WHERE m.package_id = b.blake3) \
           AND NOT EXISTS ( \
             SELECT 1 FROM package_files f \
             JOIN packages p ON p.package_id = f.package_id \
             LEFT JOIN retention_state r ON r.package_id = p.package_id \
             WHERE f.blake3 = b.blake3 AND p.purged_seq IS NULL \
               AND NOT ($2 = 1 AND COALESCE(r.eligible_for_deletion, 0) = 1 AND COALESCE(r.active_holds, 1) = 0)) \
         ORDER BY b.stored_seq LIMIT $3",
    )
    .bind(cutoff.unix_millis())
    .bind(i64::from(assume_eligible_purged))
    .bind(limit)
    .bind(after_stored_seq as i64)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(BlobRecord::from_row).collect()
}

/// Blobs garbage collection has committed to deleting (`v1.blob.deletion_started`) whose
/// `v1.blob.deleted` is not recorded yet, in stored order; through the partial
/// `blobs_deleting` index, so asking costs nothing when none are pending.
pub(crate) async fn deleting_blobs(
    conn: &mut AnyConnection,
    limit: i64,
) -> Result<Vec<BlobRecord>> {
    let rows = sqlx::query(
        "SELECT * FROM blobs WHERE deleting_seq IS NOT NULL ORDER BY deleting_seq, stored_seq LIMIT $1",
    )
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(BlobRecord::from_row).collect()
}

/// Every recorded blob, in stored order, one page after `after_seq`.
pub(crate) async fn blobs_page(
    conn: &mut AnyConnection,
    after_seq: u64,
    limit: i64,
) -> Result<Vec<(BlobRecord, Option<bool>)>> {
    let rows =
        sqlx::query("SELECT * FROM blobs WHERE stored_seq > $1 ORDER BY stored_seq LIMIT $2")
            .bind(after_seq as i64)
            .bind(limit)
            .fetch_all(&mut *conn)
            .await?;
    rows.iter()
        .map(|row| {
            let ok: Option<i64> = row.try_get("last_check_ok")?;
            Ok((BlobRecord::from_row(row)?, ok.map(|ok| ok != 0)))
        })
        .collect()
}

/// Files of live (unpurged) packages, one page after a (package_id, path) cursor.
pub(crate) async fn live_files_page(
    conn: &mut AnyConnection,
    after: &(String, String),
    limit: i64,
) -> Result<Vec<(String, String, BlobInfo)>> {
    let rows = sqlx::query(
        "SELECT f.package_id, f.path, f.blake3, f.sha256, f.size FROM package_files f \
         JOIN packages p ON p.package_id = f.package_id WHERE p.purged_seq IS NULL \
           AND (f.package_id > $1 OR (f.package_id = $1 AND f.path > $2)) \
         ORDER BY f.package_id, f.path LIMIT $3",
    )
    .bind(after.0.as_str())
    .bind(after.1.as_str())
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            let package_id: String = row.try_get("package_id")?;
            let path: String = row.try_get("path")?;
            let name = format!("package_files row {package_id} {path}");
            let info = ViewRow::named(row, 0, name).blob_info()?;
            Ok((package_id, path, info))
        })
        .collect()
}

/// Live packages (unpurged) and their manifest sizes, one page after a package id.
pub(crate) async fn live_packages_page(
    conn: &mut AnyConnection,
    after: &str,
    limit: i64,
) -> Result<Vec<(PackageId, u64)>> {
    let rows = sqlx::query(
        "SELECT package_id, manifest_size FROM packages WHERE purged_seq IS NULL AND package_id > $1 \
         ORDER BY package_id LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            let view = ViewRow::keyed_unsequenced(row, "packages", "package_id")?;
            Ok((view.parse("package_id")?, view.count("manifest_size")?))
        })
        .collect()
}

/// The retention-relevant events (every type but `v1.package.created`, whose manifest the
/// retention fold does not need) of `packages`, in seq order, straight from the log (index
/// `events_by_package`): what decisions that delete are derived from, never a view row.
pub(crate) async fn retention_events_of(
    conn: &mut AnyConnection,
    packages: &[PackageId],
) -> Result<Vec<Event>> {
    if packages.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders: Vec<String> = (2..packages.len() + 2).map(|n| format!("${n}")).collect();
    let sql = format!(
        "SELECT seq, body FROM events WHERE type <> $1 AND package_id IN ({}) ORDER BY seq",
        placeholders.join(", ")
    );
    // Only numbered placeholders are formatted in; every value is bound.
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(types::PACKAGE_CREATED);
    for package in packages {
        query = query.bind(package.to_string());
    }
    let rows = query.fetch_all(&mut *conn).await?;
    rows.iter().map(event_of_row).collect()
}

/// Events of one type after `after_seq`, in seq order, one page (index `events_by_type`).
pub(crate) async fn events_of_type(
    conn: &mut AnyConnection,
    event_type: &str,
    after_seq: u64,
    limit: i64,
) -> Result<Vec<Event>> {
    let rows = sqlx::query(
        "SELECT seq, body FROM events WHERE type = $1 AND seq > $2 ORDER BY seq LIMIT $3",
    )
    .bind(event_type)
    .bind(after_seq as i64)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(event_of_row).collect()
}

/// The events of `package_id` of type `event_type`, in seq order (through `events_by_package`).
pub(crate) async fn events_of_package_type(
    conn: &mut AnyConnection,
    package_id: &PackageId,
    event_type: &str,
) -> Result<Vec<Event>> {
    let rows = sqlx::query(
        "SELECT seq, body FROM events WHERE package_id = $1 AND type = $2 ORDER BY seq",
    )
    .bind(package_id.to_string())
    .bind(event_type)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(event_of_row).collect()
}

/// The events with these seqs, in seq order.
pub(crate) async fn events_at(conn: &mut AnyConnection, seqs: &[u64]) -> Result<Vec<Event>> {
    if seqs.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders: Vec<String> = (1..=seqs.len()).map(|n| format!("${n}")).collect();
    let sql = format!(
        "SELECT seq, body FROM events WHERE seq IN ({}) ORDER BY seq",
        placeholders.join(", ")
    );
    // Only numbered placeholders are formatted in; every value is bound.
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for seq in seqs {
        query = query.bind(*seq as i64);
    }
    let rows = query.fetch_all(&mut *conn).await?;
    rows.iter().map(event_of_row).collect()
}

fn event_of_row(row: &AnyRow) -> Result<Event> {
    let seq: i64 = row.try_get("seq")?;
    let seq = u64::try_from(seq).map_err(|_| integrity(0, format!("events row with seq {seq}")))?;
    let body: Vec<u8> = row.try_get("body")?;
    event_of_body(seq, &body)
}

/// The event stored at `seq` as `body`: bytes that do not decode are an integrity error.
pub(crate) fn event_of_body(seq: u64, body: &[u8]) -> Result<Event> {
    Event::from_canonical_bytes(body)
        .map_err(|e| integrity(seq, format!("body does not decode: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Catalog, CatalogOptions};
    use crate::digest::{Blake3, Sha256};
    use crate::event::types::{AuthTokenCreated, BlobStored, Extra, PackageCreated};
    use crate::manifest::Manifest;

    fn integrity_reason(result: Result<impl std::fmt::Debug>) -> (u64, String) {
        match result {
            Err(Error::Integrity { seq, reason }) => (seq, reason),
            other => panic!("expected an integrity error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn corrupt_view_rows_are_integrity_errors_naming_the_row_never_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let options = CatalogOptions {
            create_if_missing: true,
            ..CatalogOptions::new(format!("sqlite://{}", dir.path().join("c.db").display()))
        };
        let catalog = Catalog::open(&options).await.unwrap();
        let at = Timestamp::from_unix_millis(1000).unwrap();
        let blake3 = Blake3::of(b"x");
        let manifest = Manifest {
            name: "p".into(),
            version: "1".into(),
            retention_class: "ephemeral".into(),
            files: vec![],
            labels: BTreeMap::from([("team".to_owned(), "core".to_owned())]),
        };
        let package_id = manifest.package_id().unwrap();
        let mut tx = catalog.write().await.unwrap();
        let blob_data = BlobStored {
            blake3,
            sha256: Sha256::of(b"x"),
            size: 1,
            tier: Tier::Hot,
            extra: Extra::new(),
        };
        tx.append(None, "ci", at, blob_data).await.unwrap();
        let token = AuthTokenCreated {
            principal: "ci".into(),
            roles: vec!["reader".into()],
            token_sha256: Sha256::of(b"token"),
            expires_at: None,
            extra: Extra::new(),
        };
        tx.append(None, "ci", at, token).await.unwrap();
        let created = PackageCreated {
            manifest,
            extra: Extra::new(),
        };
        tx.append(Some(package_id), "ci", at, created)
            .await
            .unwrap();
        tx.commit().await.unwrap();

        let mut conn = catalog.read().await.unwrap();
        // Intact rows read back.
        let record = blob(&mut conn, &AnyDigest::Blake3(blake3))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.tier, Tier::Hot);
        assert_eq!(list_tokens(&mut conn).await.unwrap().len(), 1);
        assert_eq!(
            package(&mut conn, &package_id)
                .await
                .unwrap()
                .unwrap()
                .labels["team"],
            "core"
        );

        // An unknown tier was read as hot.
        sqlx::query("UPDATE blobs SET tier = 'lukewarm'")
            .execute(&mut *conn)
            .await
            .unwrap();
        let (seq, reason) = integrity_reason(blob(&mut conn, &AnyDigest::Blake3(blake3)).await);
        assert_eq!(seq, 1);
        assert_eq!(
            reason,
            format!("blobs row {blake3}: `tier` is `lukewarm`, not a known tier")
        );
        // A negative size was cast to a huge one.
        sqlx::query("UPDATE blobs SET tier = 'hot', size = -1")
            .execute(&mut *conn)
            .await
            .unwrap();
        let (seq, reason) = integrity_reason(blob(&mut conn, &AnyDigest::Blake3(blake3)).await);
        assert_eq!(
            (seq, reason),
            (1, format!("blobs row {blake3}: `size` is -1, not a count"))
        );
        // An unknown role was dropped.
        sqlx::query("UPDATE auth_tokens SET roles = '[\"reader\",\"superuser\"]'")
            .execute(&mut *conn)
            .await
            .unwrap();
        let (seq, reason) = integrity_reason(list_tokens(&mut conn).await);
        assert_eq!(seq, 2);
        assert!(
            reason.starts_with("auth_tokens row tok-2: `roles` holds"),
            "{reason}"
        );
        // A label that is not text was read as "".
        sqlx::query("UPDATE packages SET labels = '{\"team\":7}'")
            .execute(&mut *conn)
            .await
            .unwrap();
        let (seq, reason) = integrity_reason(package(&mut conn, &package_id).await);
        assert_eq!(seq, 3);
        assert!(
            reason.starts_with(&format!("packages row {package_id}: label `team` is")),
            "{reason}"
        );
        // A timestamp out of range was read as NULL (or the epoch).
        sqlx::query("UPDATE packages SET labels = '{}', created_at = 999999999999999")
            .execute(&mut *conn)
            .await
            .unwrap();
        let (_, reason) = integrity_reason(package(&mut conn, &package_id).await);
        assert!(
            reason.contains("`created_at` is 999999999999999"),
            "{reason}"
        );
    }

    /// The plan SQLite picks for `sql` (one line per step).
    async fn query_plan(conn: &mut AnyConnection, sql: String, filters: &Filters) -> String {
        let rows = filters
            .query(format!("EXPLAIN QUERY PLAN {sql}"))
            .bind(10_i64)
            .fetch_all(&mut *conn)
            .await
            .unwrap();
        rows.iter()
            .map(|r| r.try_get::<String, _>("detail").unwrap())
            .collect::<Vec<_>>()
            .join("; ")
    }

    #[tokio::test]
    async fn event_filters_are_plain_equalities_that_use_their_index() {
        let dir = tempfile::tempdir().unwrap();
        let options = CatalogOptions {
            create_if_missing: true,
            ..CatalogOptions::new(format!("sqlite://{}", dir.path().join("c.db").display()))
        };
        let catalog = Catalog::open(&options).await.unwrap();
        let mut conn = catalog.read().await.unwrap();
        let by_package = EventQuery {
            package_id: Some(Blake3::of(b"p")),
            ..EventQuery::default()
        };
        let (sql, filters) = events_sql(&by_package);
        assert!(!sql.contains("IS NULL"), "{sql}");
        let plan = query_plan(&mut conn, sql, &filters).await;
        assert!(plan.contains("events_by_package"), "{plan}");
        let by_type = EventQuery {
            event_type: Some("v1.package.purged".into()),
            ..EventQuery::default()
        };
        let (sql, filters) = events_sql(&by_type);
        let plan = query_plan(&mut conn, sql, &filters).await;
        assert!(plan.contains("events_by_type"), "{plan}");
        // No filter: only the seq cursor.
        let (sql, filters) = events_sql(&EventQuery::default());
        assert_eq!(
            sql,
            "SELECT seq, body FROM events WHERE 1 = 1 AND seq > $1 ORDER BY seq LIMIT $2"
        );
        assert_eq!(filters.binds.len(), 1);
    }
}

/// What the log recorded of the storage's Object Lock on a blob's version (the `blobs` lock
/// columns, from `v1.blob.lock_extended` and `v1.blob.legal_hold_set`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordedLock {
    /// The stored version the lock is on.
    pub version_id: Option<String>,
    /// The mode of its retention.
    pub mode: Option<crate::blob::LockMode>,
    /// Its retain-until date.
    pub retain_until: Option<Timestamp>,
    /// Whether its legal hold is on.
    pub legal_hold: bool,
}

impl RecordedLock {
    fn from_view(view: &ViewRow<'_>) -> Result<Self> {
        let mode = match view.opt_text("lock_mode")? {
            None => None,
            Some(text) => Some(crate::blob::LockMode::parse(&text).ok_or_else(|| {
                view.corrupt(format_args!("`lock_mode` is `{text}`, not a lock mode"))
            })?),
        };
        Ok(Self {
            version_id: view.opt_text("lock_version")?,
            mode,
            retain_until: view.opt_ts("lock_until")?,
            legal_hold: view.flag("legal_hold")?,
        })
    }
}

/// The recorded lock of a blob; `None` when the blob is not recorded.
pub(crate) async fn blob_lock(
    conn: &mut AnyConnection,
    blake3: &crate::digest::Blake3,
) -> Result<Option<RecordedLock>> {
    let row = sqlx::query(
        "SELECT blake3, stored_seq, lock_version, lock_mode, lock_until, legal_hold FROM blobs WHERE blake3 = $1",
    )
    .bind(blake3.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|row| {
        let view = ViewRow::keyed(&row, "blobs", "blake3", "stored_seq")?;
        RecordedLock::from_view(&view)
    })
    .transpose()
}

/// One blob that live packages reference (as a file or as their manifest), with what they
/// need from the storage and what the log recorded of its lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockNeed {
    /// The blob.
    pub blake3: crate::digest::Blake3,
    /// The latest expiry of a live, finite package referencing it.
    pub expires_at: Option<Timestamp>,
    /// A live permanent package references it.
    pub permanent: bool,
    /// A live package referencing it has an active hold.
    pub held: bool,
    /// The lock the log recorded.
    pub recorded: RecordedLock,
}

/// Live blobs with their lock needs, one page in digest order after `after` (`""` first).
pub(crate) async fn lock_needs_page(
    conn: &mut AnyConnection,
    after: &str,
    limit: i64,
) -> Result<Vec<LockNeed>> {
    let rows = sqlx::query(
        "SELECT r.blake3 AS blake3, b.stored_seq AS stored_seq, \
                CAST(MAX(r.permanent) AS BIGINT) AS permanent, CAST(MAX(r.expires) AS BIGINT) AS expires, \
                CAST(MAX(r.held) AS BIGINT) AS held, \
                b.lock_version AS lock_version, b.lock_mode AS lock_mode, b.lock_until AS lock_until, \
                b.legal_hold AS legal_hold \
         FROM (SELECT f.blake3 AS blake3, \
                      CASE WHEN s.current_expires_at IS NULL THEN 1 ELSE 0 END AS permanent, \
                      s.current_expires_at AS expires, \
                      CASE WHEN s.active_holds > 0 THEN 1 ELSE 0 END AS held \
               FROM (SELECT package_id, blake3 FROM package_files \
                     UNION ALL SELECT package_id, package_id AS blake3 FROM packages) f \
               JOIN packages p ON p.package_id = f.package_id \
               JOIN retention_state s ON s.package_id = f.package_id \
               WHERE p.purged_seq IS NULL AND f.blake3 > $1) r \
         JOIN blobs b ON b.blake3 = r.blake3 \
         GROUP BY r.blake3, b.stored_seq, b.lock_version, b.lock_mode, b.lock_until, b.legal_hold \
         ORDER BY r.blake3 LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            let view = ViewRow::keyed(row, "blobs", "blake3", "stored_seq")?;
            Ok(LockNeed {
                blake3: view.parse("blake3")?,
                expires_at: view.opt_ts("expires")?,
                permanent: view.flag("permanent")?,
                held: view.flag("held")?,
                recorded: RecordedLock::from_view(&view)?,
            })
        })
        .collect()
}

/// Blobs whose recorded legal hold is on, one page in digest order after `after`.
pub(crate) async fn legal_holds_page(
    conn: &mut AnyConnection,
    after: &str,
    limit: i64,
) -> Result<Vec<(crate::digest::Blake3, RecordedLock)>> {
    let rows = sqlx::query(
        "SELECT blake3, stored_seq, lock_version, lock_mode, lock_until, legal_hold FROM blobs \
         WHERE legal_hold = 1 AND blake3 > $1 ORDER BY blake3 LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            let view = ViewRow::keyed(row, "blobs", "blake3", "stored_seq")?;
            Ok((view.parse("blake3")?, RecordedLock::from_view(&view)?))
        })
        .collect()
}

/// Live packages referencing a blob (as a file or as their manifest).
pub(crate) async fn live_referrers(
    conn: &mut AnyConnection,
    blake3: &crate::digest::Blake3,
) -> Result<Vec<PackageId>> {
    let key = blake3.to_string();
    let rows = sqlx::query(
        "SELECT DISTINCT f.package_id AS package_id FROM \
           (SELECT package_id FROM package_files WHERE blake3 = $1 \
            UNION ALL SELECT package_id FROM packages WHERE package_id = $1) f \
         JOIN packages p ON p.package_id = f.package_id WHERE p.purged_seq IS NULL",
    )
    .bind(key.as_str())
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            let text: String = row.try_get("package_id")?;
            text.parse().map_err(|e| Error::Integrity {
                seq: 0,
                reason: format!(
                    "package_files or packages row for {key}: package_id `{text}`: {e}"
                ),
            })
        })
        .collect()
}

/// Every live package named `name` with a file at `path` whose SHA-256 is `sha256`, in
/// creation order (the indexes that list a manifest).
pub(crate) async fn packages_with_file(
    conn: &mut AnyConnection,
    name: &str,
    path: &str,
    sha256: &crate::digest::Sha256,
) -> Result<Vec<PackageId>> {
    let rows = sqlx::query(
        "SELECT p.package_id AS package_id FROM package_files f \
         JOIN packages p ON p.package_id = f.package_id \
         WHERE f.sha256 = $3 AND f.path = $2 AND p.name = $1 AND p.purged_seq IS NULL \
         ORDER BY p.created_seq",
    )
    .bind(name)
    .bind(path)
    .bind(sha256.to_string())
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(package_id_column).collect()
}

/// The media types of an OCI image index (and Docker's manifest list).
pub(crate) const INDEX_MEDIA_TYPES: [&str; 2] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// Every live package named `name` whose own `manifest.json` is an index and which lists the
/// manifest `sha256` (as `blobs/sha256/<hex>`), in creation order.
pub(crate) async fn indexes_listing(
    conn: &mut AnyConnection,
    name: &str,
    sha256: &crate::digest::Sha256,
) -> Result<Vec<PackageId>> {
    let rows = sqlx::query(
        "SELECT p.package_id AS package_id FROM package_files f \
         JOIN packages p ON p.package_id = f.package_id \
         JOIN package_files m ON m.package_id = p.package_id AND m.path = $4 \
         WHERE f.sha256 = $3 AND f.path = $2 AND p.name = $1 AND p.purged_seq IS NULL \
         AND m.media_type IN ($5, $6) ORDER BY p.created_seq",
    )
    .bind(name)
    .bind(crate::store::oci_blob_path(sha256))
    .bind(sha256.to_string())
    .bind(crate::store::OCI_MANIFEST_FILE)
    .bind(INDEX_MEDIA_TYPES[0])
    .bind(INDEX_MEDIA_TYPES[1])
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(package_id_column).collect()
}

/// A live package named `name` with a file at `path` whose SHA-256 is `sha256` (the OCI
/// façade's lookup of a manifest by digest).
pub(crate) async fn package_with_file(
    conn: &mut AnyConnection,
    name: &str,
    path: &str,
    sha256: &crate::digest::Sha256,
) -> Result<Option<PackageId>> {
    let row = sqlx::query(
        "SELECT p.package_id AS package_id FROM package_files f \
         JOIN packages p ON p.package_id = f.package_id \
         WHERE p.name = $1 AND f.path = $2 AND f.sha256 = $3 AND p.purged_seq IS NULL \
         ORDER BY p.created_seq LIMIT 1",
    )
    .bind(name)
    .bind(path)
    .bind(sha256.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(package_id_column).transpose()
}

/// The `package_id` column of a row: text that does not parse is an integrity error naming
/// it.
fn package_id_column(row: &AnyRow) -> Result<PackageId> {
    let text: String = row.try_get("package_id")?;
    text.parse().map_err(|e| Error::Integrity {
        seq: 0,
        reason: format!("packages row `{text}`: package_id: {e}"),
    })
}

/// The package a tag of an OCI repository names now (the `oci_tags` view), with the manifest
/// digest the tag was set to.
pub(crate) async fn oci_tag(
    conn: &mut AnyConnection,
    repository: &str,
    tag: &str,
) -> Result<Option<(PackageId, crate::digest::Sha256)>> {
    let row = sqlx::query(
        "SELECT package_id, manifest_sha256, set_seq FROM oci_tags WHERE repository = $1 AND tag = $2",
    )
    .bind(repository)
    .bind(tag)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|row| oci_tag_row(&row, repository, tag))
        .transpose()
}

/// Every tag of an OCI repository set by `v1.oci.tag_set` (the `oci_tags` view), sorted.
pub(crate) async fn oci_tags(
    conn: &mut AnyConnection,
    repository: &str,
) -> Result<Vec<(String, PackageId)>> {
    let rows = sqlx::query(
        "SELECT tag, package_id, manifest_sha256, set_seq FROM oci_tags WHERE repository = $1 ORDER BY tag",
    )
    .bind(repository)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            let tag: String = row.try_get("tag")?;
            let (package_id, _) = oci_tag_row(row, repository, &tag)?;
            Ok((tag, package_id))
        })
        .collect()
}

fn oci_tag_row(
    row: &sqlx::any::AnyRow,
    repository: &str,
    tag: &str,
) -> Result<(PackageId, crate::digest::Sha256)> {
    let mut view = ViewRow::named(row, 0, format!("oci_tags row {repository}:{tag}"));
    view.seq = view.count("set_seq")?;
    Ok((view.parse("package_id")?, view.parse("manifest_sha256")?))
}
