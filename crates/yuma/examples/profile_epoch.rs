//! One epoch per case, for profilers: `cargo run --release -p agora-yuma --example profile_epoch
//! -- classic 4096 256 [repeats] [threads]` (modes: classic, yuma3, yuma3_liquid_alpha; one
//! thread unless told).

#[path = "../benches/support/synthetic.rs"]
mod synthetic;

use agora_yuma::{run_epoch_with, Parallelism};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map_or("classic", String::as_str);
    let n: u16 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(4096);
    let v: u16 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(256);
    let repeats: u32 = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(1);
    let threads: usize = args.get(5).and_then(|s| s.parse().ok()).unwrap_or(1);
    let parallelism = Parallelism::Threads(threads);
    let (yuma3, liquid_alpha) = match mode {
        "yuma3" => (true, false),
        "yuma3_liquid_alpha" => (true, true),
        _ => (false, false),
    };
    let inputs = synthetic::subnet(n, v, 0x5eed ^ u64::from(n));
    let p = synthetic::params(yuma3, liquid_alpha, v);
    let start = std::time::Instant::now();
    let mut checksum = 0u64;
    for _ in 0..repeats {
        let out =
            run_epoch_with(std::hint::black_box(&inputs), &p, parallelism).expect("valid inputs");
        checksum = checksum.wrapping_add(out.emission.iter().sum::<u64>());
    }
    let per = start.elapsed() / repeats.max(1);
    println!("{mode} {n}x{v}, {threads} thread(s): {per:?} per epoch (checksum {checksum})");
}
