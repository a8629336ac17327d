//! The scheduler thread: admits queued requests, feeds prompts in chunks and decodes every
//! running sequence together, one forward call per step.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc::UnboundedSender;

use super::model::{KvCache, Segment};
use super::sampling::{log_softmax, top_k, Sampler, SamplingParams};
use super::stops::{Progress, TextTracker};
use super::types::{
    FinishReason, Finished, GenerateEvent, GenerateRequest, TokenEvent, TokenLogprob,
};
use super::Shared;

/// An admitted request on its way to the scheduler.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) req: GenerateRequest,
    pub(crate) seed: u64,
    pub(crate) events: UnboundedSender<GenerateEvent>,
    pub(crate) admitted: Instant,
}

/// A running sequence.
#[derive(Debug)]
struct Sequence {
    job: Job,
    cache: KvCache,
    /// Prompt tokens already fed.
    fed: usize,
    generated: Vec<u32>,
    sampler: Sampler,
    tracker: TextTracker,
    first_token_at: Option<Instant>,
}

impl Sequence {
    fn new(job: Job) -> Self {
        let params = SamplingParams {
            temperature: job.req.temperature,
            top_p: job.req.top_p,
            top_k: job.req.top_k,
        };
        Sequence {
            sampler: Sampler::new(params, job.seed),
            tracker: TextTracker::new(job.req.stop.clone()),
            cache: KvCache::default(),
            fed: 0,
            generated: Vec::new(),
            first_token_at: None,
            job,
        }
    }
}

/// Runs until the engine is dropped (its sender disconnects).
pub(crate) fn run(shared: Arc<Shared>, jobs: Receiver<Job>) {
    let mut waiting: VecDeque<Job> = VecDeque::new();
    let mut running: Vec<Sequence> = Vec::new();
    let release = |n: usize| {
        shared.in_flight.fetch_sub(n, Ordering::SeqCst);
    };
    loop {
        if running.is_empty() && waiting.is_empty() {
            match jobs.recv() {
                Ok(job) => waiting.push_back(job),
                Err(_) => return,
            }
        }
        loop {
            match jobs.try_recv() {
                Ok(job) => waiting.push_back(job),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    release(waiting.len() + running.len());
                    return;
                }
            }
        }
        // Callers that went away cancel their requests.
        let before = running.len() + waiting.len();
        running.retain(|s| !s.job.events.is_closed());
        waiting.retain(|j| !j.events.is_closed());
        release(before - running.len() - waiting.len());
        while running.len() < shared.opts.max_concurrent {
            match waiting.pop_front() {
                Some(job) => running.push(Sequence::new(job)),
                None => break,
            }
        }
        if running.is_empty() {
            continue;
        }
        let finished = step(&shared, &mut running);
        let mut done = 0;
        for idx in finished.into_iter().rev() {
            running.swap_remove(idx);
            done += 1;
        }
        release(done);
    }
}

/// One forward call over every running sequence. Returns the indices of the sequences
/// that are finished (their last event sent).
fn step(shared: &Shared, running: &mut [Sequence]) -> Vec<usize> {
    let mut budget = shared.opts.prefill_chunk.max(1);
    let mut feeds: Vec<Vec<u32>> = Vec::with_capacity(running.len());
    for seq in running.iter() {
        let prompt = &seq.job.req.prompt;
        let feed = if seq.fed < prompt.len() {
            let n = (prompt.len() - seq.fed).min(budget);
            budget -= n;
            prompt[seq.fed..seq.fed + n].to_vec()
        } else {
            // Decoding: the last sampled token goes in next.
            seq.generated.last().map(|&t| vec![t]).unwrap_or_default()
        };
        feeds.push(feed);
    }
    let mut segments: Vec<Segment<'_>> = running
        .iter_mut()
        .zip(&feeds)
        .map(|(seq, feed)| {
            let completes_prompt = seq.fed + feed.len() >= seq.job.req.prompt.len();
            Segment {
                tokens: feed,
                logits_from: match completes_prompt && !feed.is_empty() {
                    true => feed.len() - 1,
                    false => feed.len(),
                },
                cache: &mut seq.cache,
            }
        })
        .collect();
    let outcome = shared.model.forward(&mut segments);
    drop(segments);
    let logits = match outcome {
        Ok(l) => l,
        Err(e) => {
            for seq in running.iter() {
                let _ = seq.job.events.send(GenerateEvent::Error(e.clone()));
            }
            return (0..running.len()).collect();
        }
    };
    let mut finished = Vec::new();
    for (idx, ((seq, feed), rows)) in running.iter_mut().zip(&feeds).zip(logits).enumerate() {
        if seq.fed < seq.job.req.prompt.len() {
            seq.fed += feed.len();
        }
        if let Some(row) = rows.last() {
            if !accept_token(shared, seq, row) {
                finished.push(idx);
            }
        }
    }
    finished
}

