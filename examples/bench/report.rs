//! What the benchmark measures around each workload, and the table it
//! prints: the median of the rounds, beside the limit, as ratios.

use super::BoxError;
use std::collections::BTreeMap;
use std::time::Instant;

/// The processes whose CPU and memory are counted.
#[derive(Clone, Copy)]
pub struct Procs {
    pub partway: u32,
    pub s3: u32,
    pub redis: u32,
    /// The benchmark itself: the client.
    pub client: u32,
}

/// One workload's figures in one round.
#[derive(Clone, Copy, Default)]
pub struct Figure {
    /// MB/s (10^6 bytes per second), or requests per second.
    pub rate: f64,
    /// partway's CPU seconds per GiB (per 1,000 requests for counts).
    pub partway_cpu: f64,
    /// The S3 server's CPU seconds per GiB (per 1,000 requests for counts).
    pub s3_cpu: f64,
    /// Redis's, likewise.
    pub redis_cpu: f64,
    /// The whole machine's share: the tus server, the S3 server, Redis and
    /// the client together, likewise.
    pub all_cpu: f64,
    /// partway's peak RSS during the workload, MiB.
    pub rss: f64,
}

/// Peak RSS (MiB) and CPU seconds of a process, from /proc.
pub fn usage(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
    (hwm / 1024.0, (ticks(11) + ticks(12)) / 100.0)
}

/// Runs `work`, which moves `units` (bytes, or requests), and measures it.
/// Rates are MB/s for bytes, per second for requests; CPU is per GiB of
/// bytes, or per 1,000 requests.
pub async fn measure<F>(procs: Procs, units: Units, work: F) -> Result<Figure, BoxError>
where
    F: std::future::Future<Output = Result<(), BoxError>>,
{
    // Writing 5 to clear_refs resets the peak RSS (VmHWM) to the current RSS.
    let _ = std::fs::write(format!("/proc/{}/clear_refs", procs.partway), "5");
    let cpu = |pid: u32| usage(pid).1;
    let (p0, s0, r0, c0) = (
        cpu(procs.partway),
        cpu(procs.s3),
        cpu(procs.redis),
        cpu(procs.client),
    );
    let start = Instant::now();
    work.await?;
    let took = start.elapsed().as_secs_f64();
    let (rss, p1) = usage(procs.partway);
    let (s1, r1, c1) = (cpu(procs.s3), cpu(procs.redis), cpu(procs.client));
    let (scale, per) = match units {
        Units::Bytes(n) => (n as f64 / 1e6, n as f64 / f64::from(1u32 << 30)),
        Units::Requests(n) => (n as f64, n as f64 / 1000.0),
    };
    Ok(Figure {
        rate: scale / took,
        partway_cpu: (p1 - p0) / per,
        s3_cpu: (s1 - s0) / per,
        redis_cpu: (r1 - r0) / per,
        all_cpu: (p1 - p0 + s1 - s0 + r1 - r0 + c1 - c0) / per,
        rss,
    })
}

/// What a workload moves.
#[derive(Clone, Copy)]
pub enum Units {
    Bytes(u64),
    Requests(u64),
}

/// The figures of every round, by workload, in the order first seen.
#[derive(Default)]
pub struct Table {
    rows: Vec<(String, Vec<Figure>)>,
    notes: BTreeMap<String, Vec<String>>,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

impl Table {
    /// Adds one round's figure of `workload`.
    pub fn add(&mut self, workload: &str, figure: Figure) {
        match self.rows.iter_mut().find(|(w, _)| w == workload) {
            Some((_, figures)) => figures.push(figure),
            None => self.rows.push((workload.to_owned(), vec![figure])),
        }
    }

    /// Adds a line printed under the table (counts that do not vary).
    pub fn note(&mut self, key: &str, line: String) {
        self.notes.entry(key.to_owned()).or_default().push(line);
    }

    /// The median of one column of `workload`.
    fn median(&self, workload: &str, column: fn(&Figure) -> f64) -> f64 {
        self.rows
            .iter()
            .find(|(w, _)| w == workload)
            .map_or(0.0, |(_, f)| median(f.iter().map(column).collect()))
    }

    /// Prints the medians; each rate beside `limit_of(workload)`'s.
    pub fn print(&self, limit_of: fn(&str) -> Option<&'static str>) {
        println!(
            "\n{:<40} {:>9} {:>8} {:>11} {:>8} {:>10} {:>8} {:>9}",
            "workload (median of rounds)",
            "rate",
            "× limit",
            "server CPU",
            "S3 CPU",
            "Redis CPU",
            "all CPU",
            "peak RSS"
        );
        for (workload, figures) in &self.rows {
            let rate = self.median(workload, |f| f.rate);
            let ratio = limit_of(workload)
                .map(|l| format!("{:.2}", rate / self.median(l, |f| f.rate)))
                .unwrap_or_else(|| "—".into());
            println!(
                "{:<40} {:>9.0} {:>8} {:>11.2} {:>8.2} {:>10.2} {:>8.2} {:>5.0} MiB   (rounds: {})",
                workload,
                rate,
                ratio,
                self.median(workload, |f| f.partway_cpu),
                self.median(workload, |f| f.s3_cpu),
                self.median(workload, |f| f.redis_cpu),
                self.median(workload, |f| f.all_cpu),
                self.median(workload, |f| f.rss),
                figures
                    .iter()
                    .map(|f| format!("{:.0}", f.rate))
                    .collect::<Vec<_>>()
                    .join(" "),
            );
        }
        println!(
            "(rates: MB/s, or per second for uploads and requests; CPU: seconds per GiB, \
             or per 1,000 uploads or requests; server: the tus server, partway unless \
             BENCH_TUS_CMD names another; all: the tus server, the S3 server, Redis and \
             this client together; peak RSS: the tus server's)"
        );
        for lines in self.notes.values() {
            if let Some(last) = lines.last() {
                println!("{last}");
            }
        }
    }
}
