//! `events --follow`, locally and over `--server`: each event committed after the follower
//! started — here by another process — is printed once, in order, filtered by type (the
//! store's one follow stream locally, the SSE stream remotely).

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value as Json;

use crate::kit::Store;

/// Reads JSON lines from `child`'s stdout on a thread.
fn lines(child: &mut Child) -> mpsc::Receiver<Json> {
    let stdout = child.stdout.take().unwrap();
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if send.send(serde_json::from_str(&line).unwrap()).is_err() {
                break;
            }
        }
    });
    receive
}

fn push(store: &Store, name: &str, version: &str) {
    // A multi-byte path, so the SSE reader must keep characters whole across chunks.
    let content = format!("{name} {version}");
    store.push_files(name, version, &[("résumé-✓.txt", content.as_bytes())]);
}

#[test]
fn events_follow_prints_new_events_locally_and_over_the_server() {
    let store = Store::new();
    push(&store, "before", "1");
    let after = store.head_seq().to_string();
    let token = store.mint("auditor", &["reader"]);
    let server = store.serve(None);
    let follow = [
        "--json",
        "events",
        "--follow",
        "--type",
        "v1.package.created",
        "--after",
    ];
    let mut local = store
        .command(&[&follow[..], &[after.as_str()]].concat())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut remote = store
        .command(
            &[
                &["--server", server.base.as_str(), "--token", token.as_str()][..],
                &follow[..],
                &[after.as_str()],
            ]
            .concat(),
        )
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (local_lines, remote_lines) = (lines(&mut local), lines(&mut remote));

    // Other processes commit; both followers print exactly the two creations, in order.
    push(&store, "accented", "1");
    push(&store, "later", "2");
    for (what, received) in [("local", &local_lines), ("remote", &remote_lines)] {
        let mut names = Vec::new();
        let mut seqs = Vec::new();
        for _ in 0..2 {
            let event = received
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|e| panic!("{what} follower printed nothing: {e}"));
            assert_eq!(event["type"], "v1.package.created", "{what}: {event}");
            names.push(
                event["data"]["manifest"]["name"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
            assert_eq!(
                event["data"]["manifest"]["files"][0]["path"], "résumé-✓.txt",
                "{what}: {event}"
            );
            seqs.push(event["seq"].as_u64().unwrap());
        }
        assert_eq!(names, ["accented", "later"], "{what}");
        assert!(
            seqs[0] > after.parse().unwrap() && seqs[0] < seqs[1],
            "{what}: {seqs:?}"
        );
        assert!(
            received.recv_timeout(Duration::from_millis(300)).is_err(),
            "{what}: nothing else"
        );
    }
    for child in [&mut local, &mut remote] {
        let _ = child.kill();
        let _ = child.wait();
    }
    drop(server);
}
