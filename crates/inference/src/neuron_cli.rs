//! `agora miner inference` and `agora validator inference`.

use crate::attestation::TeeTrust;
use crate::engine::{Engine, LoadOptions};
use crate::miner::{Behaviour, InferenceMiner};
use crate::private::Enclave;
use crate::validator::InferenceValidator;
use agora_subnet::cli::{
    print_miner_ready, ready_line, shutdown_signal, AxonArgs, NeuronArgs, ValidatorLoopArgs,
};
use agora_subnet::{run_axon, run_validator, SubnetError};
use std::path::PathBuf;
use std::sync::Arc;

/// The model a neuron loads.
#[derive(clap::Args, Debug, Clone)]
pub struct ModelArgs {
    /// Local model directory (GGUF, or safetensors with config.json; tokenizer.json).
    #[arg(long)]
    pub model: PathBuf,
    /// The model id served and asked for (default: the directory's own name for it).
    #[arg(long)]
    pub served_model_name: Option<String>,
    /// Sequences decoded together.
    #[arg(long, default_value_t = 8)]
    pub max_concurrent: usize,
}

impl ModelArgs {
    async fn load(&self) -> Result<Arc<Engine>, SubnetError> {
        let opts = LoadOptions {
            max_concurrent: self.max_concurrent.max(1),
            model_id: self.served_model_name.clone(),
            ..LoadOptions::default()
        };
        let dir = self.model.clone();
        let engine = tokio::task::spawn_blocking(move || Engine::load(&dir, &opts))
            .await
            .map_err(|e| SubnetError::Usage(e.to_string()))?
            .map_err(|e| SubnetError::Usage(format!("--model {}: {e}", self.model.display())))?;
        tracing::info!(
            model = engine.model_id(),
            arch = ?engine.info().arch,
            quantization = engine.info().quantization,
            kernels = ?agora_kernels::KernelKind::detect(),
            "model loaded"
        );
        Ok(Arc::new(engine))
    }
}

/// Arguments of an inference miner.
#[derive(clap::Args, Debug, Clone)]
pub struct MinerArgs {
    /// Chain, subnet and keys.
    #[command(flatten)]
    pub neuron: NeuronArgs,
    /// The axon.
    #[command(flatten)]
    pub axon: AxonArgs,
    /// The model served.
    #[command(flatten)]
    pub model: ModelArgs,
    /// `honest`, or a cheat for testing validators: `truncate`, `fabricate`.
    #[arg(long, default_value = "honest")]
    pub behaviour: Behaviour,
    /// Private (end-to-end encrypted) serving from a TEE.
    #[command(flatten)]
    pub tee: TeeArgs,
}

/// How a miner attests its enclave for private requests.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TeeArgs {
    /// Serve private requests (`POST /v1/private/chat/completions`) with an HPKE key bound
    /// to this machine's TEE evidence, published at `GET /v1/attestation` and on chain.
    #[arg(long)]
    pub tee: bool,
    /// With `--tee`: the collateral verifiers need with this machine's evidence — Intel's
    /// collateral JSON (PCK CRL, TCB info, QE identity, from a PCCS) or AMD's VCEK and ASK
    /// certificates (PEM). Read again at each attestation, so a refreshed file is used.
    #[arg(long, requires = "tee")]
    pub tee_collateral: Option<PathBuf>,
    /// With `--tee`: the guest kernel's configfs-tsm report directory.
    #[arg(long, requires = "tee", default_value = crate::tsm::DEFAULT_TSM_REPORT_DIR)]
    pub tee_tsm_dir: PathBuf,
    /// INSECURE, development only: attest with the public test PKI instead of TEE hardware.
    /// Only gateways and clients started with `--insecure-mock-tee` accept such evidence.
    #[cfg(feature = "insecure-mock-tee")]
    #[arg(long = "insecure-mock-tee", conflicts_with = "tee")]
    pub insecure_mock_tee: bool,
    /// With `--insecure-mock-tee`: sign with the test PKI derived from this 32-byte hex seed
    /// instead of the development one (evidence that development verifiers reject).
    #[cfg(feature = "insecure-mock-tee")]
    #[arg(
        long = "insecure-mock-tee-seed",
        requires = "insecure_mock_tee",
        value_name = "HEX"
    )]
    pub insecure_mock_tee_seed: Option<String>,
    /// With `--insecure-mock-tee`: publish another key than the attested one, as a host
    /// swapping in its own key would (evidence whose binding verifiers reject).
    #[cfg(feature = "insecure-mock-tee")]
    #[arg(long = "insecure-mock-tee-swap-key", requires = "insecure_mock_tee")]
    pub insecure_mock_tee_swap_key: bool,
    /// TEST BEHAVIOUR, with `--insecure-mock-tee`: the enclave answers private requests with
    /// this behaviour (e.g. `fabricate`) while the host serves plaintext honestly — an
    /// attested key that does not serve the model, which validators' private challenges
    /// must catch.
    #[cfg(feature = "insecure-mock-tee")]
    #[arg(
        long = "insecure-mock-tee-private-behaviour",
        requires = "insecure_mock_tee",
        value_name = "BEHAVIOUR"
    )]
    pub insecure_mock_tee_private_behaviour: Option<Behaviour>,
}

