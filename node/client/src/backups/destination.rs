//! Where backups are written: a store (a bucket, a directory) and a prefix in it, the names
//! backups get there, and the retention that deletes the oldest.

use std::sync::Arc;

use futures::TryStreamExt;
use jiff::Timestamp;
use object_store::path::Path;
use object_store::ObjectStore;

use super::BackupFailure;
use crate::error_chain;

/// What every backup object's name ends with.
const SUFFIX: &str = ".dengine-backup";

/// A store and a prefix within it.
#[derive(Clone)]
pub struct Destination {
    store: Arc<dyn ObjectStore>,
    /// `s3://<bucket>` or `pvc://<claim>`, the start of every location.
    scheme_and_bucket: String,
    /// Every object name starts with this; empty or ending in `/`.
    prefix: String,
}

impl Destination {
    /// `store`, named `scheme_and_bucket` in locations (`s3://<bucket>`, `pvc://<claim>`;
    /// tests use an in-memory store).
    pub fn new(
        store: Arc<dyn ObjectStore>,
        scheme_and_bucket: String,
        prefix: String,
    ) -> Destination {
        // "a/b" and "a/b/" name the same place; the CRD's pattern keeps out the rest of what
        // object names cannot hold as written (a leading or doubled slash, odd characters).
        let prefix = match prefix.is_empty() || prefix.ends_with('/') {
            true => prefix,
            false => format!("{prefix}/"),
        };
        Destination {
            store,
            scheme_and_bucket,
            prefix,
        }
    }

    /// The store itself.
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    /// The name of the backup of `namespace`/`cluster` started at `time`. The namespace is in
    /// it (namespaces have no dots, so `<namespace>.<cluster>` names one cluster only): two
    /// clusters of one name sharing a prefix never take each other's backups for their own.
    /// Names sort as times do, so the oldest backups are the first names.
    pub fn object_for(&self, namespace: &str, cluster: &str, time: Timestamp) -> Path {
        // Milliseconds too: a backup asked for just after a scheduled one gets a name of its own.
        let stamp = format!(
            "{}{:03}Z",
            time.strftime("%Y%m%dT%H%M%S."),
            time.subsec_millisecond()
        );
        Path::from(format!(
            "{}{}{stamp}{SUFFIX}",
            self.prefix,
            name_start(namespace, cluster)
        ))
    }

    /// Where `path` is, as the status and Events say it.
    pub fn location(&self, path: &Path) -> String {
        format!("{}/{path}", self.scheme_and_bucket)
    }

    /// The backups of `namespace`/`cluster` here, oldest first. Objects under the prefix named
    /// otherwise (the user's own, another cluster's) are not counted.
    pub async fn backups_of(
        &self,
        namespace: &str,
        cluster: &str,
    ) -> Result<Vec<Path>, BackupFailure> {
        let prefix = Path::from(self.prefix.trim_end_matches('/'));
        let listing = self.store.list(Some(&prefix));
        let objects: Vec<_> = listing
            .try_collect()
            .await
            .map_err(|error| upload_failed("listing the backups", &error))?;
        let start = name_start(namespace, cluster);
        let mut names: Vec<Path> = objects
            .into_iter()
            .map(|meta| meta.location)
            .filter(|path| self.is_backup_named(&start, path))
            .collect();
        names.sort_by(|a, b| a.as_ref().cmp(b.as_ref()));
        Ok(names)
    }

    /// Deletes the oldest backups of `namespace`/`cluster` beyond the newest `keep`, never
    /// `kept` (the one just written, whatever the clocks say); returns what it deleted.
    pub async fn prune(
        &self,
        namespace: &str,
        cluster: &str,
        keep: usize,
        kept: &Path,
    ) -> Result<Vec<Path>, BackupFailure> {
        let others: Vec<Path> = self
            .backups_of(namespace, cluster)
            .await?
            .into_iter()
            .filter(|path| path != kept)
            .collect();
        // `kept` counts as one of the `keep`.
        let excess = others.len().saturating_sub(keep.max(1) - 1);
        let mut deleted = Vec::new();
        for path in others.into_iter().take(excess) {
            self.store
                .delete(&path)
                .await
                .map_err(|error| upload_failed(&format!("deleting {path}"), &error))?;
            deleted.push(path);
        }
        Ok(deleted)
    }

    /// Whether `path` is a backup whose name starts with `start`, directly under the prefix.
    fn is_backup_named(&self, start: &str, path: &Path) -> bool {
        path.as_ref()
            .strip_prefix(&self.prefix)
            .is_some_and(|name| is_named_from(start, name))
    }
}

