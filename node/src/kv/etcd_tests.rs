//! etcd's writes on the state machine, as etcd's `applierV3backend` does them.

use dengine_proto::etcd::etcdserverpb as pb;
use pb::compare::{CompareResult, CompareTarget, TargetUnion};
use pb::request_op::Request as Op;
use pb::response_op::Response as Answer;

use crate::kv::command::Op as CommandOp;
use crate::kv::etcd::{EtcdFailure, EtcdOp, EtcdRequest, EtcdResponse};
use crate::kv::fixtures::{put, Harness};
use crate::kv::{Command, CommandOutcome};

fn etcd(h: &mut Harness, request: EtcdRequest) -> (i64, Result<EtcdResponse, EtcdFailure>) {
    let op = CommandOp::Etcd(EtcdOp {
        request: Some(request),
    });
    match h.run(Command::from(op)) {
        CommandOutcome::Etcd { revision, result } => {
            (revision, result.map(|answer| answer.response.unwrap()))
        }
        other => panic!("an etcd write answered {other:?}"),
    }
}

fn etcd_put(key: &str, value: &str) -> pb::PutRequest {
    pb::PutRequest {
        key: key.into(),
        value: value.into(),
        ..Default::default()
    }
}

fn op(request: Op) -> pb::RequestOp {
    pb::RequestOp {
        request: Some(request),
    }
}

fn compare(
    key: &str,
    target: CompareTarget,
    result: CompareResult,
    value: TargetUnion,
) -> pb::Compare {
    pb::Compare {
        key: key.into(),
        target: target.into(),
        result: result.into(),
        target_union: Some(value),
        range_end: Vec::new(),
    }
}

#[test]
fn a_put_answers_the_previous_value_and_can_keep_it() {
    let mut h = Harness::new();
    h.run(put("k", "1"));
    let asked = pb::PutRequest {
        prev_kv: true,
        ..etcd_put("k", "2")
    };
    let (revision, answer) = etcd(&mut h, EtcdRequest::Put(asked));
    let Ok(EtcdResponse::Put(put)) = answer else {
        panic!("{answer:?}")
    };
    assert_eq!(revision, 2);
    assert_eq!(put.prev_kv.unwrap().value, b"1");

    let keep = pb::PutRequest {
        ignore_value: true,
        ..etcd_put("k", "")
    };
    etcd(&mut h, EtcdRequest::Put(keep)).1.unwrap();
    let k = h.get("k").unwrap();
    assert_eq!(
        (k.value.as_ref(), k.version, k.mod_revision),
        (&b"2"[..], 3, 3)
    );

    // What cannot apply changes nothing, revision included.
    let missing = pb::PutRequest {
        ignore_value: true,
        ..etcd_put("missing", "")
    };
    assert_eq!(
        etcd(&mut h, EtcdRequest::Put(missing)),
        (3, Err(EtcdFailure::KeyNotFound))
    );
    let leased = pb::PutRequest {
        lease: 9,
        ..etcd_put("k", "x")
    };
    assert_eq!(
        etcd(&mut h, EtcdRequest::Put(leased)),
        (3, Err(EtcdFailure::LeaseNotFound))
    );
    assert_eq!(h.store.revision(), 3);
}

#[test]
fn a_range_delete_takes_one_revision_for_every_key() {
    let mut h = Harness::new();
    h.apply([put("a", "1"), put("b", "1"), put("b/x", "1"), put("c", "1")]);
    let delete = pb::DeleteRangeRequest {
        key: b"b".to_vec(),
        range_end: b"c".to_vec(),
        prev_kv: true,
    };
    let (revision, answer) = etcd(&mut h, EtcdRequest::DeleteRange(delete));
    let Ok(EtcdResponse::DeleteRange(deleted)) = answer else {
        panic!("{answer:?}")
    };
    assert_eq!(
        (revision, deleted.deleted, deleted.prev_kvs.len()),
        (5, 2, 2)
    );
    assert!(h.get("b").is_none() && h.get("b/x").is_none() && h.get("c").is_some());
    let events = h.store.events_since(5, b"", true).unwrap();
    assert_eq!(events.len(), 2, "two events at one revision");

    // `\0` as the range end: every key from the key on.
    let everything = pb::DeleteRangeRequest {
        key: vec![0],
        range_end: vec![0],
        prev_kv: false,
    };
    let (revision, answer) = etcd(&mut h, EtcdRequest::DeleteRange(everything));
    assert!(matches!(answer, Ok(EtcdResponse::DeleteRange(ref d)) if d.deleted == 2));
    assert_eq!(revision, 6);
    // Nothing deleted: no revision.
    let nothing = pb::DeleteRangeRequest {
        key: b"a".to_vec(),
        ..Default::default()
    };
    assert_eq!(etcd(&mut h, EtcdRequest::DeleteRange(nothing)).0, 6);
}

