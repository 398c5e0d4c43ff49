//! A snapshot in Prometheus' text exposition format 0.0.4.

use super::histogram::HistogramValues;
use super::region::{REASONS, STATUS_CLASSES};
use super::snapshot::Snapshot;
use std::fmt::Write;

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A label value with `\`, `"` and newlines escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn histogram(out: &mut String, name: &str, labels: &str, h: &HistogramValues) {
    for (le, count) in h.cumulative() {
        let le = le.map_or_else(|| "+Inf".to_string(), |s| format!("{s}"));
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {count}");
    }
    let _ = writeln!(out, "{name}_sum{{{labels}}} {}", h.sum_us as f64 / 1e6);
    let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count());
}

pub fn render(snap: &Snapshot) -> String {
    let mut out = String::new();
    let series = || {
        snap.groups.iter().flat_map(|g| {
            g.series.iter().map(move |s| {
                (format!("group=\"{}\",application_group=\"{}\"", escape(&g.name), escape(&s.application_group)), s)
            })
        })
    };
    family(&mut out, "oxwsgi_requests_total", "counter", "Requests answered by WSGI applications, by status class.");
    for (labels, s) in series() {
        for (class, n) in STATUS_CLASSES.iter().zip(s.status.iter()) {
            let _ = writeln!(out, "oxwsgi_requests_total{{{labels},status=\"{class}\"}} {n}");
        }
    }
    family(
        &mut out,
        "oxwsgi_request_duration_seconds",
        "histogram",
        "Time from Apache accepting a request to the end of its response.",
    );
    for (labels, s) in series() {
        histogram(&mut out, "oxwsgi_request_duration_seconds", &labels, &s.duration);
    }
    family(
        &mut out,
        "oxwsgi_queue_wait_seconds",
        "histogram",
        "Time from Apache accepting a request to the application starting on it.",
    );
    for (labels, s) in series() {
        histogram(&mut out, "oxwsgi_queue_wait_seconds", &labels, &s.queue);
    }
    family(&mut out, "oxwsgi_request_bytes_total", "counter", "Request body bytes read by applications.");
    for (labels, s) in series() {
        let _ = writeln!(out, "oxwsgi_request_bytes_total{{{labels}}} {}", s.bytes_in);
    }
    family(&mut out, "oxwsgi_response_bytes_total", "counter", "Response body bytes sent to clients.");
    for (labels, s) in series() {
        let _ = writeln!(out, "oxwsgi_response_bytes_total{{{labels}}} {}", s.bytes_out);
    }
    let gauges: [(&str, &str, fn(&super::snapshot::GroupValues) -> u64); 3] = [
        ("oxwsgi_busy_threads", "Threads running a request now.", |g| g.busy_threads),
        ("oxwsgi_threads", "Request threads of the group's live processes.", |g| g.threads),
        ("oxwsgi_process_resident_memory_bytes", "Resident memory of the group's live processes.", |g| {
            g.resident_memory_bytes
        }),
    ];
    for (name, help, value) in gauges {
        family(&mut out, name, "gauge", help);
        for g in &snap.groups {
            let _ = writeln!(out, "{name}{{group=\"{}\"}} {}", escape(&g.name), value(g));
        }
    }
    family(&mut out, "oxwsgi_daemon_processes", "gauge", "Live daemon processes of the group.");
    for g in snap.groups.iter().filter(|g| g.is_daemon()) {
        let _ = writeln!(out, "oxwsgi_daemon_processes{{group=\"{}\"}} {}", escape(&g.name), g.processes);
    }
    family(&mut out, "oxwsgi_daemon_restarts_total", "counter", "Daemon processes replaced, by reason.");
    for g in snap.groups.iter().filter(|g| g.is_daemon()) {
        for (reason, n) in REASONS.iter().zip(g.restarts.iter()) {
            let _ =
                writeln!(out, "oxwsgi_daemon_restarts_total{{group=\"{}\",reason=\"{reason}\"}} {n}", escape(&g.name));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Region;

    #[test]
    fn renders_every_family_with_escaped_labels() {
        let r = Region::new_boxed();
        r.series("d", "a\"b|/").unwrap().done(200, 2_000, 3, 4);
        r.series("d", "a\"b|/").unwrap().started(500);
        r.register(1, "d", 2, 0);
        r.record_restart("d", "maximum-requests");
        let text = render(&Snapshot::read(&r, &["d".into()], |_| Some(4096)));
        assert!(text.contains("oxwsgi_requests_total{group=\"d\",application_group=\"a\\\"b|/\",status=\"2xx\"} 1\n"));
        assert!(text.contains(
            "oxwsgi_request_duration_seconds_bucket{group=\"d\",application_group=\"a\\\"b|/\",le=\"0.001\"} 0\n"
        ));
        assert!(text.contains(
            "oxwsgi_request_duration_seconds_bucket{group=\"d\",application_group=\"a\\\"b|/\",le=\"0.0025\"} 1\n"
        ));
        assert!(
            text.contains("oxwsgi_request_duration_seconds_sum{group=\"d\",application_group=\"a\\\"b|/\"} 0.002\n")
        );
        assert!(text.contains("oxwsgi_queue_wait_seconds_count{group=\"d\",application_group=\"a\\\"b|/\"} 1\n"));
        assert!(text.contains("oxwsgi_response_bytes_total{group=\"d\",application_group=\"a\\\"b|/\"} 4\n"));
        assert!(text.contains("oxwsgi_threads{group=\"d\"} 2\n"));
        assert!(text.contains("oxwsgi_process_resident_memory_bytes{group=\"d\"} 4096\n"));
        assert!(text.contains("oxwsgi_daemon_processes{group=\"d\"} 1\n"));
        assert!(text.contains("oxwsgi_daemon_restarts_total{group=\"d\",reason=\"maximum-requests\"} 1\n"));
        assert_eq!(text.matches("# TYPE ").count(), 10);
    }
}
