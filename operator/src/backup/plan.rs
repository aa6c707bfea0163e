//! Whether a backup is due now, and why.

use k8s_openapi::jiff::Timestamp;

use super::Schedule;
use crate::status::BackupStatus;

/// Why a backup is taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// The schedule reached this time.
    Scheduled(Timestamp),
    /// The `dengine.io/backup-requested` annotation has this new value.
    Requested(String),
}

impl Trigger {
    /// As the status and Events say it.
    pub fn reason(&self) -> &'static str {
        match self {
            Trigger::Scheduled(_) => "Scheduled",
            Trigger::Requested(_) => "Requested",
        }
    }
}

/// The backup due at `now`, if any. A request is served before the schedule; a schedule never
/// seen before starts counting from `now` (a backup is taken at its first time from now on,
/// not for times before the schedule was set: ask with the annotation for one at once).
///
/// `schedule` is `None` without `spec.backup` (or with one whose schedule does not parse): then
/// only requests are served. Returns the status with the schedule's starting point recorded when
/// it had none, so that the next call counts from the same point.
pub fn due(
    schedule: Option<&Schedule>,
    status: &BackupStatus,
    requested: Option<&str>,
    now: Timestamp,
) -> (Option<Trigger>, BackupStatus) {
    let mut status = status.clone();
    if let Some(value) = requested {
        if status.last_request.as_deref() != Some(value) {
            return (Some(Trigger::Requested(value.to_string())), status);
        }
    }
    let Some(schedule) = schedule else {
        return (None, status);
    };
    let Some(last) = status.last_schedule_time.as_ref().map(|t| t.0) else {
        status.last_schedule_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now));
        return (None, status);
    };
    (schedule.due(last, now).map(Trigger::Scheduled), status)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn hourly() -> Option<Schedule> {
        Schedule::parse("0 * * * *").ok()
    }

    #[test]
    fn a_new_schedule_counts_from_now_and_fires_at_its_next_time() {
        let now = at("2026-12-06T10:30:00Z");
        let (trigger, status) = due(hourly().as_ref(), &BackupStatus::default(), None, now);
        assert_eq!(
            trigger, None,
            "no backup for times before the schedule was set"
        );
        assert_eq!(status.last_schedule_time, Some(Time(now)));

        let (trigger, _) = due(hourly().as_ref(), &status, None, at("2026-12-06T10:59:00Z"));
        assert_eq!(trigger, None);
        let (trigger, _) = due(hourly().as_ref(), &status, None, at("2026-12-06T11:00:01Z"));
        assert_eq!(
            trigger,
            Some(Trigger::Scheduled(at("2026-12-06T11:00:00Z")))
        );
    }

    #[test]
    fn a_new_request_value_is_served_once() {
        let now = at("2026-12-06T10:30:00Z");
        let mut status = BackupStatus {
            last_schedule_time: Some(Time(now)),
            ..BackupStatus::default()
        };
        let (trigger, _) = due(hourly().as_ref(), &status, Some("1"), now);
        assert_eq!(trigger, Some(Trigger::Requested("1".into())));
        status.last_request = Some("1".into());
        assert_eq!(due(hourly().as_ref(), &status, Some("1"), now).0, None);
        // Requests are served without a schedule too (and fail for want of a destination).
        assert_eq!(
            due(None, &status, Some("2"), now).0,
            Some(Trigger::Requested("2".into()))
        );
    }
}
