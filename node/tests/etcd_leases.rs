//! etcd's Lease, Lock and Election services on a node's client port, as etcd's clients call
//! them (through a follower, as an application beside its sidecar does): grants, keys attached
//! with `Put.lease`, keepalives, TTL queries, revokes, expiry decided by the leader, a lease
//! that survives the leader's death because the new leader gives it its TTL again; locks and
//! elections handed over in queue order, abandoned and expired contenders dropped.

mod common;

use std::time::Duration;

use dengine_proto::etcd::etcdserverpb as pb;
use dengine_proto::etcd::etcdserverpb::kv_client::KvClient;
use dengine_proto::etcd::etcdserverpb::lease_client::LeaseClient;
use dengine_proto::etcd::v3electionpb as election;
use dengine_proto::etcd::v3electionpb::election_client::ElectionClient;
use dengine_proto::etcd::v3lockpb as lock;
use dengine_proto::etcd::v3lockpb::lock_client::LockClient;
use tonic::transport::Channel;
use tonic::Code;

use common::{assert_etcd_error, wait_for, Cluster, Node, DEADLINE};

fn lease(node: &Node) -> LeaseClient<Channel> {
    LeaseClient::new(node.etcd_channel())
}

async fn grant(leases: &mut LeaseClient<Channel>, id: i64, ttl: i64) -> pb::LeaseGrantResponse {
    leases
        .lease_grant(pb::LeaseGrantRequest { id, ttl })
        .await
        .unwrap_or_else(|status| panic!("grant lease {id}: {status}"))
        .into_inner()
}

async fn put_leased(
    kv: &mut KvClient<Channel>,
    key: &str,
    lease: i64,
) -> Result<(), tonic::Status> {
    kv.put(pb::PutRequest {
        key: key.into(),
        value: b"v".to_vec(),
        lease,
        ..Default::default()
    })
    .await
    .map(|_| ())
}

