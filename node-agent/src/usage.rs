//! What the node and its pods use, from the kernel's own accounts: the containers' cgroups
//! (CPU time and memory working set) and, for the node, `/proc/stat` and `/proc/meminfo`.
//!
//! A sampler reads them every [`SAMPLE_EVERY`] and keeps the latest readings with the CPU
//! rate over the interval since the one before (as cAdvisor does for kubelet's resource
//! metrics). `skiff top` is served from them through the `Usage` RPC, and the Prometheus
//! endpoint reads the cumulative figures. Nothing is stored: a restarted agent measures again.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::pod_index::PodIndex;
use crate::runtime::Runtime;

/// How often the sampler reads; also the window the CPU rates are measured over.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(2);

/// One container's figures, read from its cgroup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ContainerUsage {
    /// CPU time used since the cgroup was made, in nanoseconds.
    pub cpu_ns: u64,
    /// Memory in use less the inactive file cache (kubelet's working set).
    pub memory_working_set_bytes: u64,
}

/// A pod's or the node's figures at one sample.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reading {
    /// Cumulative CPU time (the sum over the pod's running containers), nanoseconds.
    pub cpu_ns: u64,
    /// CPU used over the last window, in thousandths of a core.
    pub cpu_millicores: u64,
    pub memory_bytes: u64,
}

/// The latest sample.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    pub node: Reading,
    pub cpu_capacity_millicores: u64,
    pub memory_capacity_bytes: u64,
    /// By namespace and name: pods with at least one cgroup reading.
    pub pods: BTreeMap<(String, String), Reading>,
    /// The interval the rates cover; zero after the first sample.
    pub window: Duration,
}

/// The latest sample, shared between the sampler and its readers.
#[derive(Debug, Default)]
pub struct UsageBook {
    latest: RwLock<Sample>,
}

impl UsageBook {
    pub fn latest(&self) -> Sample {
        self.latest.read().expect("usage lock").clone()
    }

    fn store(&self, sample: Sample) {
        *self.latest.write().expect("usage lock") = sample;
    }
}

/// Samples every [`SAMPLE_EVERY`] until dropped with its task.
pub async fn sample_loop<R: Runtime>(
    runtime: Arc<R>,
    pod_index: Arc<PodIndex>,
    book: Arc<UsageBook>,
) {
    let mut previous: Option<(Instant, Sample)> = None;
    let mut ticks = tokio::time::interval(SAMPLE_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let containers = pod_index.current_containers();
        let runtime = runtime.clone();
        // File reads: off the async workers.
        let read = tokio::task::spawn_blocking(move || {
            let pods: BTreeMap<(String, String), Vec<ContainerUsage>> = containers
                .into_iter()
                .map(|(pod, ids)| {
                    let usages = ids
                        .iter()
                        .filter_map(|id| runtime.container_usage(id))
                        .collect();
                    (pod, usages)
                })
                .collect();
            (node_usage(), pods)
        })
        .await;
        let Ok((node, pods)) = read else { continue };
        let now = Instant::now();
        let sample = next_sample(previous.as_ref().map(|(at, s)| (now - *at, s)), node, pods);
        book.store(sample.clone());
        previous = Some((now, sample));
    }
}

/// The node's figures from `/proc`: CPU time and capacity, memory in use and installed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeUsage {
    pub cpu_ns: u64,
    pub cpus: u64,
    pub memory_used_bytes: u64,
    pub memory_total_bytes: u64,
}

fn node_usage() -> NodeUsage {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let ticks_per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|t| *t > 0)
        .unwrap_or(100) as u64;
    let (busy_ticks, cpus) = parse_proc_stat(&stat);
    let (total, available) = parse_meminfo(&meminfo);
    NodeUsage {
        cpu_ns: busy_ticks.saturating_mul(1_000_000_000 / ticks_per_second),
        cpus,
        memory_used_bytes: total.saturating_sub(available),
        memory_total_bytes: total,
    }
}

