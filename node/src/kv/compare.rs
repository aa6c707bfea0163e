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

    /// Runs a compare-and-swap of `key` to `value` under `target` (no condition if `None`);
    /// returns whether it succeeded, the store's revision after it, and the key as compared.
    fn cas(
        h: &mut Harness,
        key: &str,
        target: Option<Target>,
        value: &str,
    ) -> (bool, i64, Option<KeyValue>) {
        let condition = match target {
            Some(target) => compare(target),
            None => Compare { target: None },
        };
        match h.run(Command::compare_and_swap(
            key.to_string(),
            condition,
            value.to_string(),
            0,
        )) {
            CommandOutcome::CompareAndSwap {
                succeeded,
                revision,
                current,
            } => (succeeded, revision, current),
            other => panic!("a compare-and-swap answered {other:?}"),
        }
    }

    #[test]
    fn compare_and_swap_on_value() {
        let mut h = Harness::new();
        h.run(put("k", "old"));
        let current = h.get("k");

        let miss = cas(&mut h, "k", Some(Target::Value("other".into())), "new");
        assert_eq!(miss, (false, 1, current.clone()));
        assert_eq!(h.store.revision(), 1);

        let hit = cas(&mut h, "k", Some(Target::Value("old".into())), "new");
        assert_eq!(hit, (true, 2, current));
        let k = h.get("k").unwrap();
        assert_eq!(
            (k.value.as_ref(), k.version, k.mod_revision),
            (&b"new"[..], 2, 2)
        );

        // A value comparison never holds for a missing key, not even against "".
        let missing = cas(&mut h, "missing", Some(Target::Value("".into())), "x");
        assert!(!missing.0);
    }

    #[test]
    fn compare_and_swap_on_mod_revision() {
        let mut h = Harness::new();
        h.run(put("k", "1"));
        h.run(put("k", "2"));

        let stale = cas(&mut h, "k", Some(Target::ModRevision(1)), "x");
        assert_eq!((stale.0, stale.1), (false, 2));
        let fresh = cas(&mut h, "k", Some(Target::ModRevision(2)), "x");
        assert_eq!((fresh.0, fresh.1), (true, 3));
        // As in etcd, a missing key has mod revision 0.
        let create = cas(&mut h, "new", Some(Target::ModRevision(0)), "x");
        assert!(create.0);
        assert_eq!(h.get("new").unwrap().version, 1);
    }

    #[test]
    fn compare_and_swap_on_absence() {
        let mut h = Harness::new();
        let created = cas(&mut h, "lock", Some(Target::Absent(true)), "me");
        assert_eq!(created, (true, 1, None));
        let taken = cas(&mut h, "lock", Some(Target::Absent(true)), "you");
        assert_eq!((taken.0, taken.1, taken.2.is_some()), (false, 1, true));
        assert_eq!(h.get("lock").unwrap().value.as_ref(), b"me");

        // `absent: false` requires the key to exist.
        assert!(cas(&mut h, "lock", Some(Target::Absent(false)), "us").0);
        assert!(!cas(&mut h, "nope", Some(Target::Absent(false)), "x").0);
    }

    #[test]
    fn compare_and_swap_without_a_condition_fails() {
        let mut h = Harness::new();
        assert!(!cas(&mut h, "k", None, "x").0);
        assert_eq!(h.store.revision(), 0);
    }
}
