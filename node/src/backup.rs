//! The backup file format: what `dengine snapshot save` writes and `node --restore-from`
//! reads.
//!
//! A magic line, a length-delimited [`BackupHeader`], then the snapshot data. The header's
//! checksum covers the data, so a truncated or damaged file is refused instead of restored.

use std::io::{Read, Write};
use std::path::Path;

use prost::Message as _;

use crate::proto::BackupHeader;

const MAGIC: &[u8] = b"DENGINE-BACKUP\n";
pub const FORMAT: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("cannot read backup {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a d-engine backup: {reason}")]
    Invalid { path: String, reason: String },
}

/// FNV-1a, 64 bits: stable everywhere and enough to catch truncation and damage.
pub fn checksum(data: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in data {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

pub fn write(path: &Path, header: &BackupHeader, data: &[u8]) -> std::io::Result<()> {
    let temporary = path.with_extension("partial");
    {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(MAGIC)?;
        file.write_all(&header.encode_length_delimited_to_vec())?;
        file.write_all(data)?;
        file.sync_all()?;
    }
    // Only a complete file gets the final name.
    std::fs::rename(&temporary, path)
}

pub fn read(path: &Path) -> Result<(BackupHeader, Vec<u8>), BackupError> {
    let name = path.display().to_string();
    let invalid = |reason: String| BackupError::Invalid {
        path: name.clone(),
        reason,
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|source| BackupError::Io {
            path: name.clone(),
            source,
        })?;
    let rest = bytes
        .strip_prefix(MAGIC)
        .ok_or_else(|| invalid("it does not start with the backup magic line".into()))?;
    let mut cursor = rest;
    let header = BackupHeader::decode_length_delimited(&mut cursor)
        .map_err(|e| invalid(format!("unreadable header: {e}")))?;
    if header.format != FORMAT {
        return Err(invalid(format!(
            "format {} is not supported (this build reads format {FORMAT})",
            header.format
        )));
    }
    if cursor.len() as u64 != header.data_bytes {
        return Err(invalid(format!(
            "expected {} bytes of data, found {} (truncated?)",
            header.data_bytes,
            cursor.len()
        )));
    }
    if checksum(cursor) != header.checksum {
        return Err(invalid(
            "the data does not match its checksum (damaged?)".into(),
        ));
    }
    Ok((header, cursor.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_round_trips_and_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.backup");
        let data = b"state machine bytes".to_vec();
        let header = BackupHeader {
            format: FORMAT,
            cluster_id: 7,
            metadata: None,
            data_bytes: data.len() as u64,
            checksum: checksum(&data),
        };
        write(&path, &header, &data).unwrap();
        let (read_header, read_data) = read(&path).unwrap();
        assert_eq!((read_header, read_data), (header, data.clone()));

        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(read(&path).unwrap_err().to_string().contains("checksum"));
        bytes.truncate(last);
        std::fs::write(&path, &bytes).unwrap();
        assert!(read(&path).unwrap_err().to_string().contains("truncated"));
        std::fs::write(&path, b"hello").unwrap();
        assert!(read(&path).unwrap_err().to_string().contains("magic"));
    }
}
