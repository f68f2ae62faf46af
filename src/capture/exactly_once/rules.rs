//! The one rule both sides of exactly-once share: which messages a commit covers.
//!
//! The producer drops, after a resume, exactly the messages a replay has
//! already delivered from the commits before the crash; both must decide
//! "covered" the same way, so the rule lives here once.

use timely::progress::frontier::Antichain;
use timely::progress::Timestamp;

/// Whether a message stamped `stamp` is covered by a commit at `frontier`:
/// every time of the stamp is *not beyond* it (so a resumed capture, which
/// regenerates the times beyond it, cannot produce it again).
pub(crate) fn committed_at<T: Timestamp>(stamp: &[T], frontier: &Antichain<T>) -> bool {
    stamp.iter().all(|time| !frontier.less_equal(time))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_means_not_beyond_the_frontier() {
        let frontier = Antichain::from_elem(10u64);
        assert!(committed_at(&[9u64], &frontier));
        assert!(!committed_at(&[10u64], &frontier));
        assert!(!committed_at(&[3u64, 12], &frontier));
        assert!(committed_at(&[10u64], &Antichain::new()));
    }
}
