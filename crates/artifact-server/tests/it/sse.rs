//! `GET /events/stream`: Server-Sent Events in seq order with `id:` = seq, resumable with
//! `Last-Event-ID` without gaps or duplicates.

use std::time::Duration;

use axum::http::Method;

use crate::support::{Harness, READER, Running, SseReader, WRITER, events_after};

/// Appends one `v1.blob.stored` event through the API.
async fn append_one(harness: &Harness, n: u64) {
    harness
        .put_blob(WRITER, format!("sse payload {n}").as_bytes())
        .await;
}

async fn open(server: &Running, query: &str, last_event_id: Option<u64>) -> SseReader {
    let mut request = server
        .request(Method::GET, &format!("/events/stream{query}"), READER)
        .header("accept", "text/event-stream");
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id.to_string());
    }
    SseReader::new(request.send().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_stream_delivers_new_events_in_order_and_resumes_without_gaps() {
    let harness = Harness::new().await;
    let server = harness.start().await;
    let mut n = 0;
    for _ in 0..3 {
        n += 1;
        append_one(&harness, n).await;
    }
    let start = harness.head_seq().await;
    assert_eq!(start, 3);

    // --- `?after=N` delivers exactly the events appended afterwards, in order.
    let mut live = open(&server, &format!("?after={start}"), None).await;
    for _ in 0..4 {
        n += 1;
        append_one(&harness, n).await;
    }
    let appended = events_after(&harness.store, start).await;
    assert_eq!(appended.len(), 4);
    for expected in &appended {
        let event = live.next().await;
        assert_eq!(event.id, Some(expected.seq.to_string()), "id: = seq");
        assert_eq!(event.event.as_deref(), Some(expected.event_type.as_str()));
        assert_eq!(event.data, expected.to_jcs(), "data: = the JCS envelope");
    }
    // Nothing else was sent in between: the next event is the next one appended.
    n += 1;
    append_one(&harness, n).await;
    assert_eq!(live.next().await.id, Some("8".to_owned()));
    drop(live);

    // --- a reader from the start disconnects mid-way and reconnects with Last-Event-ID.
    let mut seqs: Vec<u64> = Vec::new();
    let mut first = open(&server, "?after=0", None).await;
    for _ in 0..5 {
        let event = first.next().await;
        seqs.push(event.id.unwrap().parse().unwrap());
    }
    drop(first);
    let last_seen = *seqs.last().unwrap();
    // Appended while disconnected.
    for _ in 0..3 {
        n += 1;
        append_one(&harness, n).await;
    }
    let head = harness.head_seq().await;
    // Last-Event-ID wins over the query (a browser's EventSource resends the original URL).
    let mut second = open(&server, "?after=0", Some(last_seen)).await;
    while seqs.last() != Some(&head) {
        let event = second.next().await;
        seqs.push(event.id.unwrap().parse().unwrap());
    }
    assert_eq!(
        seqs,
        (1..=head).collect::<Vec<_>>(),
        "no gaps, no duplicates"
    );
    drop(second);

    // Last-Event-ID alone resumes too.
    let mut third = open(&server, "", Some(head - 1)).await;
    assert_eq!(third.next().await.id, Some(head.to_string()));
    drop(third);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_ends_open_event_streams() {
    let harness = Harness::new().await;
    let server = harness.start().await;
    let mut stream = open(&server, "?after=0", None).await;
    append_one(&harness, 1).await;
    assert_eq!(stream.next().await.id, Some("1".to_owned()));
    // The client keeps the stream open; the server is asked to stop. `stop` panics if `serve`
    // has not returned within the hang bound.
    let stopping = tokio::spawn(server.stop());
    let stopped = tokio::time::timeout(Duration::from_secs(20), stopping).await;
    drop(stream);
    stopped
        .expect("serve returns although an event stream is open")
        .expect("stop does not panic");
}
