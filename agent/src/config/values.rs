//! Validated values of the configuration: each type can only hold what its
//! check accepts, so the agent never checks or parses it again. The error
//! of each constructor is the message shown after `FILE:LINE: key `KEY`:`.

use std::fmt;

/// Size of the eBPF ring buffer (bytes): a power of two ≥ 4096, as the
/// kernel demands of a `BPF_MAP_TYPE_RINGBUF` (a power-of-two multiple of
/// the page size; kernel/bpf/ringbuf.c, `ringbuf_map_alloc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingBufferBytes(u32);

impl RingBufferBytes {
    /// 32 MiB: at 40 bytes an event, about 800,000 events between drains.
    pub const DEFAULT: RingBufferBytes = RingBufferBytes(32 << 20);

    /// `bytes` if it is a power of two ≥ 4096. Errors: what was expected.
    pub fn new(bytes: u32) -> Result<RingBufferBytes, String> {
        if bytes < 4096 || !bytes.is_power_of_two() {
            return Err(format!("{bytes}: expected a power of two >= 4096 (bytes)"));
        }
        Ok(RingBufferBytes(bytes))
    }

    /// The size (bytes), the ring buffer map's `max_entries`.
    pub fn get(self) -> u32 {
        self.0
    }
}

/// A share from 0 to 100 (percent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Percent(u8);

impl Percent {
    /// `percent` if it is at most 100; `None` otherwise (the caller says
    /// what the share is of).
    pub const fn new(percent: u8) -> Option<Percent> {
        if percent <= 100 {
            Some(Percent(percent))
        } else {
            None
        }
    }

    /// The share (percent, 0–100).
    pub fn get(self) -> u8 {
        self.0
    }
}

/// A bandwidth limit as rsync's `--bwlimit` takes it, kept as written: a
/// number > 0 (KiB/s) with an optional fraction and unit suffix (`K`, `M`,
/// `G`, optionally followed by `B` or `iB`), e.g. `500`, `1.5M`, `10MiB`;
/// rsync(1) "--bwlimit".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rate(String);

impl Rate {
    /// Checks `rate`. Errors: what was expected, with examples.
    pub fn new(rate: &str) -> Result<Rate, String> {
        let digits_end = rate
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rate.len());
        let (number, suffix) = rate.split_at(digits_end);
        let number_ok = number.parse::<f64>().is_ok_and(|n| n > 0.0);
        let suffix_ok = suffix.is_empty()
            || suffix.len() <= 3
                && suffix.starts_with(['K', 'M', 'G', 'k', 'm', 'g'])
                && ["", "B", "b", "iB", "ib"].contains(&&suffix[1..]);
        if number_ok && suffix_ok {
            Ok(Rate(rate.to_string()))
        } else {
            Err(format!(
                "`{rate}`: expected a rate > 0 in KiB/s, or with a suffix K, M or G (e.g. \"500\", \"10M\")"
            ))
        }
    }
}

/// The rate as written, the value of rsync's `--bwlimit=`.
impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ring_buffer_is_a_power_of_two_of_at_least_a_page() {
        assert_eq!(
            RingBufferBytes::new(4096).map(RingBufferBytes::get),
            Ok(4096)
        );
        for bad in [0, 1000, 4095, 6144] {
            assert!(RingBufferBytes::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_percentage_stops_at_one_hundred() {
        assert_eq!(Percent::new(100).map(Percent::get), Some(100));
        assert_eq!(Percent::new(101), None);
    }

    #[test]
    fn a_rate_is_kept_as_written() {
        assert_eq!(Rate::new("1.5M").map(|r| r.to_string()), Ok("1.5M".into()));
    }
}
