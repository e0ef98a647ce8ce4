//! Output helpers: JSON (JCS) documents, human formatting, progress bars.

use std::io::{IsTerminal as _, Write as _};

use artifact_core::cbor::Value;
use artifact_core::event::Event;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// Transfers larger than this get a progress bar (on a terminal).
const PROGRESS_THRESHOLD: u64 = 16 << 20;

/// Visible bars draw through one `MultiProgress`, so concurrent transfers (`push` sends several
/// files at once) get a line each instead of overwriting one another.
static BARS: std::sync::LazyLock<MultiProgress> = std::sync::LazyLock::new(MultiProgress::new);

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

/// Human form of an expiry member of a value.
pub(crate) fn expiry_of(value: &Value, key: &str) -> String {
    field_expiry(value, key)
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

fn field<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    value.as_map().and_then(|map| map.get(key))
}

fn field_text(value: &Value, key: &str) -> String {
    match field(value, key) {
        Some(Value::Text(text)) => text.clone(),
        Some(Value::Int(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Null) | None => "-".to_owned(),
        Some(other) => artifact_core::jcs::to_jcs(other),
    }
}

fn field_expiry(value: &Value, key: &str) -> String {
    match field(value, key) {
        Some(Value::Text(text)) => text.clone(),
        _ => "never (permanent)".to_owned(),
    }
}

/// Human form of a package value (`PackageRecord::to_value`: package + retention state).
pub(crate) fn print_package(package: &Value) {
    println!(
        "{}@{}",
        field_text(package, "name"),
        field_text(package, "version")
    );
    println!("  package_id   {}", field_text(package, "package_id"));
    println!(
        "  created      {} by {} (seq {})",
        field_text(package, "created_at"),
        field_text(package, "created_by"),
        field_text(package, "created_seq")
    );
    let total = field(package, "total_size")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    println!(
        "  files        {} ({})",
        field_text(package, "file_count"),
        size(total.max(0) as u64)
    );
    if let Some(Value::Map(labels)) = field(package, "labels") {
        for (key, value) in labels {
            println!(
                "  label        {key}={}",
                value.as_str().unwrap_or_default()
            );
        }
    }
    print_retention(package);
    if let Some(Value::Int(seq)) = field(package, "purged_seq") {
        println!("  purged       seq {seq}");
    }
}

/// Human form of a retention state value.
pub(crate) fn print_retention(status: &Value) {
    println!(
        "  class        {} (default {})",
        field_text(status, "retention_class"),
        field_text(status, "default_period")
    );
    println!(
        "  expires      {}",
        field_expiry(status, "current_expires_at")
    );
    if field(status, "default_expires_at") != field(status, "current_expires_at") {
        println!(
            "  default      {}",
            field_expiry(status, "default_expires_at")
        );
    }
    println!("  active holds {}", field_text(status, "active_holds"));
    if let Some(Value::Array(holds)) = field(status, "holds") {
        for hold in holds {
            println!(
                "    {} by {} at {} (seq {}): {}",
                field_text(hold, "hold_id"),
                field_text(hold, "actor"),
                field_text(hold, "applied_at"),
                field_text(hold, "applied_seq"),
                field_text(hold, "reason")
            );
        }
    }
    match field(status, "eligible_for_deletion") {
        Some(Value::Bool(true)) => println!(
            "  eligible     yes (seq {})",
            field_text(status, "eligible_seq")
        ),
        _ => println!("  eligible     no"),
    }
}

/// One row of `ls`.
pub(crate) fn print_package_row(package: &Value) {
    let eligible = matches!(
        field(package, "eligible_for_deletion"),
        Some(Value::Bool(true))
    );
    let id = field_text(package, "package_id");
    println!(
        "{:<40}  {:<18}  {:<26}  {:<5}  {:<8}  {}",
        format!(
            "{}@{}",
            field_text(package, "name"),
            field_text(package, "version")
        ),
        field_text(package, "retention_class"),
        field_expiry(package, "current_expires_at"),
        field_text(package, "active_holds"),
        if eligible { "yes" } else { "no" },
        id.get(..19).unwrap_or(&id)
    );
}

/// The table of `admin token list`.
pub(crate) fn print_tokens(tokens: &Value) {
    let Some(items) = tokens.as_array() else {
        return;
    };
    if items.is_empty() {
        println!("no minted tokens");
        return;
    }
    println!(
        "{:<10}  {:<24}  {:<28}  {:<24}  {:<24}  revoked",
        "id", "principal", "roles", "created", "expires"
    );
    for token in items {
        let roles = match field(token, "roles") {
            Some(Value::Array(roles)) => roles
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(","),
            _ => "-".to_owned(),
        };
        println!(
            "{:<10}  {:<24}  {:<28}  {:<24}  {:<24}  {}",
            field_text(token, "token_id"),
            field_text(token, "principal"),
            roles,
            field_text(token, "created_at"),
            match field(token, "expires_at") {
                Some(Value::Text(t)) => t.clone(),
                _ => "never".to_owned(),
            },
            if matches!(field(token, "revoked"), Some(Value::Bool(true))) {
                "yes"
            } else {
                "no"
            }
        );
    }
}

/// Text of a member of a value (`-` when absent).
pub(crate) fn member(value: &Value, key: &str) -> String {
    field_text(value, key)
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
    let bar = BARS.add(ProgressBar::new(total));
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

/// A running byte counter for transfers of unknown size (hidden unless stderr is a terminal).
pub(crate) fn byte_counter(message: String) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} {bytes} {bytes_per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(message);
    bar
}
