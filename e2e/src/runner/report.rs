//! What a scenario prints as it goes: each check that held, and notes.

/// The running account of one scenario.
#[derive(Debug, Default)]
pub struct Report {
    checks: usize,
}

impl Report {
    pub fn new() -> Self {
        Report::default()
    }

    /// A check that held.
    pub fn check(&mut self, what: impl AsRef<str>) {
        self.checks += 1;
        println!("  ok    {}", what.as_ref());
    }

    /// Something done or seen that is not itself a check.
    pub fn note(&mut self, what: impl AsRef<str>) {
        println!("  ..    {}", what.as_ref());
    }

    pub fn checks(&self) -> usize {
        self.checks
    }
}
