//! Leases on the state machine: what grants, revokes, checkpoints and leased puts leave
//! behind, on every replica alike, and across a restart or a snapshot.

use dengine_proto::etcd::etcdserverpb as pb;
use pb::compare::{CompareResult, CompareTarget, TargetUnion};

use crate::kv::etcd::{EtcdFailure, EtcdRequest, EtcdResponse};
use crate::kv::fixtures::{put, Harness};
use crate::kv::{Command, CommandOutcome, KvStore};
use crate::proto::event::EventType;

fn etcd(h: &mut Harness, request: EtcdRequest) -> (i64, Result<EtcdResponse, EtcdFailure>) {
    match h.run(Command::etcd(request)) {
        CommandOutcome::Etcd { revision, result } => {
            (revision, result.map(|answer| answer.response.unwrap()))
        }
        other => panic!("an etcd write answered {other:?}"),
    }
}

fn grant(id: i64, ttl: i64) -> EtcdRequest {
    EtcdRequest::LeaseGrant(pb::LeaseGrantRequest { id, ttl })
}

fn revoke(id: i64) -> EtcdRequest {
    EtcdRequest::LeaseRevoke(pb::LeaseRevokeRequest { id })
}

fn leased_put(key: &str, value: &str, lease: i64) -> EtcdRequest {
    EtcdRequest::Put(pb::PutRequest {
        key: key.into(),
        value: value.into(),
        lease,
        ..Default::default()
    })
}

fn keys_of(store: &KvStore, id: i64) -> Vec<String> {
    let lease = store.leases().get(id).expect("the lease exists");
    lease
        .keys
        .iter()
        .map(|key| String::from_utf8_lossy(key).into_owned())
        .collect()
}

#[test]
fn revoking_a_lease_deletes_its_keys_at_one_revision() {
    let mut h = Harness::new();
    let (revision, granted) = etcd(&mut h, grant(7, 30));
    // A grant changes no key: the revision stays.
    assert_eq!(revision, 0);
    let Ok(EtcdResponse::LeaseGrant(granted)) = granted else {
        panic!("{granted:?}")
    };
    assert_eq!((granted.id, granted.ttl), (7, 30));
    etcd(&mut h, leased_put("b", "1", 7)).1.unwrap();
    etcd(&mut h, leased_put("a", "1", 7)).1.unwrap();
    h.run(put("plain", "1"));
    assert_eq!(h.get("a").unwrap().lease, 7);
    assert_eq!(keys_of(&h.store, 7), vec!["a", "b"]);

    let batch = h.apply([Command::etcd(revoke(7))]);
    let deleted: Vec<(i32, &[u8], i64)> = batch
        .events
        .iter()
        .map(|e| {
            let kv = e.kv.as_ref().unwrap();
            (e.event_type, kv.key.as_ref(), kv.mod_revision)
        })
        .collect();
    let delete = EventType::Delete as i32;
    assert_eq!(
        deleted,
        vec![(delete, &b"a"[..], 4), (delete, &b"b"[..], 4)]
    );
    assert!(h.get("a").is_none() && h.get("b").is_none());
    assert!(h.get("plain").is_some());
    assert!(h.store.leases().is_empty());

    // Gone: a put with it, and revoking it again, find no lease; nothing changes.
    assert_eq!(
        etcd(&mut h, leased_put("c", "1", 7)),
        (4, Err(EtcdFailure::LeaseNotFound))
    );
    assert_eq!(
        etcd(&mut h, revoke(7)),
        (4, Err(EtcdFailure::LeaseNotFound))
    );
}

#[test]
fn a_lease_cannot_be_granted_twice_and_a_revoke_without_keys_takes_no_revision() {
    let mut h = Harness::new();
    etcd(&mut h, grant(1, 10)).1.unwrap();
    assert_eq!(
        etcd(&mut h, grant(1, 60)),
        (0, Err(EtcdFailure::LeaseExists))
    );
    assert_eq!(h.store.leases().get(1).unwrap().record.ttl, 10);
    let (revision, revoked) = etcd(&mut h, revoke(1));
    assert_eq!(revision, 0);
    assert!(matches!(revoked, Ok(EtcdResponse::LeaseRevoke(_))));
}

