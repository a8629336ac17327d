//! Integration tests of the engine on tiny models written by the tests themselves.

mod checkpoints;
mod engine;
mod formats;
mod testmodel;
mod verification;

use std::path::Path;

use agora_inference::engine::testmodel::{
    write_test_model, DenseDType, GgufQuant, ModelFormat, TestModelSpec,
};
use agora_inference::engine::{Arch, Engine, LoadOptions};

pub(crate) const GGUF_F32: ModelFormat = ModelFormat::Gguf {
    quant: GgufQuant::F32,
};
pub(crate) const GGUF_Q8: ModelFormat = ModelFormat::Gguf {
    quant: GgufQuant::Q8_0,
};
pub(crate) const ST_F32: ModelFormat = ModelFormat::Safetensors {
    dtype: DenseDType::F32,
};

/// Writes a tiny model into a fresh temporary directory.
pub(crate) fn tiny(arch: Arch, format: ModelFormat, seed: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    write_test_model(dir.path(), &TestModelSpec::tiny(arch, format, seed)).expect("write model");
    dir
}

pub(crate) fn load(dir: &Path) -> Engine {
    Engine::load(dir, &LoadOptions::default()).expect("load model")
}

pub(crate) fn load_with(dir: &Path, opts: LoadOptions) -> Engine {
    Engine::load(dir, &opts).expect("load model")
}

pub(crate) fn prompt(engine: &Engine) -> Vec<u32> {
    engine
        .encode("The validator sends the same prompt and checks", false)
        .expect("encode")
}
