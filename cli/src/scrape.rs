//! A minimal Prometheus scraper for the tests and benchmark scripts: one
//! HTTP GET of `/metrics` over a std `TcpStream`, and lookups in the text
//! format. Not a parser of everything the format allows: enough for what
//! `metrics-exporter-prometheus` serves.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// The body of `GET http://addr/metrics`.
pub fn scrape(addr: SocketAddr) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    if !head.starts_with("HTTP/1.1 200") {
        return Err(std::io::Error::other(format!("not 200: {}", head.lines().next().unwrap_or(""))));
    }
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        return Ok(dechunk(body));
    }
    Ok(body.to_string())
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else { break };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// One sample: name, labels, value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The series name (`_bucket`, `_sum`, `_count` included for histograms).
    pub name: String,
    /// Its labels in the order served.
    pub labels: Vec<(String, String)>,
    /// Its value.
    pub value: f64,
}

/// The samples of a scrape (comments skipped).
pub fn samples(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let Some((series, value)) = line.rsplit_once(' ') else { continue };
        let Ok(value) = value.parse::<f64>() else { continue };
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let labels = rest
                    .trim_end_matches('}')
                    .split("\",")
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.trim_matches(',').to_string(), v.trim_matches('"').to_string()))
                    .collect();
                (name, labels)
            }
            None => (series, Vec::new()),
        };
        samples.push(Sample { name: name.to_string(), labels, value });
    }
    samples
}

/// The sum of `name`'s samples whose labels include `labels` (`None` if none).
pub fn sum(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<f64> = samples(text)
        .into_iter()
        .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v)))
        .map(|s| s.value)
        .collect();
    (!matching.is_empty()).then(|| matching.iter().sum())
}

/// The largest of `name`'s samples (`None` if none).
pub fn max(text: &str, name: &str) -> Option<f64> {
    samples(text).into_iter().filter(|s| s.name == name).map(|s| s.value).reduce(f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_text_format() {
        let text = "# HELP a_total x\n# TYPE a_total counter\na_total{topic=\"t\",partition=\"0\"} 5\n\
                    a_total{topic=\"t\",partition=\"1\"} 7\nb_seconds_bucket{topic=\"t\",le=\"0.1\"} 3\nc 1.5\n";
        assert_eq!(sum(text, "a_total", &[]), Some(12.0));
        assert_eq!(sum(text, "a_total", &[("partition", "1")]), Some(7.0));
        assert_eq!(sum(text, "b_seconds_bucket", &[("le", "0.1")]), Some(3.0));
        assert_eq!(max(text, "c"), Some(1.5));
        assert_eq!(sum(text, "d", &[]), None);
        assert_eq!(dechunk("3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), "abcde");
    }
}
