//! Latency measurement for `scripts/bench_latency.sh`: with
//! `TIMELY_KAFKA_TIMES_LOG=FILE` set, `capture_send` notes when it first
//! generated data at each timely time and `capture_recv` when it first
//! delivered data at each time (wall clock, ns since the epoch), and each
//! writes `time ns` lines to FILE at exit. The script pairs them by time.
//! Without the variable nothing is noted.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use timely_kafka::{Error, Result};

static TIMES: Mutex<BTreeMap<u64, u128>> = Mutex::new(BTreeMap::new());

fn enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var_os("TIMELY_KAFKA_TIMES_LOG").is_some())
}

/// Data at `time` was seen now (only the first sighting counts).
pub fn seen(time: u64) {
    if !enabled() {
        return;
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    TIMES.lock().unwrap_or_else(|p| p.into_inner()).entry(time).or_insert(now);
}

/// Writes the times noted to `$TIMELY_KAFKA_TIMES_LOG`, if set; an error
/// names the variable.
pub fn write() -> Result<()> {
    let Some(path) = std::env::var_os("TIMELY_KAFKA_TIMES_LOG") else { return Ok(()) };
    let times = TIMES.lock().unwrap_or_else(|p| p.into_inner());
    let text: String = times.iter().map(|(time, ns)| format!("{time} {ns}\n")).collect();
    std::fs::write(path, text).map_err(|e| Error::Config(format!("TIMELY_KAFKA_TIMES_LOG: {e}")))
}
