//! A snapshot as JSON (`?format=json`): `{"groups": [...]}`, one object per process group.

use super::histogram::HistogramValues;
use super::region::{REASONS, STATUS_CLASSES};
use super::snapshot::Snapshot;
use serde_json::{json, Map, Value};

pub const CONTENT_TYPE: &str = "application/json";

fn histogram(h: &HistogramValues) -> Value {
    let buckets: Vec<Value> = h
        .cumulative()
        .into_iter()
        .map(|(le, n)| json!({"le": le.map_or(Value::from("+Inf"), Value::from), "count": n}))
        .collect();
    json!({"count": h.count(), "sum_seconds": h.sum_us as f64 / 1e6, "buckets": buckets})
}

fn named<const N: usize>(names: &[&str; N], values: &[u64; N]) -> Value {
    Value::Object(names.iter().zip(values.iter()).map(|(k, v)| (k.to_string(), Value::from(*v))).collect::<Map<_, _>>())
}

pub fn render(snap: &Snapshot) -> String {
    let groups: Vec<Value> = snap
        .groups
        .iter()
        .map(|g| {
            let series: Vec<Value> = g
                .series
                .iter()
                .map(|s| {
                    json!({
                        "application_group": s.application_group,
                        "requests": named(&STATUS_CLASSES, &s.status),
                        "requests_total": s.requests(),
                        "request_bytes": s.bytes_in,
                        "response_bytes": s.bytes_out,
                        "request_duration_seconds": histogram(&s.duration),
                        "queue_wait_seconds": histogram(&s.queue),
                    })
                })
                .collect();
            json!({
                "group": g.name,
                "mode": if g.is_daemon() { "daemon" } else { "embedded" },
                "processes": g.processes,
                "threads": g.threads,
                "busy_threads": g.busy_threads,
                "resident_memory_bytes": g.resident_memory_bytes,
                "restarts": named(&REASONS, &g.restarts),
                "application_groups": series,
            })
        })
        .collect();
    json!({ "groups": groups }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Region;

    #[test]
    fn groups_hold_their_series() {
        let r = Region::new_boxed();
        r.series("", "h|/").unwrap().done(302, 70_000_000, 0, 0);
        let v: Value = serde_json::from_str(&render(&Snapshot::read(&r, &["d".into()], |_| None))).unwrap();
        assert_eq!(v["groups"][0]["group"], "d");
        assert_eq!(v["groups"][0]["mode"], "daemon");
        assert_eq!(v["groups"][0]["restarts"]["crash"], 0);
        let e = &v["groups"][1];
        assert_eq!(e["mode"], "embedded");
        assert_eq!(e["application_groups"][0]["requests"]["3xx"], 1);
        assert_eq!(e["application_groups"][0]["request_duration_seconds"]["buckets"][14]["count"], 0);
        assert_eq!(e["application_groups"][0]["request_duration_seconds"]["buckets"][15]["le"], "+Inf");
        assert_eq!(e["application_groups"][0]["request_duration_seconds"]["buckets"][15]["count"], 1);
    }
}
