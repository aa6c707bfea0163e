//! Whether a backup is due now, and why.

use k8s_openapi::jiff::Timestamp;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

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

/// The backup due at `now`, if any. A request is served before the schedule. A schedule
/// counts from the time the status recorded for it; a schedule never seen before, or changed,
/// counts from `now` (a backup is taken at its first time from now on, not for times before
/// it was set: ask with the annotation for one at once). Without a valid schedule (no
/// `spec.backup`, or one that does not parse) only requests are served and the count is
/// dropped, so that a schedule set again later starts afresh.
///
/// Returns the status with the schedule's starting point recorded, so that the next call
/// counts from the same point.
pub fn due(
    schedule: Option<(&str, &Schedule)>,
    status: &BackupStatus,
    requested: Option<&str>,
    now: Timestamp,
) -> (Option<Trigger>, BackupStatus) {
    let mut status = status.clone();
    let Some((expression, schedule)) = schedule else {
        status.schedule = None;
        status.last_schedule_time = None;
        return (requested_trigger(&status, requested), status);
    };
    let counted_from = status
        .last_schedule_time
        .as_ref()
        .map(|t| t.0)
        .filter(|_| status.schedule.as_deref() == Some(expression));
    let Some(last) = counted_from else {
        status.schedule = Some(expression.to_string());
        status.last_schedule_time = Some(Time(now));
        return (requested_trigger(&status, requested), status);
    };
    let trigger = requested_trigger(&status, requested)
        .or_else(|| schedule.due(last, now).map(Trigger::Scheduled));
    (trigger, status)
}

/// A request not served yet.
fn requested_trigger(status: &BackupStatus, requested: Option<&str>) -> Option<Trigger> {
    let value = requested?;
    (status.last_request.as_deref() != Some(value)).then(|| Trigger::Requested(value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOURLY: &str = "0 * * * *";

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn hourly() -> Schedule {
        Schedule::parse(HOURLY).unwrap()
    }

    #[test]
    fn a_new_schedule_counts_from_now_and_fires_at_its_next_time() {
        let schedule = hourly();
        let now = at("2026-12-06T10:30:00Z");
        let (trigger, status) = due(
            Some((HOURLY, &schedule)),
            &BackupStatus::default(),
            None,
            now,
        );
        assert_eq!(
            trigger, None,
            "no backup for times before the schedule was set"
        );
        assert_eq!(status.last_schedule_time, Some(Time(now)));
        assert_eq!(status.schedule.as_deref(), Some(HOURLY));

        let later = |time| due(Some((HOURLY, &schedule)), &status, None, at(time)).0;
        assert_eq!(later("2026-12-06T10:59:00Z"), None);
        assert_eq!(
            later("2026-12-06T11:00:01Z"),
            Some(Trigger::Scheduled(at("2026-12-06T11:00:00Z")))
        );
    }

    #[test]
    fn a_changed_or_removed_schedule_starts_counting_afresh() {
        let counted = BackupStatus {
            schedule: Some(HOURLY.into()),
            last_schedule_time: Some(Time(at("2026-12-01T00:00:00Z"))),
            ..BackupStatus::default()
        };
        let now = at("2026-12-06T10:30:00Z");
        // Changed: no backup for the old schedule's missed times.
        let daily = Schedule::parse("0 0 * * *").unwrap();
        let (trigger, status) = due(Some(("0 0 * * *", &daily)), &counted, None, now);
        assert_eq!(trigger, None);
        assert_eq!(status.last_schedule_time, Some(Time(now)));
        // Removed: forgotten, so that setting it again does not fire at once either.
        let (trigger, status) = due(None, &counted, None, now);
        assert_eq!(trigger, None);
        assert_eq!((status.schedule, status.last_schedule_time), (None, None));
    }

    #[test]
    fn a_new_request_value_is_served_once() {
        let schedule = hourly();
        let now = at("2026-12-06T10:30:00Z");
        let mut status = BackupStatus {
            schedule: Some(HOURLY.into()),
            last_schedule_time: Some(Time(now)),
            ..BackupStatus::default()
        };
        let (trigger, _) = due(Some((HOURLY, &schedule)), &status, Some("1"), now);
        assert_eq!(trigger, Some(Trigger::Requested("1".into())));
        status.last_request = Some("1".into());
        assert_eq!(
            due(Some((HOURLY, &schedule)), &status, Some("1"), now).0,
            None
        );
        // Requests are served without a schedule too (and fail for want of a destination).
        assert_eq!(
            due(None, &status, Some("2"), now).0,
            Some(Trigger::Requested("2".into()))
        );
    }
}
