//! When backups are due: a cron expression of five fields, in UTC.

use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;
use k8s_openapi::jiff::tz::TimeZone;
use k8s_openapi::jiff::Timestamp;

/// A parsed `spec.backup.schedule`.
#[derive(Clone, Debug)]
pub struct Schedule(Cron);

impl Schedule {
    /// Parses five fields (minute, hour, day of month, month, day of week), as Kubernetes
    /// CronJobs and crontab take them; a message saying what is wrong otherwise.
    pub fn parse(expression: &str) -> Result<Schedule, String> {
        CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(expression)
            .map(Schedule)
            .map_err(|error| {
                format!("schedule {expression:?} is not a cron expression of five fields: {error}")
            })
    }

    /// The schedule time a backup is due for at `now`, given the time the last scheduled one
    /// was started for: the latest schedule time after `last` and not after `now`. Several
    /// missed times (an operator that was down) make one backup, for the latest.
    pub fn due(&self, last: Timestamp, now: Timestamp) -> Option<Timestamp> {
        let next = self.after(last)?;
        if next > now {
            return None;
        }
        let latest = self
            .0
            .find_previous_occurrence(&civil(now), true)
            .ok()
            .and_then(|time| time.to_zoned(TimeZone::UTC).ok())
            .map(|zoned| zoned.timestamp())?;
        Some(latest.max(next))
    }

    /// The first schedule time after `time`.
    pub fn after(&self, time: Timestamp) -> Option<Timestamp> {
        self.0
            .find_next_occurrence(&civil(time), false)
            .ok()
            .and_then(|time| time.to_zoned(TimeZone::UTC).ok())
            .map(|zoned| zoned.timestamp())
    }
}

/// `time` on a UTC wall clock, at whole seconds.
fn civil(time: Timestamp) -> k8s_openapi::jiff::civil::DateTime {
    let whole = Timestamp::from_second(time.as_second()).unwrap_or(time);
    whole.to_zoned(TimeZone::UTC).datetime()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().expect("a timestamp")
    }

    #[test]
    fn five_fields_are_taken_and_anything_else_is_refused_with_a_reason() {
        assert!(Schedule::parse("0 */6 * * *").is_ok());
        assert!(Schedule::parse("30 2 * * MON-FRI").is_ok());
        for bad in ["", "every day", "0 0 */6 * * *", "61 * * * *", "* * * *"] {
            let error = Schedule::parse(bad).expect_err(bad);
            assert!(error.contains("cron expression of five fields"), "{error}");
        }
    }

    #[test]
    fn a_backup_is_due_at_each_schedule_time_and_not_before() {
        let six_hourly = Schedule::parse("0 */6 * * *").unwrap();
        let last = at("2026-12-06T06:00:00Z");
        assert_eq!(six_hourly.due(last, at("2026-12-06T11:59:59Z")), None);
        assert_eq!(
            six_hourly.due(last, at("2026-12-06T12:00:00Z")),
            Some(at("2026-12-06T12:00:00Z"))
        );
        assert_eq!(
            six_hourly.due(last, at("2026-12-06T12:00:30Z")),
            Some(at("2026-12-06T12:00:00Z"))
        );
        assert_eq!(six_hourly.after(last), Some(at("2026-12-06T12:00:00Z")));
    }

    #[test]
    fn missed_times_make_one_backup_for_the_latest() {
        let hourly = Schedule::parse("0 * * * *").unwrap();
        assert_eq!(
            hourly.due(at("2026-12-06T01:00:00Z"), at("2026-12-06T05:30:00Z")),
            Some(at("2026-12-06T05:00:00Z"))
        );
    }
}
