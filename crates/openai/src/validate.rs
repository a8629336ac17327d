//! Request validation: the pure step between a parsed body and an engine. Every check names
//! the parameter at fault, as OpenAI's errors do.

use crate::{
    error::OpenAiError,
    types::{ChatCompletionRequest, CompletionRequest, StreamOptions},
};
use serde_json::Value;

/// Most stop sequences a request may give (OpenAI's limit).
pub const MAX_STOP_SEQUENCES: usize = 4;
/// Most alternatives per token in chat `top_logprobs` (OpenAI's limit).
pub const MAX_TOP_LOGPROBS: u8 = 20;
/// Most alternatives per token in a text completion's `logprobs` (OpenAI's limit).
pub const MAX_COMPLETION_LOGPROBS: u8 = 5;
/// `max_tokens` of a text completion that names none (OpenAI's default).
pub const DEFAULT_COMPLETION_MAX_TOKENS: u32 = 16;

/// What the serving side allows, beyond OpenAI's own ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The model's context length: `max_tokens` above it is refused. `None`: not known here
    /// (the engine, which can count prompt tokens, checks the sum).
    pub max_model_len: Option<u32>,
    /// Most messages in a conversation.
    pub max_messages: usize,
    /// Most bytes of text in all messages or the prompt together.
    pub max_prompt_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_model_len: None,
            max_messages: 1024,
            max_prompt_bytes: 4 << 20,
        }
    }
}

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Instructions from the application.
    System,
    /// Instructions from the developer (newer name of `system`).
    Developer,
    /// The user.
    User,
    /// The model.
    Assistant,
    /// A tool's result.
    Tool,
}

impl Role {
    /// The role's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::Developer => "developer",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }

    fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "system" => Role::System,
            "developer" => Role::Developer,
            "user" => Role::User,
            "assistant" => Role::Assistant,
            "tool" => Role::Tool,
            _ => return None,
        })
    }
}

/// A message with its text content joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Who said it.
    pub role: Role,
    /// The text (content parts joined with nothing between them).
    pub content: String,
}

/// Sampling settings with OpenAI's defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// 0 to 2; 0 means greedy.
    pub temperature: f64,
    /// 0 to 1.
    pub top_p: f64,
    /// -2 to 2.
    pub presence_penalty: f64,
    /// -2 to 2.
    pub frequency_penalty: f64,
    /// The seed's 64 bits, if one was given.
    pub seed: Option<u64>,
    /// At most [`MAX_STOP_SEQUENCES`] non-empty stop sequences.
    pub stop: Vec<String>,
    /// Return log-probabilities.
    pub logprobs: bool,
    /// Alternatives per token (0 when `logprobs` is off).
    pub top_logprobs: u8,
}

/// A chat request that passed every check: what an engine accepts.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedChat {
    /// The model id.
    pub model: String,
    /// The conversation, at least one message.
    pub messages: Vec<Message>,
    /// Most tokens to generate, if the request set a limit.
    pub max_tokens: Option<u32>,
    /// Sampling.
    pub sampling: SamplingParams,
    /// Answer as server-sent events.
    pub stream: bool,
    /// With `stream`, send a final usage chunk.
    pub include_usage: bool,
}

/// A text-completion request that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedCompletion {
    /// The model id.
    pub model: String,
    /// The prompt.
    pub prompt: String,
    /// Most tokens to generate (default 16).
    pub max_tokens: u32,
    /// Sampling (`logprobs`/`top_logprobs` from the request's integer `logprobs`).
    pub sampling: SamplingParams,
    /// Echo the prompt before the completion.
    pub echo: bool,
    /// Answer as server-sent events.
    pub stream: bool,
    /// With `stream`, send a final usage chunk.
    pub include_usage: bool,
}

