//! Decoding one view row: every column read names the row in its error.
//!
//! A view row is derived data, and an insider can edit it. Whatever it holds is either what
//! the projection wrote or corruption: a negative count or sequence number, a digest that does
//! not parse, a timestamp outside years 0000-9999, NULL in a NOT NULL column. Each is an
//! [`Error::Integrity`] citing the event the row derives from and naming the row (`blobs row
//! blake3:…: `size` is -1, not a count`), never a default and never a wrapped-around cast.

use std::fmt::Display;
use std::str::FromStr;

use sqlx::Row as _;
use sqlx::any::AnyRow;

use crate::cbor::Value;
use crate::digest::BlobInfo;
use crate::error::{Error, Result};
use crate::time::Timestamp;

/// One row being decoded, with the name and event its errors cite.
pub(crate) struct ViewRow<'r> {
    row: &'r AnyRow,
    /// The event the row derives from (0 if it cannot be told).
    pub(crate) seq: u64,
    /// How errors name the row, e.g. `blobs row blake3:…`.
    name: String,
}

impl<'r> ViewRow<'r> {
    /// A row of `table` keyed by the text column `key`, deriving from the event in
    /// `seq_column`.
    pub(crate) fn keyed(row: &'r AnyRow, table: &str, key: &str, seq_column: &str) -> Result<Self> {
        let key: String = row.try_get(key)?;
        let mut view = Self::named(row, 0, format!("{table} row {key}"));
        view.seq = view.count(seq_column)?;
        Ok(view)
    }

    /// A row of `table` keyed by the text column `key` that cites no event (its errors say
    /// seq 0): for queries that select no sequence number.
    pub(crate) fn keyed_unsequenced(row: &'r AnyRow, table: &str, key: &str) -> Result<Self> {
        let key: String = row.try_get(key)?;
        Ok(Self::named(row, 0, format!("{table} row {key}")))
    }

    /// A row named `name`, deriving from event `seq`.
    pub(crate) fn named(row: &'r AnyRow, seq: u64, name: String) -> Self {
        Self { row, seq, name }
    }

    /// The integrity error "`{name}: {what}`" citing the row's event.
    pub(crate) fn corrupt(&self, what: impl Display) -> Error {
        Error::Integrity {
            seq: self.seq,
            reason: format!("{}: {what}", self.name),
        }
    }

    /// A text column, as stored.
    pub(crate) fn text(&self, column: &str) -> Result<String> {
        Ok(self.row.try_get(column)?)
    }

    /// A text column parsed into `T` (digests, ids): a value that does not parse is corrupt.
    pub(crate) fn parse<T>(&self, column: &str) -> Result<T>
    where
        T: FromStr,
        T::Err: Display,
    {
        let text = self.text(column)?;
        text.parse()
            .map_err(|e| self.corrupt(format_args!("`{column}`: {e}")))
    }

    /// A text column holding JSON (labels, roles).
    pub(crate) fn json(&self, column: &str) -> Result<Value> {
        let text = self.text(column)?;
        crate::jcs::from_json(text.as_bytes())
            .map_err(|e| self.corrupt(format_args!("`{column}` is not JSON: {e}")))
    }

    /// The `blake3`, `sha256` and `size` columns of a blob or file row.
    pub(crate) fn blob_info(&self) -> Result<BlobInfo> {
        Ok(BlobInfo {
            blake3: self.parse("blake3")?,
            sha256: self.parse("sha256")?,
            size: self.count("size")?,
        })
    }

    /// A nullable text column.
    pub(crate) fn opt_text(&self, column: &str) -> Result<Option<String>> {
        Ok(self.row.try_get(column)?)
    }

    /// A NOT NULL count, size or sequence number: negative is corrupt.
    pub(crate) fn count(&self, column: &str) -> Result<u64> {
        let value: i64 = self.row.try_get(column)?;
        self.non_negative(column, value)
    }

    /// A nullable count or sequence number: negative is corrupt.
    pub(crate) fn opt_count(&self, column: &str) -> Result<Option<u64>> {
        let value: Option<i64> = self.row.try_get(column)?;
        value.map(|v| self.non_negative(column, v)).transpose()
    }

    /// A 0/1 flag: any other value is corrupt.
    pub(crate) fn flag(&self, column: &str) -> Result<bool> {
        match self.row.try_get::<i64, _>(column)? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(self.corrupt(format_args!("`{column}` is {other}, not 0 or 1"))),
        }
    }

    /// A nullable timestamp column (milliseconds since the epoch).
    pub(crate) fn opt_ts(&self, column: &str) -> Result<Option<Timestamp>> {
        let ms: Option<i64> = self.row.try_get(column)?;
        ms.map(|ms| {
            Timestamp::from_unix_millis(ms).ok_or_else(|| {
                self.corrupt(format_args!(
                    "`{column}` is {ms}, not a timestamp in years 0000-9999"
                ))
            })
        })
        .transpose()
    }

    /// A NOT NULL timestamp column: NULL is corrupt too (never read as the epoch).
    pub(crate) fn ts(&self, column: &str) -> Result<Timestamp> {
        self.opt_ts(column)?
            .ok_or_else(|| self.corrupt(format_args!("`{column}` is NULL")))
    }

    fn non_negative(&self, column: &str, value: i64) -> Result<u64> {
        u64::try_from(value)
            .map_err(|_| self.corrupt(format_args!("`{column}` is {value}, not a count")))
    }
}
