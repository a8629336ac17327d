//! The framework Agora subnets are written in.
//!
//! A subnet supplies the work and how to score it; the framework supplies the rest.
//! This crate currently holds the pure part: [`scores::ScoreBook`], the validator's memory of
//! how each uid performed, and its conversion into on-chain weights.

pub mod scores;
