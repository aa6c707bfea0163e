//! Channels to the nodes' Admin API, kept across reconciles.
//!
//! Every cluster is reconciled every few seconds, and each reconcile asks a node or two for
//! its status: dialling (and with TLS, handshaking) anew each time costs more than the calls.
//! A tonic channel reconnects by itself after a node restarts, so one per endpoint serves for
//! as long as the endpoint exists. A channel is keyed by the endpoint, the name its
//! certificate is checked against, and a fingerprint of the TLS material it was dialled with:
//! when the cluster's TLS Secret changes, the next call dials with the new material, and the
//! old channel is dropped once unused.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tonic::transport::Channel;

/// Channels not used for this long are dropped: their pods are gone or their Secret changed.
const IDLE_LIMIT: Duration = Duration::from_secs(600);

/// What a channel was dialled to and with.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChannelKey {
    pub endpoint: String,
    pub server_name: Option<String>,
    /// A hash of the CA, certificate and key (0 without TLS). Not a secret: it only tells
    /// one set of material from another.
    pub tls_fingerprint: u64,
}

impl ChannelKey {
    /// The key for `endpoint` dialled with `server_name` and the TLS material whose
    /// [`tls_fingerprint`] is given (0 without TLS).
    pub fn new(endpoint: &str, server_name: Option<String>, tls_fingerprint: u64) -> Self {
        ChannelKey {
            endpoint: endpoint.to_string(),
            server_name,
            tls_fingerprint,
        }
    }
}

/// Tells one set of TLS material (CA, certificate, key) from another.
pub fn tls_fingerprint(material: [&[u8]; 3]) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    material.hash(&mut hasher);
    hasher.finish()
}

/// The cache, shared by every reconcile of the operator (cheap to clone).
#[derive(Clone, Default)]
pub struct AdminChannels {
    channels: Arc<Mutex<HashMap<ChannelKey, (Channel, Instant)>>>,
}

impl AdminChannels {
    /// The cached channel for `key`, if any (marking it used).
    pub fn get(&self, key: &ChannelKey) -> Option<Channel> {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        let (channel, used) = channels.get_mut(key)?;
        *used = Instant::now();
        Some(channel.clone())
    }

    /// Keeps `channel` for `key`, and drops the channels idle for too long.
    pub fn insert(&self, key: ChannelKey, channel: Channel) {
        let now = Instant::now();
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        channels.retain(|_, (_, used)| now.duration_since(*used) < IDLE_LIMIT);
        channels.insert(key, (channel, now));
    }

    /// Forgets the channel for `key`: a call on it failed for want of a connection, and the
    /// next one dials again (its address may now be another pod's).
    pub fn forget(&self, key: &ChannelKey) {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        channels.remove(key);
    }

    /// How many channels are kept.
    pub fn len(&self) -> usize {
        self.channels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lazy_channel() -> Channel {
        tonic::transport::Endpoint::from_static("http://127.0.0.1:1").connect_lazy()
    }

    #[tokio::test]
    async fn a_channel_is_reused_until_the_tls_material_changes() {
        let channels = AdminChannels::default();
        let old = ChannelKey::new(
            "10.0.0.1:2380",
            Some("n-0".into()),
            tls_fingerprint([b"ca", b"c", b"k"]),
        );
        channels.insert(old.clone(), lazy_channel());
        assert!(channels.get(&old).is_some());
        assert_eq!(
            old,
            ChannelKey::new(
                "10.0.0.1:2380",
                Some("n-0".into()),
                tls_fingerprint([b"ca", b"c", b"k"])
            )
        );
        let rotated = ChannelKey::new(
            "10.0.0.1:2380",
            Some("n-0".into()),
            tls_fingerprint([b"ca", b"c2", b"k2"]),
        );
        assert_ne!(old, rotated);
        assert!(channels.get(&rotated).is_none());
        let plain = ChannelKey::new("10.0.0.1:2380", None, 0);
        assert!(channels.get(&plain).is_none());
        channels.forget(&old);
        assert!(channels.is_empty());
    }
}
