//! The backup file format: what `dengine snapshot save` writes and `node --restore-from` and
//! `node restore` read.
//!
//! A magic line, a length-delimited [`BackupHeader`], then the snapshot data. The header's
//! checksum covers the data, so a truncated or damaged file is refused instead of restored.
//!
//! Format 2 checksums with CRC-32C (Castagnoli, the `crc32c` crate: hardware-accelerated,
//! the checksum RocksDB, ext4 and S3 use, so a backup's checksum can be handed to object
//! storage as is). Format 1 files (FNV-1a, 64 bits, written before) are still read.

use std::io::{Read, Write};
use std::path::Path;

use prost::Message as _;

use crate::v1::BackupHeader;

const MAGIC: &[u8] = b"DENGINE-BACKUP\n";
/// The format this build writes.
pub const FORMAT: u32 = 2;
/// The first format, still read.
const FORMAT_FNV: u32 = 1;

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

/// The checksum of `data` as format [`FORMAT`] records it.
pub fn checksum(data: &[u8]) -> u64 {
    u64::from(crc32c::crc32c(data))
}

/// The checksum as `format` records it, if this build reads that format.
fn checksum_of_format(format: u32, data: &[u8]) -> Option<u64> {
    match format {
        FORMAT => Some(checksum(data)),
        FORMAT_FNV => Some(fnv1a(data)),
        _ => None,
    }
}

/// FNV-1a, 64 bits: format 1's checksum.
fn fnv1a(data: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in data {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// Whether `data` is what `header` describes: its length and checksum.
pub fn matches(header: &BackupHeader, data: &[u8]) -> bool {
    data.len() as u64 == header.data_bytes
        && checksum_of_format(header.format, data) == Some(header.checksum)
}

/// The bytes a backup file starts with, before its data: the magic and the header.
pub fn file_start(header: &BackupHeader) -> Vec<u8> {
    let mut start = MAGIC.to_vec();
    start.extend_from_slice(&header.encode_length_delimited_to_vec());
    start
}

/// Writes a backup to `path` atomically: a partial file never carries the final name.
pub fn write(path: &Path, header: &BackupHeader, data: &[u8]) -> std::io::Result<()> {
    let temporary = path.with_extension("partial");
    {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(&file_start(header))?;
        file.write_all(data)?;
        file.sync_all()?;
    }
    std::fs::rename(&temporary, path)
}

/// etcd's snapshot stream ends with a SHA-256 of everything before it, after zero padding that
/// puts the size 32 bytes past a multiple of 512: etcdctl keeps a snapshot only with that size.
/// A backup served through etcd's Maintenance.Snapshot gets that trailer, and reads back as is.
pub struct EtcdTrailer {
    hasher: sha2::Sha256,
    len: u64,
}

impl Default for EtcdTrailer {
    fn default() -> Self {
        Self {
            hasher: sha2::Digest::new(),
            len: 0,
        }
    }
}

impl EtcdTrailer {
    /// Takes in the next bytes of the stream.
    pub fn update(&mut self, bytes: &[u8]) {
        sha2::Digest::update(&mut self.hasher, bytes);
        self.len += bytes.len() as u64;
    }

    /// The padding and the SHA-256 that end the stream.
    pub fn finish(mut self) -> Vec<u8> {
        let padding = vec![0; ((512 - self.len % 512) % 512) as usize];
        self.update(&padding);
        let mut trailer = padding;
        trailer.extend_from_slice(&sha2::Digest::finalize(self.hasher));
        trailer
    }
}

/// Whether `file` ends with etcd's snapshot trailer.
fn has_etcd_trailer(file: &[u8]) -> bool {
    if file.len() % 512 != 32 {
        return false;
    }
    let (content, digest) = file.split_at(file.len() - 32);
    <sha2::Sha256 as sha2::Digest>::digest(content).as_slice() == digest
}

/// Reads and checks a backup: its header and its data.
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
    if checksum_of_format(header.format, &[]).is_none() {
        return Err(invalid(format!(
            "format {} is not supported (this build reads formats {FORMAT_FNV} and {FORMAT})",
            header.format
        )));
    }
    let data_bytes = usize::try_from(header.data_bytes).unwrap_or(usize::MAX);
    if cursor.len() > data_bytes && has_etcd_trailer(&bytes) {
        // Saved by `etcdctl snapshot save`: the data, then etcd's padding and SHA-256.
        cursor = &cursor[..data_bytes];
    }
    if cursor.len() as u64 != header.data_bytes {
        return Err(invalid(format!(
            "expected {} bytes of data, found {} (truncated?)",
            header.data_bytes,
            cursor.len()
        )));
    }
    if !matches(&header, cursor) {
        return Err(invalid(
            "the data does not match its checksum (damaged?)".into(),
        ));
    }
    Ok((header, cursor.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(format: u32, data: &[u8], checksum: u64) -> BackupHeader {
        BackupHeader {
            format,
            cluster_id: 7,
            metadata: None,
            data_bytes: data.len() as u64,
            checksum,
            revision: 0,
        }
    }

    #[test]
    fn a_backup_round_trips_and_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.backup");
        let data = b"state machine bytes".to_vec();
        let header = header(FORMAT, &data, checksum(&data));
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

    #[test]
    fn a_backup_saved_through_etcds_snapshot_stream_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snapshot.db");
        let data = b"state machine bytes".to_vec();
        let header = header(FORMAT, &data, checksum(&data));
        let mut stream = file_start(&header);
        stream.extend_from_slice(&data);
        let mut trailer = EtcdTrailer::default();
        trailer.update(&stream);
        stream.extend(trailer.finish());
        assert_eq!(stream.len() % 512, 32, "the size etcdctl checks");
        std::fs::write(&path, &stream).unwrap();
        assert_eq!(read(&path).unwrap(), (header, data));

        // A damaged trailer is not a trailer: the bytes after the data are refused.
        let last = stream.len() - 1;
        stream[last] ^= 1;
        std::fs::write(&path, &stream).unwrap();
        assert!(read(&path).is_err());
    }

    #[test]
    fn the_checksum_is_crc32c() {
        // The check value of CRC-32C (RFC 3720, appendix B.4).
        assert_eq!(checksum(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn a_format_1_backup_is_still_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.backup");
        let data = b"written by an earlier version".to_vec();
        let old = header(FORMAT_FNV, &data, fnv1a(&data));
        write(&path, &old, &data).unwrap();
        assert_eq!(read(&path).unwrap(), (old.clone(), data.clone()));

        let wrong = header(FORMAT_FNV, &data, checksum(&data));
        write(&path, &wrong, &data).unwrap();
        assert!(read(&path).unwrap_err().to_string().contains("checksum"));
    }

    #[test]
    fn an_unknown_format_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.backup");
        let data = b"x".to_vec();
        write(&path, &header(9, &data, 0), &data).unwrap();
        let error = read(&path).unwrap_err().to_string();
        assert!(error.contains("format 9 is not supported"), "{error}");
    }
}
