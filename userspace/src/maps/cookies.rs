//! The XDP program's side of DNS cookies: the map that shares the server secret and the
//! clock with it (`xgslb_common::CookieConfig`), and its per-CPU counters.
//!
//! The program has only the boot clock (`bpf_ktime_get_boot_ns`); the Unix time it stamps
//! and checks cookies with is that plus the offset written here, measured as close together
//! as two clock reads get. xgslbd writes it again every balancer interval (`refresh_clock`),
//! so a stepped or slewed wall clock reaches the program within one.
use aya::maps::{Array, MapData, MapError, PerCpuArray};
use xgslb_common::{COOKIE_STATS_LEN, CookieConfig, CookieState};

use crate::dns::cookies::{CookieSecret, Cookies};

/// The cookie config map and the cookie counters of a loaded program.
pub struct CookieMaps {
    config: Array<MapData, CookieConfig>,
    stats: PerCpuArray<MapData, u64>,
    /// What this process last wrote (none yet: the map holds a predecessor's, or zeros).
    written: Option<CookieConfig>,
}

impl CookieMaps {
    /// Wraps the maps of a loaded object.
    pub fn new(config: Array<MapData, CookieConfig>, stats: PerCpuArray<MapData, u64>) -> Self {
        Self {
            config,
            stats,
            written: None,
        }
    }

    /// The secret the program in service checks cookies with, when a predecessor published
    /// one with cookies on: a restart that keeps it keeps its clients' cookies valid.
    pub fn adopted_secret(&self) -> Option<CookieSecret> {
        let c = self.config.get(&0, 0).ok()?;
        (c.state == CookieState::On as u32).then(|| CookieSecret::from_key(c.key))
    }

    /// Tells the program to check and issue cookies as `cookies` says, from now on.
    pub fn publish(&mut self, cookies: &Cookies) -> Result<(), MapError> {
        let (state, key) = if cookies.enabled() {
            (CookieState::On, cookies.secret().key())
        } else {
            (CookieState::Off, [0; 2])
        };
        let c = CookieConfig {
            state: state as u32,
            _pad: 0,
            key,
            clock_offset_ns: clock_offset_ns(),
        };
        self.config.set(0, c, 0)?;
        self.written = Some(c);
        Ok(())
    }

    /// Writes the clock offset again (after `publish`; before it, nothing).
    pub fn refresh_clock(&mut self) -> Result<(), MapError> {
        let Some(mut c) = self.written else {
            return Ok(());
        };
        c.clock_offset_ns = clock_offset_ns();
        self.config.set(0, c, 0)?;
        self.written = Some(c);
        Ok(())
    }

    /// The program's answers to queries with a cookie, by `CookieSeen`, summed over CPUs.
    pub fn stats(&self) -> Result<[u64; COOKIE_STATS_LEN as usize], MapError> {
        read_stats(&self.stats)
    }
}

/// The counts of a cookie counter map, by `CookieSeen`, summed over CPUs.
pub fn read_stats(
    map: &PerCpuArray<MapData, u64>,
) -> Result<[u64; COOKIE_STATS_LEN as usize], MapError> {
    let mut out = [0; COOKIE_STATS_LEN as usize];
    for (i, n) in out.iter_mut().enumerate() {
        *n = map.get(&(i as u32), 0)?.iter().sum();
    }
    Ok(out)
}

/// Unix time minus boot time, nanoseconds, wrapping: what the program adds to its boot
/// clock. The boot clock is read between two reads of the wall clock, and their mean taken,
/// so the error is half the time between them.
pub fn clock_offset_ns() -> u64 {
    let read = |clock| {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid timespec for the call to fill; both clocks always exist
        // on Linux.
        unsafe { libc::clock_gettime(clock, &mut ts) };
        (ts.tv_sec as u64)
            .wrapping_mul(1_000_000_000)
            .wrapping_add(ts.tv_nsec as u64)
    };
    let before = read(libc::CLOCK_REALTIME);
    let boot = read(libc::CLOCK_BOOTTIME);
    let after = read(libc::CLOCK_REALTIME);
    let wall = before.wrapping_add(after.wrapping_sub(before) / 2);
    wall.wrapping_sub(boot)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_offset_turns_the_boot_clock_into_unix_time() {
        let offset = super::clock_offset_ns();
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: as in `clock_offset_ns`.
        unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
        let boot = ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
        let unix = boot.wrapping_add(offset) / 1_000_000_000;
        let now = crate::dns::cookies::unix_now() as u64;
        assert!(unix.abs_diff(now) <= 1, "{unix} vs {now}");
    }
}