impl ChatCompletionRequest {
    /// Checks the request against OpenAI's rules and `limits`.
    pub fn validate(&self, limits: &Limits) -> Result<ValidatedChat, OpenAiError> {
        check_model(&self.model)?;
        if self.messages.is_empty() {
            return Err(OpenAiError::invalid(
                "Invalid 'messages': empty array. Expected an array with minimum length 1.",
                "messages",
                "empty_array",
            ));
        }
        if self.messages.len() > limits.max_messages {
            return Err(OpenAiError::invalid(
                format!(
                    "Invalid 'messages': array too long. Expected an array with maximum length \
                     {}, but got {} instead.",
                    limits.max_messages,
                    self.messages.len()
                ),
                "messages",
                "array_above_max_length",
            ));
        }
        let mut messages = Vec::with_capacity(self.messages.len());
        let mut total_bytes = 0usize;
        for (i, m) in self.messages.iter().enumerate() {
            let role = Role::parse(&m.role).ok_or_else(|| {
                OpenAiError::invalid(
                    format!(
                        "Invalid value: '{}'. Supported values are: 'system', 'developer', \
                         'user', 'assistant' and 'tool'.",
                        shorten(&m.role)
                    ),
                    &format!("messages.[{i}].role"),
                    "invalid_value",
                )
            })?;
            let content = message_text(m.content.as_ref(), role, i)?;
            total_bytes = total_bytes.saturating_add(content.len());
            messages.push(Message { role, content });
        }
        check_prompt_bytes(total_bytes, limits, "messages")?;
        let max_tokens = match (self.max_tokens, self.max_completion_tokens) {
            (Some(a), Some(b)) if a != b => {
                return Err(OpenAiError::invalid(
                    "'max_tokens' and 'max_completion_tokens' disagree; set only one of them.",
                    "max_tokens",
                    "invalid_value",
                ))
            }
            (_, Some(n)) => Some(check_max_tokens(n, "max_completion_tokens", limits)?),
            (Some(n), None) => Some(check_max_tokens(n, "max_tokens", limits)?),
            (None, None) => None,
        };
        check_n(self.n)?;
        let logprobs = self.logprobs.unwrap_or(false);
        let top_logprobs = match self.top_logprobs {
            None => 0,
            Some(_) if !logprobs => {
                return Err(OpenAiError::invalid(
                    "Invalid value for 'top_logprobs': 'logprobs' must be set to true when \
                     'top_logprobs' is used.",
                    "top_logprobs",
                    "invalid_value",
                ))
            }
            Some(k) => int_in(k, 0, i64::from(MAX_TOP_LOGPROBS), "top_logprobs")? as u8,
        };
        let stream = self.stream.unwrap_or(false);
        let include_usage = stream_usage(stream, self.stream_options.as_ref())?;
        Ok(ValidatedChat {
            model: self.model.clone(),
            messages,
            max_tokens,
            sampling: SamplingParams {
                logprobs,
                top_logprobs,
                ..sampling(
                    self.temperature,
                    self.top_p,
                    self.presence_penalty,
                    self.frequency_penalty,
                    self.seed,
                    self.stop.as_ref(),
                )?
            },
            stream,
            include_usage,
        })
    }
}

