//! Agreement among the workers of a computation, through timely itself.
//!
//! Per-worker setup (create a topic, open partitions) can fail on one worker
//! and succeed on another. A worker that then returns early never builds the
//! dataflow its peers build, and they wait forever for its operators. So the
//! helpers in [`crate::capture::worker`] make each such step *collective*:
//! every worker contributes its outcome, every worker sees all of them, and
//! they all continue or all return the same error. The exchange is a small
//! dataflow, so it works across processes exactly as the computation does
//! (every worker must call the helpers in the same order, as it must build
//! its dataflows in the same order).

use std::cell::RefCell;
use std::rc::Rc;

use serde::{de::DeserializeOwned, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::operators::{Input, Inspect, Probe};
use timely::dataflow::InputHandle;
use timely::worker::Worker;

use crate::error::{Error, Result};

/// The longest a waiting worker parks before looking again; peers' messages
/// wake it sooner.
const PARK: std::time::Duration = std::time::Duration::from_millis(5);

/// Every worker's `value`, indexed by worker.
pub(crate) fn all_gather<V>(worker: &mut Worker, value: V) -> Vec<V>
where
    V: Serialize + DeserializeOwned + Clone + Send + 'static,
{
    let index = worker.index();
    let gathered = Rc::new(RefCell::new(Vec::<(usize, V)>::new()));
    let sink = gathered.clone();
    let mut input = InputHandle::<u64, CapacityContainerBuilder<Vec<(usize, V)>>>::new();
    let probe = worker.dataflow::<u64, _, _>(|scope| {
        scope
            .input_from(&mut input)
            .broadcast()
            .inspect(move |(from, value): &(usize, V)| sink.borrow_mut().push((*from, value.clone())))
            .probe()
            .0
    });
    input.send((index, value));
    input.close();
    // Park between steps: a worker whose peers are still busy with their
    // part of the step (broker round trips) must not spin on the cores
    // those peers and the log's client threads need.
    while !probe.done() {
        worker.step_or_park(Some(PARK));
    }
    let mut gathered = gathered.take();
    gathered.sort_by_key(|(from, _)| *from);
    gathered.into_iter().map(|(_, value)| value).collect()
}

/// Agrees on the outcome of a step every worker took: `Ok` on all workers
/// if it succeeded on all of them, else an error on all of them (this
/// worker's own, or the message of the first worker that failed).
pub(crate) fn agree<R>(worker: &mut Worker, outcome: Result<R>) -> Result<R> {
    let message = outcome.as_ref().err().map(|e| e.to_string());
    let failures = all_gather(worker, message);
    match outcome {
        Err(error) => Err(error),
        Ok(value) => match failures.into_iter().enumerate().find_map(|(w, m)| m.map(|m| (w, m))) {
            Some((other, message)) => Err(Error::Dataflow(format!("worker {other}: {message}"))),
            None => Ok(value),
        },
    }
}