#[test]
fn a_txn_compares_the_state_before_it_and_writes_at_one_revision() {
    let mut h = Harness::new();
    h.apply([put("a", "1"), put("b", "1")]);
    let cas = |expected: i64| pb::TxnRequest {
        compare: vec![compare(
            "a",
            CompareTarget::Mod,
            CompareResult::Equal,
            TargetUnion::ModRevision(expected),
        )],
        success: vec![
            op(Op::RequestPut(etcd_put("a", "2"))),
            op(Op::RequestPut(etcd_put("c", "1"))),
            op(Op::RequestRange(pb::RangeRequest {
                key: b"a".to_vec(),
                range_end: b"z".to_vec(),
                ..Default::default()
            })),
        ],
        failure: vec![op(Op::RequestRange(pb::RangeRequest {
            key: b"a".to_vec(),
            ..Default::default()
        }))],
    };
    let (revision, answer) = etcd(&mut h, EtcdRequest::Txn(cas(1)));
    let Ok(EtcdResponse::Txn(txn)) = answer else {
        panic!("{answer:?}")
    };
    assert!(txn.succeeded);
    assert_eq!(revision, 3);
    let (a, c) = (h.get("a").unwrap(), h.get("c").unwrap());
    assert_eq!((a.mod_revision, c.mod_revision), (3, 3));
    // The range after the puts sees them.
    let Some(Answer::ResponseRange(range)) = &txn.responses[2].response else {
        panic!("{txn:?}")
    };
    assert_eq!(range.count, 3);
    assert_eq!(range.kvs[0].value, b"2");

    // The same comparison no longer holds: the failure branch runs, and changes nothing.
    let (revision, answer) = etcd(&mut h, EtcdRequest::Txn(cas(1)));
    let Ok(EtcdResponse::Txn(txn)) = answer else {
        panic!("{answer:?}")
    };
    assert!(!txn.succeeded);
    assert_eq!(revision, 3);
    let Some(Answer::ResponseRange(range)) = &txn.responses[0].response else {
        panic!("{txn:?}")
    };
    assert_eq!(range.kvs[0].mod_revision, 3);
}

#[test]
fn comparisons_follow_etcd_on_missing_keys_ranges_and_every_target() {
    let mut h = Harness::new();
    h.apply([put("a", "1"), put("b", "2"), put("b", "3")]);
    let holds = |h: &mut Harness, compare: pb::Compare| {
        let txn = pb::TxnRequest {
            compare: vec![compare],
            ..Default::default()
        };
        match etcd(h, EtcdRequest::Txn(txn)).1 {
            Ok(EtcdResponse::Txn(txn)) => txn.succeeded,
            other => panic!("{other:?}"),
        }
    };
    use CompareResult::*;
    use CompareTarget::*;
    let value = |v: &str| TargetUnion::Value(v.as_bytes().to_vec());
    let cases = [
        (compare("b", Version, Equal, TargetUnion::Version(2)), true),
        (
            compare("b", Create, Equal, TargetUnion::CreateRevision(2)),
            true,
        ),
        (compare("b", Value, Greater, value("2")), true),
        (compare("a", Value, Less, value("2")), true),
        (
            compare("a", Mod, NotEqual, TargetUnion::ModRevision(7)),
            true,
        ),
        (compare("a", Lease, Equal, TargetUnion::Lease(0)), true),
        // A missing key has version 0 and no value: a value comparison on it never holds.
        (compare("x", Version, Equal, TargetUnion::Version(0)), true),
        (compare("x", Value, NotEqual, value("1")), false),
    ];
    for (comparison, expected) in cases {
        assert_eq!(
            holds(&mut h, comparison.clone()),
            expected,
            "{comparison:?}"
        );
    }
    // Over a range, every key must satisfy it.
    let mut both = compare("a", Mod, Greater, TargetUnion::ModRevision(0));
    both.range_end = b"c".to_vec();
    assert!(holds(&mut h, both.clone()));
    both.target_union = Some(TargetUnion::ModRevision(1));
    assert!(!holds(&mut h, both));
}

#[test]
fn nested_txns_pick_their_branch_from_the_state_before_the_outer_one() {
    let mut h = Harness::new();
    h.run(put("flag", "off"));
    // The outer txn sets the flag, then the nested one asks whether it is on: as etcd, it sees
    // the state before the outer txn, so it takes its failure branch.
    let nested = pb::TxnRequest {
        compare: vec![compare(
            "flag",
            CompareTarget::Value,
            CompareResult::Equal,
            TargetUnion::Value(b"on".to_vec()),
        )],
        success: vec![op(Op::RequestPut(etcd_put("seen", "on")))],
        failure: vec![op(Op::RequestPut(etcd_put("seen", "off")))],
    };
    let outer = pb::TxnRequest {
        compare: Vec::new(),
        success: vec![
            op(Op::RequestPut(etcd_put("flag", "on"))),
            op(Op::RequestTxn(nested)),
        ],
        failure: Vec::new(),
    };
    let (revision, answer) = etcd(&mut h, EtcdRequest::Txn(outer));
    assert!(answer.is_ok(), "{answer:?}");
    assert_eq!(revision, 2);
    assert_eq!(h.get("seen").unwrap().value.as_ref(), b"off");
    assert_eq!(h.get("flag").unwrap().mod_revision, 2);
}

#[test]
fn compaction_moves_within_the_history_only() {
    let mut h = Harness::new();
    h.apply([put("k", "1"), put("k", "2"), put("k", "3")]);
    let compact = |revision| {
        EtcdRequest::Compact(pb::CompactionRequest {
            revision,
            physical: true,
        })
    };
    assert_eq!(etcd(&mut h, compact(4)).1, Err(EtcdFailure::FutureRevision));
    assert!(etcd(&mut h, compact(2)).1.is_ok());
    assert_eq!(h.store.compacted_revision(), 2);
    assert_eq!(h.store.revision(), 3, "compaction takes no revision");
    assert_eq!(etcd(&mut h, compact(2)).1, Err(EtcdFailure::Compacted));
    assert_eq!(
        h.store
            .current()
            .get_at(b"k", 2)
            .unwrap()
            .unwrap()
            .value
            .as_ref(),
        b"2"
    );
}
