//! Whether renewed certificates have reached every member. A renewal restarts the pods one at a
//! time; a paused cluster or a rollout stopped on a Degraded member leaves some pods on the
//! certificates issued before, which expire about [`RENEW_BEFORE`] after a renewal on time. A day
//! after a renewal, pods still on an older issue are worth a warning while there is time.

use std::collections::BTreeMap;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::CertificatesStatus;
use crate::certificates::RENEW_BEFORE;
use crate::objects::Names;
use crate::observed::Ordinal;

/// How long after a renewal the rollout is given before pods on older certificates are
/// reported.
const ROLLOUT_GRACE: SignedDuration = SignedDuration::from_hours(24);

/// What to say when pods run certificates older than the current issue a day after it, or
/// `None` when every pod runs the current ones (or it is too soon to say). `serials` holds the
/// issue each pod was made with (its template annotation); a pod without one predates the
/// certificates and counts as older.
pub fn stale_certificates(
    current: &CertificatesStatus,
    serials: &BTreeMap<Ordinal, Option<String>>,
    names: &Names,
    now: Timestamp,
) -> Option<String> {
    let issued = current.issued.0;
    if now < issued + ROLLOUT_GRACE {
        return None;
    }
    let stale: Vec<String> = serials
        .iter()
        .filter(|(_, serial)| serial.as_deref() != Some(current.serial.as_str()))
        .map(|(ordinal, _)| names.pod(*ordinal))
        .collect();
    if stale.is_empty() {
        return None;
    }
    Some(format!(
        "{} still run the certificates issued before {issued} and not restarted since; those \
         expire around {} (when renewed on time). The rolling restart has not reached them: is \
         the cluster paused, or Degraded?",
        stale.join(", "),
        issued + RENEW_BEFORE
    ))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    fn current(issued: &str) -> CertificatesStatus {
        let issued: Timestamp = issued.parse().unwrap();
        CertificatesStatus {
            issued: Time(issued),
            renews: Time(issued),
            expires: Time(issued),
            serial: "new".into(),
            ca_expires: None,
        }
    }

    #[test]
    fn pods_left_on_older_certificates_a_day_after_a_renewal_are_named() {
        let names = Names::new("orders", "shop");
        let status = current("2026-12-01T00:00:00Z");
        let serials = BTreeMap::from([
            (0, Some("new".to_string())),
            (1, Some("old".to_string())),
            (2, None),
        ]);
        let soon = "2026-12-01T12:00:00Z".parse().unwrap();
        assert_eq!(stale_certificates(&status, &serials, &names, soon), None);
        let later = "2026-12-02T00:00:01Z".parse().unwrap();
        let message = stale_certificates(&status, &serials, &names, later).unwrap();
        assert!(
            message.starts_with("orders-1, orders-2 still run"),
            "{message}"
        );
        assert!(message.contains("2026-12-31T00:00:00Z"), "{message}");
        let all_new = BTreeMap::from([(0, Some("new".to_string())), (1, Some("new".to_string()))]);
        assert_eq!(stale_certificates(&status, &all_new, &names, later), None);
    }
}
