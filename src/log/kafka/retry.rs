//! The one retry policy of the crate's own Kafka calls.
//!
//! librdkafka retries produce and fetch requests by itself, but not the
//! questions this crate asks outside them: watermarks (ListOffsets),
//! metadata for partition counts, topic waits. While a cluster changes —
//! a leader dies and another is elected, a node of a rolling restart
//! shuts down and comes back (15 to 37 s on a loaded 2-core machine),
//! a topic is created and its partitions reach each broker on their own
//! schedule — those questions get answers that describe a passing state:
//! timeouts, "not leader", "leader not available", a broker connection
//! dropped. Those are asked again, in short steps, until the bound of the
//! operation that asked (the backend's timeout, the capture's delivery
//! bound; docs/kafka.md lists each); only then, or on any other answer,
//! the call fails, in one line saying what was asked, how often and for
//! how long.
//!
//! Each try is bounded too ([`TRY_BOUND`]): a client keeps sending to the
//! leader it learnt last, and after that leader was killed librdkafka
//! waited out the whole timeout on the dead node, every time (measured on
//! a 3-node cluster: a minute of timeouts after a new leader was elected).
//! From the second try on a caller may ask another way: the crate's
//! watermark questions go through a client of their own then (a new
//! client learns the leaders afresh).

use std::fmt::Display;
use std::time::{Duration, Instant};

use rdkafka::error::KafkaError;
#[cfg(test)]
use rdkafka::error::RDKafkaErrorCode;

use crate::error::transient_code;

/// The longest one try may take.
pub(crate) const TRY_BOUND: Duration = Duration::from_secs(5);
/// The pause between tries.
const RETRY_STEP: Duration = Duration::from_millis(100);

/// [`transient_code`] for a client error.
pub(crate) fn transient(error: &KafkaError) -> bool {
    error.rdkafka_error_code().is_some_and(transient_code)
}

/// A call that failed: its last error, and how it was retried.
#[derive(Debug)]
pub(crate) struct Retried {
    /// The last answer.
    pub(crate) error: KafkaError,
    /// Tries made (1: failed at once, not transient).
    pub(crate) tries: u32,
    /// From the first try to giving up.
    pub(crate) elapsed: Duration,
}

impl Display for Retried {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.tries > 1 {
            write!(f, "{} (asked {} times over {:.1?}, then gave up)", self.error, self.tries, self.elapsed)
        } else {
            write!(f, "{}", self.error)
        }
    }
}

impl std::error::Error for Retried {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl Retried {
    /// Whether it failed on an answer that was still transient: the bound
    /// ran out rather than the question being refused.
    pub(crate) fn ran_out(&self) -> bool {
        transient(&self.error)
    }
}

/// Calls `attempt` until it succeeds, fails with an answer that is not
/// [`transient`], or `bound` has passed. It gets the number of the try (1,
/// 2, ...: a caller may ask another way from the second on, such as
/// through a fresh client) and the time the try may take: at most
/// [`TRY_BOUND`], at most what is left of `bound`.
pub(crate) fn retry<T>(
    bound: Duration,
    mut attempt: impl FnMut(u32, Duration) -> Result<T, KafkaError>,
) -> Result<T, Retried> {
    let started = Instant::now();
    let deadline = started + bound;
    let mut tries = 0;
    loop {
        tries += 1;
        let per_try = deadline.saturating_duration_since(Instant::now()).clamp(Duration::from_millis(1), TRY_BOUND);
        match attempt(tries, per_try) {
            Ok(value) => return Ok(value),
            Err(error) if transient(&error) && Instant::now() + RETRY_STEP < deadline => std::thread::sleep(RETRY_STEP),
            Err(error) => return Err(Retried { error, tries, elapsed: started.elapsed() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_answers_are_asked_again_until_they_pass() {
        let mut answers = vec![
            Err(KafkaError::MetadataFetch(RDKafkaErrorCode::OperationTimedOut)),
            Err(KafkaError::MetadataFetch(RDKafkaErrorCode::NotLeaderForPartition)),
            Ok(7),
        ]
        .into_iter();
        let mut numbers = Vec::new();
        let answer = retry(Duration::from_secs(10), |number, _| {
            numbers.push(number);
            answers.next().unwrap()
        });
        assert_eq!((answer.unwrap(), numbers), (7, vec![1, 2, 3]));
    }

    #[test]
    fn other_answers_fail_at_once() {
        let mut tries = 0;
        let answer: Result<(), _> = retry(Duration::from_secs(10), |_, _| {
            tries += 1;
            Err(KafkaError::MetadataFetch(RDKafkaErrorCode::SaslAuthenticationFailed))
        });
        let failed = answer.unwrap_err();
        assert_eq!((tries, failed.tries, failed.ran_out()), (1, 1, false));
        assert!(!failed.to_string().contains("asked"), "{failed}");
    }

    #[test]
    fn a_transient_answer_fails_once_the_bound_has_passed_saying_how_long_it_was_asked() {
        let bound = Duration::from_millis(450);
        let started = Instant::now();
        let answer: Result<(), _> =
            retry(bound, |_, _| Err(KafkaError::MetadataFetch(RDKafkaErrorCode::OperationTimedOut)));
        let failed = answer.unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(350), "{:?}", started.elapsed());
        assert!(failed.tries >= 3 && failed.ran_out(), "{failed:?}");
        let line = failed.to_string();
        assert!(line.contains("asked") && line.contains("gave up") && !line.contains('\n'), "{line}");
    }

    #[test]
    fn each_try_is_bounded_by_the_try_bound_and_what_is_left() {
        let mut given = Vec::new();
        let _ = retry(Duration::from_secs(60), |_, per_try| {
            given.push(per_try);
            Ok::<_, KafkaError>(())
        });
        assert_eq!(given, [TRY_BOUND]);
        let mut given = Vec::new();
        let _ = retry(Duration::from_millis(200), |_, per_try| {
            given.push(per_try);
            Ok::<_, KafkaError>(())
        });
        assert!(given[0] <= Duration::from_millis(200), "{given:?}");
    }
}
