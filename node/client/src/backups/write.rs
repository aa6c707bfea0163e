//! Writing one backup as it streams in from a node: the header first, then the data, checked
//! against the header's length and checksum before the object is completed. An upload that
//! fails the check, or breaks off, is aborted: no partial or damaged backup is ever visible
//! under a backup's name (a multipart upload appears only when completed, a small object only
//! when put whole).

use bytes::Bytes;
use dengine_proto::backup::{file_start, FORMAT};
use dengine_proto::v1::{BackupChunk, BackupHeader};
use futures::{Stream, StreamExt};
use object_store::buffered::BufWriter;
use object_store::path::Path;
use tokio::io::AsyncWriteExt;

use crate::error_chain;

use super::destination::{upload_failed, Destination};
use super::BackupFailure;

/// Parts of a multipart upload; smaller backups go up in one request.
const PART_BYTES: usize = 8 << 20;

/// Parts uploaded at once: with the part being filled, what one backup holds in memory is
/// about three parts.
const PARTS_IN_FLIGHT: usize = 2;

/// A backup written whole and checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Written {
    pub path: Path,
    pub header: BackupHeader,
    /// The object's size: the file start (magic and header) and the data.
    pub size_bytes: u64,
}

/// Writes the backup `chunks` carry to `path` at `destination`.
pub async fn write_backup<S>(
    chunks: S,
    destination: &Destination,
    path: Path,
) -> Result<Written, BackupFailure>
where
    S: Stream<Item = Result<BackupChunk, tonic::Status>> + Unpin,
{
    write_in_parts(chunks, destination, path, PART_BYTES).await
}

/// [`write_backup`] with parts of `part_bytes` (tests use small ones).
async fn write_in_parts<S>(
    mut chunks: S,
    destination: &Destination,
    path: Path,
    part_bytes: usize,
) -> Result<Written, BackupFailure>
where
    S: Stream<Item = Result<BackupChunk, tonic::Status>> + Unpin,
{
    let header = match chunks.next().await {
        Some(Ok(BackupChunk {
            header: Some(header),
            ..
        })) => header,
        Some(Ok(_)) => {
            return Err(corrupt(
                "the node's backup stream did not start with a header",
            ))
        }
        Some(Err(status)) => return Err(source_failed(&status)),
        None => return Err(corrupt("the node's backup stream ended before its header")),
    };
    if header.format != FORMAT {
        return Err(BackupFailure {
            reason: "UnsupportedFormat",
            message: format!(
                "the node sent backup format {}; this operator checks format {FORMAT}: run an operator as new as the nodes",
                header.format
            ),
        });
    }
    let start = Bytes::from(file_start(&header));
    let mut upload = BufWriter::with_capacity(destination.store(), path.clone(), part_bytes)
        .with_max_concurrency(PARTS_IN_FLIGHT);
    let outcome = stream_data(&mut chunks, &mut upload, &header, start.clone()).await;
    if let Err(failure) = outcome {
        // Nothing was completed; what was uploaded of the parts is discarded.
        if let Err(error) = upload.abort().await {
            tracing::warn!(%error, %path, "aborting a failed backup upload");
        }
        return Err(failure);
    }
    upload.shutdown().await.map_err(|error| BackupFailure {
        reason: "UploadFailed",
        message: format!(
            "completing {}: {}",
            destination.location(&path),
            error_chain(&error)
        ),
    })?;
    Ok(Written {
        path,
        size_bytes: start.len() as u64 + header.data_bytes,
        header,
    })
}

/// Uploads the file start and the data, checking the data against the header on the way.
async fn stream_data<S>(
    chunks: &mut S,
    upload: &mut BufWriter,
    header: &BackupHeader,
    start: Bytes,
) -> Result<(), BackupFailure>
where
    S: Stream<Item = Result<BackupChunk, tonic::Status>> + Unpin,
{
    upload
        .put(start)
        .await
        .map_err(|error| upload_failed("uploading", &error))?;
    let mut checksum = 0u32;
    let mut received = 0u64;
    while let Some(chunk) = chunks.next().await {
        let data = chunk.map_err(|status| source_failed(&status))?.data;
        received += data.len() as u64;
        if received > header.data_bytes {
            return Err(corrupt(&format!(
                "the node sent more than the {} bytes of data its header announced",
                header.data_bytes
            )));
        }
        checksum = crc32c::crc32c_append(checksum, &data);
        upload
            .put(data)
            .await
            .map_err(|error| upload_failed("uploading", &error))?;
    }
    if received != header.data_bytes {
        return Err(corrupt(&format!(
            "the node's backup stream ended after {received} of {} bytes of data",
            header.data_bytes
        )));
    }
    if u64::from(checksum) != header.checksum {
        return Err(corrupt(
            "the data received does not match the checksum in its header",
        ));
    }
    Ok(())
}

fn corrupt(message: &str) -> BackupFailure {
    BackupFailure {
        reason: "BackupCorrupt",
        message: message.to_string(),
    }
}

