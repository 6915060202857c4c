//! Progress notifications: how often a watch stream tells its `progress_notify` watchers the
//! revision they are caught up to (`--experimental-watch-progress-notify-interval`).
//!
//! As in etcd: the default is 10 minutes; a positive interval below 100 ms is raised to 100 ms;
//! zero or a negative value keeps the default; each stream adds a random jitter of up to a tenth
//! of the interval, so streams created together do not all report at once. A watcher that
//! received events since the last tick gets no notification at that tick.

use std::time::Duration;

use rand::Rng;

/// etcd's default interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(600);
/// The shortest interval etcd allows.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// The interval a configured value results in (see the module docs).
pub fn effective_interval(configured: Option<Duration>) -> Duration {
    match configured {
        Some(d) if d.is_zero() => DEFAULT_INTERVAL,
        Some(d) => d.max(MIN_INTERVAL),
        None => DEFAULT_INTERVAL,
    }
}

/// One stream's tick period: `interval` plus a jitter in `[0, interval / 10)` from the node's
/// generator (seeded in the simulator).
pub fn stream_period(interval: Duration) -> Duration {
    let tenth = (interval / 10).as_nanos() as u64;
    let jitter = if tenth == 0 {
        0
    } else {
        crate::io::rand::thread_rng().gen_range(0..tenth)
    };
    interval + Duration::from_nanos(jitter)
}

/// Parses a Go `time.Duration` string (`"10m0s"`, `"1.5s"`, `"100ms"`, `"-1h"`, `"0"`), the
/// syntax etcd's duration flags take. A negative duration parses to `None` (it disables nothing
/// and keeps the default, as in etcd).
pub fn parse_go_duration(s: &str) -> Result<Option<Duration>, String> {
    let bad = || format!("time: invalid duration {s:?}");
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(Some(Duration::ZERO));
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let num: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total += num * nanos_per;
    }
    if neg && total > 0.0 {
        return Ok(None);
    }
    if total > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(Some(Duration::from_nanos(total.round() as u64)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        let p = |s| parse_go_duration(s).unwrap();
        assert_eq!(p("10m0s"), Some(Duration::from_secs(600)));
        assert_eq!(p("100ms"), Some(Duration::from_millis(100)));
        assert_eq!(p("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(p("1h2m3s"), Some(Duration::from_secs(3723)));
        assert_eq!(p("250us"), Some(Duration::from_micros(250)));
        assert_eq!(p("0"), Some(Duration::ZERO));
        assert_eq!(p("-1s"), None);
        for bad in ["", "5", "1x", "s", "1.2.3s", "-"] {
            assert!(parse_go_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn intervals_as_etcd_adjusts_them() {
        assert_eq!(effective_interval(None), DEFAULT_INTERVAL);
        assert_eq!(effective_interval(Some(Duration::ZERO)), DEFAULT_INTERVAL);
        assert_eq!(
            effective_interval(Some(Duration::from_millis(5))),
            MIN_INTERVAL
        );
        assert_eq!(
            effective_interval(Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        for _ in 0..100 {
            let d = stream_period(Duration::from_secs(1));
            assert!(d >= Duration::from_secs(1) && d < Duration::from_millis(1100));
        }
    }
}
