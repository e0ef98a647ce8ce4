//! Timestamps, retention periods and the injectable clock.
//!
//! Every instant the store records is a [`Timestamp`]: milliseconds since the
//! Unix epoch, written as RFC 3339 in UTC with a `Z` and exactly three
//! fractional digits (`2026-11-23T10:00:00.000Z`), so that equal instants
//! always have equal text and canonical records stay canonical.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use time::format_description::well_known::Rfc3339;
use time::{Month, OffsetDateTime, UtcOffset};

/// Why a timestamp or period was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TimeParseError(String);

/// An instant with millisecond precision, between years 0000 and 9999 (UTC).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// First millisecond of year 0000 and the last of year 9999.
const MIN_MS: i64 = -62_167_219_200_000;
const MAX_MS: i64 = 253_402_300_799_999;

impl Timestamp {
    /// 1970-01-01T00:00:00.000Z.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// The instant `ms` milliseconds after 1970-01-01T00:00:00Z, if it lies in years 0000–9999.
    pub fn from_unix_millis(ms: i64) -> Option<Self> {
        (MIN_MS..=MAX_MS).contains(&ms).then_some(Self(ms))
    }

    /// Milliseconds since the Unix epoch.
    pub fn unix_millis(self) -> i64 {
        self.0
    }

    fn to_datetime(self) -> OffsetDateTime {
        // In range by construction.
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    fn from_datetime(datetime: OffsetDateTime) -> Option<Self> {
        let nanos = datetime.unix_timestamp_nanos();
        if nanos % 1_000_000 != 0 {
            return None;
        }
        i64::try_from(nanos / 1_000_000)
            .ok()
            .and_then(Self::from_unix_millis)
    }

    /// This instant plus a retention period; `None` for [`Period::Permanent`] or past year 9999.
    pub fn checked_add(self, period: Period) -> Option<Self> {
        match period {
            Period::Permanent => None,
            Period::Millis(ms) => self.0.checked_add(ms).and_then(Self::from_unix_millis),
            Period::Years(years) => {
                let datetime = self.to_datetime();
                let year = datetime.year().checked_add(i32::try_from(years).ok()?)?;
                let date = datetime.date();
                // 29 February plus a year that is not a leap year lands on 28 February.
                let day = date
                    .day()
                    .min(time::util::days_in_month(date.month(), year));
                let new_date = time::Date::from_calendar_date(year, date.month(), day).ok()?;
                Self::from_datetime(datetime.replace_date(new_date))
            }
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let datetime = self.to_datetime();
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            datetime.year(),
            u8::from(datetime.month()),
            datetime.day(),
            datetime.hour(),
            datetime.minute(),
            datetime.second(),
            datetime.millisecond()
        )
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Timestamp {
    type Err = TimeParseError;

    /// Parses any RFC 3339 timestamp (any offset; converted to UTC) with at most millisecond precision.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let datetime = OffsetDateTime::parse(text, &Rfc3339).map_err(|e| {
            TimeParseError(format!(
                "`{text}` is not an RFC 3339 timestamp like 2026-11-23T10:00:00Z ({e})"
            ))
        })?;
        let utc = datetime.to_offset(UtcOffset::UTC);
        Self::from_datetime(utc).ok_or_else(|| {
            TimeParseError(format!(
                "`{text}` has sub-millisecond precision or lies outside years 0000-9999"
            ))
        })
    }
}

/// What [`Period::parse_duration_param`] accepts, as an ECMA-262 regular expression.
pub const DURATION_PATTERN: &str = "^(0|[0-9]{1,5}(ms|s|m|h|d|w))$";

