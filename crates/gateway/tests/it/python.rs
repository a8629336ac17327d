//! The official `openai` Python client, unchanged, against the gateway. Skips (with a message)
//! when `python3` or its `openai` module is missing.

use crate::common::*;
use agora_gateway::{echo::EchoConfig, GatewayConfig};
use std::process::Command;

const SCRIPT: &str = r#"
import sys
import openai

base, key = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)

r = client.chat.completions.create(
    model="echo",
    messages=[{"role": "system", "content": "brief"}, {"role": "user", "content": "hello from python"}],
    max_tokens=10, temperature=0, seed=1, stop=["\n"],
)
assert r.choices[0].message.content == "hello from python", r
assert r.choices[0].finish_reason == "stop", r
assert r.usage.prompt_tokens == 4 and r.usage.completion_tokens == 3, r.usage

r = client.completions.create(model="echo", prompt="one two three", max_tokens=2)
assert r.choices[0].text == "one two", r
assert r.choices[0].finish_reason == "length", r

models = [m.id for m in client.models.list()]
assert models == ["echo"], models
assert client.models.retrieve("echo").id == "echo"

parts, usage = [], None
stream = client.chat.completions.create(
    model="echo", messages=[{"role": "user", "content": "streaming from python"}],
    stream=True, stream_options={"include_usage": True},
)
for chunk in stream:
    if chunk.usage is not None:
        usage = chunk.usage
    for choice in chunk.choices:
        if choice.delta.content:
            parts.append(choice.delta.content)
assert "".join(parts) == "streaming from python", parts
assert usage is not None and usage.completion_tokens == 3, usage

text = "".join(
    c.choices[0].text
    for c in client.completions.create(model="echo", prompt="a b c d", stream=True)
    if c.choices
)
assert text == "a b c d", text

try:
    client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    raise SystemExit("unknown model accepted")
except openai.NotFoundError as e:
    assert e.code == "model_not_found", e

try:
    client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "x"}], max_tokens=100000)
    raise SystemExit("max_tokens above the context accepted")
except openai.BadRequestError as e:
    assert e.param == "max_tokens", e

try:
    openai.OpenAI(base_url=base + "/v1", api_key="sk-wrong", max_retries=0).models.list()
    raise SystemExit("bad key accepted")
except openai.AuthenticationError as e:
    assert e.code == "invalid_api_key", e

print("openai client ok")
"#;

fn python_with_openai() -> bool {
    Command::new("python3")
        .args(["-c", "import openai"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test]
async fn official_openai_python_client_works_unchanged() {
    if !python_with_openai() {
        eprintln!(
            "skipping: python3 with the `openai` module is not installed (pip install openai)"
        );
        return;
    }
    let m = miner("MinerPy", EchoConfig::default()).await;
    let gw = gateway(&[&m], vec![], GatewayConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("client.py");
    std::fs::write(&script, SCRIPT).unwrap();
    let url = gw.url();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(&script)
            .arg(url)
            .arg(KEY)
            .output()
            .expect("python3 runs")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("openai client ok"));
    gw.stop().await.unwrap();
    m.stop().await;
}