async fn exists(kv: &mut KvClient<Channel>, key: &str) -> bool {
    let answer = kv
        .range(pb::RangeRequest {
            key: key.into(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|status| panic!("range {key}: {status}"))
        .into_inner();
    !answer.kvs.is_empty()
}

async fn time_to_live(leases: &mut LeaseClient<Channel>, id: i64) -> pb::LeaseTimeToLiveResponse {
    leases
        .lease_time_to_live(pb::LeaseTimeToLiveRequest { id, keys: true })
        .await
        .unwrap_or_else(|status| panic!("time to live of lease {id}: {status}"))
        .into_inner()
}

/// A keepalive stream: one request in, one answer out.
struct KeepAlive {
    requests: tokio::sync::mpsc::Sender<pb::LeaseKeepAliveRequest>,
    answers: tonic::Streaming<pb::LeaseKeepAliveResponse>,
}

impl KeepAlive {
    async fn open(leases: &mut LeaseClient<Channel>) -> Self {
        let (requests, outgoing) = tokio::sync::mpsc::channel(4);
        let answers = leases
            .lease_keep_alive(tokio_stream::wrappers::ReceiverStream::new(outgoing))
            .await
            .expect("open a keepalive stream")
            .into_inner();
        Self { requests, answers }
    }

    async fn renew(&mut self, id: i64) -> pb::LeaseKeepAliveResponse {
        self.requests
            .send(pb::LeaseKeepAliveRequest { id })
            .await
            .expect("send a keepalive");
        tokio::time::timeout(DEADLINE, self.answers.message())
            .await
            .expect("a keepalive answered within the deadline")
            .expect("a keepalive answered without error")
            .expect("the stream still open")
    }
}

#[tokio::test]
async fn leases_through_a_follower_answer_as_etcd_does() {
    let cluster = Cluster::start(3, &[]).await;
    let leader = cluster.wait_for_leader().await;
    let follower = cluster.nodes.iter().find(|n| n.id() != leader).unwrap();
    let mut leases = lease(follower);
    let mut kv = follower.etcd_kv();

    let granted = grant(&mut leases, 42, 60).await;
    assert_eq!((granted.id, granted.ttl), (42, 60));
    assert_eq!(granted.header.unwrap().member_id, follower.id());
    // A TTL below an election and a half is raised; an id left to the server is picked.
    let picked = grant(&mut leases, 0, 0).await;
    assert!(picked.id > 0 && picked.ttl >= 1, "{picked:?}");
    assert_etcd_error(
        leases
            .lease_grant(pb::LeaseGrantRequest { id: 42, ttl: 5 })
            .await,
        Code::FailedPrecondition,
        "etcdserver: lease already exists",
    );
    assert_etcd_error(
        leases
            .lease_grant(pb::LeaseGrantRequest {
                id: 0,
                ttl: 9_000_000_001,
            })
            .await,
        Code::OutOfRange,
        "etcdserver: too large lease TTL",
    );

    put_leased(&mut kv, "session/a", 42).await.unwrap();
    put_leased(&mut kv, "session/b", 42).await.unwrap();
    assert_etcd_error(
        put_leased(&mut kv, "session/c", 999).await,
        Code::NotFound,
        "etcdserver: requested lease not found",
    );
    let attached = kv
        .range(pb::RangeRequest {
            key: "session/a".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(attached.kvs[0].lease, 42);

    let ttl = time_to_live(&mut leases, 42).await;
    assert_eq!(ttl.granted_ttl, 60);
    assert!((1..=60).contains(&ttl.ttl), "{ttl:?}");
    assert_eq!(ttl.keys, vec![b"session/a".to_vec(), b"session/b".to_vec()]);

    let listed = leases
        .lease_leases(pb::LeaseLeasesRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut ids: Vec<i64> = listed.leases.iter().map(|l| l.id).collect();
    ids.sort();
    let mut expected = vec![42, picked.id];
    expected.sort();
    assert_eq!(ids, expected);

    let mut keepalive = KeepAlive::open(&mut leases).await;
    let renewed = keepalive.renew(42).await;
    assert_eq!((renewed.id, renewed.ttl), (42, 60));
    // A lease that does not exist is answered with TTL 0, on the same stream.
    let unknown = keepalive.renew(999).await;
    assert_eq!((unknown.id, unknown.ttl), (999, 0));

    let revoked = leases
        .lease_revoke(pb::LeaseRevokeRequest { id: 42 })
        .await
        .unwrap()
        .into_inner();
    assert!(!exists(&mut kv, "session/a").await);
    assert!(!exists(&mut kv, "session/b").await);
    // Both keys went at one revision, the revoke's.
    assert_eq!(
        revoked.header.unwrap().revision,
        attached.header.unwrap().revision + 1
    );
    assert_eq!(time_to_live(&mut leases, 42).await.ttl, -1);
    assert_etcd_error(
        leases.lease_revoke(pb::LeaseRevokeRequest { id: 42 }).await,
        Code::NotFound,
        "etcdserver: requested lease not found",
    );
    assert_eq!(keepalive.renew(42).await.ttl, 0);
}

#[tokio::test]
async fn the_leader_expires_a_lease_nobody_keeps_alive_and_only_that_one() {
    let cluster = Cluster::start(3, &[]).await;
    let leader = cluster.wait_for_leader().await;
    let follower = cluster.nodes.iter().find(|n| n.id() != leader).unwrap();
    let mut leases = lease(follower);
    let mut kv = follower.etcd_kv();

    // The kept lease would run out 5 s after its grant; the other (the shortest TTL the
    // node grants) before that.
    let kept = grant(&mut leases, 1, 5).await.id;
    let granted = std::time::Instant::now();
    let left = grant(&mut leases, 2, 1).await.id;
    put_leased(&mut kv, "kept", kept).await.unwrap();
    put_leased(&mut kv, "left", left).await.unwrap();

    // Keep one alive from another task, every 200 ms.
    let mut keeper_leases = lease(follower);
    let keeper = tokio::spawn(async move {
        let mut keepalive = KeepAlive::open(&mut keeper_leases).await;
        loop {
            let answer = keepalive.renew(kept).await;
            assert_eq!(answer.ttl, 5, "the kept lease was renewed");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    wait_for(
        "the lease left alone to expire, and the kept one to outlive its TTL",
        || {
            let mut kv = kv.clone();
            async move {
                if exists(&mut kv, "left").await {
                    return Err("the key of the lease left alone is still there".to_string());
                }
                match granted.elapsed() {
                    lived if lived > Duration::from_secs(6) => Ok(()),
                    lived => Err(format!("the kept lease is {lived:?} old")),
                }
            }
        },
    )
    .await;
    assert!(!keeper.is_finished(), "the keeper failed");
    keeper.abort();
    assert!(
        exists(&mut kv, "kept").await,
        "the lease kept alive expired"
    );
    assert_eq!(time_to_live(&mut leases, left).await.ttl, -1);
    assert_eq!(time_to_live(&mut leases, kept).await.granted_ttl, 5);
}

#[tokio::test]
async fn a_new_leader_gives_every_lease_its_ttl_again() {
    let mut cluster = Cluster::start(3, &[]).await;
    let old_leader = cluster.wait_for_leader().await;
    let follower = cluster
        .nodes
        .iter()
        .find(|n| n.id() != old_leader)
        .unwrap()
        .id();
    let mut leases = lease(cluster.node(follower));
    let mut kv = cluster.node(follower).etcd_kv();
    grant(&mut leases, 7, 10).await;
    put_leased(&mut kv, "owned", 7).await.unwrap();

    // No keepalives: let the lease run down on the old leader, then kill it.
    wait_for("the lease to have run down to 6 s or less", || {
        let mut leases = leases.clone();
        async move {
            match time_to_live(&mut leases, 7).await.ttl {
                ttl if ttl <= 6 => Ok(()),
                ttl => Err(format!("{ttl} s left")),
            }
        }
    })
    .await;
    cluster.node_mut(old_leader).kill();
    let new_leader = cluster.wait_for_leader().await;
    assert_ne!(new_leader, old_leader);

    // The new leader counts the whole TTL again, from its election, plus an election
    // timeout: the keepalives a client sent to the dead leader were lost, not late.
    // Clients retry what a failover leaves unavailable; so does this one.
    let resumed = wait_for("the new leader to answer for the lease", || {
        let mut leases = leases.clone();
        async move {
            leases
                .lease_time_to_live(pb::LeaseTimeToLiveRequest { id: 7, keys: false })
                .await
                .map(|answer| answer.into_inner())
                .map_err(|status| status.to_string())
        }
    })
    .await;
    assert!(resumed.ttl >= 8, "{resumed:?}");
    assert!(exists(&mut kv, "owned").await);
    // And it expires on the new leader's watch when nobody renews it.
    wait_for("the new leader to expire the lease", || {
        let mut kv = kv.clone();
        async move {
            match exists(&mut kv, "owned").await {
                false => Ok(()),
                true => Err("the key is still there".to_string()),
            }
        }
    })
    .await;
}

/// The value of the next leader an Observe stream reports.
async fn next_value(observed: &mut tonic::Streaming<election::LeaderResponse>) -> String {
    let answer = tokio::time::timeout(DEADLINE, observed.message())
        .await
        .expect("an observation within the deadline")
        .expect("no error")
        .expect("the stream open");
    String::from_utf8(answer.kv.unwrap().value).unwrap()
}

/// How many keys are under `prefix`.
async fn queued(kv: &mut KvClient<Channel>, prefix: &str) -> i64 {
    let mut end = prefix.as_bytes().to_vec();
    *end.last_mut().unwrap() += 1;
    kv.range(pb::RangeRequest {
        key: prefix.into(),
        range_end: end,
        count_only: true,
        ..Default::default()
    })
    .await
    .unwrap_or_else(|status| panic!("count {prefix}: {status}"))
    .into_inner()
    .count
}

async fn wait_queued(kv: &KvClient<Channel>, prefix: &str, expected: i64) {
    wait_for(format!("{expected} contenders under {prefix}"), || {
        let mut kv = kv.clone();
        async move {
            match queued(&mut kv, prefix).await {
                n if n == expected => Ok(()),
                n => Err(format!("{n} queued")),
            }
        }
    })
    .await;
}

#[tokio::test]
async fn locks_go_to_contenders_in_queue_order() {
    let cluster = Cluster::start(3, &[]).await;
    let leader = cluster.wait_for_leader().await;
    let follower = cluster.nodes.iter().find(|n| n.id() != leader).unwrap();
    let mut leases = lease(follower);
    let kv = follower.etcd_kv();
    let locks = LockClient::new(follower.etcd_channel());
    let lock_with = |lease: i64| {
        let mut locks = locks.clone();
        async move {
            locks
                .lock(lock::LockRequest {
                    name: b"jobs".to_vec(),
                    lease,
                })
                .await
                .map(|answer| answer.into_inner().key)
        }
    };

    let a = grant(&mut leases, 0, 60).await.id;
    let b = grant(&mut leases, 0, 60).await.id;
    let c = grant(&mut leases, 0, 60).await.id;
    let held = lock_with(a).await.unwrap();
    assert_eq!(held, format!("jobs/{a:x}").into_bytes());
    // Locking again with the same lease is the same acquisition.
    assert_eq!(lock_with(a).await.unwrap(), held);

    let waiting_b = tokio::spawn(lock_with(b));
    wait_queued(&kv, "jobs/", 2).await;
    // A contender that gives up leaves the queue.
    let waiting_c = tokio::spawn(lock_with(c));
    wait_queued(&kv, "jobs/", 3).await;
    waiting_c.abort();
    wait_queued(&kv, "jobs/", 2).await;
    assert!(!waiting_b.is_finished(), "b got the lock while a held it");

    let unlocked = locks
        .clone()
        .unlock(lock::UnlockRequest { key: held })
        .await
        .unwrap()
        .into_inner();
    assert!(unlocked.header.is_some());
    let b_key = waiting_b.await.unwrap().unwrap();
    assert_eq!(b_key, format!("jobs/{b:x}").into_bytes());

    // The holder's lease going away hands the lock on, as an unlock does.
    let waiting_c = tokio::spawn(lock_with(c));
    wait_queued(&kv, "jobs/", 2).await;
    leases
        .lease_revoke(pb::LeaseRevokeRequest { id: b })
        .await
        .unwrap();
    assert_eq!(
        waiting_c.await.unwrap().unwrap(),
        format!("jobs/{c:x}").into_bytes()
    );
    // A lock without a lease gets one of its own (etcd's session TTL, 60 s).
    let mut own = leases.clone();
    locks
        .clone()
        .unlock(lock::UnlockRequest {
            key: format!("jobs/{c:x}").into_bytes(),
        })
        .await
        .unwrap();
    let key = lock_with(0).await.unwrap();
    let id = i64::from_str_radix(std::str::from_utf8(&key[b"jobs/".len()..]).unwrap(), 16).unwrap();
    assert_eq!(time_to_live(&mut own, id).await.granted_ttl, 60);
}

#[tokio::test]
async fn an_election_proclaims_hands_over_on_resignation_and_is_observed() {
    let cluster = Cluster::start(1, &[]).await;
    let node = &cluster.nodes[0];
    let mut leases = lease(node);
    let kv = node.etcd_kv();
    let elections = ElectionClient::new(node.etcd_channel());
    let campaign = |lease: i64, value: &'static str| {
        let mut elections = elections.clone();
        async move {
            elections
                .campaign(election::CampaignRequest {
                    name: b"primary".to_vec(),
                    lease,
                    value: value.into(),
                })
                .await
                .map(|answer| answer.into_inner().leader.expect("a leader key"))
        }
    };
    let mut client = elections.clone();

    assert_etcd_error(
        client
            .leader(election::LeaderRequest {
                name: b"primary".to_vec(),
            })
            .await,
        Code::Unknown,
        "election: no leader",
    );
    let a = grant(&mut leases, 0, 60).await.id;
    let b = grant(&mut leases, 0, 60).await.id;
    let alice = campaign(a, "alice").await.unwrap();
    assert_eq!((alice.name.as_slice(), alice.lease), (&b"primary"[..], a));

    let mut observed = client
        .observe(election::LeaderRequest {
            name: b"primary".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next_value(&mut observed).await, "alice");
    client
        .proclaim(election::ProclaimRequest {
            leader: Some(alice.clone()),
            value: b"alice-2".to_vec(),
        })
        .await
        .unwrap();
    assert_eq!(next_value(&mut observed).await, "alice-2");
    let leader = client
        .leader(election::LeaderRequest {
            name: b"primary".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(leader.kv.unwrap().value, b"alice-2");

    let bob = tokio::spawn(campaign(b, "bob"));
    wait_queued(&kv, "primary/", 2).await;
    assert!(!bob.is_finished(), "bob was elected while alice led");
    client
        .resign(election::ResignRequest {
            leader: Some(alice.clone()),
        })
        .await
        .unwrap();
    let bob = bob.await.unwrap().unwrap();
    assert_eq!(bob.lease, b);
    assert_eq!(next_value(&mut observed).await, "bob");

    // Alice no longer leads: her proclamations are refused, as etcd refuses them.
    assert_etcd_error(
        client
            .proclaim(election::ProclaimRequest {
                leader: Some(alice),
                value: b"late".to_vec(),
            })
            .await,
        Code::Unknown,
        "election: not leader",
    );
    assert_etcd_error(
        client
            .proclaim(election::ProclaimRequest {
                leader: None,
                value: b"x".to_vec(),
            })
            .await,
        Code::Unknown,
        "\"leader\" field must be provided",
    );
}