impl TeeArgs {
    /// How the enclave behaves (honestly, unless a test behaviour was asked for).
    pub fn private_behaviour(&self, host: Behaviour) -> Behaviour {
        #[cfg(feature = "insecure-mock-tee")]
        if let Some(b) = self.insecure_mock_tee_private_behaviour {
            return b;
        }
        host
    }

    /// The enclave these flags ask for, if any.
    pub fn enclave(&self, netuid: u16) -> Result<Option<Arc<Enclave>>, SubnetError> {
        #[cfg(feature = "insecure-mock-tee")]
        if self.insecure_mock_tee {
            return self.mock_enclave(netuid).map(Some);
        }
        if self.tee {
            let source = hardware_evidence_source(self)?;
            let enclave = Enclave::start(source.as_ref(), netuid)
                .map_err(|e| SubnetError::Usage(format!("--tee: {e}")))?;
            return Ok(Some(Arc::new(enclave)));
        }
        let _ = netuid;
        Ok(None)
    }

    #[cfg(feature = "insecure-mock-tee")]
    fn mock_enclave(&self, netuid: u16) -> Result<Arc<Enclave>, SubnetError> {
        use agora_tee::mock::{MockEvidenceSource, MockPki, DEV_MEASUREMENT, DEV_SEED, DEV_TCB};
        let usage = |e: String| SubnetError::Usage(format!("--insecure-mock-tee: {e}"));
        let seed = match &self.insecure_mock_tee_seed {
            None => DEV_SEED,
            Some(h) => {
                let mut seed = [0u8; 32];
                hex::decode_to_slice(h, &mut seed)
                    .map_err(|e| usage(format!("seed must be 64 hex digits: {e}")))?;
                seed
            }
        };
        let pki = MockPki::from_seed(seed, DEV_TCB).map_err(|e| usage(e.to_string()))?;
        let source = MockEvidenceSource::new(pki, agora_tee::Platform::AmdSevSnp, DEV_MEASUREMENT)
            .map_err(|e| usage(e.to_string()))?;
        tracing::warn!(
            "INSECURE: attesting with the test PKI (--insecure-mock-tee); development only"
        );
        let enclave = Enclave::start(&source, netuid).map_err(|e| usage(e.to_string()))?;
        if !self.insecure_mock_tee_swap_key {
            return Ok(Arc::new(enclave));
        }
        let host_key = agora_tee::channel::EnclaveKeypair::derive(&rand::random::<[u8; 32]>())
            .map_err(|e| usage(e.to_string()))?;
        let mut bundle = enclave.bundle().clone();
        bundle.hpke_public_key = host_key.public_key().to_vec();
        Ok(Arc::new(Enclave::with_bundle(host_key, bundle, netuid)))
    }
}

/// The bytes of `--tee-policy`, when given.
fn read_tee_policy(path: Option<&std::path::Path>) -> Result<Option<Vec<u8>>, SubnetError> {
    path.map(|p| {
        std::fs::read(p)
            .map_err(|e| SubnetError::Usage(format!("--tee-policy {}: {e}", p.display())))
    })
    .transpose()
}

/// Evidence from this machine's TEE: the guest kernel's configfs-tsm report interface
/// (TDX or SEV-SNP), with the verifier's collateral from `--tee-collateral`.
fn hardware_evidence_source(
    args: &TeeArgs,
) -> Result<Box<dyn agora_tee::EvidenceSource>, SubnetError> {
    let collateral = args.tee_collateral.as_ref().ok_or_else(|| {
        SubnetError::Usage(
            "--tee needs --tee-collateral FILE: Intel's collateral JSON (from a PCCS) or AMD's VCEK and ASK PEM"
                .into(),
        )
    })?;
    let source = crate::tsm::ConfigfsTsm::open(&args.tee_tsm_dir, collateral)
        .map_err(|e| SubnetError::Usage(format!("--tee: {e}")))?;
    Ok(Box::new(source))
}

/// Arguments of an inference validator.
#[derive(clap::Args, Debug, Clone)]
pub struct ValidatorArgs {
    /// Chain, subnet and keys.
    #[command(flatten)]
    pub neuron: NeuronArgs,
    /// Pacing.
    #[command(flatten)]
    pub pacing: ValidatorLoopArgs,
    /// The validator's own copy of the model miners claim to serve.
    #[command(flatten)]
    pub model: ModelArgs,
    /// Completion tokens per challenge.
    #[arg(long, default_value_t = 16)]
    pub max_tokens: u32,
    /// Share of greedy challenges (the rest are sampled).
    #[arg(long, default_value_t = 0.5)]
    pub greedy_share: f64,
    /// Rounds a miner scores zero after a failed check.
    #[arg(long, default_value_t = 8)]
    pub jail_rounds: u32,
    /// What TEE evidence miners that publish an attestation digest must present.
    #[command(flatten)]
    pub tee: ValidatorTeeArgs,
}

