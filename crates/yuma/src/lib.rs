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
//! callgrind instructions of one epoch on one thread, input generation excluded,
//! `valgrind --tool=callgrind --toggle-collect='agora_yuma::epoch::epoch'
//! target/release/examples/profile_epoch classic 4096 256 1 1`, before this round with
//! `--toggle-collect='agora_yuma::epoch::run_epoch_with*'`; the per-stage split from a
//! `--profile bench` build): classic ~360M (482M before), Yuma3 ~288M (389M).
//! Classic: the bond stages ~206M (the dense EMA walk ~97M, about 95 instructions per column:
//! the `W̄ A` product, its column division, the `alpha` product, the `B` column division and
//! the `1 - alpha` product, each with subtensor's floor; scattering each `W̄` row by column
//! ~20M; dividends with the stored rows ~70M: two column divisions, two products and a store
//! per entry; bond column sums ~7M), consensus ~67M (gathering the keys ~26M, per-column radix
//! selection ~40M), masking with the row normalisation ~51M, clipping ~28M, validation ~5M.
//! Yuma3 spends ~135M in its bond stages. What is left per entry is mostly the fixed-point
//! arithmetic itself: 64x64-bit products and reciprocal divisions, which baseline x86-64 SIMD
//! cannot do, so these loops stay scalar. This round: the dense bond walk; weights masked
//! into per-range slots; the voting rows' entries counted while masking (no counts at all for
//! dense votes); consensus key segments padded by a cache line (2^k-key segments all fell
//! into two L1 sets, which made the gather memory-bound); the selection's score range from
//! bitwise folds; branch-free clipping; stored rows written without capacity checks; the pool.
//!
//! Timings, all on the shared 2-core Xeon while other builds kept the load average at 7 to 10
//! (a process got about half a core; only comparisons within one run mean much). Interleaved
//! runs, three rounds, of the example before (commit `7564922`) and after
//! (`profile_epoch <mode> 4096 256 30 <threads>`), wall / CPU time per epoch (`/usr/bin/time`,
//! user + system):
//!
//! | case              | threads | before                 | after                 |
//! |-------------------|---------|------------------------|-----------------------|
//! | classic/4096x256  | 1       | 79-105 ms / 51-53 ms   | 60-71 ms / 30-36 ms   |
//! | classic/4096x256  | 2       | 123-130 ms / 56-59 ms  | 70-81 ms / 35-37 ms   |
//! | yuma3/4096x256    | 1       | 86-90 ms / 44-45 ms    | 48-50 ms / 25 ms      |
//! | yuma3/4096x256    | 2       | 80-107 ms / 48-49 ms   | 38-60 ms / 27-29 ms   |
//!
//! Criterion medians in the same conditions (`cargo bench -p agora-yuma`, before / after, run
//! interleaved): classic 102 / 60 ms, Yuma3 89 / 48 ms; with two threads classic 131 / 68 ms,
//! Yuma3 102 / 52 ms. QUIET_NUMBERS
//! The 18 ms target for 4096x256 on two cores is not met here: one classic epoch costs ~30 ms
//! of CPU time (Yuma3 ~25 ms), so even split perfectly over two free cores it takes ~15 ms
//! plus the cost of sharing (page faults and memory traffic of both threads), and on this
//! machine the other builds leave it far less than two cores. What remains to try: a dense
//! form of `W` itself (rows without the diagonal gap could then be walked by position in
//! clipping and consensus too), a narrower EMA (`u32`, as all entries are positive) to halve
//! its memory traffic, and fewer column divisions per entry in the dividends.
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
