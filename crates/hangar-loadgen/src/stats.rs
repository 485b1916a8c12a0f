//! Latency recording and the JSON summary.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Create = 0,
    Get = 1,
    List = 2,
    Update = 3,
    Delete = 4,
}

impl Op {
    pub const ALL: [Op; 5] = [Op::Create, Op::Get, Op::List, Op::Update, Op::Delete];

    pub fn name(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Get => "get",
            Op::List => "list",
            Op::Update => "update",
            Op::Delete => "delete",
        }
    }
}

const MAX_SAMPLES: usize = 8;

/// Per-client record of the measured requests. Latencies (nanoseconds) are
/// kept for successful (2xx) requests only; failures are counted by status
/// (or `conn` for transport errors, `bad-body` for an unparseable 2xx body)
/// and do not count towards throughput.
#[derive(Default)]
pub struct Recorder {
    lat: [Vec<u64>; 5],
    errors: [BTreeMap<String, u64>; 5],
    samples: Vec<String>,
}

impl Recorder {
    pub fn ok(&mut self, op: Op, nanos: u64) {
        self.lat[op as usize].push(nanos);
    }

    pub fn err(&mut self, op: Op, key: String, sample: impl FnOnce() -> String) {
        *self.errors[op as usize].entry(key).or_default() += 1;
        if self.samples.len() < MAX_SAMPLES {
            self.samples.push(sample());
        }
    }

    pub fn merge(&mut self, other: Recorder) {
        for i in 0..5 {
            self.lat[i].extend_from_slice(&other.lat[i]);
            for (k, v) in &other.errors[i] {
                *self.errors[i].entry(k.clone()).or_default() += v;
            }
        }
        for s in other.samples {
            if self.samples.len() < MAX_SAMPLES {
                self.samples.push(s);
            }
        }
    }

    pub fn ok_count(&self) -> u64 {
        self.lat.iter().map(|v| v.len() as u64).sum()
    }

    pub fn error_count(&self) -> u64 {
        self.errors.iter().flat_map(|m| m.values()).sum()
    }

    /// `ops`, `ok`, `errors`, `throughput_ops_s` and `latency_ms` for a run
    /// whose measured window lasted `secs`.
    pub fn summarize(mut self, secs: f64) -> Map<String, Value> {
        let ok = self.ok_count();
        let errs = self.error_count();
        let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
        let mut per_op = Map::new();
        let mut all: Vec<u64> = Vec::with_capacity(ok as usize);
        for op in Op::ALL {
            let i = op as usize;
            let op_errs: u64 = self.errors[i].values().sum();
            for (k, v) in &self.errors[i] {
                *by_status.entry(k.clone()).or_default() += v;
            }
            if self.lat[i].is_empty() && op_errs == 0 {
                continue;
            }
            all.extend_from_slice(&self.lat[i]);
            let mut s = latency(&mut self.lat[i]);
            s.insert("errors".into(), json!(op_errs));
            if op_errs > 0 {
                s.insert("errors_by_status".into(), json!(self.errors[i]));
            }
            per_op.insert(op.name().into(), Value::Object(s));
        }
        let mut latency_ms = Map::new();
        latency_ms.insert("all".into(), Value::Object(latency(&mut all)));
        latency_ms.extend(per_op);
        let mut m = Map::new();
        m.insert("ops".into(), json!(ok + errs));
        m.insert("ok".into(), json!(ok));
        m.insert(
            "errors".into(),
            json!({ "total": errs, "by_status": by_status, "samples": self.samples }),
        );
        m.insert("measured_s".into(), json!(round(secs, 3)));
        m.insert(
            "throughput_ops_s".into(),
            json!(round(ok as f64 / secs.max(1e-9), 1)),
        );
        m.insert("latency_ms".into(), Value::Object(latency_ms));
        m
    }
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

fn ms(nanos: u64) -> f64 {
    round(nanos as f64 / 1e6, 4)
}

/// Nearest-rank percentiles, in milliseconds.
fn latency(v: &mut [u64]) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("count".into(), json!(v.len()));
    if v.is_empty() {
        return m;
    }
    v.sort_unstable();
    let pct = |p: f64| {
        let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
        v[rank.clamp(1, v.len()) - 1]
    };
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
    m.insert("mean".into(), json!(round(mean / 1e6, 4)));
    m.insert("p50".into(), json!(ms(pct(50.0))));
    m.insert("p90".into(), json!(ms(pct(90.0))));
    m.insert("p99".into(), json!(ms(pct(99.0))));
    m.insert("max".into(), json!(ms(v[v.len() - 1])));
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut v: Vec<u64> = (1..=100).map(|x| x * 1_000_000).collect();
        let m = latency(&mut v);
        assert_eq!(m["p50"], json!(50.0));
        assert_eq!(m["p99"], json!(99.0));
        assert_eq!(m["max"], json!(100.0));
    }

    #[test]
    fn errors_do_not_count_as_throughput() {
        let mut r = Recorder::default();
        r.ok(Op::Get, 1_000_000);
        r.err(Op::Get, "404".into(), || "404 GET".into());
        let s = r.summarize(1.0);
        assert_eq!(s["ops"], json!(2));
        assert_eq!(s["ok"], json!(1));
        assert_eq!(s["throughput_ops_s"], json!(1.0));
        assert_eq!(s["errors"]["by_status"]["404"], json!(1));
    }
}
