//! The event envelope and the hash chain (SPEC §2.4). Pure: no IO.
//!
//! An event is `{seq, type, package_id?, actor, at, data, prev}` encoded as canonical CBOR;
//! `prev` is the BLAKE3 of the previous event's canonical bytes (`null` for seq 1), so the
//! log is a hash chain. Readers preserve event types they do not know.

use std::collections::BTreeMap;

use crate::cbor::{self, Value};
use crate::digest::{Blake3, PackageId};
use crate::error::{Error, Result};
use crate::manifest::{expect_map, reject_unknown, text_field};
use crate::time::Timestamp;

pub mod types;

pub use types::EventData;

/// The shape of an event type name, as an ECMA-262 regular expression: `v<major>.<area>.<what>`
/// in lowercase with underscores (`v1.package.created`), what [`validate_event_type`] accepts.
pub const EVENT_TYPE_PATTERN: &str = "^v[0-9]{1,9}\\.[a-z_]{1,64}\\.[a-z_]{1,64}$";

/// Checks that `name` has the shape of an event type (it need not be one this release knows: a
/// filter may name a type a later release writes).
pub fn validate_event_type(name: &str) -> Result<()> {
    let segment = |s: &str| {
        !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
    };
    let mut parts = name.split('.');
    let ok = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(major), Some(area), Some(what), None) => {
            major.len() > 1
                && major.len() <= 10
                && major.starts_with('v')
                && major[1..].bytes().all(|b| b.is_ascii_digit())
                && segment(area)
                && segment(what)
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "event type `{}` must look like v1.package.created",
            name.escape_debug()
        )))
    }
}

/// One entry of the event log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Gap-free global sequence number, starting at 1.
    pub seq: u64,
    /// The wire type name (see [`types`]); unknown types are preserved.
    pub event_type: String,
    /// The package the event concerns, if any.
    pub package_id: Option<PackageId>,
    /// The principal that caused the event.
    pub actor: String,
    /// When the event was appended.
    pub at: Timestamp,
    /// Type-specific payload.
    pub data: Value,
    /// BLAKE3 of the previous event's canonical bytes; `None` for seq 1.
    pub prev: Option<Blake3>,
}

impl Event {
    /// The envelope as a data-model value.
    pub fn to_value(&self) -> Value {
        let mut map = BTreeMap::new();
        map.insert("seq".to_owned(), Value::Int(self.seq as i64));
        map.insert("type".to_owned(), Value::Text(self.event_type.clone()));
        if let Some(package_id) = &self.package_id {
            map.insert("package_id".to_owned(), Value::Text(package_id.to_string()));
        }
        map.insert("actor".to_owned(), Value::Text(self.actor.clone()));
        map.insert("at".to_owned(), Value::Text(self.at.to_string()));
        map.insert("data".to_owned(), self.data.clone());
        map.insert(
            "prev".to_owned(),
            match &self.prev {
                Some(prev) => Value::Text(prev.to_string()),
                None => Value::Null,
            },
        );
        Value::Map(map)
    }

    /// Reads an envelope from a data-model value (strict: unknown envelope keys are rejected).
    pub fn from_value(value: &Value) -> Result<Self> {
        let map = expect_map(value, "event")?;
        reject_unknown(
            map,
            &["seq", "type", "package_id", "actor", "at", "data", "prev"],
            "event",
        )?;
        let seq = match map.get("seq") {
            Some(Value::Int(seq)) if *seq >= 1 => *seq as u64,
            _ => return Err(Error::invalid("event `seq` must be a positive integer")),
        };
        let package_id = match map.get("package_id") {
            None => None,
            Some(Value::Text(text)) => Some(text.parse()?),
            Some(_) => return Err(Error::invalid("event `package_id` must be text")),
        };
        let prev = match map.get("prev") {
            Some(Value::Null) => None,
            Some(Value::Text(text)) => Some(text.parse()?),
            _ => return Err(Error::invalid("event `prev` must be a digest or null")),
        };
        let at = text_field(map, "at", "event")?
            .parse()
            .map_err(|e| Error::invalid(format!("event `at`: {e}")))?;
        Ok(Event {
            seq,
            event_type: text_field(map, "type", "event")?.to_owned(),
            package_id,
            actor: text_field(map, "actor", "event")?.to_owned(),
            at,
            data: map
                .get("data")
                .cloned()
                .ok_or_else(|| Error::invalid("event has no `data`"))?,
            prev,
        })
    }

    /// The canonical CBOR bytes of the envelope.
    pub fn canonical_bytes(&self) -> Result<Vec<u8>> {
        Ok(cbor::encode(&self.to_value())?)
    }

    /// Parses canonical CBOR bytes strictly.
    pub fn from_canonical_bytes(bytes: &[u8]) -> Result<Self> {
        Self::from_value(&cbor::decode(bytes)?)
    }

    /// The JCS (RFC 8785) JSON projection of the envelope.
    pub fn to_jcs(&self) -> String {
        crate::jcs::to_jcs(&self.to_value())
    }