#[test]
fn a_key_follows_the_lease_of_its_last_write() {
    let mut h = Harness::new();
    etcd(&mut h, grant(1, 10)).1.unwrap();
    etcd(&mut h, grant(2, 10)).1.unwrap();
    etcd(&mut h, leased_put("k", "1", 1)).1.unwrap();
    // Moved to lease 2.
    etcd(&mut h, leased_put("k", "2", 2)).1.unwrap();
    assert!(keys_of(&h.store, 1).is_empty());
    assert_eq!(keys_of(&h.store, 2), vec!["k"]);
    // ignore_lease keeps it there, and needs the key to exist.
    let keep = EtcdRequest::Put(pb::PutRequest {
        key: b"k".to_vec(),
        value: b"3".to_vec(),
        ignore_lease: true,
        ..Default::default()
    });
    etcd(&mut h, keep).1.unwrap();
    assert_eq!(h.get("k").unwrap().lease, 2);
    let keep_missing = EtcdRequest::Put(pb::PutRequest {
        key: b"missing".to_vec(),
        ignore_lease: true,
        ..Default::default()
    });
    assert_eq!(etcd(&mut h, keep_missing).1, Err(EtcdFailure::KeyNotFound));
    // A native write detaches it: revoking lease 2 leaves the key alone.
    h.run(put("k", "native"));
    assert_eq!(h.get("k").unwrap().lease, 0);
    assert!(keys_of(&h.store, 2).is_empty());
    etcd(&mut h, revoke(2)).1.unwrap();
    assert_eq!(h.get("k").unwrap().value.as_ref(), b"native");
}

#[test]
fn a_txn_compares_leases_and_a_revoke_in_the_same_batch_finds_keys_just_attached() {
    let mut h = Harness::new();
    etcd(&mut h, grant(5, 10)).1.unwrap();
    let txn = EtcdRequest::Txn(pb::TxnRequest {
        compare: vec![pb::Compare {
            key: b"k".to_vec(),
            target: CompareTarget::Lease.into(),
            result: CompareResult::Equal.into(),
            target_union: Some(TargetUnion::Lease(0)),
            range_end: Vec::new(),
        }],
        success: vec![pb::RequestOp {
            request: Some(pb::request_op::Request::RequestPut(pb::PutRequest {
                key: b"k".to_vec(),
                value: b"v".to_vec(),
                lease: 5,
                ..Default::default()
            })),
        }],
        failure: vec![],
    });
    // A missing key's lease compares as 0.
    let (_, answer) = etcd(&mut h, txn.clone());
    assert!(matches!(
        answer,
        Ok(EtcdResponse::Txn(pb::TxnResponse {
            succeeded: true,
            ..
        }))
    ));
    let (_, answer) = etcd(&mut h, txn);
    assert!(matches!(
        answer,
        Ok(EtcdResponse::Txn(pb::TxnResponse {
            succeeded: false,
            ..
        }))
    ));

    // Granted, attached and revoked within one apply batch.
    h.apply([
        Command::etcd(grant(6, 10)),
        Command::etcd(leased_put("x", "1", 6)),
        Command::etcd(revoke(6)),
    ]);
    assert!(h.get("x").is_none());
    assert!(h.store.leases().get(6).is_none());
}

#[test]
fn leases_and_their_keys_survive_a_restart_and_a_snapshot() {
    let mut h = Harness::new();
    etcd(&mut h, grant(1, 60)).1.unwrap();
    etcd(&mut h, grant(2, 5)).1.unwrap();
    etcd(&mut h, leased_put("a", "1", 1)).1.unwrap();
    etcd(&mut h, leased_put("b", "1", 2)).1.unwrap();
    let checkpoint = EtcdRequest::LeaseCheckpoint(pb::LeaseCheckpointRequest {
        checkpoints: vec![
            pb::LeaseCheckpoint {
                id: 1,
                remaining_ttl: 42,
            },
            // A lease that does not exist is skipped.
            pb::LeaseCheckpoint {
                id: 3,
                remaining_ttl: 1,
            },
        ],
    });
    etcd(&mut h, checkpoint).1.unwrap();
    let before = h.store.leases().clone();
    assert_eq!(before.get(1).unwrap().record.remaining_ttl, 42);
    assert_eq!(before.len(), 2);

    h.reopen();
    assert_eq!(h.store.leases(), &before);

    let data = h.store.snapshot_data().unwrap();
    let mut fresh = Harness::new();
    fresh.store.restore(&data, h.store.applied_index()).unwrap();
    assert_eq!(fresh.store.leases(), &before);
    fresh.reopen();
    assert_eq!(fresh.store.leases(), &before);
    // Revoking after the restore still finds the key.
    etcd(&mut fresh, revoke(1)).1.unwrap();
    assert!(fresh.get("a").is_none() && fresh.get("b").is_some());
}
