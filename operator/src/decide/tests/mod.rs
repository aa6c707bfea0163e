//! Table tests of the director, one file per concern. Each builds an [`Observed`] from a
//! healthy cluster with a few changes and checks the one step decided.

mod fixtures;

mod degraded;
mod founding;
mod grow;
mod replace;
mod shrink;
mod top;
mod upgrade;
