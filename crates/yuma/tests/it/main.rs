//! Integration tests of `agora-yuma`, one binary: the shared vectors, cases transcribed from
//! subtensor's tests, degenerate subnets, input errors and properties.

mod degenerate;
mod errors;
mod props;
mod subtensor_cases;
mod support;
mod vectors;
