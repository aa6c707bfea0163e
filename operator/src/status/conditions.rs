//! The status conditions and how they change.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// The conditions a DEngineCluster reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionType {
    /// A quorum of voters is healthy and a leader serves requests.
    Available,
    /// The operator is changing the cluster: founding, scaling, replacing or upgrading.
    Progressing,
    /// Something has been wrong for longer than the operator waits.
    Degraded,
    /// The last backup failed, or the schedule does not parse (on clusters with `spec.backup`
    /// or asked for a backup); the message says why.
    BackupFailed,
    /// Pod 0 could not fetch the backup the cluster is to be founded from (only on clusters
    /// with `spec.restoreFrom`); the message is its error.
    RestoreFailed,
    /// A day after the operator renewed the members' certificates, some pods still run the
    /// ones issued before, which expire soon (only on clusters with `spec.tls.generate`).
    CertificatesStale,
}

impl ConditionType {
    /// The condition's `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionType::Available => "Available",
            ConditionType::Progressing => "Progressing",
            ConditionType::Degraded => "Degraded",
            ConditionType::BackupFailed => "BackupFailed",
            ConditionType::RestoreFailed => "RestoreFailed",
            ConditionType::CertificatesStale => "CertificatesStale",
        }
    }
}

/// Sets one condition in `conditions`, adding it if missing. `lastTransitionTime` moves to `now`
/// only when the status flips, so that rewriting the same status changes nothing (and a status
/// written only when it changes is not rewritten every reconcile).
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: ConditionType,
    status: bool,
    reason: &str,
    message: &str,
    observed_generation: Option<i64>,
    now: Time,
) {
    let status = if status { "True" } else { "False" };
    let new = |last_transition_time| Condition {
        type_: type_.as_str().to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message: message.to_string(),
        observed_generation,
        last_transition_time,
    };
    match conditions.iter_mut().find(|c| c.type_ == type_.as_str()) {
        Some(existing) => {
            let since = if existing.status == status {
                existing.last_transition_time.clone()
            } else {
                now
            };
            *existing = new(since);
        }
        None => conditions.push(new(now)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;
    use ConditionType::*;

    fn at(seconds: i64) -> Time {
        Time(Timestamp::from_second(seconds).expect("a valid timestamp"))
    }

    /// One `set_condition`: type, status, reason, message, observed generation, at which second.
    type Step<'a> = (ConditionType, bool, &'a str, &'a str, Option<i64>, i64);

    /// The conditions after setting each step in turn on an empty list.
    fn after(steps: &[Step]) -> Vec<Condition> {
        let mut conditions = Vec::new();
        for &(type_, status, reason, message, generation, second) in steps {
            set_condition(
                &mut conditions,
                type_,
                status,
                reason,
                message,
                generation,
                at(second),
            );
        }
        conditions
    }

    #[test]
    fn a_new_condition_starts_now() {
        let conditions = after(&[(
            Available,
            true,
            "QuorumHealthy",
            "3 of 3 voters healthy",
            Some(1),
            10,
        )]);
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].type_, "Available");
        assert_eq!(conditions[0].status, "True");
        assert_eq!(conditions[0].last_transition_time, at(10));
        assert_eq!(conditions[0].observed_generation, Some(1));
    }

    #[test]
    fn the_same_status_keeps_its_transition_time_but_takes_the_new_message() {
        let conditions = after(&[
            (
                Progressing,
                true,
                "AddingLearner",
                "adding node 2",
                Some(1),
                10,
            ),
            (
                Progressing,
                true,
                "PromotingLearner",
                "promoting node 2",
                Some(2),
                20,
            ),
        ]);
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].reason, "PromotingLearner");
        assert_eq!(conditions[0].message, "promoting node 2");
        assert_eq!(conditions[0].observed_generation, Some(2));
        assert_eq!(conditions[0].last_transition_time, at(10));
    }

    #[test]
    fn a_flip_moves_the_transition_time() {
        let conditions = after(&[
            (Degraded, false, "Healthy", "", None, 10),
            (Degraded, true, "MemberUnhealthy", "node 3", None, 30),
        ]);
        assert_eq!(conditions[0].status, "True");
        assert_eq!(conditions[0].last_transition_time, at(30));
    }

    #[test]
    fn other_conditions_are_left_alone() {
        let conditions = after(&[
            (Available, true, "QuorumHealthy", "", None, 10),
            (Degraded, false, "Healthy", "", None, 20),
            (Available, false, "NoLeader", "", None, 30),
        ]);
        assert_eq!(conditions.len(), 2);
        assert_eq!(conditions[1].type_, "Degraded");
        assert_eq!(conditions[1].last_transition_time, at(20));
        assert_eq!(conditions[0].last_transition_time, at(30));
    }
}
