//! The training subnet end to end in one process: honest rounds, bit-exact replay, and
//! every known attack scoring below every honest miner.

use agora_training::data::Corpus;
use agora_training::round::{
    train_round, MinerState, Ownership, Rejection, RoundInputs, RunConfig, ValidatorConfig,
};
use agora_training::sim::{Behaviour, Network};

fn corpus() -> Corpus {
    Corpus::synthetic(0, 200_000)
}

fn run(replication: usize) -> RunConfig {
    RunConfig {
        replication,
        ..RunConfig::tiny()
    }
}

#[test]
fn honest_rounds_lower_heldout_loss_and_replays_match() {
    let mut net = Network::new(
        run(1),
        ValidatorConfig::default(),
        corpus(),
        &[Behaviour::Honest; 3],
    )
    .unwrap();
    let first = net.validator().checkpoint().1;
    let mut before = None;
    let mut after = 0.0;
    let mut replays = 0;
    for _ in 0..3 {
        let rep = net.round().unwrap();
        before.get_or_insert(rep.heldout_before);
        after = rep.heldout_after;
        for v in &rep.verdicts {
            assert_eq!(v.rejection, None, "{v:?}");
            if let Some(ok) = v.replay_ok {
                assert!(ok, "honest replay must match bit for bit: {v:?}");
                replays += 1;
            }
        }
    }
    assert_eq!(replays, 3, "one replay per round");
    let before = before.unwrap();
    assert!(after < before - 0.3, "held-out {before} -> {after}");
    assert_ne!(net.validator().checkpoint().1, first);
    let w = net.validator().weights();
    assert_eq!(w.len(), 3);
    assert!(w.iter().all(|&(_, x)| x > 0.1), "{w:?}");
    let bytes = net.bytes.last().unwrap();
    assert!(bytes.upload > 0 && bytes.download > 0);
}

#[test]
fn the_same_state_and_inputs_give_the_same_update_bytes() {
    let run = RunConfig {
        density: Some(0.05),
        ..run(1)
    };
    let corpus = corpus();
    let params = run.initial_params().unwrap();
    let id = agora_training::checkpoint::checkpoint_id(&run.model, &params).unwrap();
    let ownership = Ownership::assign(run.model.num_local_experts, &[0, 1], 1);
    let inputs = RoundInputs {
        run: &run,
        corpus: &corpus,
        base: &params,
        base_id: id,
        ownership: &ownership,
        round: 0,
        round_seed: 42,
    };
    let state = MinerState::fresh(&params, &ownership, 1);
    let (a, sa) = train_round(&inputs, 1, 1, &state, &mut |_, _| {}).unwrap();
    let (b, sb) = train_round(&inputs, 1, 1, &state, &mut |_, _| {}).unwrap();
    assert_eq!(a.encode(), b.encode());
    assert_eq!(sa.hash(), sb.hash());
    // A second round continues from the carried optimizer state and residual.
    let next = RoundInputs { round: 1, ..inputs };
    let (c, _) = train_round(&next, 1, 1, &sa, &mut |_, _| {}).unwrap();
    let (d, _) = train_round(&next, 1, 1, &state, &mut |_, _| {}).unwrap();
    assert_ne!(
        c.encode(),
        d.encode(),
        "the committed state matters to the replay"
    );
    // The miner sent only what it owns, sparsely.
    assert!(a.tensors.keys().all(|n| ownership.owns(1, n)));
    assert!(a.encode().len() * 5 < 4 * params.len());
}

