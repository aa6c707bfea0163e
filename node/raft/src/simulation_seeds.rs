//! Which seeds a simulator test runs, the same way for every simulator of the project (the
//! core's, in `tests/`, and the node's replica simulator): `DENGINE_SIM_SEED=S` runs just
//! seed S, to replay a failure; `DENGINE_SIM_SEEDS=N` runs seeds 1 to N; otherwise the test's
//! own default count.

/// The seeds to run: `DENGINE_SIM_SEED` alone, `DENGINE_SIM_SEEDS` of them, or `default`.
pub fn seeds_or(default: u64) -> Vec<u64> {
    if let Ok(seed) = std::env::var("DENGINE_SIM_SEED") {
        return vec![seed.parse().expect("DENGINE_SIM_SEED must be a number")];
    }
    let count: u64 = std::env::var("DENGINE_SIM_SEEDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default);
    (1..=count).collect()
}
