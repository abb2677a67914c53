//! The process's CPU share, for the load the worker reports.

use std::time::{Duration, Instant};

/// Measures the CPU share (0 to 1 of all cores) used between two samples.
#[derive(Debug)]
pub struct CpuMeter {
    cores: f64,
    last: Option<(Instant, Duration)>,
}

impl Default for CpuMeter {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        Self { cores: cores as f64, last: None }
    }
}

impl CpuMeter {
    /// The share since the previous call (0 on the first, or where /proc is unavailable).
    pub fn sample(&mut self, now: Instant) -> f64 {
        let Some(cpu) = process_cpu_time() else { return 0.0 };
        let share = share(self.last, (now, cpu), self.cores);
        self.last = Some((now, cpu));
        share
    }
}

/// CPU time over wall time, divided across cores.
fn share(last: Option<(Instant, Duration)>, current: (Instant, Duration), cores: f64) -> f64 {
    let Some((then, cpu_then)) = last else { return 0.0 };
    let wall = current.0.saturating_duration_since(then).as_secs_f64();
    if wall <= 0.0 {
        return 0.0;
    }
    (current.1.saturating_sub(cpu_then).as_secs_f64() / wall / cores).clamp(0.0, 1.0)
}

/// User plus system time of this process (Linux `/proc/self/stat`, in clock ticks of 1/100 s).
pub fn process_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// Resident memory of this process in KiB (`VmRSS`).
pub fn resident_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_is_cpu_over_wall_across_cores() {
        let start = Instant::now();
        let later = start + Duration::from_secs(2);
        assert_eq!(share(None, (later, Duration::from_secs(1)), 2.0), 0.0, "no previous sample");
        assert_eq!(share(Some((start, Duration::ZERO)), (later, Duration::from_secs(1)), 2.0), 0.25);
        assert_eq!(share(Some((start, Duration::ZERO)), (later, Duration::from_secs(9)), 2.0), 1.0, "capped");
        assert_eq!(share(Some((start, Duration::ZERO)), (start, Duration::from_secs(1)), 2.0), 0.0, "no time passed");
    }

    #[test]
    fn this_process_has_cpu_time_and_memory() {
        assert!(process_cpu_time().is_some());
        assert!(resident_kib().is_some_and(|kib| kib > 0));
    }
}
