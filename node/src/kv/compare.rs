//! When a compare-and-swap condition holds.

use crate::proto::compare::Target;
use crate::proto::{Compare, KeyValue};

/// Whether `compare` holds against the key's current state. As in etcd, a missing key has mod
/// revision 0 and no value: `ModRevision(0)` means "absent" and a value comparison fails.
pub(super) fn holds(compare: &Compare, current: Option<&KeyValue>) -> bool {
    match &compare.target {
        None => false,
        Some(Target::Value(value)) => current.is_some_and(|kv| kv.value == *value),
        Some(Target::ModRevision(revision)) => current.map_or(0, |kv| kv.mod_revision) == *revision,
        // `absent: false` reads as "the key exists".
        Some(Target::Absent(absent)) => current.is_none() == *absent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::fixtures::{compare, put, Harness};
    use crate::kv::{Command, CommandOutcome};

    #[test]
    fn compare_and_swap_on_value() {
        let mut h = Harness::new();
        h.run(put("k", "old"));
        let current = h.get("k");

        let miss = h.run(Command::compare_and_swap(
            "k",
            compare(Target::Value("other".into())),
            "new",
            0,
        ));
        assert_eq!(
            miss,
            CommandOutcome::CompareAndSwap {
                succeeded: false,
                revision: 1,
                current: current.clone(),
            }
        );
        assert_eq!(h.store.revision(), 1);

        let hit = h.run(Command::compare_and_swap(
            "k",
            compare(Target::Value("old".into())),
            "new",
            0,
        ));
        assert_eq!(
            hit,
            CommandOutcome::CompareAndSwap {
                succeeded: true,
                revision: 2,
                current,
            }
        );
        let k = h.get("k").unwrap();
        assert_eq!(
            (k.value.as_ref(), k.version, k.mod_revision),
            (&b"new"[..], 2, 2)
        );

        // A value comparison never holds for a missing key, not even against "".
        let missing = h.run(Command::compare_and_swap(
            "missing",
            compare(Target::Value("".into())),
            "x",
            0,
        ));
        assert!(matches!(
            missing,
            CommandOutcome::CompareAndSwap {
                succeeded: false,
                ..
            }
        ));
    }

    #[test]
    fn compare_and_swap_on_mod_revision() {
        let mut h = Harness::new();
        h.run(put("k", "1"));
        h.run(put("k", "2"));

        let stale = h.run(Command::compare_and_swap(
            "k",
            compare(Target::ModRevision(1)),
            "x",
            0,
        ));
        assert!(matches!(
            stale,
            CommandOutcome::CompareAndSwap {
                succeeded: false,
                revision: 2,
                ..
            }
        ));
        let fresh = h.run(Command::compare_and_swap(
            "k",
            compare(Target::ModRevision(2)),
            "x",
            0,
        ));
        assert!(matches!(
            fresh,
            CommandOutcome::CompareAndSwap {
                succeeded: true,
                revision: 3,
                ..
            }
        ));
        // As in etcd, a missing key has mod revision 0.
        let create = h.run(Command::compare_and_swap(
            "new",
            compare(Target::ModRevision(0)),
            "x",
            0,
        ));
        assert!(matches!(
            create,
            CommandOutcome::CompareAndSwap {
                succeeded: true,
                ..
            }
        ));
        assert_eq!(h.get("new").unwrap().version, 1);
    }

    #[test]
    fn compare_and_swap_on_absence() {
        let mut h = Harness::new();
        let created = h.run(Command::compare_and_swap(
            "lock",
            compare(Target::Absent(true)),
            "me",
            0,
        ));
        assert_eq!(
            created,
            CommandOutcome::CompareAndSwap {
                succeeded: true,
                revision: 1,
                current: None,
            }
        );
        let taken = h.run(Command::compare_and_swap(
            "lock",
            compare(Target::Absent(true)),
            "you",
            0,
        ));
        assert!(matches!(
            taken,
            CommandOutcome::CompareAndSwap {
                succeeded: false,
                revision: 1,
                current: Some(_)
            }
        ));
        assert_eq!(h.get("lock").unwrap().value.as_ref(), b"me");

        // `absent: false` requires the key to exist.
        let exists = h.run(Command::compare_and_swap(
            "lock",
            compare(Target::Absent(false)),
            "us",
            0,
        ));
        assert!(matches!(
            exists,
            CommandOutcome::CompareAndSwap {
                succeeded: true,
                ..
            }
        ));
        let missing = h.run(Command::compare_and_swap(
            "nope",
            compare(Target::Absent(false)),
            "x",
            0,
        ));
        assert!(matches!(
            missing,
            CommandOutcome::CompareAndSwap {
                succeeded: false,
                ..
            }
        ));
    }

    #[test]
    fn compare_and_swap_without_a_condition_fails() {
        let mut h = Harness::new();
        let outcome = h.run(Command::compare_and_swap(
            "k",
            Compare { target: None },
            "x",
            0,
        ));
        assert!(matches!(
            outcome,
            CommandOutcome::CompareAndSwap {
                succeeded: false,
                ..
            }
        ));
        assert_eq!(h.store.revision(), 0);
    }
}