/// Busy ticks of all CPUs (everything but idle and iowait) and how many CPUs there are.
fn parse_proc_stat(text: &str) -> (u64, u64) {
    let mut busy = 0;
    let mut cpus = 0;
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        match fields.next() {
            Some("cpu") => {
                let values: Vec<u64> = fields.filter_map(|f| f.parse().ok()).collect();
                let total: u64 = values.iter().take(8).sum();
                let idle =
                    values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
                busy = total.saturating_sub(idle);
            }
            Some(name) if name.starts_with("cpu") => cpus += 1,
            _ => {}
        }
    }
    (busy, cpus)
}

/// MemTotal and MemAvailable, in bytes.
fn parse_meminfo(text: &str) -> (u64, u64) {
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kib| kib.saturating_mul(1024))
    };
    (field("MemTotal"), field("MemAvailable"))
}

/// A sample from readings and the one before (`since`: how long ago it was taken).
fn next_sample(
    before: Option<(Duration, &Sample)>,
    node: NodeUsage,
    pods: BTreeMap<(String, String), Vec<ContainerUsage>>,
) -> Sample {
    let window = before.map_or(Duration::ZERO, |(since, _)| since);
    // A counter that went back (a container restarted) gives no rate for this window.
    let rate = |now: u64, then: Option<u64>| match then {
        Some(then) if !window.is_zero() && now >= then => {
            ((now - then) as u128 * 1000 / window.as_nanos().max(1)) as u64
        }
        _ => 0,
    };
    let node_reading = Reading {
        cpu_ns: node.cpu_ns,
        cpu_millicores: rate(node.cpu_ns, before.map(|(_, s)| s.node.cpu_ns)),
        memory_bytes: node.memory_used_bytes,
    };
    let pods = pods
        .into_iter()
        .filter(|(_, usages)| !usages.is_empty())
        .map(|(key, usages)| {
            let cpu_ns = usages.iter().map(|u| u.cpu_ns).sum();
            let memory_bytes = usages.iter().map(|u| u.memory_working_set_bytes).sum();
            let then = before.and_then(|(_, s)| s.pods.get(&key)).map(|r| r.cpu_ns);
            let reading = Reading {
                cpu_ns,
                cpu_millicores: rate(cpu_ns, then),
                memory_bytes,
            };
            (key, reading)
        })
        .collect();
    Sample {
        node: node_reading,
        cpu_capacity_millicores: node.cpus * 1000,
        memory_capacity_bytes: node.memory_total_bytes,
        pods,
        window,
    }
}

/// A container's figures from its cgroup directories (CPU accounting and memory); `None`
/// when the cgroup is gone (the container exited) or unreadable.
pub fn read_cgroup(v2: bool, cpu_dir: &Path, memory_dir: &Path) -> Option<ContainerUsage> {
    let read = |dir: &Path, file: &str| std::fs::read_to_string(dir.join(file)).ok();
    let stat = read(memory_dir, "memory.stat").unwrap_or_default();
    if v2 {
        let cpu_us = flat_key(&read(cpu_dir, "cpu.stat")?, "usage_usec")?;
        let current: u64 = read(memory_dir, "memory.current")?.trim().parse().ok()?;
        Some(ContainerUsage {
            cpu_ns: cpu_us.saturating_mul(1000),
            memory_working_set_bytes: current
                .saturating_sub(flat_key(&stat, "inactive_file").unwrap_or(0)),
        })
    } else {
        let cpu_ns = read(cpu_dir, "cpuacct.usage")?.trim().parse().ok()?;
        let usage: u64 = read(memory_dir, "memory.usage_in_bytes")?
            .trim()
            .parse()
            .ok()?;
        Some(ContainerUsage {
            cpu_ns,
            memory_working_set_bytes: usage
                .saturating_sub(flat_key(&stat, "total_inactive_file").unwrap_or(0)),
        })
    }
}

