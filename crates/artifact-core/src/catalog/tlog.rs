//! The verifiable log's tables (migration 0008, ADR 0011): `tlog_nodes`, the complete-subtree
//! hashes written in the same transaction as each event, and `tlog_checkpoints`, the signed
//! checkpoints (append-only; not events).
//!
//! The tree is derived from the log: [`Catalog::rebuild_tree`] recreates it,
//! [`Catalog::verify_tree`] (fsck) recomputes it from the stored event bytes and compares.

use std::collections::HashMap;

use sqlx::{AnyConnection, Row as _};

use super::Catalog;
use crate::error::{Error, Result};
use crate::time::Timestamp;
use crate::tlog::{self, Frontier, Hash, NodeId, TlogError, tree};

/// Events read per batch by catch-up, rebuild and verification.
const BATCH: i64 = 5000;
/// Nodes per multi-row INSERT or keyed SELECT (3 or 2 parameters each).
const NODES_PER_STATEMENT: usize = 200;

/// A signed checkpoint as the catalog keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCheckpoint {
    /// Leaves (events) the checkpoint covers.
    pub tree_size: u64,
    /// Their RFC 6962 root.
    pub root_hash: Hash,
    /// The C2SP signed note, verbatim.
    pub note: String,
    /// When it was made.
    pub created_at: Option<Timestamp>,
}

fn stored_hash(bytes: Vec<u8>, seq: u64, what: &str) -> Result<Hash> {
    bytes.as_slice().try_into().map_err(|_| Error::Integrity {
        seq,
        reason: format!("stored {what} is {} bytes, not 32", bytes.len()),
    })
}

/// Leaves in the stored tree (one past the highest stored leaf).
async fn leaf_count(conn: &mut AnyConnection) -> Result<u64> {
    let row = sqlx::query("SELECT MAX(idx) AS m FROM tlog_nodes WHERE level = 0")
        .fetch_one(&mut *conn)
        .await?;
    let max: Option<i64> = row.try_get("m")?;
    Ok(max.map_or(0, |m| m as u64 + 1))
}

/// The stored nodes among `ids` (absent ones are simply not in the map).
pub(super) async fn fetch_nodes(
    conn: &mut AnyConnection,
    ids: &[NodeId],
) -> Result<HashMap<NodeId, Hash>> {
    let mut found = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(NODES_PER_STATEMENT) {
        let mut sql = String::from("SELECT level, idx, hash FROM tlog_nodes WHERE ");
        for i in 0..chunk.len() {
            if i > 0 {
                sql.push_str(" OR ");
            }
            sql.push_str(&format!(
                "(level = ${} AND idx = ${})",
                2 * i + 1,
                2 * i + 2
            ));
        }
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in chunk {
            query = query.bind(id.level as i64).bind(id.index as i64);
        }
        for row in query.fetch_all(&mut *conn).await? {
            let level: i64 = row.try_get("level")?;
            let index: i64 = row.try_get("idx")?;
            let id = NodeId::new(level as u8, index as u64);
            let hash = stored_hash(
                row.try_get("hash")?,
                (id.index << id.level) + 1,
                "tree node",
            )?;
            found.insert(id, hash);
        }
    }
    Ok(found)
}