fn source_failed(status: &tonic::Status) -> BackupFailure {
    BackupFailure {
        reason: "SourceFailed",
        message: format!(
            "the leader's backup stream failed: {:?}: {}",
            status.code(),
            status.message()
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures::stream;
    use object_store::memory::InMemory;

    use super::*;

    fn destination() -> Destination {
        Destination::new(Arc::new(InMemory::new()), "s3://b".into(), String::new())
    }

    fn header_for(data: &[u8]) -> BackupHeader {
        BackupHeader {
            format: FORMAT,
            cluster_id: 42,
            metadata: None,
            data_bytes: data.len() as u64,
            checksum: dengine_proto::backup::checksum(data),
            revision: 17,
        }
    }

    type Chunks = Vec<Result<BackupChunk, tonic::Status>>;

    fn chunks(header: BackupHeader, pieces: &[&[u8]]) -> Chunks {
        std::iter::once(Ok(BackupChunk {
            header: Some(header),
            data: Bytes::new(),
        }))
        .chain(pieces.iter().map(|piece| {
            Ok(BackupChunk {
                header: None,
                data: Bytes::copy_from_slice(piece),
            })
        }))
        .collect()
    }

    async fn stored(d: &Destination, path: &Path) -> Option<Vec<u8>> {
        let object = d.store().get(path).await.ok()?;
        Some(object.bytes().await.unwrap().to_vec())
    }

    #[tokio::test]
    async fn a_backup_is_stored_as_the_file_the_node_would_save() {
        let d = destination();
        let data = b"the state machine, encoded".repeat(1000);
        let header = header_for(&data);
        let (first, second) = data.split_at(7000);
        let path = Path::from("orders-20261206T120000Z.dengine-backup");
        let written = write_backup(
            stream::iter(chunks(header.clone(), &[first, second])),
            &d,
            path.clone(),
        )
        .await
        .expect("written");
        let bytes = stored(&d, &path).await.expect("stored");
        assert_eq!(written.size_bytes, bytes.len() as u64);
        assert_eq!(written.header, header);
        // The same bytes `dengine snapshot save` writes, which every restore path reads.
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), &bytes).unwrap();
        let (read_header, read_data) = dengine_proto::backup::read(file.path()).unwrap();
        assert_eq!(read_header, header);
        assert_eq!(read_data, data);
    }

    #[tokio::test]
    async fn a_damaged_truncated_or_broken_stream_leaves_nothing_behind() {
        let data = b"0123456789".repeat(100);
        let path = Path::from("x.dengine-backup");
        let mut damaged = data.clone();
        damaged[500] ^= 1;
        let broken = {
            let mut c = chunks(header_for(&data), &[&data[..300]]);
            c.push(Err(tonic::Status::unavailable("the leader stopped")));
            c
        };
        let cases: Vec<(&str, Chunks, &str)> = vec![
            (
                "damaged",
                chunks(header_for(&data), &[&damaged]),
                "does not match the checksum",
            ),
            (
                "truncated",
                chunks(header_for(&data), &[&data[..999]]),
                "ended after 999 of 1000 bytes",
            ),
            (
                "too long",
                chunks(header_for(&data), &[&data, b"!"]),
                "more than the 1000 bytes",
            ),
            ("broken", broken, "the leader stopped"),
            ("headless", Vec::new(), "ended before its header"),
        ];
        for (what, stream_of, expected) in cases {
            let d = destination();
            let failure = write_backup(stream::iter(stream_of), &d, path.clone())
                .await
                .expect_err(what);
            assert!(failure.message.contains(expected), "{what}: {failure:?}");
            assert_eq!(stored(&d, &path).await, None, "{what}: nothing stored");
        }
    }

    /// Above a part's size the upload is multipart: a stream that breaks after some parts
    /// went up, or data that does not match, aborts it and nothing appears.
    #[tokio::test]
    async fn a_multipart_upload_completes_whole_or_not_at_all() {
        let data: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
        let pieces: Vec<&[u8]> = data.chunks(1000).collect();
        let path = Path::from("big.dengine-backup");

        let d = destination();
        let written = write_in_parts(
            stream::iter(chunks(header_for(&data), &pieces)),
            &d,
            path.clone(),
            4096,
        )
        .await
        .expect("written in parts");
        let bytes = stored(&d, &path).await.expect("stored");
        assert_eq!(written.size_bytes, bytes.len() as u64);
        assert!(bytes.ends_with(&data));

        let mut broken = chunks(header_for(&data), &pieces[..40]);
        broken.push(Err(tonic::Status::unavailable("the leader stopped")));
        let mut damaged_data = data.clone();
        damaged_data[60_000] ^= 1;
        let damaged_pieces: Vec<&[u8]> = damaged_data.chunks(1000).collect();
        for (what, stream_of) in [
            ("broken after parts went up", broken),
            ("damaged", chunks(header_for(&data), &damaged_pieces)),
        ] {
            let d = destination();
            write_in_parts(stream::iter(stream_of), &d, path.clone(), 4096)
                .await
                .expect_err(what);
            assert_eq!(stored(&d, &path).await, None, "{what}: nothing stored");
        }
    }

    #[tokio::test]
    async fn a_format_this_operator_cannot_check_is_refused() {
        let data = b"abc".to_vec();
        let mut header = header_for(&data);
        header.format = FORMAT + 1;
        let d = destination();
        let path = Path::from("y.dengine-backup");
        let failure = write_backup(stream::iter(chunks(header, &[&data])), &d, path.clone())
            .await
            .expect_err("refused");
        assert_eq!(failure.reason, "UnsupportedFormat");
        assert_eq!(stored(&d, &path).await, None);
    }
}
