//! The stream `capture_send` captures: the numbers `0..count` as `u64`.
//!
//! Built batch by batch (1024 numbers per container, as timely's own
//! container builder does) instead of through `to_stream`'s per-record
//! pushes, so a benchmark of capture measures capture rather than the
//! generator. The timely baseline in `benches/` uses the same generator.

use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::{Scope, Stream};

/// Numbers per container, like timely's default container capacity for `u64`.
pub const BATCH: u64 = 1024;

/// Containers emitted per activation before yielding to downstream operators.
const BATCHES_PER_ACTIVATION: u64 = 64;

/// The stream `0..count`, at time 0, in containers of [`BATCH`] numbers.
pub fn numbers<'scope>(scope: Scope<'scope, u64>, count: u64) -> Stream<'scope, u64, Vec<u64>> {
    source(scope, "Numbers", move |capability, info| {
        let activator = scope.activator_for(info.address);
        let mut capability = Some(capability);
        let mut next = 0u64;
        move |output| {
            let Some(cap) = capability.as_ref() else { return };
            let mut session = output.session(cap);
            for _ in 0..BATCHES_PER_ACTIVATION {
                if next >= count {
                    break;
                }
                let end = (next + BATCH).min(count);
                let mut batch: Vec<u64> = (next..end).collect();
                session.give_container(&mut batch);
                next = end;
            }
            drop(session);
            if next >= count {
                capability = None;
            } else {
                activator.activate();
            }
        }
    })
}
