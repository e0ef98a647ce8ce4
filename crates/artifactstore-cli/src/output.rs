//! Output helpers: JSON (JCS) documents, human formatting, progress bars.

use std::io::{IsTerminal as _, Write as _};

use artifact_client::Progress;
use artifact_core::cbor::Value;
use artifact_core::event::Event;
use artifact_core::results::{self, Dto, PackageViewResult, RetentionStatusResult, TokenResult};
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

/// Prints a typed result as one JCS document.
pub(crate) fn print_result<T: Dto>(result: &T) -> anyhow::Result<()> {
    print_json(&results::encode(result)?)
}

/// Human form of an expiry (`None` = permanent).
pub(crate) fn expiry(at: Option<&str>) -> &str {
    at.unwrap_or("never (permanent)")
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

/// `-` for an absent number.
fn or_dash(value: Option<u64>) -> String {
    value.map_or_else(|| "-".to_owned(), |n| n.to_string())
}

/// Human form of a package with its retention state.
pub(crate) fn print_package(package: &PackageViewResult) {
    println!("{}@{}", package.name, package.version);
    println!("  package_id   {}", package.package_id());
    println!(
        "  created      {} by {} (seq {})",
        package.created_at, package.created_by, package.created_seq
    );
    println!(
        "  files        {} ({})",
        package.file_count,
        size(package.total_size)
    );
    for (key, value) in &package.labels {
        println!("  label        {key}={value}");
    }
    print_retention(&package.retention);
    if let Some(seq) = package.purged_seq {
        println!("  purged       seq {seq}");
    }
}

/// Human form of a retention state.
pub(crate) fn print_retention(status: &RetentionStatusResult) {
    println!(
        "  class        {} (default {})",
        status.retention_class, status.default_period
    );
    println!(
        "  expires      {}",
        expiry(status.current_expires_at.as_deref())
    );
    if status.default_expires_at != status.current_expires_at {
        println!(
            "  default      {}",
            expiry(status.default_expires_at.as_deref())
        );
    }
    println!("  active holds {}", status.active_holds);
    for hold in &status.holds {
        println!(
            "    {} by {} at {} (seq {}): {}",
            hold.hold_id, hold.actor, hold.applied_at, hold.applied_seq, hold.reason
        );
    }
    if status.eligible_for_deletion {
        println!("  eligible     yes (seq {})", or_dash(status.eligible_seq));
    } else {
        println!("  eligible     no");
    }
}

/// One row of `ls`.
pub(crate) fn print_package_row(package: &PackageViewResult) {
    let id = package.package_id();
    println!(
        "{:<40}  {:<18}  {:<26}  {:<5}  {:<8}  {}",
        format!("{}@{}", package.name, package.version),
        package.retention.retention_class,
        expiry(package.retention.current_expires_at.as_deref()),
        package.retention.active_holds,
        if package.retention.eligible_for_deletion {
            "yes"
        } else {
            "no"
        },
        id.get(..19).unwrap_or(id)
    );
}

/// The table of `admin token list`.
pub(crate) fn print_tokens(tokens: &[TokenResult]) {
    if tokens.is_empty() {
        println!("no minted tokens");
        return;
    }
    println!(
        "{:<10}  {:<24}  {:<28}  {:<24}  {:<24}  revoked",
        "id", "principal", "roles", "created", "expires"
    );
    for token in tokens {
        println!(
            "{:<10}  {:<24}  {:<28}  {:<24}  {:<24}  {}",
            token.token_id,
            token.principal,
            token.roles.join(","),
            token.created_at,
            token.expires_at.as_deref().unwrap_or("never"),
            if token.revoked { "yes" } else { "no" }
        );
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
fn progress(total: u64, message: String) -> ProgressBar {
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
fn byte_counter(message: String) -> ProgressBar {
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

/// A [`ProgressBar`] the client reports to. A bar made before the size is known (a blob
/// download) is created at the first [`Progress::set_length`], so it is shown only for large
/// transfers, like one made with the size.
pub(crate) struct Bar {
    message: String,
    bar: std::sync::OnceLock<ProgressBar>,
}

impl Bar {
    /// For a transfer of `total` bytes.
    pub(crate) fn sized(total: u64, message: String) -> Self {
        let bar = Bar::lazy(message);
        bar.set_length(total);
        bar
    }

    /// For a transfer whose size the client reports.
    pub(crate) fn lazy(message: String) -> Self {
        Bar {
            message,
            bar: std::sync::OnceLock::new(),
        }
    }

    /// A running byte counter (scans).
    pub(crate) fn counter(message: String) -> Self {
        let bar = Bar::lazy(message.clone());
        let _ = bar.bar.set(byte_counter(message));
        bar
    }

    /// Hides the bar.
    pub(crate) fn finish(&self) {
        if let Some(bar) = self.bar.get() {
            bar.finish_and_clear();
        }
    }
}

impl Progress for Bar {
    fn set_length(&self, total: u64) {
        match self.bar.get() {
            Some(bar) => bar.set_length(total),
            None => {
                let _ = self.bar.set(progress(total, self.message.clone()));
            }
        }
    }

    fn advance(&self, bytes: u64) {
        if let Some(bar) = self.bar.get() {
            bar.inc(bytes);
        }
    }

    fn set_position(&self, bytes: u64) {
        if let Some(bar) = self.bar.get() {
            bar.set_position(bytes);
        }
    }
}