/// The TEE evidence an inference validator accepts: the subnet's policy (the same file as
/// the gateways' `--tee-policy`) over the vendors' roots.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ValidatorTeeArgs {
    /// The subnet's TEE policy JSON (default: UpToDate TCB only, no debug, any image).
    #[arg(long)]
    pub tee_policy: Option<PathBuf>,
    /// INSECURE, development only: also accept evidence signed by the public test PKI
    /// (`agora miner inference --insecure-mock-tee`).
    #[cfg(feature = "insecure-mock-tee")]
    #[arg(long = "insecure-mock-tee")]
    pub insecure_mock_tee: bool,
    /// Seconds a verified bundle is trusted before it is fetched and verified again.
    #[arg(long, default_value_t = 300)]
    pub tee_reverify_s: u64,
    /// Seconds before a rejected bundle is fetched and checked again.
    #[arg(long, default_value_t = 60)]
    pub tee_retry_s: u64,
}

impl ValidatorTeeArgs {
    /// The trust these flags describe, for `netuid`.
    pub fn trust(&self, netuid: u16) -> Result<TeeTrust, SubnetError> {
        let policy = read_tee_policy(self.tee_policy.as_deref())?;
        #[cfg(feature = "insecure-mock-tee")]
        let test_pki = self.insecure_mock_tee;
        #[cfg(not(feature = "insecure-mock-tee"))]
        let test_pki = false;
        if test_pki {
            tracing::warn!("INSECURE: trusting the test PKI's TEE evidence (--insecure-mock-tee)");
        }
        let (policy, anchors) = agora_tee::subnet_trust(policy.as_deref(), test_pki)
            .map_err(|e| SubnetError::Usage(format!("TEE trust: {e}")))?;
        Ok(TeeTrust {
            netuid,
            policy,
            anchors,
        })
    }
}

/// Runs an inference miner until Ctrl-C or SIGTERM.
pub async fn run_inference_miner(args: MinerArgs) -> Result<(), SubnetError> {
    let engine = args.model.load().await?;
    let mut config = args.axon.miner_config(&args.neuron)?;
    let enclave = args.tee.enclave(config.netuid.0)?;
    config.attestation_digest = enclave.as_ref().map(|e| e.bundle().digest().0);
    if let Some(e) = &enclave {
        tracing::info!(
            platform = %e.bundle().platform,
            digest = %hex::encode(e.bundle().digest().0),
            "serving private requests"
        );
    }
    let behaviour = args.behaviour;
    let private_behaviour = args.tee.private_behaviour(behaviour);
    let ready_enclave = enclave.clone();
    let ready = print_miner_ready(&config);
    run_axon(
        config,
        move |metrics| {
            let miner = Arc::new(InferenceMiner::new(
                engine.clone(),
                None,
                behaviour,
                metrics.clone(),
            ));
            let mut routes = miner.clone().routes();
            if let Some(enclave) = enclave {
                if private_behaviour == behaviour {
                    enclave.attach(miner);
                } else {
                    tracing::warn!(
                        ?private_behaviour,
                        "TEST BEHAVIOUR: the enclave does not serve like the host"
                    );
                    enclave.attach(Arc::new(InferenceMiner::new(
                        engine,
                        None,
                        private_behaviour,
                        metrics,
                    )));
                }
                let (signed, public) = enclave.routes();
                routes.signed = routes.signed.merge(signed);
                routes.public = routes.public.merge(public);
            }
            routes
        },
        move |uid, addr| {
            if let Some(e) = &ready_enclave {
                e.set_uid(uid);
            }
            ready(uid, addr);
        },
        shutdown_signal(),
    )
    .await
}

/// Runs an inference validator until Ctrl-C or SIGTERM.
pub async fn run_inference_validator(args: ValidatorArgs) -> Result<(), SubnetError> {
    if !(0.0..=1.0).contains(&args.greedy_share) {
        return Err(SubnetError::Usage(
            "--greedy-share must be in [0, 1]".into(),
        ));
    }
    if args.max_tokens == 0 {
        return Err(SubnetError::Usage("--max-tokens must be at least 1".into()));
    }
    let engine = args.model.load().await?;
    let config = args.pacing.config(&args.neuron)?;
    let netuid = config.netuid;
    let hotkey = config.hotkey.clone();
    let tee = args.tee.trust(netuid.0)?;
    let mut logic = InferenceValidator::new(engine, None, tee);
    logic.max_tokens = args.max_tokens;
    logic.greedy_share = args.greedy_share;
    logic.jail_rounds = args.jail_rounds;
    logic.set_attestation_ttl(args.tee.tee_reverify_s, args.tee.tee_retry_s);
    run_validator(
        config,
        logic,
        move |uid| println!("{}", ready_line("validator", netuid, uid, &hotkey, None)),
        shutdown_signal(),
    )
    .await
}
