//! Metric families with labels, and the Prometheus text format (0.0.4)
//! they are written in. Small on purpose: counters and histograms keyed by
//! label values, behind a mutex each; partway's rates are per request, not
//! per byte.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Name, help and label names of a family.
pub(super) struct Meta {
    pub name: &'static str,
    pub help: &'static str,
    pub labels: &'static [&'static str],
}

/// Counters by label values.
pub(super) struct Counters {
    pub meta: Meta,
    values: Mutex<BTreeMap<Vec<String>, u64>>,
}

impl Counters {
    pub fn new(meta: Meta) -> Self {
        Self {
            meta,
            values: Mutex::new(BTreeMap::new()),
        }
    }

    /// Adds `n` to the counter of `labels` (in the order of the family's).
    pub fn add(&self, labels: &[&str], n: u64) {
        if let Ok(mut values) = self.values.lock() {
            let key = labels.iter().map(|l| (*l).to_owned()).collect();
            *values.entry(key).or_insert(0) += n;
        }
    }

    /// Sets the counter of `labels` to a count kept elsewhere.
    pub fn set(&self, labels: &[&str], n: u64) {
        if let Ok(mut values) = self.values.lock() {
            let key = labels.iter().map(|l| (*l).to_owned()).collect();
            values.insert(key, n);
        }
    }

    pub fn render(&self, out: &mut String) {
        header(out, &self.meta, "counter");
        if let Ok(values) = self.values.lock() {
            for (labels, value) in values.iter() {
                sample(
                    out,
                    self.meta.name,
                    self.meta.labels,
                    labels,
                    None,
                    *value as f64,
                );
            }
        }
    }
}

/// Latency histograms by label values.
pub(super) struct Histograms {
    pub meta: Meta,
    values: Mutex<BTreeMap<Vec<String>, Histogram>>,
}

#[derive(Default)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histograms {
    pub fn new(meta: Meta) -> Self {
        Self {
            meta,
            values: Mutex::new(BTreeMap::new()),
        }
    }

    /// Records one observation of `took` for `labels`.
    pub fn observe(&self, labels: &[&str], took: Duration) {
        let secs = took.as_secs_f64();
        if let Ok(mut values) = self.values.lock() {
            let key = labels.iter().map(|l| (*l).to_owned()).collect();
            let h = values.entry(key).or_default();
            for (bucket, bound) in h.buckets.iter_mut().zip(BUCKETS) {
                if secs <= bound {
                    *bucket += 1;
                }
            }
            h.count += 1;
            h.sum += secs;
        }
    }

    pub fn render(&self, out: &mut String) {
        header(out, &self.meta, "histogram");
        let Ok(values) = self.values.lock() else {
            return;
        };
        let (name, names) = (self.meta.name, self.meta.labels);
        for (labels, h) in values.iter() {
            let bucket = format!("{name}_bucket");
            for (count, bound) in h.buckets.iter().zip(BUCKETS) {
                sample(
                    out,
                    &bucket,
                    names,
                    labels,
                    Some(&bound.to_string()),
                    *count as f64,
                );
            }
            sample(out, &bucket, names, labels, Some("+Inf"), h.count as f64);
            sample(out, &format!("{name}_sum"), names, labels, None, h.sum);
            sample(
                out,
                &format!("{name}_count"),
                names,
                labels,
                None,
                h.count as f64,
            );
        }
    }
}

/// `# HELP` and `# TYPE` of a family.
pub(super) fn header(out: &mut String, meta: &Meta, kind: &str) {
    let _ = writeln!(out, "# HELP {} {}", meta.name, meta.help);
    let _ = writeln!(out, "# TYPE {} {kind}", meta.name);
}

/// One sample line: `name{label="value",...} value`.
pub(super) fn sample(
    out: &mut String,
    name: &str,
    names: &[&str],
    values: &[String],
    le: Option<&str>,
    value: f64,
) {
    let mut pairs: Vec<String> = names
        .iter()
        .zip(values)
        .map(|(n, v)| format!("{n}=\"{}\"", escape(v)))
        .collect();
    if let Some(le) = le {
        pairs.push(format!("le=\"{le}\""));
    }
    let labels = if pairs.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", pairs.join(","))
    };
    let _ = writeln!(out, "{name}{labels} {value}");
}

/// A single unlabelled value.
pub(super) fn single(out: &mut String, meta: &Meta, kind: &str, value: f64) {
    header(out, meta, kind);
    sample(out, meta.name, &[], &[], None, value);
}

/// A label value as the text format wants it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_render_in_the_text_format() {
        let counters = Counters::new(Meta {
            name: "t_requests_total",
            help: "Requests.",
            labels: &["method"],
        });
        counters.add(&["GET"], 2);
        counters.add(&["a\"b"], 1);
        let histograms = Histograms::new(Meta {
            name: "t_seconds",
            help: "Time.",
            labels: &["op"],
        });
        histograms.observe(&["Put"], Duration::from_millis(30));
        let mut out = String::new();
        counters.render(&mut out);
        histograms.render(&mut out);
        assert!(out.contains("# TYPE t_requests_total counter\n"));
        assert!(out.contains("t_requests_total{method=\"GET\"} 2\n"));
        assert!(out.contains("t_requests_total{method=\"a\\\"b\"} 1\n"));
        assert!(out.contains("t_seconds_bucket{op=\"Put\",le=\"0.025\"} 0\n"));
        assert!(out.contains("t_seconds_bucket{op=\"Put\",le=\"0.05\"} 1\n"));
        assert!(out.contains("t_seconds_bucket{op=\"Put\",le=\"+Inf\"} 1\n"));
        assert!(out.contains("t_seconds_count{op=\"Put\"} 1\n"));
    }
}
