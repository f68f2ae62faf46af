//! What a client learns about its brokers outside any call: a refused
//! authentication, a failed TLS handshake, a listener that speaks another
//! protocol.
//!
//! librdkafka does not fail a metadata request when a broker refuses the
//! client's credentials: it logs the failure, drops the connection and
//! tries again, so the request times out (a wrong password read as
//! `brokers ... did not answer within 30s: BrokerTransportFailure`). Its
//! log lines do name the cause (rust-rdkafka queues them on the client's
//! main queue; they arrive when it is polled). So every client of this crate carries a
//! [`ClientErrors`] context that keeps the last such line, and the calls
//! that wait for brokers ([`KafkaLog::checked`](super::KafkaLog::checked))
//! stop as soon as one names a cause no retry can fix, with that line.
//! Passwords never appear in librdkafka's log lines (nor in ours).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;

/// Why a client cannot talk to its brokers, from librdkafka's own words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The broker refused the credentials or the mechanism.
    Authentication(String),
    /// The TLS handshake failed (unknown CA, wrong host name, TLS against
    /// a plaintext listener).
    Tls(String),
    /// The listener speaks another protocol than `security.protocol`.
    Protocol(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Authentication(line) => write!(f, "SASL authentication failed: {line}"),
            Refusal::Tls(line) => write!(f, "TLS handshake failed: {line}"),
            Refusal::Protocol(line) => write!(
                f,
                "the broker closes every connection as it opens (wrong security.protocol for this listener, or \
                 credentials missing): {line}"
            ),
        }
    }
}

/// Reads a librdkafka log or error line: the refusal it reports, if any.
pub(crate) fn refusal(line: &str) -> Option<Refusal> {
    let lower = line.to_ascii_lowercase();
    let line = trim_thread(line).to_string();
    if lower.contains("sasl authentication error")
        || lower.contains("authentication failed")
        || lower.contains("unsupported sasl mechanism")
        || lower.contains("sasl handshake failed")
        || lower.contains("no provider for sasl mechanism")
        // librdkafka's own name for the class: the client could not even
        // start (an OAUTHBEARER token it cannot make, say).
        || lower.contains("authentication failure")
    {
        Some(Refusal::Authentication(line))
    } else if lower.contains("ssl handshake failed") || lower.contains("certificate verify failed") {
        Some(Refusal::Tls(line))
    } else if lower.contains("incorrect security.protocol") {
        Some(Refusal::Protocol(line))
    } else {
        None
    }
}

/// A connection the broker closed during the version handshake or within
/// a second of it: what a listener does to a client speaking another
/// protocol (plaintext against TLS, TLS without SASL against SASL_SSL).
/// librdkafka logs it at info level, "Disconnected: ... (after 0ms in
/// state UP)". A broker shutting down does it once; twice is a refusal.
fn quick_disconnect(line: &str) -> bool {
    if !line.contains("Disconnected") {
        return false;
    }
    if line.contains("in state APIVERSION_QUERY") {
        return true;
    }
    let Some((_, after)) = line.split_once("(after ") else { return false };
    let Some((millis, state)) = after.split_once("ms in state ") else { return false };
    state.starts_with("UP") && millis.parse::<u64>().is_ok_and(|ms| ms < 1000)
}

/// librdkafka's lines start with the thread name in brackets: dropped.
fn trim_thread(line: &str) -> &str {
    match line.strip_prefix("[thrd:").and_then(|rest| rest.split_once("]: ")) {
        Some((_, message)) => message,
        None => line,
    }
}

/// A client context that remembers the last refusal librdkafka reported.
#[derive(Default)]
pub(crate) struct ClientErrors {
    refused: Mutex<Option<Refusal>>,
    /// Connections the broker closed right after they opened.
    quick_disconnects: AtomicU32,
}