/// With one owner per expert, the outer step (lr 1, no momentum) applies each expert's
/// change from its owner in full (no averaging with the miner that does not send it) and
/// averages the backbone, router included.
#[test]
fn experts_come_whole_from_their_owner_and_the_backbone_is_averaged() {
    use agora_training::round::{Commit, Validator};
    use std::collections::BTreeMap;
    let run = run(1);
    let corpus = corpus();
    let base = run.initial_params().unwrap();
    let mut validator = Validator::new(
        run.clone(),
        ValidatorConfig::default(),
        &corpus,
        base.clone(),
    )
    .unwrap();
    let ownership = Ownership::assign(run.model.num_local_experts, &[0, 1], 1);
    let inputs = RoundInputs {
        run: &run,
        corpus: &corpus,
        base: &base,
        base_id: validator.checkpoint().1,
        ownership: &ownership,
        round: 0,
        round_seed: validator.round_seed(),
    };
    let mut reveals = BTreeMap::new();
    let mut commits = Vec::new();
    let mut states = BTreeMap::new();
    for uid in [0u16, 1] {
        let state = MinerState::fresh(&base, &ownership, uid);
        let (update, _) = train_round(&inputs, uid, uid, &state, &mut |_, _| {}).unwrap();
        commits.push(Commit {
            uid,
            update_hash: update.commitment(),
            state_hash: state.hash(),
        });
        reveals.insert(uid, update);
        states.insert(uid, state);
    }
    let target = validator.spot_check_target(&[0, 1]).unwrap();
    let report = validator
        .finish_round(&corpus, &ownership, &commits, &reveals, states.get(&target))
        .unwrap();
    assert!(
        report.verdicts.iter().all(|v| v.rejection.is_none()),
        "{report:?}"
    );
    let deltas: Vec<_> = [0u16, 1].iter().map(|u| reveals[u].to_dense()).collect();
    let after = validator.checkpoint().0;
    let expert = "model.layers.1.block_sparse_moe.experts.3.w1.weight";
    let owner = usize::from(ownership.owners_of(3)[0]);
    assert!(!deltas[1 - owner].tensors.contains_key(expert));
    for (i, &x) in after.tensors[expert].data.iter().enumerate() {
        let want = base.tensors[expert].data[i] + deltas[owner].tensors[expert].data[i];
        assert!((x - want).abs() < 1e-6);
    }
    for shared in [
        "model.layers.0.self_attn.q_proj.weight",
        "model.layers.0.block_sparse_moe.gate.weight",
    ] {
        for (i, &x) in after.tensors[shared].data.iter().enumerate() {
            let mean =
                (deltas[0].tensors[shared].data[i] + deltas[1].tensors[shared].data[i]) / 2.0;
            assert!(
                (x - (base.tensors[shared].data[i] + mean)).abs() < 1e-6,
                "{shared}"
            );
        }
    }
}

fn adversary_scores_lowest(bad: Behaviour, rounds: usize) -> Vec<Option<Rejection>> {
    let mut behaviours = vec![Behaviour::Honest; 3];
    behaviours.push(bad);
    let mut net = Network::new(run(4), ValidatorConfig::default(), corpus(), &behaviours).unwrap();
    let mut rejections = Vec::new();
    for _ in 0..rounds {
        let rep = net.round().unwrap();
        for v in &rep.verdicts {
            if v.uid == 3 {
                rejections.push(v.rejection.clone());
            } else {
                assert_eq!(
                    v.rejection, None,
                    "honest miner rejected under {bad:?}: {v:?}"
                );
            }
        }
    }
    let scores = net.validator().scores();
    let honest_min = (0..3).map(|u| scores[&u]).fold(f64::INFINITY, f64::min);
    assert!(
        scores[&3] < honest_min,
        "{bad:?} scored {} against honest minimum {honest_min}; rejections {rejections:?}",
        scores[&3]
    );
    rejections
}

#[test]
fn noise_of_an_honest_norm_scores_lowest() {
    let r = adversary_scores_lowest(Behaviour::Noise, 4);
    assert!(r.iter().all(Option::is_some), "{r:?}");
}

#[test]
fn zeros_score_lowest() {
    let r = adversary_scores_lowest(Behaviour::Zeros, 3);
    assert!(r.iter().all(Option::is_some), "{r:?}");
    assert!(r.contains(&Some(Rejection::NormOutlier)), "{r:?}");
}

