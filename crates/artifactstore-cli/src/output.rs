//! Output helpers: JSON (JCS) documents, human formatting, progress bars.

use std::collections::BTreeMap;
use std::io::{IsTerminal as _, Write as _};

use artifact_core::catalog::{PackageRecord, RetentionStatus};
use artifact_core::cbor::Value;
use artifact_core::event::Event;
use artifact_core::time::Timestamp;
use indicatif::{ProgressBar, ProgressStyle};

/// Transfers larger than this get a progress bar (on a terminal).
const PROGRESS_THRESHOLD: u64 = 16 << 20;

/// Prints one JCS document and a newline.
pub(crate) fn print_json(value: &Value) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(artifact_core::jcs::to_jcs(value).as_bytes())?;
    stdout.write_all(b"\n")?;
    stdout.flush()?;
    Ok(())
}

/// Writes raw bytes to stdout.
pub(crate) fn print_bytes(bytes: &[u8]) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(bytes)?;
    stdout.flush()?;
    Ok(())
}

pub(crate) fn text(value: impl Into<String>) -> Value {
    Value::Text(value.into())
}

pub(crate) fn ts(value: Option<Timestamp>) -> Value {
    value.map_or(Value::Null, |t| Value::Text(t.to_string()))
}

/// The JSON of a package with its retention state (SPEC §4.5 `show` / `retention status`).
pub(crate) fn package_value(package: &PackageRecord, retention: &RetentionStatus) -> Value {
    let mut map = match retention.to_value() {
        Value::Map(map) => map,
        _ => BTreeMap::new(),
    };
    map.insert("name".into(), text(&package.name));
    map.insert("version".into(), text(&package.version));
    map.insert("created_at".into(), text(package.created_at.to_string()));
    map.insert("created_seq".into(), Value::Int(package.created_seq as i64));
    map.insert("created_by".into(), text(&package.actor));
    map.insert("file_count".into(), Value::Int(package.file_count as i64));
    map.insert("total_size".into(), Value::Int(package.total_size as i64));
    map.insert(
        "labels".into(),
        Value::Map(
            package
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), text(v)))
                .collect(),
        ),
    );
    map.insert(
        "purged_seq".into(),
        package
            .purged_seq
            .map_or(Value::Null, |s| Value::Int(s as i64)),
    );
    Value::Map(map)
}

/// Human form of an expiry.
pub(crate) fn expiry(value: Option<Timestamp>) -> String {
    value.map_or_else(|| "never (permanent)".to_owned(), |t| t.to_string())
}

/// Human size.
pub(crate) fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Human form of one package and its retention state.
pub(crate) fn print_package(package: &PackageRecord, retention: &RetentionStatus) {
    println!("{}@{}", package.name, package.version);
    println!("  package_id   {}", package.package_id);
    println!(
        "  created      {} by {} (seq {})",
        package.created_at, package.actor, package.created_seq
    );
    println!(
        "  files        {} ({})",
        package.file_count,
        size(package.total_size)
    );
    for (key, value) in &package.labels {
        println!("  label        {key}={value}");
    }
    print_retention(retention);
    if let Some(seq) = package.purged_seq {
        println!("  purged       seq {seq}");
    }
}

/// Human form of a retention state.
pub(crate) fn print_retention(retention: &RetentionStatus) {
    println!(
        "  class        {} (default {})",
        retention.retention_class, retention.default_period
    );
    println!("  expires      {}", expiry(retention.current_expires_at));
    if retention.default_expires_at != retention.current_expires_at {
        println!("  default      {}", expiry(retention.default_expires_at));
    }
    println!("  active holds {}", retention.active_holds.len());
    for hold in &retention.active_holds {
        println!(
            "    {} by {} at {} (seq {}): {}",
            hold.hold_id, hold.actor, hold.applied_at, hold.applied_seq, hold.reason
        );
    }
    match retention.eligible_seq {
        Some(seq) if retention.eligible_for_deletion => {
            println!("  eligible     yes (seq {seq})")
        }
        _ => println!("  eligible     no"),
    }
}

/// One line per event.
pub(crate) fn print_event_line(event: &Event) {
    println!(
        "{:>6}  {}  {:<32}  {:<20}  {:<16}  {}",
        event.seq,
        event.at,
        event.event_type,
        event
            .package_id
            .map_or_else(|| "-".to_owned(), |p| p.fmt_short()),
        event.actor,
        artifact_core::jcs::to_jcs(&event.data)
    );
}

/// A progress bar for a transfer of `total` bytes: hidden unless stderr is a terminal and the
/// transfer is large.
pub(crate) fn progress(total: u64, message: String) -> ProgressBar {
    if total < PROGRESS_THRESHOLD || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(message);
    bar
}