    /// The typed payload. An [`Error::Integrity`] naming the seq, the type and the field when
    /// `data` does not decode as its type's payload; unknown types are
    /// [`EventData::Unknown`].
    pub fn typed(&self) -> Result<EventData> {
        EventData::decode(&self.event_type, &self.data).map_err(|e| Error::Integrity {
            seq: self.seq,
            reason: e.to_string(),
        })
    }

    /// A text field of `data`, if present.
    pub fn data_text(&self, key: &str) -> Option<&str> {
        match &self.data {
            Value::Map(map) => map.get(key).and_then(Value::as_str),
            _ => None,
        }
    }
}

/// The head of the log: the last event's seq and the BLAKE3 of its canonical bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    /// Last sequence number (0 for an empty log).
    pub seq: u64,
    /// Hash of the last event (`None` for an empty log).
    pub hash: Option<Blake3>,
}

impl Head {
    /// The head of an empty log.
    pub const EMPTY: Head = Head { seq: 0, hash: None };
}

/// An event as stored: the canonical body plus the columns indexed beside it.
#[derive(Clone, Debug)]
pub struct StoredEvent {
    /// The `seq` column.
    pub seq: u64,
    /// The `type` column.
    pub event_type: String,
    /// The `package_id` column.
    pub package_id: Option<String>,
    /// The `actor` column.
    pub actor: String,
    /// The `at` column.
    pub at: String,
    /// The canonical CBOR body.
    pub body: Vec<u8>,
    /// The `hash` column (BLAKE3 of the body, text form).
    pub hash: String,
}

/// Checks a log one event at a time, in seq order, naming the first bad seq.
#[derive(Debug, Default)]
pub struct ChainVerifier {
    head: Option<(u64, Blake3)>,
}

impl ChainVerifier {
    /// A verifier at the start of the log.
    pub fn new() -> Self {
        Self::default()
    }

    /// The head verified so far.
    pub fn head(&self) -> Head {
        match self.head {
            Some((seq, hash)) => Head {
                seq,
                hash: Some(hash),
            },
            None => Head::EMPTY,
        }
    }

