//! `-X key=value`: librdkafka properties from the command line, as the
//! binaries take them (TLS, SASL, any client setting). Their values never
//! appear in output: `KafkaLog`'s `Debug` shows only the keys.

/// Parses one `KEY=VALUE`.
pub fn parse(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => Ok((key.trim().to_string(), value.trim().to_string())),
        _ => Err(format!("expected KEY=VALUE, got '{text}'")),
    }
}
