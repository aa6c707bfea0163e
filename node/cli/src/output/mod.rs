//! Rendering results as text or JSON, and writing them to standard output.
//!
//! Keys and values are bytes. Valid UTF-8 is printed as is; anything else as `0x` and lowercase
//! hex, so that binary data never corrupts a terminal and JSON output stays valid. The text
//! "0xff" and the byte 0xff print alike: a deliberate trade for readable output, documented in
//! `--help`.

mod table;

use std::borrow::Cow;
use std::io::Write;

use serde::Serialize;

pub use table::Table;

use super::error::CliError;
use crate::proto::{KeyValue, ResponseHeader};

/// Bytes as they are printed: as is when UTF-8, else `0x` and lowercase hex.
pub fn printable(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => {
            let mut hex = String::with_capacity(2 + bytes.len() * 2);
            hex.push_str("0x");
            for byte in bytes {
                hex.push_str(&format!("{byte:02x}"));
            }
            Cow::Owned(hex)
        }
    }
}

/// The key line and value line etcdctl prints for a key-value.
pub fn kv_lines(kv: &KeyValue) -> String {
    format!("{}\n{}\n", printable(&kv.key), printable(&kv.value))
}

/// A key-value as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyValueView {
    /// The key, printable.
    pub key: String,
    /// The value, printable; absent for `--keys-only` and delete events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Revision of the write that created the key.
    pub create_revision: i64,
    /// Revision of the last write to the key.
    pub mod_revision: i64,
    /// Writes since creation.
    pub version: i64,
    /// When the key expires, Unix milliseconds; 0 for never.
    pub expires_at_unix_ms: i64,
}

impl KeyValueView {
    /// Key, value and metadata.
    pub fn new(kv: &KeyValue) -> Self {
        Self {
            value: Some(printable(&kv.value).into_owned()),
            ..Self::without_value(kv)
        }
    }

    /// Key and metadata only.
    pub fn without_value(kv: &KeyValue) -> Self {
        Self {
            key: printable(&kv.key).into_owned(),
            value: None,
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            version: kv.version,
            expires_at_unix_ms: kv.expires_at_unix_ms,
        }
    }
}

/// A response header as JSON: which node answered, and at which revision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct HeaderView {
    /// The cluster that answered.
    pub cluster_id: u64,
    /// The member that answered.
    pub member_id: u64,
    /// The revision the answer reflects.
    pub revision: i64,
    /// The Raft term of the member that answered.
    pub raft_term: u64,
}

impl HeaderView {
    /// The header, or all zeros when the server sent none.
    pub fn new(header: Option<&ResponseHeader>) -> Self {
        header.map_or_else(Self::default, |header| Self {
            cluster_id: header.cluster_id,
            member_id: header.member_id,
            revision: header.revision,
            raft_term: header.raft_term,
        })
    }
}

/// The header's revision, 0 when the server sent no header.
pub fn header_revision(header: Option<&ResponseHeader>) -> i64 {
    header.map_or(0, |header| header.revision)
}

/// A value as one compact line of JSON, newline included.
pub fn json_line<T: Serialize>(value: &T) -> String {
    // The views are plain structs of strings and integers: serialising them cannot fail.
    let mut line = serde_json::to_string(value).expect("CLI views always serialise to JSON");
    line.push('\n');
    line
}

/// Writes rendered text to standard output and flushes it, so that `watch` lines appear as
/// events arrive even when stdout is a pipe.
pub fn emit(text: &str) -> Result<(), CliError> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn kv(key: &'static [u8], value: &'static [u8]) -> KeyValue {
        KeyValue {
            key: Bytes::from_static(key),
            value: Bytes::from_static(value),
            create_revision: 3,
            mod_revision: 9,
            version: 4,
            expires_at_unix_ms: 1_700_000_000_000,
            lease: 0,
        }
    }

    #[test]
    fn utf8_is_printed_as_is_and_other_bytes_as_hex() {
        assert_eq!(printable(b"config/db"), "config/db");
        assert_eq!(printable("héllo ✓".as_bytes()), "héllo ✓");
        assert_eq!(printable(b""), "");
        assert_eq!(printable(&[0xff, 0x00, 0x1a]), "0xff001a");
        assert_eq!(printable(&[b'a', 0xc3]), "0x61c3");
    }

    #[test]
    fn a_key_value_as_text_is_a_key_line_and_a_value_line() {
        assert_eq!(
            kv_lines(&kv(b"config/db", b"postgres://db:5432")),
            "config/db\npostgres://db:5432\n"
        );
        assert_eq!(
            kv_lines(&kv(b"bin", &[0xde, 0xad, 0xbe, 0xef])),
            "bin\n0xdeadbeef\n"
        );
    }

    #[test]
    fn a_key_value_as_json_carries_its_revisions() {
        let line = json_line(&KeyValueView::new(&kv(b"config/db", b"on")));
        assert_eq!(
            line,
            "{\"key\":\"config/db\",\"value\":\"on\",\"create_revision\":3,\"mod_revision\":9,\
             \"version\":4,\"expires_at_unix_ms\":1700000000000}\n"
        );
    }

    #[test]
    fn a_non_utf8_key_value_is_valid_json() {
        let line = json_line(&KeyValueView::new(&kv(&[0x80, 0x81], &[0xff])));
        let parsed: serde_json::Value = serde_json::from_str(&line).expect("valid JSON");
        assert_eq!(parsed["key"], "0x8081");
        assert_eq!(parsed["value"], "0xff");
    }

    #[test]
    fn without_value_omits_the_field() {
        let line = json_line(&KeyValueView::without_value(&kv(b"k", b"secret")));
        assert!(!line.contains("value\""), "{line}");
        assert!(!line.contains("secret"), "{line}");
    }

    #[test]
    fn text_with_quotes_and_newlines_is_escaped_in_json() {
        let line = json_line(&KeyValueView::new(&kv(b"k", b"a \"quoted\"\nline")));
        assert!(line.contains(r#""value":"a \"quoted\"\nline""#), "{line}");
        assert_eq!(line.matches('\n').count(), 1, "one line per object");
    }

    #[test]
    fn a_missing_header_is_zeros() {
        assert_eq!(HeaderView::new(None), HeaderView::default());
        let header = ResponseHeader {
            cluster_id: 1,
            member_id: 2,
            revision: 3,
            raft_term: 4,
        };
        assert_eq!(
            json_line(&HeaderView::new(Some(&header))),
            "{\"cluster_id\":1,\"member_id\":2,\"revision\":3,\"raft_term\":4}\n"
        );
        assert_eq!(header_revision(Some(&header)), 3);
        assert_eq!(header_revision(None), 0);
    }
}
