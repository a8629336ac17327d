//! Yuma Consensus as a pure function.
//!
//! [`run_epoch`] turns a subnet's state ([`EpochInputs`]) and hyperparameters ([`YumaParams`])
//! into everything an epoch stores and emits ([`EpochOutputs`]): consensus, incentive,
//! dividends, validator trust, new validator permits, bonds and the per-uid emission in rao.
//! It covers classic bonds and Yuma3 bonds with or without liquid alpha, the stake threshold,
//! the owner's exemptions and the commit-reveal column mask.
//!
//! Invariants:
//! - Bit-exact with subtensor's production sparse epoch at commit `14bc6f9f`: the same I32F32 /
//!   I64F64 / I96F32 fixed-point operations with the same rounding (multiplications floor,
//!   divisions truncate, `safe_div` gives 0 on a zero divisor or overflow), the same order of
//!   masks, and outputs in the exact `u16` / rao form the chain stores, bond rows in stored
//!   order. Where subtensor would overflow (sums beyond the fixed-point range, which realistic
//!   inputs never reach) this crate saturates instead.
//! - Pure and deterministic: no I/O, no floating point, no hash-map iteration.
//! - Never panics: malformed inputs (lengths, uids out of range, duplicate uids in a row,
//!   negative stake) are rejected with a [`YumaError`].
//! - Cost is linear in the number of weight and bond entries: rows are walked in flat arrays,
//!   each column's consensus is found by a radix selection over its entries, and divisions by
//!   a per-row or per-column divisor take one multiplication.
//! - [`run_epoch`] runs on the calling thread. [`run_epoch_with`] takes a [`Parallelism`]: with
//!   more than one thread, large stages (from 2^19 entries) split validation, weight masking,
//!   consensus (by column ranges), clipping and the bond stages (by row ranges) over scoped std
//!   threads. The caller picks the thread count; this crate never asks the system. Ranges are
//!   fixed by the input alone and their partial results are combined in range order; the only
//!   cross-range reductions are saturating sums of non-negative values and maxima, which are
//!   order-independent, so the output never depends on the number of threads (a unit test
//!   compares 1, 2, 3 and 7 ranges on 1 to 3 threads).
//! - The large per-entry buffers (masked weights, EMA rows, selection keys) are kept on
//!   per-thread shelves and reused by the next call on the same thread, so that a steady stream
//!   of epochs does not fault fresh pages in every time (only the returned bond rows are new).
//!
//! Where the time goes (4096 uids x 256 validators, dense rows: 1M weights and 1M bonds;
//! callgrind instructions of one epoch on one thread, input generation excluded,
//! `valgrind --tool=callgrind target/release/examples/profile_epoch classic 4096 256 1`):
//! classic ~482M (715M before this round), Yuma3 ~390M (519M). Classic: the bond stages ~273M
//! (the EMA walk over each weight row and bond row ~175M: per entry two products, the `ΔB` and
//! `B` column divisions and the merge; dividends with the stored rows ~90M: two column
//! divisions, two products and a push per entry; bond column sums ~7M), consensus ~120M
//! (counting ~19M, gathering the keys ~43M, per-column radix selection ~58M), masking with the
//! row normalisation ~49M, clipping ~31M, validation ~5M. Yuma3 spends ~180M in its bond
//! stages (EMA ~119M). This round: weights normalised once instead of on each of four reads;
//! the clipping pass yields the classic `ΔB` column sums (the ranks when beta = 1, or
//! `sum W A` when beta = 0); EMA rows built in one merge walk with both addends computed in
//! place; operands in `[0, 1)` multiplied in 64 bits; a column division is one comparison and
//! one reciprocal multiplication; consensus keys carry the voter's stake.
//!
//! Timings, all on the shared 2-core Xeon while other builds kept the load average at 9 to 12
//! (so a process gets about a third of a core; only comparisons within one run mean much).
//! Interleaved runs of the example before (commit `caeb9a1`, which threaded large stages on
//! both cores) and after (`profile_epoch <mode> <n> <v> <repeats> <threads>`), wall / CPU time
//! per epoch (`/usr/bin/time`, user + system), two rounds:
//!
//! | case              | before, 2 threads         | after, 1 thread          | after, 2 threads         |
//! |-------------------|---------------------------|--------------------------|--------------------------|
//! | classic/256x64    | 3.1-3.3 ms / 1.0 ms       | 2.0-2.4 ms / 0.70 ms     | 2.0-2.3 ms / 0.70 ms     |
//! | classic/1024x128  | 27-29 ms / 8.3 ms         | 18-20 ms / 6.0-6.5 ms    | 19 ms / 6.0-6.3 ms       |
//! | classic/4096x256  | 239-248 ms / 74-75 ms     | 160-169 ms / 54 ms       | 189-194 ms / 59 ms       |
//! | yuma3/256x64      | 2.2-2.4 ms / 0.70 ms      | 1.8-2.0 ms / 0.60 ms     | 1.5-1.8 ms / 0.60 ms     |
//! | yuma3/1024x128    | 15-18 ms / 5.8 ms         | 13-16 ms / 5.3 ms        | 14-17 ms / 5.3 ms        |
//! | yuma3/4096x256    | 152-184 ms / 54-55 ms     | 117-141 ms / 47.5 ms     | 149-177 ms / 50-51 ms    |
//!
//! Criterion medians after (`cargo bench -p agora-yuma`, same load): classic 2.06 / 17.9 /
//! 156 ms, Yuma3 1.79 / 15.5 / 119 ms, Yuma3 with liquid alpha 9.6 / 78 / 567 ms (256x64 /
//! 1024x128 / 4096x256); with two threads 4096x256 takes 180 ms classic and 146 ms Yuma3 (under
//! this load a helper thread waits to be scheduled). The 18 ms target for 4096x256 on two cores
//! is not met: one classic epoch costs ~54 ms of CPU time here (Yuma3 ~47 ms), ~27 ms even if
//! split perfectly over two cores, so the per-entry work has to shrink by about another third
//! (and the machine be less loaded). What remains to try: keeping `W_b * A` from the clipping pass instead of
//! recomputing it in the EMA walk, one side-by-side column record for every per-entry lookup,
//! a narrower EMA (`u32` with an offset) to halve its memory traffic, and loops over dense
//! rows that the compiler can vectorise (32 x 32-bit products).
//!
//! Tests: `cargo test -p agora-yuma` (the shared vectors when present, cases transcribed from
//! subtensor's tests, degenerate subnets, errors, properties). Benchmarks:
//! `cargo bench -p agora-yuma`.
//!
//! No feature flags.
#![cfg_attr(
    not(test),
    deny(
        clippy::arithmetic_side_effects,
        clippy::unwrap_used,
        clippy::indexing_slicing,
        clippy::expect_used,
        clippy::panic
    )
)]

mod epoch;
mod error;
mod fx;
mod median;
mod par;
mod pool;
mod sparse;
mod types;

pub use epoch::{run_epoch, run_epoch_with};
pub use error::YumaError;
pub use types::{EpochInputs, EpochOutputs, FixedBits, Parallelism, SparseRow, YumaParams};