impl CompletionRequest {
    /// Checks the request against OpenAI's rules and `limits`.
    pub fn validate(&self, limits: &Limits) -> Result<ValidatedCompletion, OpenAiError> {
        check_model(&self.model)?;
        let prompt = match &self.prompt {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(items)) => match items.as_slice() {
                [Value::String(s)] => s.clone(),
                [] => String::new(),
                [Value::Number(_), ..] | [Value::Array(_), ..] => {
                    return Err(OpenAiError::invalid(
                        "Token-id prompts are not supported; send the prompt as a string.",
                        "prompt",
                        "unsupported_value",
                    ))
                }
                _ => {
                    return Err(OpenAiError::invalid(
                        "Batched prompts are not supported; send one prompt per request.",
                        "prompt",
                        "unsupported_value",
                    ))
                }
            },
            Some(_) => {
                return Err(OpenAiError::invalid(
                    "Invalid type for 'prompt': expected a string or an array of strings.",
                    "prompt",
                    "invalid_type",
                ))
            }
        };
        check_prompt_bytes(prompt.len(), limits, "prompt")?;
        let max_tokens = match self.max_tokens {
            Some(n) => check_max_tokens(n, "max_tokens", limits)?,
            None => DEFAULT_COMPLETION_MAX_TOKENS.min(limits.max_model_len.unwrap_or(u32::MAX)),
        };
        check_n(self.n)?;
        if let Some(b) = self.best_of {
            if b != 1 {
                return Err(OpenAiError::invalid(
                    "best_of other than 1 is not supported.",
                    "best_of",
                    "unsupported_value",
                ));
            }
        }
        if self.suffix.as_deref().is_some_and(|s| !s.is_empty()) {
            return Err(OpenAiError::invalid(
                "'suffix' (insertion) is not supported.",
                "suffix",
                "unsupported_value",
            ));
        }
        let top_logprobs = match self.logprobs {
            None => None,
            Some(k) => Some(int_in(k, 0, i64::from(MAX_COMPLETION_LOGPROBS), "logprobs")? as u8),
        };
        let stream = self.stream.unwrap_or(false);
        let include_usage = stream_usage(stream, self.stream_options.as_ref())?;
        Ok(ValidatedCompletion {
            model: self.model.clone(),
            prompt,
            max_tokens,
            sampling: SamplingParams {
                logprobs: top_logprobs.is_some(),
                top_logprobs: top_logprobs.unwrap_or(0),
                ..sampling(
                    self.temperature,
                    self.top_p,
                    self.presence_penalty,
                    self.frequency_penalty,
                    self.seed,
                    self.stop.as_ref(),
                )?
            },
            echo: self.echo.unwrap_or(false),
            stream,
            include_usage,
        })
    }
}

fn shorten(s: &str) -> String {
    s.chars().take(64).collect()
}

fn check_model(model: &str) -> Result<(), OpenAiError> {
    if model.is_empty() {
        return Err(OpenAiError::invalid(
            "You must provide a model parameter.",
            "model",
            "missing_required_parameter",
        ));
    }
    Ok(())
}

fn check_prompt_bytes(bytes: usize, limits: &Limits, param: &str) -> Result<(), OpenAiError> {
    if bytes > limits.max_prompt_bytes {
        return Err(OpenAiError::invalid(
            format!(
                "The {param} hold {bytes} bytes of text, more than the {} this server accepts.",
                limits.max_prompt_bytes
            ),
            param,
            "context_length_exceeded",
        ));
    }
    Ok(())
}

fn message_text(content: Option<&Value>, role: Role, i: usize) -> Result<String, OpenAiError> {
    let param = || format!("messages.[{i}].content");
    match content {
        Some(Value::String(s)) => Ok(s.clone()),
        None | Some(Value::Null) if role == Role::Assistant => Ok(String::new()),
        None | Some(Value::Null) => Err(OpenAiError::invalid(
            format!("Missing content in messages.[{i}]: only assistant messages may omit it."),
            &param(),
            "missing_required_parameter",
        )),
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for (j, part) in parts.iter().enumerate() {
                let kind = part.get("type").and_then(Value::as_str);
                match (kind, part.get("text").and_then(Value::as_str)) {
                    (Some("text"), Some(t)) => text.push_str(t),
                    (Some("text"), None) => {
                        return Err(OpenAiError::invalid(
                            format!("Missing 'text' in messages.[{i}].content.[{j}]."),
                            &format!("messages.[{i}].content.[{j}].text"),
                            "missing_required_parameter",
                        ))
                    }
                    (other, _) => {
                        return Err(OpenAiError::invalid(
                            format!(
                                "Unsupported content part type '{}': only 'text' parts are \
                                 supported.",
                                shorten(other.unwrap_or("(none)"))
                            ),
                            &format!("messages.[{i}].content.[{j}].type"),
                            "unsupported_value",
                        ))
                    }
                }
            }
            Ok(text)
        }
        Some(_) => Err(OpenAiError::invalid(
            format!(
                "Invalid type for 'messages.[{i}].content': expected a string or an array of \
                 content parts."
            ),
            &param(),
            "invalid_type",
        )),
    }
}

