//! Workloads: which operation each request is.

use serde::Serialize;

/// The operation mix of a run (`--mix`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mix {
    /// Puts only.
    Write,
    /// Linearizable gets only (etcd: Range, its default).
    Linearizable,
    /// Lease gets only (etcd has none: reported as unsupported).
    Lease,
    /// Eventual gets only (etcd: Range with serializable = true).
    Eventual,
    /// Compare-and-swap on the mod revision last seen for the key (etcd: a Txn comparing
    /// mod_revision, putting on success and reading the key on failure).
    Cas,
    /// `--mixed-write-percent` puts (default 20 %), the rest linearizable gets.
    Mixed,
}

impl Mix {
    pub fn name(self) -> &'static str {
        match self {
            Mix::Write => "write",
            Mix::Linearizable => "linearizable",
            Mix::Lease => "lease",
            Mix::Eventual => "eventual",
            Mix::Cas => "cas",
            Mix::Mixed => "mixed",
        }
    }

    /// Whether the keys must exist before the run: every mix that reads or compares.
    pub fn needs_preload(self) -> bool {
        self != Mix::Write
    }
}

/// One request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Write,
    LinearizableRead,
    LeaseRead,
    EventualRead,
    Cas,
}

impl Op {
    pub const ALL: [Op; 5] = [
        Op::Write,
        Op::LinearizableRead,
        Op::LeaseRead,
        Op::EventualRead,
        Op::Cas,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            Op::Write => "write",
            Op::LinearizableRead => "linearizable_read",
            Op::LeaseRead => "lease_read",
            Op::EventualRead => "eventual_read",
            Op::Cas => "cas",
        }
    }
}

/// Picks the operation of each request of a mix.
#[derive(Debug, Clone, Copy)]
pub struct Chooser {
    mix: Mix,
    write_percent: u32,
}

impl Chooser {
    /// `write_percent` is used by [`Mix::Mixed`] only, and capped at 100.
    pub fn new(mix: Mix, write_percent: u32) -> Self {
        Self {
            mix,
            write_percent: write_percent.min(100),
        }
    }

    /// The operations this mix can produce.
    pub fn ops(&self) -> Vec<Op> {
        match self.mix {
            Mix::Write => vec![Op::Write],
            Mix::Linearizable => vec![Op::LinearizableRead],
            Mix::Lease => vec![Op::LeaseRead],
            Mix::Eventual => vec![Op::EventualRead],
            Mix::Cas => vec![Op::Cas],
            Mix::Mixed => match self.write_percent {
                0 => vec![Op::LinearizableRead],
                100 => vec![Op::Write],
                _ => vec![Op::Write, Op::LinearizableRead],
            },
        }
    }

    pub fn pick(&self, rng: &mut fastrand::Rng) -> Op {
        match self.mix {
            Mix::Write => Op::Write,
            Mix::Linearizable => Op::LinearizableRead,
            Mix::Lease => Op::LeaseRead,
            Mix::Eventual => Op::EventualRead,
            Mix::Cas => Op::Cas,
            Mix::Mixed => {
                if rng.u32(0..100) < self.write_percent {
                    Op::Write
                } else {
                    Op::LinearizableRead
                }
            }
        }
    }
}

/// The key of index `i`: `k` and the index zero-padded to `key_size` bytes (longer when the
/// index has more digits than fit), so every key of a run has the same size.
pub fn key(i: u64, key_size: usize) -> Vec<u8> {
    let digits = key_size.saturating_sub(1).max(1);
    format!("k{i:0digits$}").into_bytes()
}

/// A value of `size` random bytes (incompressible, so no engine gains from compression).
pub fn value(size: usize, seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..size).map(|_| rng.u8(..)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(chooser: Chooser, n: usize) -> [usize; 5] {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut counts = [0; 5];
        for _ in 0..n {
            counts[chooser.pick(&mut rng).index()] += 1;
        }
        counts
    }

    #[test]
    fn single_operation_mixes_pick_only_their_operation() {
        for (mix, op) in [
            (Mix::Write, Op::Write),
            (Mix::Linearizable, Op::LinearizableRead),
            (Mix::Lease, Op::LeaseRead),
            (Mix::Eventual, Op::EventualRead),
            (Mix::Cas, Op::Cas),
        ] {
            let chooser = Chooser::new(mix, 20);
            assert_eq!(counts(chooser, 1_000)[op.index()], 1_000, "{mix:?}");
            assert_eq!(chooser.ops(), vec![op]);
        }
    }

    #[test]
    fn mixed_picks_writes_in_the_given_proportion() {
        let n = 100_000;
        for percent in [0u32, 5, 20, 50, 100] {
            let c = counts(Chooser::new(Mix::Mixed, percent), n);
            let writes = c[Op::Write.index()] as f64 / n as f64;
            let reads = c[Op::LinearizableRead.index()] as f64 / n as f64;
            assert!(
                (writes - f64::from(percent) / 100.0).abs() < 0.01,
                "{percent}%: {writes}"
            );
            assert!((writes + reads - 1.0).abs() < 1e-9);
        }
        assert_eq!(
            Chooser::new(Mix::Mixed, 250).ops(),
            vec![Op::Write],
            "capped at 100 %"
        );
    }

    #[test]
    fn keys_have_the_requested_size_and_values_are_reproducible() {
        assert_eq!(key(42, 16), b"k000000000000042".to_vec());
        assert_eq!(key(0, 16).len(), 16);
        assert_eq!(key(99_999, 4), b"k99999".to_vec(), "wider when it must be");
        assert_eq!(value(256, 1).len(), 256);
        assert_eq!(value(32, 1), value(32, 1));
        assert!(Mix::Linearizable.needs_preload() && !Mix::Write.needs_preload());
    }
}