impl ClientErrors {
    /// The last refusal reported, if any.
    pub(crate) fn refused(&self) -> Option<Refusal> {
        self.refused.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Notes `line` if it reports a refusal.
    pub(crate) fn note(&self, line: &str) {
        if let Some(refusal) = refusal(line) {
            *self.refused.lock().unwrap_or_else(|p| p.into_inner()) = Some(refusal);
        }
    }
}

impl ClientContext for ClientErrors {
    fn log(&self, level: RDKafkaLogLevel, _facility: &str, line: &str) {
        use RDKafkaLogLevel::*;
        if matches!(level, Emerg | Alert | Critical | Error | Warning) {
            self.note(line);
        }
        if quick_disconnect(line) && self.quick_disconnects.fetch_add(1, Ordering::Relaxed) + 1 >= 2 {
            *self.refused.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(Refusal::Protocol(trim_thread(line).to_string()));
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.note(&format!("{error}: {reason}"));
    }
}

impl ConsumerContext for ClientErrors {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn librdkafka_lines_that_name_a_cause_are_refusals() {
        let wrong_password = "[thrd:sasl_ssl://127.0.0.1:19594/bootstrap]: sasl_ssl://127.0.0.1:19594/bootstrap: \
                              SASL authentication error: Authentication failed during authentication due to invalid \
                              credentials with SASL mechanism SCRAM-SHA-512 (after 12ms in state AUTH_REQ)";
        let Some(Refusal::Authentication(line)) = refusal(wrong_password) else {
            panic!("not an authentication refusal")
        };
        assert!(line.starts_with("sasl_ssl://127.0.0.1:19594/bootstrap: SASL authentication error"), "{line}");
        let unknown_ca = "ssl://127.0.0.1:19595/bootstrap: SSL handshake failed: error:0A000086:SSL \
                          routines::certificate verify failed: broker certificate could not be verified";
        assert!(matches!(refusal(unknown_ca), Some(Refusal::Tls(_))));
        let plaintext_to_tls = "127.0.0.1:19594/bootstrap: Disconnected while requesting ApiVersion: might be \
                                caused by incorrect security.protocol configuration (connecting to a SSL listener?)";
        assert!(matches!(refusal(plaintext_to_tls), Some(Refusal::Protocol(_))));
        let closed = "127.0.0.1:19595/bootstrap: Disconnected: connection closed by peer: receive 0 after POLLIN \
                      (after 1ms in state APIVERSION_QUERY)";
        assert!(quick_disconnect(closed));
        assert!(quick_disconnect(
            "ssl://h:1/bootstrap: Disconnected: SSL connection closed by peer (after 0ms in state UP)"
        ));
        assert!(!quick_disconnect("h:1/1: Disconnected: connection closed by peer (after 61234ms in state UP)"));
        assert_eq!(refusal("127.0.0.1:9092/1: Connect to ipv4#127.0.0.1:9092 failed: Connection refused"), None);
        // Seen from Apache Kafka 4.1.1: a mechanism the listener does not
        // enable, and an OAUTHBEARER token the client cannot make.
        let unsupported = "sasl_ssl://127.0.0.1:19894/bootstrap: SASL OAUTHBEARER mechanism handshake failed: \
                           Broker: Unsupported SASL mechanism: broker's supported mechanisms: SCRAM-SHA-512,PLAIN";
        assert!(matches!(refusal(unsupported), Some(Refusal::Authentication(_))));
        let no_token = "Global error: Authentication (Local: Authentication failure): Failed to acquire SASL \
                        OAUTHBEARER token: Invalid sasl.oauthbearer.config: must not be empty";
        assert!(matches!(refusal(no_token), Some(Refusal::Authentication(_))));
        let wrong_name = "ssl://127.0.0.2:1/bootstrap: SSL handshake failed: error:0A000086:SSL routines::\
                          certificate verify failed: broker certificate could not be verified, verify that \
                          ssl.endpoint.identification.algorithm is configured correctly";
        assert!(matches!(refusal(wrong_name), Some(Refusal::Tls(_))));
        let shown = Refusal::Authentication("x".into()).to_string();
        assert_eq!(shown, "SASL authentication failed: x");
    }

    #[test]
    fn the_context_keeps_the_last_refusal() {
        let context = ClientErrors::default();
        context.log(RDKafkaLogLevel::Debug, "FAIL", "SASL authentication error: ignored at debug level");
        assert_eq!(context.refused(), None);
        context.log(RDKafkaLogLevel::Error, "FAIL", "SSL handshake failed: certificate verify failed");
        assert!(matches!(context.refused(), Some(Refusal::Tls(_))));
        let closed = "h:1/bootstrap: Disconnected: SSL connection closed by peer (after 0ms in state UP)";
        let context = ClientErrors::default();
        context.log(RDKafkaLogLevel::Info, "FAIL", closed);
        assert_eq!(context.refused(), None, "once may be a broker shutting down");
        context.log(RDKafkaLogLevel::Info, "FAIL", closed);
        assert!(matches!(context.refused(), Some(Refusal::Protocol(_))));
    }
}
