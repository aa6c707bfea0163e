//! A stable hash of a built object, kept in an annotation to tell whether the object in the
//! API server is the one the current spec builds.

use kube::Resource;
use serde::Serialize;

/// The annotation holding the hash of the object as the operator built it.
pub const SPEC_HASH: &str = "dengine.io/spec-hash";

/// FNV-1a over the object's JSON. Stable across operator builds and Rust versions (unlike
/// `std`'s hasher), so a new operator does not rewrite every object it finds.
pub fn spec_hash<T: Serialize>(object: &T) -> String {
    let json = serde_json::to_vec(object).unwrap_or_default();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in json {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// `object` with its own hash in the [`SPEC_HASH`] annotation.
pub fn with_spec_hash<T: Serialize + Resource>(mut object: T) -> T {
    let hash = spec_hash(&object);
    object
        .meta_mut()
        .annotations
        .get_or_insert_with(Default::default)
        .insert(SPEC_HASH.to_string(), hash);
    object
}
