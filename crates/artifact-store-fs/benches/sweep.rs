//! Sweep benchmark: a sweep's cost must grow with the packages newly due, not with the store.
//!
//! ```sh
//! cargo bench -p artifact-store-fs --bench sweep                      # 1,000,000 vs 100,000
//! cargo bench -p artifact-store-fs --bench sweep -- --large 200000 --small 20000 --due 2000
//! ```
//! Two stores are filled with packages whose expiry lies ten years ahead, except `--due`
//! packages (default 10,000: 1 % of the large store) that expired yesterday. The same sweep
//! runs on both; the ratio of their times shows whether the sweep scales with store size.
//!
//! To fill a million packages in reasonable time the benchmark appends the creation events
//! through the catalog's write transaction in batches (the same `append` + view updates the
//! library uses), with empty file lists, instead of uploading blobs: the sweep reads neither.

#[path = "support/fill.rs"]
mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use artifact_core::testing::{bench_arg, bench_dir, bench_runtime};
use artifact_core::time::{ManualClock, Period, Timestamp, ymd};
use artifact_store_fs::EmbeddedOptions;

async fn fill(
    dir: &Path,
    total: usize,
    due: usize,
    start: Timestamp,
) -> artifact_core::ArtifactStore {
    let clock = ManualClock::new(start);
    let store = EmbeddedOptions::new(dir)
        .with_clock(Arc::new(clock))
        .open()
        .await
        .expect("open");
    let yesterday = start
        .checked_add(Period::Millis(-86_400_000))
        .expect("time");
    let later = start.checked_add(Period::Years(10)).expect("time");
    let fill_start = Instant::now();
    let batch = 20_000;
    support::fill_packages(&store, total, batch, start, |i| {
        // Spread the due packages evenly through the store.
        let stride = (total / due.max(1)).max(1);
        if i % stride == 0 && i / stride < due {
            yesterday
        } else {
            later
        }
    })
    .await;
    println!(
        "  filled {total} packages in {:.1} s",
        fill_start.elapsed().as_secs_f64()
    );
    store
}

async fn sweep_time(store: &artifact_core::ArtifactStore, as_of: Timestamp) -> (Duration, usize) {
    let start = Instant::now();
    let report = store.sweep("bench", Some(as_of)).await.expect("sweep");
    (start.elapsed(), report.newly_eligible.len())
}

fn main() {
    let large = bench_arg("--large", 1_000_000);
    let small = bench_arg("--small", 100_000);
    let due = bench_arg("--due", 10_000);
    let runtime = bench_runtime();
    let dir = bench_dir();
    let start = ymd(2026, 11, 23);
    println!("# artifactstore sweep benchmark: {due} newly due in {large} vs {small} packages");
    runtime.block_on(async {
        let mut results = Vec::new();
        for total in [large, small] {
            let store = fill(&dir.path().join(format!("s{total}")), total, due, start).await;
            // Warm the page cache the same way for both, then sweep.
            let _ = store.head().await.expect("head");
            let (elapsed, marked) = sweep_time(&store, start).await;
            let (empty, none) = sweep_time(&store, start).await;
            println!(
                "  {total:>9} packages: sweep marked {marked} in {:.3} s; a repeat sweep (nothing due) marked {none} in {:.4} s",
                elapsed.as_secs_f64(),
                empty.as_secs_f64()
            );
            results.push(elapsed.as_secs_f64());
            store.catalog().close().await;
        }
        println!(
            "  time ratio large/small = {:.2} (store size ratio {:.0}x; ~1 means the sweep does not scale with store size)",
            results[0] / results[1],
            large as f64 / small as f64
        );
    });
}
