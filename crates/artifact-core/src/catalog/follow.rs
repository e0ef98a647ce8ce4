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
    pub fn follow(&self, after_seq: u64) -> impl Stream<Item = Result<Event>> + Send + 'static {
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