fn check_max_tokens(n: i64, param: &str, limits: &Limits) -> Result<u32, OpenAiError> {
    if n < 1 {
        return Err(OpenAiError::invalid(
            format!(
                "Invalid '{param}': integer below minimum value. Expected a value >= 1, but got \
                 {n} instead."
            ),
            param,
            "integer_below_min_value",
        ));
    }
    let cap = limits.max_model_len.unwrap_or(u32::MAX);
    match u32::try_from(n) {
        Ok(v) if v <= cap => Ok(v),
        _ => Err(OpenAiError::invalid(
            format!(
                "{param} is too large: {n}. This model supports at most {cap} completion tokens, \
                 whereas you provided {n}."
            ),
            param,
            "context_length_exceeded",
        )),
    }
}

fn check_n(n: Option<i64>) -> Result<(), OpenAiError> {
    match n {
        None | Some(1) => Ok(()),
        Some(k) if k < 1 => Err(OpenAiError::invalid(
            format!("Invalid 'n': integer below minimum value. Expected a value >= 1, but got {k} instead."),
            "n",
            "integer_below_min_value",
        )),
        Some(_) => Err(OpenAiError::invalid(
            "n > 1 is not supported: each request returns one choice; send several requests \
             instead.",
            "n",
            "unsupported_value",
        )),
    }
}

fn int_in(v: i64, min: i64, max: i64, param: &str) -> Result<i64, OpenAiError> {
    if v < min {
        Err(OpenAiError::invalid(
            format!("Invalid '{param}': integer below minimum value. Expected a value >= {min}, but got {v} instead."),
            param,
            "integer_below_min_value",
        ))
    } else if v > max {
        Err(OpenAiError::invalid(
            format!("Invalid '{param}': integer above maximum value. Expected a value <= {max}, but got {v} instead."),
            param,
            "integer_above_max_value",
        ))
    } else {
        Ok(v)
    }
}

fn decimal_in(
    v: Option<f64>,
    min: f64,
    max: f64,
    default: f64,
    param: &str,
) -> Result<f64, OpenAiError> {
    let Some(v) = v else { return Ok(default) };
    if v < min {
        Err(OpenAiError::invalid(
            format!("Invalid '{param}': decimal below minimum value. Expected a value >= {min}, but got {v} instead."),
            param,
            "decimal_below_min_value",
        ))
    } else if v > max {
        Err(OpenAiError::invalid(
            format!("Invalid '{param}': decimal above maximum value. Expected a value <= {max}, but got {v} instead."),
            param,
            "decimal_above_max_value",
        ))
    } else if v.is_nan() {
        Err(OpenAiError::invalid(
            format!("Invalid '{param}': not a number."),
            param,
            "invalid_value",
        ))
    } else {
        Ok(v)
    }
}

