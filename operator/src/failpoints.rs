//! Failpoints that stop the operator at a chosen step, for crash-safety tests.
//!
//! Built with the `failpoints` feature, `operator::before_action` and `operator::after_action`
//! can be configured through the `fail` crate (`FAILPOINTS=operator::after_action=3*off->return`
//! in the environment, or `fail::cfg` in a test): `return` makes the step fail as if the
//! operator had died there, `panic` aborts the process like kill -9. Without the feature,
//! [`check`] compiles to nothing.

use crate::Error;

/// Fails with [`Error::Failpoint`] when failpoint `name` is set to `return`.
pub fn check(name: &str) -> Result<(), Error> {
    let _ = name;
    fail::fail_point!(name, |_| Err(Error::Failpoint(name.to_string())));
    Ok(())
}