/// Samples from `logits`, sends the events. Returns false when the sequence is finished.
fn accept_token(shared: &Shared, seq: &mut Sequence, logits: &[f32]) -> bool {
    let now = Instant::now();
    let first_at = *seq.first_token_at.get_or_insert(now);
    let id = seq.sampler.sample(logits);
    let req = &seq.job.req;
    if !req.ignore_eos && shared.codec.eos_ids().contains(&id) {
        // Text held back (a possible stop-sequence prefix, an unfinished character) is
        // released now: the completion is the decoded tokens, whole.
        let tail = match shared.codec.decode(&seq.generated, true) {
            Ok(text) => match seq.tracker.advance(&text, true) {
                Progress::Continue { delta } | Progress::Stop { delta, .. } => delta,
            },
            Err(_) => String::new(),
        };
        let mut finished = finish(seq, FinishReason::Stop, None, Some(id), first_at, now);
        finished.tail = tail;
        let _ = seq.job.events.send(GenerateEvent::Finished(finished));
        return false;
    }
    seq.generated.push(id);
    let (logprob, top_logprobs) = match req.logprobs {
        true => {
            let lp = log_softmax(logits);
            let alts = top_k(&lp, req.top_logprobs)
                .into_iter()
                .map(|(id, logprob)| TokenLogprob {
                    id,
                    token: shared.codec.token_text(id),
                    logprob,
                })
                .collect();
            (Some(lp[id as usize]), alts)
        }
        false => (None, Vec::new()),
    };
    let last = seq.generated.len() >= req.max_tokens;
    let text = match shared.codec.decode(&seq.generated, true) {
        Ok(t) => t,
        Err(e) => {
            let _ = seq.job.events.send(GenerateEvent::Error(e));
            return false;
        }
    };
    let (delta, stop) = match seq.tracker.advance(&text, last) {
        Progress::Continue { delta } => (delta, None),
        Progress::Stop { delta, stop } => (delta, Some(stop)),
    };
    let event = TokenEvent {
        index: seq.generated.len() - 1,
        id,
        token: shared.codec.token_text(id),
        text: delta,
        logprob,
        top_logprobs,
    };
    if seq.job.events.send(GenerateEvent::Token(event)).is_err() {
        return false;
    }
    let reason = match (&stop, last) {
        (Some(_), _) => FinishReason::Stop,
        (None, true) => FinishReason::Length,
        (None, false) => return true,
    };
    let finished = finish(seq, reason, stop, None, first_at, now);
    let _ = seq.job.events.send(GenerateEvent::Finished(finished));
    false
}

fn finish(
    seq: &Sequence,
    reason: FinishReason,
    stop_sequence: Option<String>,
    eos_token: Option<u32>,
    first_at: Instant,
    now: Instant,
) -> Finished {
    let n = seq.generated.len();
    let decode_secs = now.duration_since(first_at).as_secs_f64();
    Finished {
        tail: String::new(),
        finish_reason: reason,
        stop_sequence,
        eos_token,
        prompt_tokens: seq.job.req.prompt.len(),
        completion_tokens: n,
        time_to_first_token: first_at.duration_since(seq.job.admitted),
        total_time: now.duration_since(seq.job.admitted),
        decode_tokens_per_s: match (n > 1, decode_secs > 0.0) {
            (true, true) => (n - 1) as f64 / decode_secs,
            _ => 0.0,
        },
        seed: seq.job.seed,
    }
}
