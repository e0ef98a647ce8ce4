//! Verifiable-log benchmark (issue 12, ADR 0011): what the Merkle tree costs on append, and
//! what a checkpoint and a proof cost at a million events.
//!
//! ```sh
//! cargo bench -p artifact-store-fs --bench tlog                   # 1,000,000 events
//! cargo bench -p artifact-store-fs --bench tlog -- --events 100000
//! ```
//! Set `BENCH_DIR` to choose the filesystem (default: a temp dir under the system temp dir).
//!
//! Two fresh SQLite catalogs (the embedded default, WAL, `synchronous=FULL`) on the same
//! filesystem get the same `--events` `v1.blob.stored` events (unique digests; each one also
//! inserts its `blobs` row), 1,000 per write transaction, through the catalog's own
//! `WriteTx::append`:
//! - **without the tree** (`CatalogOptions::merkle_tree = false`), the baseline;
//! - **with the tree** kept on every append (the default).
//!
//! Reported: both append rates and their ratio; on the store with the tree, one checkpoint
//! (signing included), inclusion proofs for random events and consistency proofs from random
//! sizes to the head, as medians beside one indexed point read of an event's bytes
//! (`event_bytes`, the cheapest read a proof could be) measured in the same run; on the store
//! without it, the first checkpoint, which builds the whole tree from the stored events.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use artifact_core::blob::Tier;
use artifact_core::digest::BlobInfo;
use artifact_core::event::types::BlobStored;
use artifact_core::testing::{bench_arg, bench_dir};
use artifact_core::time::ymd;
use artifact_core::tlog::LogSigner;
use artifact_core::{ArtifactStore, StoreOptions};
use artifact_store_fs::FsBlobStore;

const BATCH: usize = 1_000;

/// A small deterministic PRNG (xorshift64*), so every run asks for the same proofs.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

async fn open(dir: &Path, merkle_tree: bool) -> ArtifactStore {
    std::fs::create_dir_all(dir).expect("dir");
    let blobs = FsBlobStore::open(dir.join("blobs")).expect("blobs");
    let mut options = StoreOptions::new(
        format!("sqlite://{}", dir.join("catalog.db").display()),
        Arc::new(blobs),
    );
    options.catalog.merkle_tree = merkle_tree;
    ArtifactStore::open(options).await.expect("open")
}

/// Appends `total` `v1.blob.stored` events; returns events/s.
async fn fill(store: &ArtifactStore, total: usize) -> f64 {
    let at = ymd(2026, 1, 1);
    let start = Instant::now();
    let mut done = 0;
    while done < total {
        let mut tx = store.catalog().write().await.expect("write");
        for i in done..(done + BATCH).min(total) {
            let info = BlobInfo::of(format!("tlog bench blob {i}").as_bytes());
            let data = BlobStored::new(&info, Tier::Hot);
            tx.append(None, "bench", at, data).await.expect("append");
        }
        tx.commit().await.expect("commit");
        done = (done + BATCH).min(total);
    }
    total as f64 / start.elapsed().as_secs_f64()
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

fn micros(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let events = bench_arg("--events", 1_000_000);
    let proofs = bench_arg("--proofs", 1_000);
    let dir = bench_dir();
    println!(
        "tlog bench: {events} events, {BATCH} per transaction, SQLite in {}",
        dir.path().display()
    );

    let without = open(&dir.path().join("without"), false).await;
    let rate_without = fill(&without, events).await;
    println!("  append without the tree: {rate_without:>9.0} events/s (baseline)");
    let with = open(&dir.path().join("with"), true).await;
    let rate_with = fill(&with, events).await;
    println!(
        "  append with the tree:    {rate_with:>9.0} events/s = {:.2}x the baseline",
        rate_with / rate_without
    );

    let signer = LogSigner::from_seed("artifactstore/bench", [5; 32]).expect("signer");
    let start = Instant::now();
    let checkpoint = with.checkpoint(&signer).await.expect("checkpoint");
    let checkpoint_time = start.elapsed();
    assert_eq!(checkpoint.tree_size, events as u64);

    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut point = Vec::with_capacity(proofs);
    let mut inclusion = Vec::with_capacity(proofs);
    let mut consistency = Vec::with_capacity(proofs);
    for _ in 0..proofs {
        let seq = rng.below(events as u64) + 1;
        let start = Instant::now();
        let bytes = with.catalog().event_bytes(seq).await.expect("read");
        point.push(start.elapsed());
        assert!(bytes.is_some());
        let start = Instant::now();
        let receipt = with.inclusion_proof(seq, None).await.expect("inclusion");
        inclusion.push(start.elapsed());
        assert_eq!(receipt.tree_size, events as u64);
        let from = rng.below(events as u64 - 1) + 1;
        let start = Instant::now();
        with.consistency_proof(from, None)
            .await
            .expect("consistency");
        consistency.push(start.elapsed());
    }
    let point = median(point);
    let ratio = |d: Duration| d.as_secs_f64() / point.as_secs_f64();
    println!(
        "  at {events} events: checkpoint (tree root + Ed25519 signature + insert) {}",
        micros(checkpoint_time)
    );
    println!(
        "  point read of one event's bytes (ceiling): {} median",
        micros(point)
    );
    let inclusion = median(inclusion);
    println!(
        "  inclusion proof: {} median = {:.1}x one point read",
        micros(inclusion),
        ratio(inclusion)
    );
    let consistency = median(consistency);
    println!(
        "  consistency proof: {} median = {:.1}x one point read",
        micros(consistency),
        ratio(consistency)
    );

    let start = Instant::now();
    let deferred = without.checkpoint(&signer).await.expect("checkpoint");
    assert_eq!(deferred.root_hash, checkpoint.root_hash, "the same root");
    println!(
        "  first checkpoint of the store without the tree (builds it from {events} events): {:.1} s",
        start.elapsed().as_secs_f64()
    );
}
