//! The memory budget: how much memory a run may hold at once, and so the largest block it
//! computes and the largest chunk it decodes.
//!
//! A run holds at most `readers + queue depth + writers` blocks at once (see
//! [`crate::pipeline`]), each with its labels and its mask; a block whose share does not fit
//! is refused before anything is written, with the budget in the message. A compressed chunk is
//! decoded whole, so a chunk must decode to at most a quarter of the budget
//! ([`MemoryBudget::chunk_limit`]); larger uncompressed chunks are read in part.
//!
//! The default is 8 GiB; `--memory-budget` or the environment variable
//! `ANNOMASK_MEMORY_BUDGET` (`16GiB`, `512M`, a number of bytes) set another.
//!
//! ```
//! use annomask::budget::MemoryBudget;
//! let b: MemoryBudget = "16GiB".parse()?;
//! assert_eq!(b.bytes(), 16 << 30);
//! assert_eq!(b.chunk_limit(), 4 << 30);
//! assert_eq!("512M".parse::<MemoryBudget>()?.bytes(), 512 << 20);
//! assert_eq!(b.to_string(), "16 GiB");
//! # Ok::<(), String>(())
//! ```

use std::fmt;
use std::str::FromStr;

/// The environment variable that sets the default budget.
pub const BUDGET_VARIABLE: &str = "ANNOMASK_MEMORY_BUDGET";

/// A number of bytes a run may hold at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemoryBudget(u64);

impl MemoryBudget {
    /// The built-in default: 8 GiB.
    pub const DEFAULT: MemoryBudget = MemoryBudget(8 << 30);

    /// A budget of `bytes` (at least 1 MiB).
    pub fn new(bytes: u64) -> Self {
        Self(bytes.max(1 << 20))
    }

    /// The budget from [`BUDGET_VARIABLE`] if set and valid, else [`MemoryBudget::DEFAULT`].
    pub fn from_env() -> Self {
        std::env::var(BUDGET_VARIABLE)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(Self::DEFAULT)
    }

    /// The budget in bytes.
    pub fn bytes(self) -> u64 {
        self.0
    }

    /// The largest decoded chunk read whole: a quarter of the budget.
    pub fn chunk_limit(self) -> u64 {
        self.0 / 4
    }
}

impl Default for MemoryBudget {
    fn default() -> Self {
        Self::from_env()
    }
}

/// `bytes` in the largest binary unit that keeps it whole (or with one decimal).
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut unit = 0;
    let mut value = bytes as f64;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 || value.fract() == 0.0 {
        format!("{value} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

impl fmt::Display for MemoryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&human_bytes(self.0))
    }
}

impl FromStr for MemoryBudget {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("invalid memory budget {s:?}: expected bytes or e.g. 512MiB, 16G");
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (number, unit) = t.split_at(split);
        let number: u64 = number.parse().map_err(|_| bad())?;
        let shift = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 0,
            "k" | "kb" | "kib" => 10,
            "m" | "mb" | "mib" => 20,
            "g" | "gb" | "gib" => 30,
            "t" | "tb" | "tib" => 40,
            _ => return Err(bad()),
        };
        let bytes = number
            .checked_mul(1u64 << shift)
            .ok_or_else(|| format!("memory budget {s:?} is larger than 2^64 bytes"))?;
        if bytes < 1 << 20 {
            return Err(format!("memory budget {s:?} is below the minimum of 1 MiB"));
        }
        Ok(Self(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_refuses_nonsense() {
        assert_eq!("1048576".parse::<MemoryBudget>().unwrap().bytes(), 1 << 20);
        assert_eq!("2 tib".parse::<MemoryBudget>().unwrap().bytes(), 2 << 40);
        for bad in ["", "x", "-1G", "1.5G", "1Q", "100", "99999999999T"] {
            assert!(bad.parse::<MemoryBudget>().is_err(), "{bad}");
        }
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(100), "100 bytes");
    }
}