fn stop_sequences(stop: Option<&Value>) -> Result<Vec<String>, OpenAiError> {
    let list = match stop {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => {
            if items.len() > MAX_STOP_SEQUENCES {
                return Err(OpenAiError::invalid(
                    format!(
                        "Invalid 'stop': array too long. Expected an array with maximum length \
                         {MAX_STOP_SEQUENCES}, but got {} instead.",
                        items.len()
                    ),
                    "stop",
                    "array_above_max_length",
                ));
            }
            items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_str().map(str::to_owned).ok_or_else(|| {
                        OpenAiError::invalid(
                            format!("Invalid type for 'stop.[{i}]': expected a string."),
                            &format!("stop.[{i}]"),
                            "invalid_type",
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?
        }
        Some(_) => {
            return Err(OpenAiError::invalid(
                "Invalid type for 'stop': expected a string or an array of strings.",
                "stop",
                "invalid_type",
            ))
        }
    };
    if list.iter().any(String::is_empty) {
        return Err(OpenAiError::invalid(
            "Invalid 'stop': stop sequences must not be empty.",
            "stop",
            "invalid_value",
        ));
    }
    Ok(list)
}

fn sampling(
    temperature: Option<f64>,
    top_p: Option<f64>,
    presence_penalty: Option<f64>,
    frequency_penalty: Option<f64>,
    seed: Option<i64>,
    stop: Option<&Value>,
) -> Result<SamplingParams, OpenAiError> {
    Ok(SamplingParams {
        temperature: decimal_in(temperature, 0.0, 2.0, 1.0, "temperature")?,
        top_p: decimal_in(top_p, 0.0, 1.0, 1.0, "top_p")?,
        presence_penalty: decimal_in(presence_penalty, -2.0, 2.0, 0.0, "presence_penalty")?,
        frequency_penalty: decimal_in(frequency_penalty, -2.0, 2.0, 0.0, "frequency_penalty")?,
        // The seed's bits, so negative seeds stay distinct.
        seed: seed.map(|s| u64::from_ne_bytes(s.to_ne_bytes())),
        stop: stop_sequences(stop)?,
        logprobs: false,
        top_logprobs: 0,
    })
}

fn stream_usage(stream: bool, options: Option<&StreamOptions>) -> Result<bool, OpenAiError> {
    match options {
        None => Ok(false),
        Some(_) if !stream => Err(OpenAiError::invalid(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            "stream_options",
            "invalid_value",
        )),
        Some(o) => Ok(o.include_usage.unwrap_or(false)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chat(v: Value) -> Result<ValidatedChat, OpenAiError> {
        serde_json::from_value::<ChatCompletionRequest>(v)
            .expect("parses")
            .validate(&Limits {
                max_model_len: Some(4096),
                ..Limits::default()
            })
    }

    fn param_of(v: Value) -> (Option<String>, Option<String>) {
        let e = chat(v).expect_err("refused");
        assert_eq!(e.status, 400);
        (e.param, e.code.map(|c| c.to_string()))
    }

    #[test]
    fn accepts_a_full_request() {
        let v = chat(json!({
            "model": "m",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                {"role": "assistant", "content": null},
            ],
            "max_completion_tokens": 100, "temperature": 0, "top_p": 0.5, "n": 1,
            "stop": ["x", "y"], "seed": -1, "logprobs": true, "top_logprobs": 20,
            "stream": true, "stream_options": {"include_usage": true},
        }))
        .unwrap();
        assert_eq!(v.messages[1].content, "ab");
        assert_eq!(v.messages[2].role, Role::Assistant);
        assert_eq!(v.max_tokens, Some(100));
        assert_eq!(v.sampling.seed, Some(u64::MAX));
        assert_eq!(v.sampling.stop, vec!["x", "y"]);
        assert_eq!(v.sampling.top_logprobs, 20);
        assert!(v.stream && v.include_usage);
    }

    #[test]
    fn refusals_name_the_parameter() {
        let m = |extra: Value| {
            let mut base = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
            for (k, v) in extra.as_object().unwrap() {
                base[k] = v.clone();
            }
            base
        };
        let p = |s: &str| Some(s.to_owned());
        assert_eq!(
            param_of(m(json!({"temperature": 2.5}))),
            (p("temperature"), p("decimal_above_max_value"))
        );
        assert_eq!(
            param_of(m(json!({"top_p": -0.1}))),
            (p("top_p"), p("decimal_below_min_value"))
        );
        assert_eq!(
            param_of(m(json!({"n": 2}))),
            (p("n"), p("unsupported_value"))
        );
        assert_eq!(
            param_of(m(json!({"stop": ["a", "b", "c", "d", "e"]}))),
            (p("stop"), p("array_above_max_length"))
        );
        assert_eq!(
            param_of(m(json!({"stop": [1]}))),
            (p("stop.[0]"), p("invalid_type"))
        );
        assert_eq!(
            param_of(m(json!({"top_logprobs": 2}))),
            (p("top_logprobs"), p("invalid_value"))
        );
        assert_eq!(
            param_of(m(json!({"logprobs": true, "top_logprobs": 21}))),
            (p("top_logprobs"), p("integer_above_max_value"))
        );
        assert_eq!(
            param_of(m(json!({"max_tokens": 0}))),
            (p("max_tokens"), p("integer_below_min_value"))
        );
        assert_eq!(
            param_of(m(json!({"max_tokens": 5000}))),
            (p("max_tokens"), p("context_length_exceeded"))
        );
        assert_eq!(
            param_of(m(json!({"stream_options": {"include_usage": true}}))),
            (p("stream_options"), p("invalid_value"))
        );
        assert_eq!(
            param_of(m(json!({"messages": []}))),
            (p("messages"), p("empty_array"))
        );
        assert_eq!(
            param_of(m(json!({"messages": [{"role": "robot", "content": "x"}]}))),
            (p("messages.[0].role"), p("invalid_value"))
        );
        assert_eq!(
            param_of(m(json!({"messages": [{"role": "user"}]}))),
            (p("messages.[0].content"), p("missing_required_parameter"))
        );
        assert_eq!(
            param_of(m(
                json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]})
            )),
            (p("messages.[0].content.[0].type"), p("unsupported_value"))
        );
        assert_eq!(
            param_of(m(json!({"model": ""}))),
            (p("model"), p("missing_required_parameter"))
        );
    }

    #[test]
    fn completions() {
        let c = |v: Value| {
            serde_json::from_value::<CompletionRequest>(v)
                .unwrap()
                .validate(&Limits::default())
        };
        let ok = c(json!({"model": "m", "prompt": ["once"], "logprobs": 2, "echo": true})).unwrap();
        assert_eq!(
            (ok.prompt.as_str(), ok.max_tokens, ok.sampling.top_logprobs),
            ("once", 16, 2)
        );
        assert!(ok.echo && ok.sampling.logprobs);
        assert_eq!(
            c(json!({"model": "m", "prompt": ["a", "b"]}))
                .unwrap_err()
                .param
                .as_deref(),
            Some("prompt")
        );
        assert_eq!(
            c(json!({"model": "m", "prompt": [1, 2]}))
                .unwrap_err()
                .param
                .as_deref(),
            Some("prompt")
        );
        assert_eq!(
            c(json!({"model": "m", "prompt": "x", "logprobs": 6}))
                .unwrap_err()
                .param
                .as_deref(),
            Some("logprobs")
        );
        assert_eq!(
            c(json!({"model": "m", "prompt": "x", "best_of": 3}))
                .unwrap_err()
                .param
                .as_deref(),
            Some("best_of")
        );
    }

    proptest::proptest! {
        /// Validation never panics on any parsed request.
        #[test]
        fn never_panics(temperature in proptest::option::of(proptest::num::f64::ANY),
                        max_tokens in proptest::option::of(proptest::num::i64::ANY),
                        n in proptest::option::of(proptest::num::i64::ANY),
                        top in proptest::option::of(proptest::num::i64::ANY),
                        role in "[a-z]{0,10}") {
            let req = ChatCompletionRequest {
                model: "m".into(),
                messages: vec![crate::types::ChatMessage { role, content: Some(json!("x")), name: None }],
                temperature, max_tokens, n, top_logprobs: top, logprobs: Some(true),
                ..Default::default()
            };
            let _ = req.validate(&Limits::default());
        }
    }
}
