//! What an export says about its recordings, written as it goes to temp
//! files (so memory stays flat whatever the count) and added to the zip at
//! the end: `recordings.csv` (RFC 4180: one row per recording the request
//! covers, exported or not, and why) and `SHA256SUMS` (`sha256sum -c`
//! format, for the exported files).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// The CSV's columns, in order.
pub const COLUMNS: [&str; 14] = [
    "id",
    "name",
    "file_in_zip",
    "call_time",
    "campaign",
    "agent",
    "phone",
    "lead_id",
    "duration_seconds",
    "size",
    "codec",
    "sha256",
    "source",
    "status",
];

/// One row of `recordings.csv`.
#[derive(Debug, Clone, Default)]
pub struct Row {
    pub id: i64,
    pub name: String,
    pub file_in_zip: String,
    pub call_time: String,
    pub campaign: String,
    pub agent: String,
    pub phone: String,
    pub lead_id: String,
    pub duration_seconds: String,
    pub size: String,
    pub codec: String,
    pub sha256: String,
    /// Where the bytes came from (`store KEY`, `local file PATH`).
    pub source: String,
    /// `exported`, or why not.
    pub status: String,
}

/// The manifests being written: CSV rows and checksum lines, each to its temp file.
pub struct Manifests {
    pub csv_path: PathBuf,
    pub sums_path: PathBuf,
    csv: BufWriter<File>,
    sums: BufWriter<File>,
}

impl Manifests {
    /// Starts both files (as `prefix.csv`, `prefix.sums`), the CSV with its header.
    pub fn create(prefix: &Path) -> io::Result<Manifests> {
        let csv_path = prefix.with_extension("csv.tmp");
        let sums_path = prefix.with_extension("sums.tmp");
        let mut csv = BufWriter::new(File::create(&csv_path)?);
        write_row(&mut csv, &COLUMNS)?;
        let sums = BufWriter::new(File::create(&sums_path)?);
        Ok(Manifests {
            csv_path,
            sums_path,
            csv,
            sums,
        })
    }

    /// Adds a recording's row, and its checksum line if it was exported.
    pub fn add(&mut self, row: &Row) -> io::Result<()> {
        let id = row.id.to_string();
        write_row(
            &mut self.csv,
            &[
                &id,
                &row.name,
                &row.file_in_zip,
                &row.call_time,
                &row.campaign,
                &row.agent,
                &row.phone,
                &row.lead_id,
                &row.duration_seconds,
                &row.size,
                &row.codec,
                &row.sha256,
                &row.source,
                &row.status,
            ],
        )?;
        if !row.file_in_zip.is_empty() {
            writeln!(self.sums, "{}  {}", row.sha256, row.file_in_zip)?;
        }
        Ok(())
    }

    /// Flushes both files to disk.
    pub fn finish(mut self) -> io::Result<()> {
        self.csv.flush()?;
        self.sums.flush()
    }
}

/// One CSV record: fields quoted where they hold a comma, quote or line break.
fn write_row(out: &mut impl Write, fields: &[&str]) -> io::Result<()> {
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        if f.contains([',', '"', '\n', '\r']) {
            write!(out, "\"{}\"", f.replace('"', "\"\""))?;
        } else {
            out.write_all(f.as_bytes())?;
        }
    }
    out.write_all(b"\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_only_when_they_must_be() {
        let mut out = Vec::new();
        write_row(&mut out, &["a", "b,c", "say \"hi\"", "two\nlines", ""]).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "a,\"b,c\",\"say \"\"hi\"\"\",\"two\nlines\",\r\n"
        );
    }
}
