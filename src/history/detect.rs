//! Telling the format of a linearizability history from its first bytes,
//! and reading it with the matching reader.

use super::jepsen::{self, find_bytes, LOG_MARKER};
use super::lin::{self, InputFormat, LinHistory};
use crate::error::{Error, Result};
use std::io::Read;
use std::path::Path;

/// How much of a file [`read_lin_history`] reads to detect its format.
pub const DETECT_BYTES: usize = 64 * 1024;

/// Jepsen logs open with setup chatter; the first op line comes within a few
/// lines of the start in every log seen so far.
const LOG_SCAN_LINES: usize = 50;

/// Guesses the format from the first bytes of a file (`head`; a prefix cut
/// anywhere is fine), falling back on the extension of `path` (`.jsonl`,
/// `.edn`) when the content says nothing. `None` when neither tells.
///
/// The first non-blank line decides: a JSON object (`{"`) is converge's
/// JSONL; a line with `jepsen.util - ` among the first 50 lines makes a
/// Jepsen log; `[`, `(`, `{`, `;` or `#` starts EDN.
pub fn detect_format(path: &Path, head: &[u8]) -> Option<InputFormat> {
    let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let first = head
        .split(|&b| b == b'\n')
        .map(<[u8]>::trim_ascii)
        .find(|l| !l.is_empty());
    if let Some(first) = first {
        if let Some(rest) = first.strip_prefix(b"{") {
            if rest.trim_ascii_start().starts_with(b"\"") {
                return Some(InputFormat::Jsonl);
            }
        }
    }
    // Before the EDN test: a log line may itself start with `[` (a bracketed
    // timestamp or thread name).
    if head
        .split(|&b| b == b'\n')
        .take(LOG_SCAN_LINES)
        .any(|l| find_bytes(l, LOG_MARKER.as_bytes()).is_some())
    {
        return Some(InputFormat::JepsenLog);
    }
    if let Some(first) = first {
        let edn = match first {
            [b'[' | b'(' | b'{' | b';', ..] => true,
            // A set, a discard or a tagged value such as a record literal.
            [b'#', b'{' | b'_', ..] => true,
            [b'#', c, ..] => c.is_ascii_alphabetic(),
            _ => false,
        };
        if edn {
            return Some(InputFormat::Edn);
        }
    }
    match path.extension().and_then(|e| e.to_str()) {
        Some("jsonl") => Some(InputFormat::Jsonl),
        Some("edn") => Some(InputFormat::Edn),
        _ => None,
    }
}

/// Reads a linearizability history in `format`, or in the format detected
/// from its content when `format` is `None`.
///
/// Errors: an empty file, an undetectable format ([`Error::Config`], asking
/// for `--input-format`), I/O trouble, and any malformed line
/// ([`Error::HistoryLine`], naming it).
pub fn read_lin_history(path: &Path, format: Option<InputFormat>) -> Result<LinHistory> {
    let mut head = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(DETECT_BYTES as u64).read_to_end(&mut head))
        .map_err(|e| Error::io(path, e))?;
    let content = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&head);
    if head.len() < DETECT_BYTES && content.trim_ascii().is_empty() {
        return Err(Error::History {
            path: path.to_path_buf(),
            message: "the file is empty: there is no history to read".into(),
        });
    }
    let format = match format {
        Some(f) => f,
        None => detect_format(path, &head).ok_or_else(|| {
            Error::Config(format!(
                "cannot tell the format of {}; pass --input-format",
                path.display()
            ))
        })?,
    };
    match format {
        InputFormat::Jsonl => lin::from_converge_jsonl(path),
        InputFormat::JepsenLog => jepsen::read_jepsen_log(path),
        InputFormat::Edn => jepsen::read_edn(path),
    }
}
