//! Whole nodes under the simulator. See the module's documentation for what is checked.

use super::*;

fn seeds(default: u64) -> Vec<u64> {
    crate::raft::simulation_seeds::seeds_or(default)
}

#[test]
fn whole_nodes_under_crashes_lost_disks_pauses_partitions_and_skew_keep_every_promise() {
    let seeds = seeds(20);
    let mut reads: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut hits: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut writes = 0;
    for &seed in &seeds {
        let mut sim = Sim::new(seed, 3, Faults::hostile());
        sim.run(20_000, true);
        sim.converge(60_000);
        writes += sim.acknowledged_writes();
        for (what, n) in &sim.reads_checked {
            *reads.entry(what).or_default() += n;
        }
        for (fault, n) in &sim.leader_hits {
            *hits.entry(fault).or_default() += n;
        }
    }
    println!(
        "{} seeds: {writes} writes acknowledged; reads checked: {reads:?}; faults that struck \
         the leader: {hits:?}",
        seeds.len()
    );
    // Over many seeds the cluster must do real work and every fault must meet the leader, or
    // the promises were checked on nothing.
    if seeds.len() >= 20 {
        assert!(
            writes > 50 * seeds.len(),
            "only {writes} writes acknowledged"
        );
        for what in [
            "lease read at a leader",
            "linearizable read at a leader",
            "read at a follower",
        ] {
            assert!(
                reads.get(what).copied().unwrap_or(0) > 0,
                "no {what} was checked"
            );
        }
        for fault in [
            "crash",
            "pause",
            "partition",
            "one-way partition",
            "disk lost",
        ] {
            assert!(
                hits.get(fault).copied().unwrap_or(0) > 0,
                "no {fault} struck a leader: {hits:?}"
            );
        }
    }
}

#[test]
fn a_leader_woken_from_a_pause_after_being_deposed_serves_no_stale_lease_read() {
    for seed in seeds(20) {
        let (mut sim, old) = Sim::led(seed, 3, 2_000);
        sim.nodes.get_mut(&old).expect("listed").paused_until = Some(sim.now + 1_500);
        // While it sleeps, cut off from what the others send, they elect a leader and take
        // writes; lease reads sent to it wait in its mailbox and are served first thing when
        // it wakes, before its timer fires.
        sim.network.deafen(old);
        for _ in 0..1_500 {
            sim.step(true);
            if sim.rng.chance(0.02) {
                sim.lease_read_at(old);
            }
        }
        sim.run(500, true);
        sim.converge(30_000);
    }
}

#[test]
fn a_voter_restarted_within_the_leaders_lease_does_not_help_elect_another_leader() {
    // Without the restart guard seed 23 serves a stale read: 50 seeds by default.
    for seed in seeds(50) {
        let (mut sim, leader) = Sim::led(seed, 3, 2_000);
        let others: Vec<NodeId> = sim
            .nodes
            .keys()
            .copied()
            .filter(|&id| id != leader)
            .collect();
        let (voter, candidate) = (others[0], others[1]);
        // The candidate stops hearing from the leader and keeps timing out; the voter hears
        // the leader every heartbeat and refuses it. No writes meanwhile: the candidate's log
        // stays as long as the voter's, so only the voter's promise stands in its way.
        sim.network.cut(leader, candidate);
        sim.network.cut(candidate, leader);
        sim.run(1_000, false);
        // The voter restarts, and the leader's heartbeats to it are lost from then on, while
        // clients keep asking the leader for lease reads.
        let node = sim.nodes.get_mut(&voter).expect("listed");
        node.crash();
        node.restart();
        sim.network.cut(leader, voter);
        for _ in 0..1_000 {
            sim.step(true);
            sim.lease_read_at(leader);
        }
        sim.converge(30_000);
    }
}

#[test]
fn a_member_back_on_an_empty_disk_is_replaced_and_nothing_is_lost() {
    for seed in seeds(10) {
        let (mut sim, leader) = Sim::led(seed, 3, 3_000);
        let follower = *sim
            .nodes
            .keys()
            .find(|&&id| id != leader)
            .expect("a follower");
        sim.nodes
            .get_mut(&follower)
            .expect("listed")
            .lose_disk_and_restart();
        sim.run(5_000, true);
        sim.converge(30_000);
        let node = sim.nodes[&follower].replica.as_ref().expect("up");
        assert!(
            !node.raft().awaiting_admission() && node.raft().membership().is_voter(follower),
            "seed {seed}: node {follower} was not replaced and promoted:\n{}",
            sim.describe()
        );
    }
}