    /// Checks the next stored event against everything seen before.
    pub fn check(&mut self, stored: &StoredEvent) -> Result<Event> {
        let expected_seq = self.head.map_or(1, |(seq, _)| seq + 1);
        let fail = |reason: String| Error::Integrity {
            seq: expected_seq.min(stored.seq.max(1)),
            reason,
        };
        if stored.seq != expected_seq {
            return Err(Error::Integrity {
                seq: expected_seq,
                reason: format!(
                    "expected seq {expected_seq}, found seq {} (an event was removed or reordered)",
                    stored.seq
                ),
            });
        }
        let event = Event::from_canonical_bytes(&stored.body)
            .map_err(|e| fail(format!("body is not a canonical event: {e}")))?;
        if event.seq != stored.seq {
            return Err(fail(format!(
                "body says seq {} but the row is seq {}",
                event.seq, stored.seq
            )));
        }
        let hash = Blake3::of(&stored.body);
        if hash.to_string() != stored.hash {
            return Err(fail(format!(
                "stored hash {} does not match the body's hash {hash} (the body was altered)",
                stored.hash
            )));
        }
        let expected_prev = self.head.map(|(_, hash)| hash);
        if event.prev != expected_prev {
            return Err(fail(format!(
                "prev is {} but the previous event hashes to {} (the chain is broken)",
                event.prev.map_or("null".to_owned(), |p| p.to_string()),
                expected_prev.map_or("null".to_owned(), |p| p.to_string()),
            )));
        }
        if event.event_type != stored.event_type
            || event.package_id.map(|p| p.to_string()) != stored.package_id
            || event.actor != stored.actor
            || event.at.to_string() != stored.at
        {
            return Err(fail(
                "indexed columns (type, package_id, actor, at) disagree with the body".to_owned(),
            ));
        }
        self.head = Some((event.seq, hash));
        Ok(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_type_names_have_one_shape() {
        for name in [
            types::PACKAGE_CREATED,
            types::BLOB_DELETION_STARTED,
            "v12.future.thing_done",
        ] {
            validate_event_type(name).unwrap();
        }
        for name in [
            "",
            "null",
            "v1",
            "v1.package",
            "V1.package.created",
            "v.package.created",
            "v1.Package.created",
            "v1.package.created.x",
            "v1..created",
            "vx.a.b",
        ] {
            assert!(validate_event_type(name).is_err(), "{name:?}");
        }
    }

    fn chain(n: u64) -> Vec<StoredEvent> {
        let mut prev = None;
        (1..=n)
            .map(|seq| {
                let event = Event {
                    seq,
                    event_type: types::BLOB_STORED.to_owned(),
                    package_id: None,
                    actor: "test".into(),
                    at: Timestamp::from_unix_millis(seq as i64 * 1000).unwrap(),
                    data: Value::Map(BTreeMap::from([("n".to_owned(), Value::Int(seq as i64))])),
                    prev,
                };
                let body = event.canonical_bytes().unwrap();
                let hash = Blake3::of(&body);
                prev = Some(hash);
                StoredEvent {
                    seq,
                    event_type: event.event_type,
                    package_id: None,
                    actor: event.actor,
                    at: event.at.to_string(),
                    body,
                    hash: hash.to_string(),
                }
            })
            .collect()
    }

    fn verify(events: &[StoredEvent]) -> Result<Head> {
        let mut verifier = ChainVerifier::new();
        for stored in events {
            verifier.check(stored)?;
        }
        Ok(verifier.head())
    }

    fn bad_seq(result: Result<Head>) -> u64 {
        match result {
            Err(Error::Integrity { seq, .. }) => seq,
            other => panic!("expected an integrity error, got {other:?}"),
        }
    }

    #[test]
    fn intact_chain_verifies() {
        let events = chain(5);
        let head = verify(&events).unwrap();
        assert_eq!(head.seq, 5);
        assert_eq!(head.hash.unwrap().to_string(), events[4].hash);
    }

    #[test]
    fn detects_removed_reordered_and_altered_events() {
        let mut removed = chain(5);
        removed.remove(2);
        assert_eq!(bad_seq(verify(&removed)), 3);

        let mut reordered = chain(5);
        reordered.swap(1, 2);
        assert_eq!(bad_seq(verify(&reordered)), 2);

        // Altered body with the hash column recomputed: the next event's prev catches it.
        let mut altered = chain(5);
        let mut event = Event::from_canonical_bytes(&altered[2].body).unwrap();
        event.actor = "mallory".into();
        altered[2].body = event.canonical_bytes().unwrap();
        altered[2].hash = Blake3::of(&altered[2].body).to_string();
        altered[2].actor = "mallory".into();
        assert_eq!(bad_seq(verify(&altered)), 4);

        // Altered body without touching the hash column.
        let mut altered = chain(5);
        altered[1].body = {
            let mut event = Event::from_canonical_bytes(&altered[1].body).unwrap();
            event.actor = "mallory".into();
            event.canonical_bytes().unwrap()
        };
        assert_eq!(bad_seq(verify(&altered)), 2);

        // A column changed without the body.
        let mut altered = chain(5);
        altered[3].event_type = types::BLOB_DELETED.to_owned();
        assert_eq!(bad_seq(verify(&altered)), 4);
        let mut altered = chain(5);
        altered[2].actor = "mallory".to_owned();
        assert_eq!(bad_seq(verify(&altered)), 3);
    }

    #[test]
    fn envelope_round_trips_and_preserves_unknown_types() {
        let mut events = chain(2);
        let mut event = Event::from_canonical_bytes(&events.remove(1).body).unwrap();
        event.event_type = "v9.future.thing".into();
        event.package_id = Some(Blake3::of(b"pkg"));
        let bytes = event.canonical_bytes().unwrap();
        assert_eq!(Event::from_canonical_bytes(&bytes).unwrap(), event);
        let json = event.to_jcs();
        let value = crate::jcs::from_json(json.as_bytes()).unwrap();
        assert_eq!(Event::from_value(&value).unwrap(), event);
    }
}

/// The store written by the previous release (`tests/fixtures/v1-store`): every stored event
/// decodes to a typed payload that re-encodes to exactly its stored canonical bytes.
#[cfg(test)]
mod fixture_tests {
    use sqlx::Row as _;

    use super::*;

    #[tokio::test]
    async fn every_event_of_the_previous_release_re_encodes_to_its_stored_bytes() {
        let catalog = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/v1-store/catalog.db");
        sqlx::any::install_default_drivers();
        let url = format!("sqlite://{}?mode=ro&immutable=1", catalog.display());
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .unwrap();
        let rows = sqlx::query("SELECT seq, type, body FROM events ORDER BY seq")
            .fetch_all(&pool)
            .await
            .unwrap();
        pool.close().await;
        let mut seen = std::collections::BTreeSet::new();
        for row in &rows {
            let seq: i64 = row.get("seq");
            let event_type: String = row.get("type");
            let body: Vec<u8> = row.get("body");
            let event = Event::from_canonical_bytes(&body).unwrap();
            let typed = event.typed().unwrap_or_else(|e| panic!("seq {seq}: {e}"));
            assert!(
                !matches!(typed, EventData::Unknown { .. }),
                "seq {seq}: `{event_type}` is a known type"
            );
            assert_eq!(typed.event_type(), event_type);
            let again = Event {
                data: typed.encode(),
                ..event
            };
            assert_eq!(again.canonical_bytes().unwrap(), body, "seq {seq}");
            seen.insert(event_type);
        }
        // The fixture covers every type the previous release wrote.
        assert_eq!(seen.len(), 12, "{seen:?}");
    }
}
