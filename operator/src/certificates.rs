//! Certificates the operator issues for a cluster with `spec.tls.generate`: a CA of the
//! cluster's own, a certificate per member naming its pod's stable address, and one the operator
//! presents when it calls the members' admin API. Pure: PEM in, PEM out (rcgen, with ring, which
//! the build already has; no OpenSSL).

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

/// How long the CA is valid. It is not rotated: a new CA must first be trusted by every member.
pub const CA_VALIDITY: SignedDuration = SignedDuration::from_hours(24 * 3650);

/// How long a member's or the operator's certificate is valid.
pub const LEAF_VALIDITY: SignedDuration = SignedDuration::from_hours(24 * 90);

/// Certificates are renewed when this much of their validity is left.
pub const RENEW_BEFORE: SignedDuration = SignedDuration::from_hours(24 * 30);

/// A certificate and its private key, PEM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pair {
    pub cert_pem: String,
    pub key_pem: String,
}

/// Issues the CA of `namespace`/`cluster`.
pub fn issue_ca(namespace: &str, cluster: &str, now: Timestamp) -> Result<Pair, String> {
    let key = KeyPair::generate().map_err(|e| format!("a CA key: {e}"))?;
    let mut params = ca_params(namespace, cluster);
    params.not_before = time_of(now - SignedDuration::from_mins(5))?;
    params.not_after = time_of(now + CA_VALIDITY)?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| format!("the CA certificate: {e}"))?;
    Ok(Pair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Issues, under `ca`, a certificate for `common_name` naming `dns_names`, for serving and for
/// dialling (mutual TLS: members are servers and clients of each other).
pub fn issue_leaf(
    ca: &Pair,
    namespace: &str,
    cluster: &str,
    common_name: &str,
    dns_names: Vec<String>,
    now: Timestamp,
) -> Result<Pair, String> {
    let ca_key = KeyPair::from_pem(&ca.key_pem).map_err(|e| format!("the CA key: {e}"))?;
    // The CA as an issuer: its name and key are all signing needs (its own certificate was made
    // from the same parameters).
    let issuer = Issuer::new(ca_params(namespace, cluster), ca_key);
    let key = KeyPair::generate().map_err(|e| format!("a key for {common_name}: {e}"))?;
    let mut params =
        CertificateParams::new(dns_names).map_err(|e| format!("names of {common_name}: {e}"))?;
    params.distinguished_name = name(common_name);
    params.not_before = time_of(now - SignedDuration::from_mins(5))?;
    params.not_after = time_of(now + LEAF_VALIDITY)?;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(|e| format!("the certificate of {common_name}: {e}"))?;
    Ok(Pair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// When certificates issued at `issued` must be renewed.
pub fn renew_at(issued: Timestamp) -> Timestamp {
    issued + LEAF_VALIDITY - RENEW_BEFORE
}

fn ca_params(namespace: &str, cluster: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = name(&format!("d-engine CA {namespace}/{cluster}"));
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

fn name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "d-engine");
    name.push(DnType::CommonName, common_name);
    name
}

fn time_of(at: Timestamp) -> Result<time::OffsetDateTime, String> {
    time::OffsetDateTime::from_unix_timestamp(at.as_second())
        .map_err(|e| format!("a certificate time: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_signs_leaves_and_renewal_falls_a_third_before_expiry() {
        let now: Timestamp = "2026-12-06T12:00:00Z".parse().unwrap();
        let ca = issue_ca("shop", "orders", now).expect("a CA");
        assert!(ca.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        let leaf = issue_leaf(
            &ca,
            "shop",
            "orders",
            "orders-0",
            vec!["orders-0.orders-peers.shop.svc".into()],
            now,
        )
        .expect("a member certificate");
        assert!(leaf.key_pem.contains("PRIVATE KEY"));
        assert_ne!(leaf.cert_pem, ca.cert_pem);
        assert_eq!(
            renew_at(now),
            "2027-02-04T12:00:00Z".parse::<Timestamp>().unwrap()
        );
        // A CA key that is not PEM is refused with a reason.
        let broken = Pair {
            cert_pem: ca.cert_pem.clone(),
            key_pem: "not a key".into(),
        };
        let error =
            issue_leaf(&broken, "shop", "orders", "x", vec!["x".into()], now).expect_err("refused");
        assert!(error.contains("the CA key"), "{error}");
    }
}
