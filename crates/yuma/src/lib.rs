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
//!   a per-row or per-column divisor take one multiplication. A bond row whose weights and
//!   bonds together have at least `n / 2` entries is walked densely, by position, side by side
//!   with the per-column data (no merge, no column lookups); the walk over all `n` columns
//!   then costs at most twice its entries. Likewise consensus gives every column room for
//!   every voter only when the voting rows are that dense, and counts the entries otherwise.
//! - [`run_epoch`] runs on the calling thread. [`run_epoch_with`] takes a [`Parallelism`]: with
//!   more than one thread the epoch runs on a persistent rayon pool of that many threads (one
//!   per thread count, started on first use), and large stages (from 2^16 entries) split
//!   validation, weight masking, consensus (by column ranges), clipping and the bond stages (by
//!   row ranges) among its threads, a few ranges per thread. The caller picks the thread
//!   count; this crate never asks the system. Ranges are fixed by the input alone and their
//!   partial results are combined in range order; the only cross-range reductions are
//!   saturating sums of non-negative values and maxima, which are order-independent, so the
//!   output never depends on the number of threads (a unit test compares 1, 2, 3 and 7 ranges
//!   on 1 to 3 threads, another the dense and the sparse walks).
//! - The large per-entry buffers (masked weights, dense EMA rows, selection keys) are kept on
//!   per-thread shelves and reused by the next call on the same thread, so that a steady stream
//!   of epochs does not fault fresh pages in every time; ranges masked in parallel write into
//!   their own slots of one buffer, so nothing is copied between stages. Only the returned
//!   bond rows are new (about a thousand page faults per epoch at 4096x256, taken by the
//!   threads that fill them).
//!
//! Where the time goes (4096 uids x 256 validators, dense rows: 1M weights and 1M bonds;
//! callgrind instructions of the first epoch on one thread, input generation excluded,
//! `valgrind --tool=callgrind --toggle-collect='agora_yuma::epoch::epoch'
//! target/release/examples/profile_epoch classic 4096 256 1 1`, before this round with
//! `--toggle-collect='agora_yuma::epoch::run_epoch_with*'`): classic ~320M (482M before this
//! round), Yuma3 ~258M (389M); later epochs, whose buffers come off the shelves, ~309M and
//! ~247M (before: no difference). Per stage, classic (from a `--profile bench` build): the
//! bond stages ~188M (the dense EMA walk ~92M, about 90 instructions per column: the `W̄ A`
//! product, its column division, the `alpha` product, the `B` column division and the
//! `1 - alpha` product, each floored as subtensor does; dividends with the stored rows ~66M:
//! two column divisions, two products and a store per entry; copying the `W̄` rows, the bond
//! column sums and the buffers ~30M), consensus ~67M (gathering the keys ~26M, per-column radix
//! selection ~41M), masking with the row normalisation ~32M, clipping ~24M, validation ~5M.
//! Yuma3 spends ~126M in its bond stages (EMA walk ~53M). What is left per entry is mostly the
//! fixed-point arithmetic itself: 64x64-bit products and reciprocal divisions, which baseline
//! x86-64 SIMD cannot do, so these loops stay scalar.
//!
//! This round: the dense bond walk (a validator's weight row, all columns but its own, is
//! copied in two runs, and clipped by position likewise; a bond row holding every uid in order
//! is read in place); weights masked into per-range slots of one buffer, rows set after the
//! latest registration copied whole; the voting rows' entries counted while masking, and no
//! counts at all for dense votes;
//! consensus key segments padded by a cache line (segments of 2^k keys all fell into two L1
//! sets, which made the gather memory-bound); the selection's score range from bitwise folds
//! (64-bit minima did not vectorise); branch-free clipping; a reciprocal division without the
//! variable shift; stored rows written without capacity checks by the threads that fill them;
//! column indices from open ranges (inclusive ranges cost a flag per step); the rayon pool
//! instead of scoped threads per stage, whose helpers, started per stage, bought nothing here.
//!
//! Timings, all on the shared 2-core Xeon while other builds kept the load average at 8 to 10
//! (a process got about half a core; only comparisons within one run mean much). Interleaved
//! runs, three rounds, of the example before (commit `7564922`) and after
//! (`profile_epoch <mode> 4096 256 30 <threads>`), wall / CPU time per epoch (`/usr/bin/time`,
//! user + system, over 30 epochs):
//!
//! | case              | threads | before                 | after                 |
//! |-------------------|---------|------------------------|-----------------------|
//! | classic/4096x256  | 1       | 104-105 ms / 51-53 ms  | 52-58 ms / 26-29 ms   |
//! | classic/4096x256  | 2       | 116-122 ms / 55-57 ms  | 70-75 ms / 34-36 ms   |
//! | yuma3/4096x256    | 1       | 85-88 ms / 43-45 ms    | 47-50 ms / 24-25 ms   |
//! | yuma3/4096x256    | 2       | 105-108 ms / 47-49 ms  | 55-67 ms / 29 ms      |
//!
//! In a lighter moment (load average about 2.5, an earlier build of this round at ~33 ms of CPU
//! per classic epoch) two threads took 22.9 ms against 32.9 ms on one; the build before this
//! round took 53-54 ms either way. Criterion medians, same conditions as the table
//! (`cargo bench -p agora-yuma`, before / after, run interleaved): classic 99.7 / 56.0 ms,
//! Yuma3 90.1 / 48.9 ms; with two threads classic 121.6 / 63.2 ms, Yuma3 81.0 / 70.8 ms (the
//! last pair straddled a load spike: 57-79 ms after, 78-84 ms before; an earlier run of the
//! same pair gave 100.8 / 52.2 ms).
//!
//! The 18 ms target for 4096x256 on two cores is not met here: one classic epoch costs about
//! 26-29 ms of CPU time (Yuma3 about 24-25 ms), so even with two free cores and perfect
//! scaling it would take 13-15 ms, and sharing costs (page faults for the returned rows, memory
//! traffic of both threads) ate about a third in the lighter moment; under the usual load
//! here it gets far less than two cores, and two threads are slower than one (each stage
//! waits for a range whose thread the scheduler has set aside). What remains to try: a dense form of `W` itself
//! (clipping and consensus could then walk rows by position too), a narrower EMA (`u32`, its
//! entries being positive) to halve its memory traffic, and fewer column divisions per entry
//! in the dividends.
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