/// How long a retention class keeps a package by default.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Period {
    /// Never expires.
    Permanent,
    /// A fixed number of milliseconds (units `s`, `m`, `h`, `d`, `w`).
    Millis(i64),
    /// Calendar years (unit `y`): the same month, day and time N years later
    /// (29 February becomes 28 February in a non-leap year).
    Years(u32),
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Period::Permanent => f.write_str("permanent"),
            Period::Years(years) => write!(f, "{years}y"),
            Period::Millis(0) => f.write_str("0s"),
            Period::Millis(ms) => {
                let units: [(i64, &str); 5] = [
                    (7 * 86_400_000, "w"),
                    (86_400_000, "d"),
                    (3_600_000, "h"),
                    (60_000, "m"),
                    (1_000, "s"),
                ];
                for (unit_ms, unit) in units {
                    if *ms % unit_ms == 0 {
                        return write!(f, "{}{unit}", ms / unit_ms);
                    }
                }
                write!(f, "{ms}ms")
            }
        }
    }
}

impl FromStr for Period {
    type Err = TimeParseError;

    /// Parses `permanent` or a positive integer with a unit: `ms`, `s`, `m`, `h`, `d`, `w`, `y`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text == "permanent" {
            return Ok(Period::Permanent);
        }
        let bad = || {
            TimeParseError(format!(
                "`{text}` is not a period: use `permanent` or a positive whole number with a unit \
                 (ms, s, m, h, d, w, y), e.g. `730d` or `2y`"
            ))
        };
        let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let (number, unit) = text.split_at(split);
        let number: i64 = number.parse().map_err(|_| bad())?;
        if number <= 0 {
            return Err(bad());
        }
        if unit == "y" {
            return u32::try_from(number)
                .ok()
                .filter(|years| *years <= 10_000)
                .map(Period::Years)
                .ok_or_else(bad);
        }
        Period::fixed(number, unit).ok_or_else(bad)
    }
}

impl Period {
    /// A duration as a request parameter gives it: exactly `0`, or 1-5 digits and a fixed unit
    /// (`ms`, `s`, `m`, `h`, `d`, `w`), nothing around it ([`DURATION_PATTERN`]); then as
    /// [`Period::parse_duration`].
    pub fn parse_duration_param(text: &str) -> Result<Self, TimeParseError> {
        let digits = text.bytes().take_while(u8::is_ascii_digit).count();
        let unit = &text[digits..];
        let shaped = (text == "0")
            || ((1..=5).contains(&digits) && ["ms", "s", "m", "h", "d", "w"].contains(&unit));
        if !shaped {
            return Err(TimeParseError(format!(
                "`{}` is not a duration: use `0` or 1-5 digits with a unit (ms, s, m, h, d, w), \
                 e.g. `90s` or `24h`",
                text.escape_debug()
            )));
        }
        Self::parse_duration(text)
    }

    /// Parses a fixed duration given as an option (a GC grace, a busy timeout): `0`, or a whole
    /// number with a unit `ms`, `s`, `m`, `h`, `d`, `w` (`0s` included). Unlike a retention
    /// period, zero is valid, and `permanent` and calendar years (`y`) are not durations.
    /// Returns [`Period::Millis`].
    pub fn parse_duration(text: &str) -> Result<Self, TimeParseError> {
        let text = text.trim();
        let bad = || {
            TimeParseError(format!(
                "`{text}` is not a duration: use `0` or a whole number with a unit \
                 (ms, s, m, h, d, w), e.g. `0s`, `90s` or `24h`"
            ))
        };
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let number: i64 = number.parse().map_err(|_| bad())?;
        if number == 0 && unit.is_empty() {
            return Ok(Period::Millis(0));
        }
        Period::fixed(number, unit).ok_or_else(bad)
    }

    /// `number` of the fixed `unit` (`ms`, `s`, `m`, `h`, `d`, `w`) as [`Period::Millis`];
    /// `None` for another unit or a span no timestamp range holds.
    fn fixed(number: i64, unit: &str) -> Option<Self> {
        let unit_ms: i64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            _ => return None,
        };
        number
            .checked_mul(unit_ms)
            .filter(|ms| *ms <= MAX_MS - MIN_MS)
            .map(Period::Millis)
    }

    /// A fixed period as a [`std::time::Duration`] (for intervals); `None` for permanent or calendar years.
    pub fn as_duration(self) -> Option<std::time::Duration> {
        match self {
            Period::Millis(ms) => u64::try_from(ms).ok().map(std::time::Duration::from_millis),
            _ => None,
        }
    }
}

