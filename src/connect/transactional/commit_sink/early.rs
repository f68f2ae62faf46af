//! Outputs sent ahead of their commit ([`Early`]): what was sent, when
//! sending early stops, and how long a transaction holding them may stay
//! open.
//!
//! Sending early is what makes a commit at the end of a long run cheap,
//! but it opens a transaction before the commit knows its frontier; the
//! rules for when to wait, abort or stop are what this file keeps apart
//! from the rest of the sink.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::super::sink::{Outgoing, PipelineStats};
use super::super::transactions::TransactionalWriter;
use super::CommitSink;
use crate::error::Result;
use crate::runtime::status::Status;

/// Outputs sent ahead of their commit.
///
/// A commit sends its outputs and waits for them; in a run that reads its
/// input to the end, every output then waits for the one commit at the end
/// (measured: 0.25 s of a 1.05 s word_count run, 200,000 outputs). Sent as
/// they arrive, into the open transaction, the commit has little left to
/// send. A commit at frontier F may only hold outputs at times before F,
/// so a commit that falls due while outputs at later times were sent early
/// waits (at most one commit interval, and only while the transaction stays
/// under the size bound) for the frontier to pass them; past that, the
/// early records are aborted, committed the usual way, and this sink stops
/// sending early (a live input: its later times always run ahead of the
/// frontier). A transaction holding early outputs is aborted the same way
/// once it has been open for `budget::max_open` (a long run
/// at one time: the broker would abort it and fence the writer).
#[derive(Default)]
pub(super) struct Early {
    /// Per time, how many of its buffered outputs were sent.
    sent: BTreeMap<u64, usize>,
    bytes: usize,
    since: Option<Instant>,
    stopped: bool,
}

impl Early {
    /// Sends early if `enabled` ([`CommitPolicy::send_early`](super::CommitPolicy::send_early)).
    pub(super) fn new(enabled: bool) -> Self {
        Early { stopped: !enabled, ..Default::default() }
    }

    /// How many of the buffered outputs at `time` were sent.
    pub(super) fn sent_at(&self, time: u64) -> usize {
        self.sent.get(&time).copied().unwrap_or(0)
    }

    /// Forgets what was sent (the transaction ended).
    pub(super) fn clear(&mut self) {
        self.sent.clear();
        self.bytes = 0;
        self.since = None;
    }

    /// Records sent early into the open transaction.
    fn records(&self) -> u64 {
        self.sent.values().map(|n| *n as u64).sum()
    }

    /// Counts what was sent early as aborted, and forgets it.
    fn forget(&mut self, status: &Status<PipelineStats>) {
        status.counters().aborted_early.fetch_add(self.records(), Ordering::Relaxed);
        self.clear();
    }

    /// Aborts what was sent early and sends nothing early any more.
    fn stop(&mut self, writer: &TransactionalWriter, status: &Status<PipelineStats>) -> Result<()> {
        self.forget(status);
        self.stopped = true;
        writer.abort_early()
    }

    /// Aborts what was sent early, on a failure: nothing is committed
    /// after it, so an abort that fails changes nothing.
    pub(super) fn discard(&mut self, writer: &TransactionalWriter, status: &Status<PipelineStats>) {
        self.forget(status);
        let _ = writer.abort_early();
    }

    /// Whether outputs at `upto` or later were sent.
    fn beyond(&self, upto: u64) -> bool {
        self.sent.range(upto..).any(|(_, n)| *n > 0)
    }
}

impl<K: AsRef<[u8]>, V: AsRef<[u8]>> CommitSink<K, V> {
    /// Sends the buffered outputs not sent yet into the open transaction
    /// (see [`Early`]), unless sending early stopped or the transaction
    /// reached the size bound.
    pub(super) fn send_early(&mut self, writer: &TransactionalWriter) -> Result<()> {
        if self.early.stopped || self.early.bytes >= self.policy.max_bytes {
            return Ok(());
        }
        let unsent = self.unsent();
        if unsent.is_empty() {
            return Ok(());
        }
        let records = unsent.iter().flat_map(|(time, from, to)| self.buffered[time][*from..*to].iter());
        let bytes: usize = records.clone().map(Outgoing::bytes).sum();
        if writer.send_early(records.map(Outgoing::out))? {
            for (time, _, to) in unsent {
                self.early.sent.insert(time, to);
            }
            self.early.bytes += bytes;
            // The broker's clock runs from the transaction's first send.
            self.early.since = self.early.since.or(writer.begun()).or_else(|| Some(Instant::now()));
        } else {
            // The writer aborted the transaction: nothing sent early is left.
            self.early.forget(&self.status);
            self.early.stopped = true;
        }
        Ok(())
    }

    /// Per time with buffered outputs not sent early: the time, and the
    /// range of its outputs not sent.
    fn unsent(&self) -> Vec<(u64, usize, usize)> {
        let mut unsent = Vec::new();
        for (time, records) in &self.buffered {
            let sent = self.early.sent_at(*time);
            if records.len() > sent {
                unsent.push((*time, sent, records.len()));
            }
        }
        unsent
    }

    /// Aborts what was sent early once its transaction has been open for
    /// `policy.max_open`; until then, asks to be scheduled at that moment.
    pub(super) fn limit_open_time(&mut self, writer: &TransactionalWriter) -> Result<()> {
        let Some(since) = self.early.since else { return Ok(()) };
        let open = since.elapsed();
        if open >= self.policy.max_open {
            return self.early.stop(writer, &self.status);
        }
        self.activator.activate_after(self.policy.max_open - open);
        Ok(())
    }

    /// Whether a commit up to `upto` waits for the frontier to pass the
    /// outputs sent early at `upto` or later (see [`Early`]); past the
    /// wait, they are aborted and the commit goes ahead.
    pub(super) fn waits_for_early(
        &mut self,
        writer: &TransactionalWriter,
        frontier: Option<u64>,
        upto: u64,
    ) -> Result<bool> {
        if !self.early.beyond(upto) {
            return Ok(false);
        }
        let waited = self.early.since.map_or(Duration::ZERO, |since| since.elapsed());
        if frontier.is_some() && waited < self.policy.interval && self.early.bytes < self.policy.max_bytes {
            self.activator.activate_after(self.policy.interval - waited);
            return Ok(true);
        }
        self.early.stop(writer, &self.status)?;
        Ok(false)
    }
}