#[test]
fn a_copy_of_another_miner_scores_lowest() {
    let r = adversary_scores_lowest(Behaviour::Copy(0), 3);
    assert!(r.iter().all(Option::is_some), "{r:?}");
    assert!(r.contains(&Some(Rejection::Duplicate(0))), "{r:?}");
}

#[test]
fn a_rescaled_previous_aggregate_scores_lowest() {
    let r = adversary_scores_lowest(Behaviour::RescaledAggregate, 4);
    assert!(r.iter().all(Option::is_some), "{r:?}");
}

#[test]
fn training_on_the_wrong_data_scores_lowest() {
    adversary_scores_lowest(Behaviour::WrongData, 4);
}

#[test]
fn a_stale_checkpoint_scores_lowest() {
    // Every miner is replayed once per 4 rounds (4 miners); in round 0 a stale miner has
    // nothing older to train from, so its replay is only certain within rounds 1..8.
    let r = adversary_scores_lowest(Behaviour::Stale, 8);
    assert!(r.contains(&Some(Rejection::ReplayMismatch)), "{r:?}");
}

/// The benchmark through the test harness (the same code as `agora bench training`, with this
/// test binary re-run as the worker processes). Run with
/// `RAYON_NUM_THREADS=1 cargo test -p agora-training --test it -- --ignored bench_ --nocapture`.
#[test]
#[ignore = "benchmark: takes minutes"]
fn bench_training_through_the_harness() {
    use agora_training::bench::{run_bench, BenchSettings, CorpusSource, WorkerJob};
    use agora_training::config::ModelConfig;
    use agora_training::data::{default_cache_dir, BatchShape};
    use agora_training::optim::AdamWConfig;
    let env = |k: &str, d: f64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let mut model = ModelConfig::small(env("BENCH_D", 64.0) as usize, 2, 4, 2);
    model.max_position_embeddings = 64;
    let settings = BenchSettings {
        run: RunConfig {
            run: 1,
            model,
            init_seed: 0,
            inner: AdamWConfig::default(),
            shape: BatchShape {
                batch: 8,
                seq_len: 64,
            },
            inner_steps: env("BENCH_H", 50.0) as usize,
            outer_lr: env("BENCH_OUTER_LR", 1.0),
            outer_momentum: env("BENCH_OUTER_MOMENTUM", 0.0),
            replication: env("BENCH_REPLICATION", 1.0) as usize,
            density: None,
            values: Default::default(),
        },
        miners: 2,
        rounds: env("BENCH_ROUNDS", 8.0) as u64,
        density: env("BENCH_DENSITY", 0.25),
        eval_batches: 32,
        corpus: CorpusSource::choose(&default_cache_dir(), false, 2_000_000).unwrap(),
        parts: Vec::new(),
        validator: Default::default(),
    };
    let exe = std::env::current_exe().unwrap();
    let spawn = |job: &WorkerJob| {
        std::process::Command::new(&exe)
            .args([
                "--ignored",
                "--exact",
                "bench_worker_process",
                "--test-threads=1",
            ])
            .env("RAYON_NUM_THREADS", "1")
            .env(
                "AGORA_BENCH_WORKER_JOB",
                serde_json::to_string(job).unwrap(),
            )
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
    };
    for m in run_bench(&settings, &spawn, &mut |msg| eprintln!("{msg}")).unwrap() {
        println!("{m}");
    }
}

/// One throughput worker of the harness benchmark (does nothing unless started by it).
#[test]
#[ignore = "started by bench_training_through_the_harness"]
fn bench_worker_process() {
    if let Ok(job) = std::env::var("AGORA_BENCH_WORKER_JOB") {
        let job = serde_json::from_str(&job).unwrap();
        agora_training::bench::run_worker(&job).unwrap();
    }
}
