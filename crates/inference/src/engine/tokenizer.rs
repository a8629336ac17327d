//! Text in and out: the model's `tokenizer.json`, its chat template and its stop tokens.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::{EngineError, Result};

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant` or whatever else the template knows.
    pub role: String,
    /// The message text.
    pub content: String,
}

impl ChatMessage {
    /// A message from `role` saying `content`.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        ChatMessage {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// The tokenizer, chat template and end-of-sequence tokens of one model.
#[derive(Debug)]
pub(crate) struct TextCodec {
    tokenizer: tokenizers::Tokenizer,
    template: Option<minijinja::Environment<'static>>,
    bos_token: String,
    eos_token: String,
    eos_ids: BTreeSet<u32>,
}

/// The parts of `tokenizer_config.json` the engine reads.
#[derive(Debug, Default, Deserialize)]
struct TokenizerConfig {
    #[serde(default)]
    chat_template: Option<ChatTemplateField>,
    #[serde(default)]
    bos_token: Option<TokenField>,
    #[serde(default)]
    eos_token: Option<TokenField>,
}

/// `chat_template` is a string, or a list of named templates.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ChatTemplateField {
    One(String),
    Named(Vec<NamedTemplate>),
}

#[derive(Debug, Deserialize)]
struct NamedTemplate {
    name: String,
    template: String,
}

/// Special tokens are written as a string or as an `AddedToken` object.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum TokenField {
    Text(String),
    Object { content: String },
}

impl TokenField {
    fn text(&self) -> &str {
        match self {
            TokenField::Text(s) => s,
            TokenField::Object { content } => content,
        }
    }
}

/// `eos_token_id` of `generation_config.json`: one id or several.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum IdField {
    One(u32),
    Many(Vec<u32>),
}

#[derive(Debug, Deserialize)]
struct GenerationConfig {
    #[serde(default)]
    eos_token_id: Option<IdField>,
}

impl TextCodec {
    /// Reads `tokenizer.json` (required), `tokenizer_config.json` and
    /// `generation_config.json` (optional) from `dir`.
    pub(crate) fn load(dir: &Path, extra_eos: Option<u32>, vocab_size: usize) -> Result<Self> {
        let tok_path = dir.join("tokenizer.json");
        let bytes = std::fs::read(&tok_path).map_err(|e| EngineError::io(&tok_path, &e))?;
        let tokenizer = tokenizers::Tokenizer::from_bytes(&bytes)
            .map_err(|e| EngineError::Tokenizer(format!("{}: {e}", tok_path.display())))?;
        let cfg_path = dir.join("tokenizer_config.json");
        let config: TokenizerConfig = match std::fs::read_to_string(&cfg_path) {
            Ok(text) => serde_json::from_str(&text)
                .map_err(|e| EngineError::Tokenizer(format!("{}: {e}", cfg_path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => TokenizerConfig::default(),
            Err(e) => return Err(EngineError::io(&cfg_path, &e)),
        };
        let bos_token = config
            .bos_token
            .as_ref()
            .map(|t| t.text().to_string())
            .unwrap_or_default();
        let eos_token = config
            .eos_token
            .as_ref()
            .map(|t| t.text().to_string())
            .unwrap_or_default();
        let mut eos_ids = BTreeSet::new();
        if let Some(id) = tokenizer.token_to_id(&eos_token) {
            eos_ids.insert(id);
        }
        let gen_path = dir.join("generation_config.json");
        if let Ok(text) = std::fs::read_to_string(&gen_path) {
            let gen: GenerationConfig = serde_json::from_str(&text)
                .map_err(|e| EngineError::Tokenizer(format!("{}: {e}", gen_path.display())))?;
            match gen.eos_token_id {
                Some(IdField::One(id)) => {
                    eos_ids.insert(id);
                }
                Some(IdField::Many(ids)) => eos_ids.extend(ids),
                None => {}
            }
        }
        eos_ids.extend(extra_eos);
        eos_ids.retain(|&id| (id as usize) < vocab_size);
        let template_source = match config.chat_template {
            None => None,
            Some(ChatTemplateField::One(t)) => Some(t),
            Some(ChatTemplateField::Named(list)) => list
                .into_iter()
                .find(|t| t.name == "default")
                .map(|t| t.template),
        };
        let template = template_source.map(compile_template).transpose()?;
        Ok(TextCodec {
            tokenizer,
            template,
            bos_token,
            eos_token,
            eos_ids,
        })
    }

    pub(crate) fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        let enc = self
            .tokenizer
            .encode(text, add_special_tokens)
            .map_err(|e| EngineError::Tokenizer(format!("encoding failed: {e}")))?;
        Ok(enc.get_ids().to_vec())
    }

    pub(crate) fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        self.tokenizer
            .decode(ids, skip_special_tokens)
            .map_err(|e| EngineError::Tokenizer(format!("decoding failed: {e}")))
    }

    pub(crate) fn token_text(&self, id: u32) -> String {
        self.decode(&[id], false).unwrap_or_default()
    }

    pub(crate) fn eos_ids(&self) -> &BTreeSet<u32> {
        &self.eos_ids
    }

    pub(crate) fn has_chat_template(&self) -> bool {
        self.template.is_some()
    }

    pub(crate) fn apply_chat_template(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String> {
        let env = self
            .template
            .as_ref()
            .ok_or_else(|| EngineError::Template("the model has no chat_template".into()))?;
        let tmpl = env
            .get_template("chat")
            .map_err(|e| EngineError::Template(e.to_string()))?;
        tmpl.render(minijinja::context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos_token,
            eos_token => self.eos_token,
        })
        .map_err(|e| EngineError::Template(template_error(&e)))
    }
}

/// Instructions one chat rendering may execute: far above any real template's need for a
/// long conversation, far below a runaway loop.
const TEMPLATE_FUEL: u64 = 50_000_000;

fn compile_template(source: String) -> Result<minijinja::Environment<'static>> {
    let mut env = minijinja::Environment::new();
    // Templates come with the model files; bound the work one rendering may do.
    env.set_fuel(Some(TEMPLATE_FUEL));
    // Hugging Face templates are written for Python's Jinja: `.strip()`, `.startswith()` and
    // friends on strings, and `raise_exception` for unsupported conversations.
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function(
        "raise_exception",
        |msg: String| -> std::result::Result<String, minijinja::Error> {
            Err(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                msg,
            ))
        },
    );
    env.add_template_owned("chat", source)
        .map_err(|e| EngineError::Template(template_error(&e)))?;
    Ok(env)
}

fn template_error(e: &minijinja::Error) -> String {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}
