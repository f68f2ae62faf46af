//! The producer settings an exactly-once capture cannot do without.
//!
//! The capture's commit records say "everything of this writer before me is
//! stored, in order". Without idempotence a retried batch can land after a
//! later one (reordered) or twice; with `acks` other than `all` an
//! acknowledged record can vanish when the leader changes. Either turns a
//! commit into a lie that replay cannot detect in every case, so such
//! settings are refused up front instead of producing a stream that only
//! looks complete.

use super::KafkaLog;
use crate::error::{Error, Result};

impl KafkaLog {
    /// Refuses producer properties that break the ordering and durability
    /// exactly-once capture relies on, in one line naming the property.
    pub(crate) fn check_exactly_once_settings(&self) -> Result<()> {
        let config = self.producer_config();
        if let Some(value) = config.get("enable.idempotence") {
            if !matches!(value.trim(), "true" | "1") {
                return Err(Error::Config(format!(
                    "exactly-once capture needs enable.idempotence=true (got '{value}'): without it a retried \
                     batch can be stored twice or after later records"
                )));
            }
        }
        for key in ["acks", "request.required.acks"] {
            if let Some(value) = config.get(key) {
                if !matches!(value.trim(), "all" | "-1") {
                    return Err(Error::Config(format!(
                        "exactly-once capture needs {key}=all (got '{value}'): an acknowledged record could be \
                         lost when the partition's leader changes"
                    )));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(properties: &[(&str, &str)]) -> Result<()> {
        let properties: Vec<(String, String)> =
            properties.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        KafkaLog::unchecked("127.0.0.1:1", &properties).unwrap().check_exactly_once_settings()
    }

    #[test]
    fn settings_that_break_ordering_or_durability_are_refused() {
        assert!(check(&[]).is_ok());
        assert!(check(&[("acks", "-1"), ("enable.idempotence", "true")]).is_ok());
        let refused = check(&[("enable.idempotence", "false")]).unwrap_err().to_string();
        assert!(refused.contains("enable.idempotence=true"), "{refused}");
        for (key, value) in [("acks", "1"), ("acks", "0"), ("request.required.acks", "1")] {
            let refused = check(&[(key, value)]).unwrap_err().to_string();
            assert!(refused.contains(&format!("{key}=all")) && !refused.contains('\n'), "{refused}");
        }
    }
}
