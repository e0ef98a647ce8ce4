//! The stream of committed events: catch up from the log, then wake on every commit of this
//! process, and re-check periodically for other processes' commits (a second replica).

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::Stream;

use super::{Catalog, EventQuery};
use crate::error::Result;
use crate::event::Event;

/// How often a [`Catalog::follow`] stream with nothing new re-reads the log, to pick up events
/// other processes committed (this process's commits wake it at once).
pub const FOLLOW_RECHECK: Duration = Duration::from_secs(1);

/// Events read from the log per query while catching up.
const PAGE: u32 = 1000;

struct Follow {
    catalog: Catalog,
    committed: tokio::sync::watch::Receiver<u64>,
    after: u64,
    buffer: VecDeque<Event>,
    failed: bool,
}

impl Catalog {
    /// Every committed event with seq greater than `after_seq`, in seq order, without end:
    /// first the log as it is, then each event as it is committed. A commit of this process
    /// wakes the stream at once; commits of other processes (another replica on the same
    /// database) are seen within [`FOLLOW_RECHECK`]. An error reading the log is yielded once
    /// and ends the stream.
    pub fn follow(&self, after_seq: u64) -> impl Stream<Item = Result<Event>> + Send + use<> {
        let state = Follow {
            catalog: self.clone(),
            committed: self.committed.subscribe(),
            after: after_seq,
            buffer: VecDeque::new(),
            failed: false,
        };
        futures_util::stream::unfold(state, |mut state| async move {
            if state.failed {
                return None;
            }
            loop {
                if let Some(event) = state.buffer.pop_front() {
                    state.after = event.seq;
                    return Some((Ok(event), state));
                }
                // Marks what this read covers: a commit after this point wakes the wait below.
                state.committed.borrow_and_update();
                let query = EventQuery {
                    after: state.after,
                    limit: Some(PAGE),
                    ..EventQuery::default()
                };
                match state.catalog.events(&query).await {
                    Err(e) => {
                        state.failed = true;
                        return Some((Err(e), state));
                    }
                    Ok(events) if !events.is_empty() => state.buffer.extend(events),
                    Ok(_) => {
                        tokio::select! {
                            // The sender lives in the catalog this stream holds: never closed.
                            _ = state.committed.changed() => {}
                            _ = tokio::time::sleep(FOLLOW_RECHECK) => {}
                        }
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt as _;

    use super::*;
    use crate::catalog::CatalogOptions;
    use crate::event::types::{Extra, RetentionHoldApplied};
    use crate::time::Timestamp;

    async fn open(path: &std::path::Path) -> Catalog {
        let options = CatalogOptions {
            create_if_missing: true,
            ..CatalogOptions::new(format!("sqlite://{}", path.display()))
        };
        Catalog::open(&options).await.unwrap()
    }

    /// Appends one event (an unknown type: the views ignore it) and commits.
    async fn append(catalog: &Catalog, n: i64) -> u64 {
        let mut tx = catalog.write().await.unwrap();
        let data = crate::event::EventData::Unknown {
            event_type: "v9.test.tick".to_owned(),
            data: crate::cbor::Value::Int(n),
        };
        let event = tx
            .append(
                None,
                "test",
                Timestamp::from_unix_millis(n * 1000).unwrap(),
                data,
            )
            .await
            .unwrap();
        tx.commit().await.unwrap();
        event.seq
    }

    async fn next(stream: &mut (impl Stream<Item = Result<Event>> + Unpin)) -> u64 {
        // A bound so a broken stream fails the test instead of hanging it (not a threshold:
        // the wake under test takes milliseconds, the re-check at most a second).
        tokio::time::timeout(Duration::from_secs(60), stream.next())
            .await
            .expect("the stream yields")
            .expect("the stream does not end")
            .expect("no error")
            .seq
    }

    #[tokio::test]
    async fn follow_catches_up_then_yields_each_commit_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = open(&dir.path().join("catalog.db")).await;
        for n in 1..=3 {
            append(&catalog, n).await;
        }
        // After seq 1: the log as it is, in order.
        let mut stream = Box::pin(catalog.follow(1));
        assert_eq!(next(&mut stream).await, 2);
        assert_eq!(next(&mut stream).await, 3);
        // Then each commit, several per transaction included.
        let writer = catalog.clone();
        let appended = tokio::spawn(async move {
            let mut tx = writer.write().await.unwrap();
            for hold in ["hold-a", "hold-b"] {
                let data = RetentionHoldApplied {
                    hold_id: hold.to_owned(),
                    reason: "case".to_owned(),
                    extra: Extra::new(),
                };
                // A hold on a package the views do not know changes no row.
                tx.append(
                    Some(crate::digest::Blake3::of(b"p")),
                    "legal",
                    Timestamp::from_unix_millis(9000).unwrap(),
                    data,
                )
                .await
                .unwrap();
            }
            tx.commit().await.unwrap();
        });
        assert_eq!(next(&mut stream).await, 4);
        assert_eq!(next(&mut stream).await, 5);
        appended.await.unwrap();
        // A rolled-back transaction yields nothing: the next event is the next commit.
        let mut tx = catalog.write().await.unwrap();
        let data = crate::event::EventData::Unknown {
            event_type: "v9.test.tick".to_owned(),
            data: crate::cbor::Value::Null,
        };
        tx.append(
            None,
            "test",
            Timestamp::from_unix_millis(10_000).unwrap(),
            data,
        )
        .await
        .unwrap();
        tx.rollback().await.unwrap();
        assert_eq!(append(&catalog, 11).await, 6);
        assert_eq!(next(&mut stream).await, 6);
    }

    #[tokio::test]
    async fn follow_sees_commits_of_another_process_on_the_same_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.db");
        let here = open(&path).await;
        // A second catalog on the same file stands for another replica: its commits do not
        // wake this process's followers; the periodic re-check finds them.
        let there = open(&path).await;
        let mut stream = Box::pin(here.follow(0));
        append(&there, 1).await;
        assert_eq!(next(&mut stream).await, 1);
        // The stream waits (nothing new), then the other process commits.
        let waiter = tokio::spawn(async move { next(&mut stream).await });
        tokio::task::yield_now().await;
        append(&there, 2).await;
        assert_eq!(waiter.await.unwrap(), 2);
    }

    #[tokio::test]
    async fn an_unknown_payload_under_a_known_type_is_decoded_as_that_type() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = open(&dir.path().join("catalog.db")).await;
        append(&catalog, 1).await;
        let head = catalog.head().await.unwrap();
        let at = Timestamp::from_unix_millis(2000).unwrap();
        let mut tx = catalog.write().await.unwrap();
        let malformed = crate::event::EventData::Unknown {
            event_type: crate::event::types::RETENTION_EXTENDED.to_owned(),
            data: crate::cbor::Value::Map(Default::default()),
        };
        let error = tx.append(None, "test", at, malformed).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid input: `v1.retention.extended` data: `previous_expires_at` is missing"
        );
        tx.rollback().await.unwrap();
        assert_eq!(catalog.head().await.unwrap(), head, "nothing was appended");
        // Well-formed data under a known type is that type's event: it changes the views.
        let stored = crate::event::types::BlobStored {
            blake3: crate::digest::Blake3::of(b"x"),
            sha256: crate::digest::Sha256::of(b"x"),
            size: 1,
            tier: crate::blob::Tier::Hot,
            extra: Extra::new(),
        };
        let disguised = crate::event::EventData::Unknown {
            event_type: crate::event::types::BLOB_STORED.to_owned(),
            data: crate::event::EventData::from(stored.clone()).encode(),
        };
        let mut tx = catalog.write().await.unwrap();
        tx.append(None, "test", at, disguised).await.unwrap();
        tx.commit().await.unwrap();
        let mut conn = catalog.read().await.unwrap();
        let record =
            crate::catalog::views_blob(&mut conn, &crate::digest::AnyDigest::Blake3(stored.blake3))
                .await
                .unwrap();
        assert_eq!(record.map(|r| r.info.size), Some(1));
    }
}