/// The value of `key` in a flat-keyed cgroup file (`key value` lines).
fn flat_key(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .filter_map(|line| line.split_once(' '))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_gives_busy_ticks_and_the_cpu_count() {
        let text = "cpu  100 5 50 1000 20 3 2 1 0 0\ncpu0 50 2 25 500 10 1 1 0 0 0\ncpu1 50 3 25 500 10 2 1 1 0 0\nintr 1 2\n";
        // user+nice+system+irq+softirq+steal; idle and iowait are not busy.
        assert_eq!(parse_proc_stat(text), (100 + 5 + 50 + 3 + 2 + 1, 2));
        assert_eq!(parse_proc_stat("garbage\n"), (0, 0));
    }

    #[test]
    fn meminfo_gives_total_and_available_in_bytes() {
        let text = "MemTotal:        2048 kB\nMemFree:  10 kB\nMemAvailable:    1024 kB\n";
        assert_eq!(parse_meminfo(text), (2048 * 1024, 1024 * 1024));
        assert_eq!(parse_meminfo(""), (0, 0));
    }

    #[test]
    fn the_cpu_rate_is_the_cpu_time_used_over_the_window() {
        let key = ("default".to_string(), "spin".to_string());
        let usage = |cpu_ns| ContainerUsage {
            cpu_ns,
            memory_working_set_bytes: 64 << 20,
        };
        let node = NodeUsage {
            cpu_ns: 10_000_000_000,
            cpus: 2,
            memory_used_bytes: 1 << 30,
            memory_total_bytes: 4 << 30,
        };
        let first = next_sample(
            None,
            node,
            BTreeMap::from([(key.clone(), vec![usage(1_000_000_000)])]),
        );
        assert_eq!(
            first.pods[&key].cpu_millicores, 0,
            "no rate from one sample"
        );
        assert_eq!(first.cpu_capacity_millicores, 2000);
        // 1.5 s of CPU over 2 s: 750m; the node used 3 s over 2 s: 1500m.
        let node = NodeUsage {
            cpu_ns: 13_000_000_000,
            ..node
        };
        let pods = BTreeMap::from([
            (key.clone(), vec![usage(2_000_000_000), usage(500_000_000)]),
            (("default".into(), "gone".into()), vec![]),
        ]);
        let second = next_sample(Some((Duration::from_secs(2), &first)), node, pods);
        assert_eq!(second.pods[&key].cpu_millicores, 750);
        assert_eq!(second.pods[&key].memory_bytes, 128 << 20);
        assert_eq!(second.node.cpu_millicores, 1500);
        assert!(!second.pods.contains_key(&("default".into(), "gone".into())));
        // A restarted container's counter starts again: no rate, not a huge one.
        let third = next_sample(
            Some((Duration::from_secs(2), &second)),
            node,
            BTreeMap::from([(key.clone(), vec![usage(100)])]),
        );
        assert_eq!(third.pods[&key].cpu_millicores, 0);
    }

    #[test]
    fn cgroup_files_of_both_layouts_give_cpu_time_and_working_set() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path().join("v2");
        std::fs::create_dir(&v2).unwrap();
        std::fs::write(v2.join("cpu.stat"), "usage_usec 1500\nuser_usec 1000\n").unwrap();
        std::fs::write(v2.join("memory.current"), "1000000\n").unwrap();
        std::fs::write(v2.join("memory.stat"), "anon 5\ninactive_file 200000\n").unwrap();
        assert_eq!(
            read_cgroup(true, &v2, &v2),
            Some(ContainerUsage {
                cpu_ns: 1_500_000,
                memory_working_set_bytes: 800_000
            })
        );
        let (cpu, memory) = (dir.path().join("cpuacct"), dir.path().join("memory"));
        std::fs::create_dir(&cpu).unwrap();
        std::fs::create_dir(&memory).unwrap();
        std::fs::write(cpu.join("cpuacct.usage"), "42\n").unwrap();
        std::fs::write(memory.join("memory.usage_in_bytes"), "1000\n").unwrap();
        std::fs::write(memory.join("memory.stat"), "total_inactive_file 2000\n").unwrap();
        assert_eq!(
            read_cgroup(false, &cpu, &memory),
            Some(ContainerUsage {
                cpu_ns: 42,
                memory_working_set_bytes: 0
            })
        );
        assert_eq!(read_cgroup(true, &dir.path().join("gone"), &v2), None);
    }
}