/// The source of "now" for everything the library records. Injectable so that tests can walk a
/// package through years of retention in milliseconds.
pub trait Clock: fmt::Debug + Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// The system clock, truncated to milliseconds.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let now = OffsetDateTime::now_utc();
        let ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
        Timestamp::from_unix_millis(ms).unwrap_or(Timestamp(0))
    }
}

/// A clock that only moves when told to; clones share the same instant.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: Timestamp) -> Self {
        Self(Arc::new(AtomicI64::new(start.0)))
    }

    /// Moves the clock to `to` (which may be earlier: tests decide).
    pub fn set(&self, to: Timestamp) {
        self.0.store(to.0, Ordering::SeqCst);
    }

    /// Moves the clock forward by `period`.
    pub fn advance(&self, period: Period) {
        if let Some(next) = self.now().checked_add(period) {
            self.set(next);
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

/// Month helper for tests and docs.
#[doc(hidden)]
pub fn ymd(year: i32, month: u8, day: u8) -> Timestamp {
    let month = Month::try_from(month).unwrap_or(Month::January);
    let date = time::Date::from_calendar_date(year, month, day).unwrap_or(
        time::Date::from_calendar_date(1970, Month::January, 1).unwrap_or(time::Date::MIN),
    );
    Timestamp::from_datetime(date.midnight().assume_utc()).unwrap_or(Timestamp(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_text_is_canonical() {
        let t: Timestamp = "2026-11-23T10:00:00Z".parse().unwrap();
        assert_eq!(t.to_string(), "2026-11-23T10:00:00.000Z");
        let t2: Timestamp = "2026-11-23T11:00:00.000+01:00".parse().unwrap();
        assert_eq!(t, t2);
        assert_eq!(t.to_string().parse::<Timestamp>().unwrap(), t);
        assert!("2026-11-23T10:00:00.0001Z".parse::<Timestamp>().is_err());
        assert!("2026-11-23".parse::<Timestamp>().is_err());
        assert!("yesterday".parse::<Timestamp>().is_err());
    }

    #[test]
    fn periods_parse_and_add() {
        let t = ymd(2024, 2, 29);
        assert_eq!("2y".parse::<Period>(), Ok(Period::Years(2)));
        assert_eq!(t.checked_add(Period::Years(1)).unwrap(), ymd(2025, 2, 28));
        assert_eq!(t.checked_add(Period::Years(4)).unwrap(), ymd(2028, 2, 29));
        assert_eq!(
            t.checked_add("7d".parse().unwrap()).unwrap(),
            ymd(2024, 3, 7)
        );
        assert_eq!(t.checked_add(Period::Permanent), None);
        for bad in ["", "0d", "-1d", "7", "d", "7 days", "1.5d", "7q"] {
            assert!(bad.parse::<Period>().is_err(), "{bad}");
        }
        assert_eq!("730d".parse::<Period>().unwrap().to_string(), "730d");
        assert_eq!("1h".parse::<Period>().unwrap().to_string(), "1h");
    }

    #[test]
    fn durations_accept_zero_but_periods_do_not() {
        for zero in ["0", "0s", "0ms", "0h", " 0s "] {
            assert_eq!(
                Period::parse_duration(zero),
                Ok(Period::Millis(0)),
                "{zero}"
            );
        }
        assert_eq!(Period::parse_duration("90s"), Ok(Period::Millis(90_000)));
        assert_eq!(Period::parse_duration("36h").unwrap().to_string(), "36h");
        assert_eq!(Period::Millis(0).to_string(), "0s");
        for bad in ["", "7", "-1s", "1.5h", "permanent", "2y", "s", "7 days"] {
            let error = Period::parse_duration(bad).unwrap_err().to_string();
            assert!(error.contains("is not a duration"), "{bad}: {error}");
        }
        assert!(
            "0s".parse::<Period>().is_err(),
            "a retention period stays positive"
        );
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(ymd(2026, 1, 1));
        let shared = clock.clone();
        assert_eq!(clock.now(), ymd(2026, 1, 1));
        shared.advance(Period::Years(11));
        assert_eq!(clock.now(), ymd(2037, 1, 1));
    }
}