async fn insert_nodes(conn: &mut AnyConnection, nodes: &[(NodeId, Hash)]) -> Result<()> {
    for chunk in nodes.chunks(NODES_PER_STATEMENT) {
        let mut sql = String::from("INSERT INTO tlog_nodes (level, idx, hash) VALUES ");
        for i in 0..chunk.len() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("(${}, ${}, ${})", 3 * i + 1, 3 * i + 2, 3 * i + 3));
        }
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (id, hash) in chunk {
            query = query
                .bind(id.level as i64)
                .bind(id.index as i64)
                .bind(hash.to_vec());
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Grows the tree inside one write transaction: the hook of `WriteTx::append`.
///
/// Appending leaf `i` needs its left siblings (one per trailing one bit of `i`). Of the nodes
/// an append completes only the topmost can be a later append's sibling, so the appender keeps
/// those (at most `log2 n`) in memory and reads from `tlog_nodes` only siblings it has not seen
/// in this transaction (the first append of a transaction: one keyed read). The completed nodes
/// are inserted in multi-row batches, at the latest by [`TreeAppender::flush`] before the
/// transaction commits. A tree that is behind the log (events appended before migration 0008,
/// or by a catalog opened with `merkle_tree` off) is first caught up from the stored bytes.
#[derive(Debug, Default)]
pub(super) struct TreeAppender {
    /// Nodes a later append of this transaction may need as siblings.
    frontier: HashMap<NodeId, Hash>,
    /// Completed nodes not inserted yet.
    pending: Vec<(NodeId, Hash)>,
    /// Whether the tree was checked to reach the first leaf appended in this transaction.
    caught_up: bool,
}

impl TreeAppender {
    /// Adds the leaf of event `seq` and every subtree it completes.
    pub(super) async fn append(
        &mut self,
        conn: &mut AnyConnection,
        seq: u64,
        leaf: Hash,
    ) -> Result<()> {
        let index = seq - 1;
        if !self.caught_up {
            if let Some(previous) = index.checked_sub(1).map(|i| NodeId::new(0, i))
                && fetch_nodes(conn, &[previous]).await?.is_empty()
            {
                catch_up_in(conn, index).await?;
            }
            self.caught_up = true;
        }
        let siblings = tree::append_siblings(index);
        let unknown: Vec<NodeId> = siblings
            .iter()
            .filter(|id| !self.frontier.contains_key(id))
            .copied()
            .collect();
        if !unknown.is_empty() {
            self.frontier.extend(fetch_nodes(conn, &unknown).await?);
        }
        let hashes = siblings
            .iter()
            .map(|id| self.frontier.remove(id).ok_or(TlogError::MissingNode(*id)))
            .collect::<Result<Vec<_>, _>>()?;
        let nodes = tree::append_nodes(index, leaf, &hashes)?;
        if let Some(top) = nodes.last() {
            self.frontier.insert(top.0, top.1);
        }
        self.pending.extend(nodes);
        if self.pending.len() >= NODES_PER_STATEMENT {
            self.flush(conn).await?;
        }
        Ok(())
    }

    /// Inserts the completed nodes not inserted yet.
    pub(super) async fn flush(&mut self, conn: &mut AnyConnection) -> Result<()> {
        if !self.pending.is_empty() {
            insert_nodes(conn, &self.pending).await?;
            self.pending.clear();
        }
        Ok(())
    }
}

/// Extends the stored tree to `upto` leaves from the stored event bytes.
async fn catch_up_in(conn: &mut AnyConnection, upto: u64) -> Result<u64> {
    let size = leaf_count(conn).await?;
    if size >= upto {
        return Ok(0);
    }
    let stack = fetch_nodes(conn, &Frontier::nodes_of(size)).await?;
    let mut frontier = Frontier::resume(&stack, size)?;
    let mut after = size;
    let mut added = 0;
    while after < upto {
        let rows = super::read::bodies_page(conn, after, upto, BATCH).await?;
        if rows.is_empty() {
            return Err(Error::Integrity {
                seq: after + 1,
                reason: "the event is missing: the tree cannot be extended past it".to_owned(),
            });
        }
        let mut nodes = Vec::new();
        for (seq, body) in rows {
            if seq != after + 1 {
                return Err(Error::Integrity {
                    seq: after + 1,
                    reason: format!("expected seq {}, found seq {seq}", after + 1),
                });
            }
            nodes.extend(frontier.push(tlog::leaf_hash(&body)));
            after = seq;
            added += 1;
        }
        insert_nodes(conn, &nodes).await?;
    }
    Ok(added)
}

fn checkpoint_row(row: &sqlx::any::AnyRow) -> Result<StoredCheckpoint> {
    let tree_size = super::view_row::ViewRow::named(row, 0, "tlog_checkpoints row".to_owned())
        .count("tree_size")?;
    let view = super::view_row::ViewRow::named(row, 0, format!("tlog_checkpoints row {tree_size}"));
    Ok(StoredCheckpoint {
        tree_size,
        root_hash: stored_hash(row.try_get("root_hash")?, tree_size, "checkpoint root")?,
        note: view.text("note")?,
        created_at: view.opt_ts("created_at")?,
    })
}

async fn latest_in(conn: &mut AnyConnection) -> Result<Option<StoredCheckpoint>> {
    sqlx::query(
        "SELECT tree_size, root_hash, note, created_at FROM tlog_checkpoints ORDER BY tree_size DESC LIMIT 1",
    )
    .fetch_optional(&mut *conn)
    .await?
    .as_ref()
    .map(checkpoint_row)
    .transpose()
}

/// What replaying the stored event bytes says about the tree (see [`Catalog::replay_roots`]).
#[derive(Clone, Debug, Default)]
pub struct ReplayedRoots {
    /// `(size, root recomputed from the event bytes)` for each requested size the log reaches.
    pub roots: Vec<(u64, Hash)>,
    /// The first seq whose stored leaf hash differs from the hash of its stored bytes.
    pub first_leaf_mismatch: Option<u64>,
    /// Events replayed.
    pub replayed: u64,
}

impl Catalog {
    /// Leaves in the stored tree.
    pub async fn tree_size(&self) -> Result<u64> {
        let mut conn = self.pool.acquire().await?;
        leaf_count(&mut conn).await
    }

    /// Extends the tree over events appended before it existed (migration 0008), in batches of
    /// write transactions; returns the leaves added. Runs when the catalog opens.
    pub async fn catch_up_tree(&self) -> Result<u64> {
        // Checked first without the write lock: a complete tree costs two indexed reads.
        if leaf_count(&mut *self.pool.acquire().await?).await? >= self.head().await?.seq {
            return Ok(0);
        }
        let mut added = 0;
        loop {
            let mut tx = self.write().await?;
            let head = tx.head().seq;
            let size = leaf_count(tx.conn()).await?;
            if size >= head {
                tx.rollback().await?;
                return Ok(added);
            }
            added += catch_up_in(tx.conn(), head.min(size + 10 * BATCH as u64)).await?;
            tx.commit().await?;
        }
    }

    /// Drops and recomputes every tree node from the stored event bytes, in one write
    /// transaction; returns the leaves. Checkpoints are kept (they are signed, not derived).
    pub async fn rebuild_tree(&self) -> Result<u64> {
        let mut tx = self.write().await?;
        sqlx::query("DELETE FROM tlog_nodes")
            .execute(tx.conn())
            .await?;
        let head = tx.head().seq;
        let added = catch_up_in(tx.conn(), head).await?;
        tx.commit().await?;
        Ok(added)
    }

    /// Recomputes the tree from the stored event bytes and compares every stored node;
    /// returns the leaves checked, or [`Error::Integrity`] naming the first event whose nodes
    /// are missing or wrong.
    pub async fn verify_tree(&self) -> Result<u64> {
        let mut conn = self.pool.acquire().await?;
        let mut frontier = Frontier::new();
        let mut after: i64 = 0;
        loop {
            let rows =
                sqlx::query("SELECT seq, body FROM events WHERE seq > $1 ORDER BY seq LIMIT $2")
                    .bind(after)
                    .bind(BATCH)
                    .fetch_all(&mut *conn)
                    .await?;
            if rows.is_empty() {
                return Ok(frontier.size());
            }
            let mut expected = Vec::new();
            for row in &rows {
                let seq: i64 = row.try_get("seq")?;
                if seq != after + 1 {
                    return Err(Error::Integrity {
                        seq: after as u64 + 1,
                        reason: format!("expected seq {}, found seq {seq}", after + 1),
                    });
                }
                let body: Vec<u8> = row.try_get("body")?;
                for node in frontier.push(tlog::leaf_hash(&body)) {
                    expected.push((seq as u64, node));
                }
                after = seq;
            }
            let ids: Vec<NodeId> = expected.iter().map(|(_, (id, _))| *id).collect();
            let stored = fetch_nodes(&mut conn, &ids).await?;
            for (seq, (id, hash)) in &expected {
                match stored.get(id) {
                    Some(found) if found == hash => {}
                    Some(_) => {
                        return Err(Error::Integrity {
                            seq: *seq,
                            reason: format!(
                                "merkle tree node at level {} index {} does not match the event bytes (run `artifactstore admin rebuild-tree` if the events verify)",
                                id.level, id.index
                            ),
                        });
                    }
                    None => {
                        return Err(Error::Integrity {
                            seq: *seq,
                            reason: format!(
                                "merkle tree node at level {} index {} is missing (run `artifactstore admin rebuild-tree`)",
                                id.level, id.index
                            ),
                        });
                    }
                }
            }
        }
    }

    /// Recomputes, from the stored event bytes alone (not the stored tree), the root of each
    /// of `sizes`, and compares each leaf hash with the stored leaf on the way.
    pub async fn replay_roots(&self, sizes: &[u64]) -> Result<ReplayedRoots> {
        let mut sizes = sizes.to_vec();
        sizes.sort_unstable();
        sizes.dedup();
        let mut report = ReplayedRoots::default();
        let mut pending = sizes.iter().copied().peekable();
        let mut frontier = Frontier::new();
        while pending.peek() == Some(&0) {
            report.roots.push((0, frontier.root()));
            pending.next();
        }
        let Some(&last) = sizes.last() else {
            return Ok(report);
        };
        let mut conn = self.pool.acquire().await?;
        let mut after = 0;
        while after < last {
            let rows = super::read::bodies_page(&mut conn, after, last, BATCH).await?;
            if rows.is_empty() {
                break;
            }
            let first_index = after;
            let mut leaves = Vec::with_capacity(rows.len());
            for (seq, body) in rows {
                if seq != after + 1 {
                    // A removed event: the replayed prefix ends before it.
                    report.replayed = after;
                    return Ok(report);
                }
                let leaf = tlog::leaf_hash(&body);
                leaves.push(leaf);
                frontier.push(leaf);
                after = seq;
                while pending.peek() == Some(&after) {
                    report.roots.push((after, frontier.root()));
                    pending.next();
                }
            }
            if report.first_leaf_mismatch.is_none() {
                let ids: Vec<NodeId> = (0..leaves.len() as u64)
                    .map(|i| NodeId::new(0, first_index + i))
                    .collect();
                let stored = fetch_nodes(&mut conn, &ids).await?;
                report.first_leaf_mismatch = ids
                    .iter()
                    .zip(&leaves)
                    .find(|(id, leaf)| stored.get(id) != Some(leaf))
                    .map(|(id, _)| id.index + 1);
            }
        }
        report.replayed = after;
        Ok(report)
    }

    /// The stored nodes among `ids`, in one read per 200.
    pub async fn tree_nodes(&self, ids: &[NodeId]) -> Result<HashMap<NodeId, Hash>> {
        let mut conn = self.pool.acquire().await?;
        fetch_nodes(&mut conn, ids).await
    }

    /// The canonical bytes of event `seq`, if it exists.
    pub async fn event_bytes(&self, seq: u64) -> Result<Option<Vec<u8>>> {
        let mut conn = self.pool.acquire().await?;
        let row = sqlx::query("SELECT body FROM events WHERE seq = $1")
            .bind(seq as i64)
            .fetch_optional(&mut *conn)
            .await?;
        Ok(row.map(|row| row.try_get("body")).transpose()?)
    }

    /// Makes a checkpoint of the whole log unless the latest one already covers it, inside one
    /// write transaction (so no event lands between reading the head and signing, and two
    /// replicas never sign two roots for one size). `sign` turns `(size, root)` into the
    /// signed note. Returns the latest checkpoint and whether it is new.
    pub async fn make_checkpoint(
        &self,
        at: Timestamp,
        sign: impl FnOnce(u64, Hash) -> Result<String>,
    ) -> Result<(StoredCheckpoint, bool)> {
        let mut tx = self.write().await?;
        let size = tx.head().seq;
        if let Some(latest) = latest_in(tx.conn()).await?
            && latest.tree_size >= size
        {
            tx.rollback().await?;
            return Ok((latest, false));
        }
        catch_up_in(tx.conn(), size).await?;
        let nodes = fetch_nodes(tx.conn(), &tree::root_nodes(size)).await?;
        let root_hash = tree::root(&nodes, size)?;
        let note = sign(size, root_hash)?;
        sqlx::query(
            "INSERT INTO tlog_checkpoints (tree_size, root_hash, note, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(size as i64)
        .bind(root_hash.to_vec())
        .bind(note.as_str())
        .bind(at.unix_millis())
        .execute(tx.conn())
        .await?;
        tx.commit().await?;
        Ok((
            StoredCheckpoint {
                tree_size: size,
                root_hash,
                note,
                created_at: Some(at),
            },
            true,
        ))
    }

    /// The checkpoint with the largest tree size.
    pub async fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>> {
        let mut conn = self.pool.acquire().await?;
        latest_in(&mut conn).await
    }

    /// The checkpoint of exactly `tree_size`.
    pub async fn checkpoint_at(&self, tree_size: u64) -> Result<Option<StoredCheckpoint>> {
        let mut conn = self.pool.acquire().await?;
        sqlx::query(
            "SELECT tree_size, root_hash, note, created_at FROM tlog_checkpoints WHERE tree_size = $1",
        )
        .bind(tree_size as i64)
        .fetch_optional(&mut *conn)
        .await?
        .as_ref()
        .map(checkpoint_row)
        .transpose()
    }

    /// Checkpoints with a tree size above `after` (all if `None`), smallest first.
    pub async fn checkpoints(
        &self,
        after: Option<u64>,
        limit: u32,
    ) -> Result<Vec<StoredCheckpoint>> {
        let mut conn = self.pool.acquire().await?;
        sqlx::query(
            "SELECT tree_size, root_hash, note, created_at FROM tlog_checkpoints WHERE tree_size > $1 ORDER BY tree_size LIMIT $2",
        )
        .bind(after.map_or(-1, |a| a as i64))
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(checkpoint_row)
        .collect()
    }
}