/// Whether `file_name` is what a store writing to a directory leaves of an unfinished backup
/// of `namespace`/`cluster`: object_store's local store writes `<backup name>#<n>` and renames
/// it when whole, and its listings skip such names, so retention never sees them.
pub fn is_unfinished_backup(namespace: &str, cluster: &str, file_name: &str) -> bool {
    let Some((backup, staging)) = file_name.rsplit_once('#') else {
        return false;
    };
    is_named_from(&name_start(namespace, cluster), backup)
        && !staging.is_empty()
        && staging.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `name` is `<start><YYYYMMDDTHHMMSS.mmmZ>.dengine-backup`: the exact stamp keeps a
/// cluster whose name starts the same (`orders-eu` beside `orders`) from counting.
fn is_named_from(start: &str, name: &str) -> bool {
    let Some(stamp) = name
        .strip_prefix(start)
        .and_then(|rest| rest.strip_suffix(SUFFIX))
    else {
        return false;
    };
    let bytes = stamp.as_bytes();
    bytes.len() == 20
        && bytes[8] == b'T'
        && bytes[15] == b'.'
        && bytes[19] == b'Z'
        && bytes[..8]
            .iter()
            .chain(&bytes[9..15])
            .chain(&bytes[16..19])
            .all(u8::is_ascii_digit)
}

/// How the names of one cluster's backups start: `<namespace>.<cluster>-`.
fn name_start(namespace: &str, cluster: &str) -> String {
    format!("{namespace}.{cluster}-")
}

/// A failure of the store, with what was being done.
pub(crate) fn upload_failed(doing: &str, error: &object_store::Error) -> BackupFailure {
    BackupFailure {
        reason: "UploadFailed",
        message: format!("{doing}: {}", error_chain(error)),
    }
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;
    use object_store::PutPayload;

    use super::*;

    fn destination(prefix: &str) -> Destination {
        Destination::new(
            Arc::new(InMemory::new()),
            "s3://backups".into(),
            prefix.into(),
        )
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn names_sort_as_times_and_locations_name_the_bucket() {
        let d = destination("shop/orders");
        let early = d.object_for("shop", "orders", at("2026-12-06T09:05:00Z"));
        let late = d.object_for("shop", "orders", at("2026-12-06T10:00:00Z"));
        assert_eq!(
            early.as_ref(),
            "shop/orders/shop.orders-20261206T090500.000Z.dengine-backup"
        );
        assert!(early.as_ref() < late.as_ref());
        assert_eq!(
            d.location(&early),
            "s3://backups/shop/orders/shop.orders-20261206T090500.000Z.dengine-backup"
        );
    }

    #[test]
    fn unfinished_backups_are_told_by_the_stores_staging_names() {
        let ours = "shop.orders-20261206T090500.000Z.dengine-backup";
        assert!(is_unfinished_backup("shop", "orders", &format!("{ours}#3")));
        for other in [
            ours.to_string(),
            format!("{ours}#"),
            format!("{ours}#x1"),
            "shop.orders-eu-20261206T090500.000Z.dengine-backup#3".to_string(),
            "notes.txt#3".to_string(),
        ] {
            assert!(!is_unfinished_backup("shop", "orders", &other), "{other}");
        }
    }

    #[tokio::test]
    async fn retention_deletes_the_oldest_of_this_clusters_backups_only() {
        let d = destination("team/");
        let store = d.store();
        let mut ours = Vec::new();
        for hour in 10..15 {
            let path = d.object_for("shop", "orders", at(&format!("2026-12-06T{hour}:00:00Z")));
            store
                .put(&path, PutPayload::from_static(b"x"))
                .await
                .unwrap();
            ours.push(path);
        }
        // Not ours: a cluster whose name starts the same, one of the same name in another
        // namespace, a user's file, a deeper path.
        let others = [
            d.object_for("shop", "orders-eu", at("2026-12-06T01:00:00Z")),
            d.object_for("staging", "orders", at("2026-12-06T01:00:00Z")),
            Path::from("team/shop.orders-notes.txt"),
            Path::from("team/old/shop.orders-20200101T000000.000Z.dengine-backup"),
        ];
        for path in &others {
            store
                .put(path, PutPayload::from_static(b"x"))
                .await
                .unwrap();
        }
        assert_eq!(d.backups_of("shop", "orders").await.unwrap(), ours);

        let newest = ours.last().unwrap().clone();
        let deleted = d.prune("shop", "orders", 3, &newest).await.unwrap();
        assert_eq!(deleted, ours[..2].to_vec());
        assert_eq!(
            d.backups_of("shop", "orders").await.unwrap(),
            ours[2..].to_vec()
        );
        for path in &others {
            assert!(store.head(path).await.is_ok(), "{path} was kept");
        }
        assert!(d
            .prune("shop", "orders", 3, &newest)
            .await
            .unwrap()
            .is_empty());
        // The backup just written is kept even where it sorts first (a clock behind).
        let oldest = ours[2].clone();
        let deleted = d.prune("shop", "orders", 1, &oldest).await.unwrap();
        assert_eq!(deleted, ours[3..].to_vec());
        assert_eq!(d.backups_of("shop", "orders").await.unwrap(), vec![oldest]);
    }
}
