//! A decoder for `text/event-stream` bodies (the `data:` lines of `GET /events/stream`) that
//! is fed network chunks as they arrive. Lines are split on bytes and decoded only when
//! complete, so a multi-byte UTF-8 character split across two chunks arrives intact (decoding
//! each chunk on its own turned it into U+FFFD, and a principal or label with an accent then
//! failed the event's hash check).

/// Collects `data:` lines into events; see the module docs. Used by [`crate::HttpClient::follow`]
/// and by tests that read the stream themselves.
#[derive(Debug, Default)]
pub struct SseDecoder {
    /// Bytes after the last complete line.
    partial: Vec<u8>,
    /// The `data:` of the event being read.
    data: String,
}

impl SseDecoder {
    /// Feeds one chunk; returns the data of every event it completed, in order. A line that
    /// is not UTF-8 is an error naming it.
    pub fn push(&mut self, chunk: &[u8]) -> crate::Result<Vec<String>> {
        self.partial.extend_from_slice(chunk);
        let mut events = Vec::new();
        let mut start = 0;
        while let Some(end) = self.partial[start..].iter().position(|b| *b == b'\n') {
            let raw = &self.partial[start..start + end];
            start += end + 1;
            let line = std::str::from_utf8(raw).map_err(|e| {
                crate::ClientError::Protocol(format!(
                    "the event stream sent a line that is not UTF-8 ({e}): {}",
                    String::from_utf8_lossy(raw)
                ))
            })?;
            let line = line.trim_end_matches('\r');
            if let Some(rest) = line.strip_prefix("data:") {
                self.data.push_str(rest.strip_prefix(' ').unwrap_or(rest));
            } else if line.is_empty() && !self.data.is_empty() {
                events.push(std::mem::take(&mut self.data));
            }
        }
        self.partial.drain(..start);
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = "id: 1\ndata: {\"actor\":\"zoë\",\"note\":\"日本\"}\n\n: keep-alive\n\nid: 2\r\ndata: {\"x\":1}\r\n\r\n";

    #[test]
    fn every_split_point_gives_the_same_events() {
        let bytes = STREAM.as_bytes();
        let whole = SseDecoder::default().push(bytes).unwrap();
        assert_eq!(
            whole,
            vec![
                "{\"actor\":\"zoë\",\"note\":\"日本\"}".to_owned(),
                "{\"x\":1}".to_owned()
            ]
        );
        // Including every split inside the two- and three-byte characters.
        for split in 0..bytes.len() {
            let mut decoder = SseDecoder::default();
            let mut events = decoder.push(&bytes[..split]).unwrap();
            events.extend(decoder.push(&bytes[split..]).unwrap());
            assert_eq!(events, whole, "split at byte {split}");
        }
        // One byte at a time.
        let mut decoder = SseDecoder::default();
        let mut events = Vec::new();
        for byte in bytes {
            events.extend(decoder.push(std::slice::from_ref(byte)).unwrap());
        }
        assert_eq!(events, whole);
    }

    #[test]
    fn a_line_that_is_not_utf8_is_an_error() {
        let error = SseDecoder::default()
            .push(b"data: \xff\xfe\n\n")
            .unwrap_err();
        assert!(error.to_string().contains("not UTF-8"), "{error}");
    }
}
