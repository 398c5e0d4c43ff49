//! A copy of the region, summed up per process group: what both renderings print.

pub use super::region::SeriesValues;
use super::region::{ProcessValues, Region, REASONS};

/// One process group: embedded mode is the group named "".
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GroupValues {
    pub name: String,
    /// Live processes (daemon processes; for "", Apache children that served embedded requests).
    pub processes: u32,
    pub threads: u64,
    pub busy_threads: u64,
    pub resident_memory_bytes: u64,
    pub restarts: [u64; REASONS.len()],
    pub series: Vec<SeriesValues>,
}

impl GroupValues {
    pub fn is_daemon(&self) -> bool {
        !self.name.is_empty()
    }
}

/// The whole server: every group, configured daemon groups first in their configured order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    pub groups: Vec<GroupValues>,
}

impl Snapshot {
    /// Reads `region`. `daemon_groups` are the configured daemon group names (so an idle group
    /// shows with zeros); `resident` gives a live process' resident memory, or None for a
    /// process that no longer exists (whose row is then left out).
    pub fn read(region: &Region, daemon_groups: &[String], resident: impl Fn(u32) -> Option<u64>) -> Snapshot {
        let processes: Vec<(ProcessValues, u64)> =
            region.process_values().into_iter().filter_map(|p| resident(p.pid).map(|rss| (p, rss))).collect();
        Snapshot::build(region.series_values(), &processes, &region.restart_values(), daemon_groups)
    }

    pub fn build(
        series: Vec<SeriesValues>,
        processes: &[(ProcessValues, u64)],
        restarts: &[(String, [u64; REASONS.len()])],
        daemon_groups: &[String],
    ) -> Snapshot {
        let mut groups: Vec<GroupValues> =
            daemon_groups.iter().map(|n| GroupValues { name: n.clone(), ..Default::default() }).collect();
        fn group<'a>(groups: &'a mut Vec<GroupValues>, name: &str) -> &'a mut GroupValues {
            match groups.iter().position(|g| g.name == name) {
                Some(i) => &mut groups[i],
                None => {
                    groups.push(GroupValues { name: name.to_string(), ..Default::default() });
                    groups.last_mut().expect("just pushed")
                }
            }
        }
        for s in series {
            let g = group(&mut groups, &s.group);
            // Two processes racing to create one series may have made two slots: sum them.
            match g.series.iter_mut().find(|x| x.application_group == s.application_group) {
                Some(x) => {
                    for (a, b) in x.status.iter_mut().zip(s.status.iter()) {
                        *a += b;
                    }
                    x.bytes_in += s.bytes_in;
                    x.bytes_out += s.bytes_out;
                    x.duration.add(&s.duration);
                    x.queue.add(&s.queue);
                }
                None => g.series.push(s),
            }
        }
        for (p, rss) in processes {
            let g = group(&mut groups, &p.group);
            g.processes += 1;
            g.threads += p.threads as u64;
            g.busy_threads += p.busy as u64;
            g.resident_memory_bytes += rss;
        }
        for (name, counts) in restarts {
            let g = group(&mut groups, name);
            for (a, b) in g.restarts.iter_mut().zip(counts.iter()) {
                *a += b;
            }
        }
        for g in &mut groups {
            g.series.sort_by(|a, b| a.application_group.cmp(&b.application_group));
        }
        Snapshot { groups }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_sum_their_processes_and_series() {
        let r = Region::new_boxed();
        r.series("d", "a").unwrap().done(200, 10, 1, 2);
        r.series("", "b").unwrap().done(500, 10, 0, 3);
        r.register(1, "d", 3, 0).unwrap().enter();
        r.register(2, "d", 3, 0);
        r.register(3, "", 25, 0);
        r.register(4, "d", 3, 0);
        r.record_restart("d", "crash");
        let snap = Snapshot::read(&r, &["idle".into(), "d".into()], |pid| (pid != 4).then_some(1000 * pid as u64));
        let names: Vec<&str> = snap.groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["idle", "d", ""]);
        let d = &snap.groups[1];
        assert_eq!((d.processes, d.threads, d.busy_threads, d.resident_memory_bytes), (2, 6, 1, 3000));
        assert_eq!(d.restarts[0], 1);
        assert_eq!(d.series[0].requests(), 1);
        assert_eq!(snap.groups[0], GroupValues { name: "idle".into(), ..Default::default() });
        assert_eq!(snap.groups[2].series[0].status[4], 1);
        assert!(!snap.groups[2].is_daemon());
    }
}
