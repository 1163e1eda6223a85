//! The disk budget as the person sets it: `[create] budget = { max_size = "50G", max_age =
//! "7d", max_count = 20 }` in wt.toml, or `--max-size`, `--max-age`, `--max-count`.

use std::time::Duration;

use wt_common::Error;

/// `[create] budget` as written.
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetConfig {
    pub max_size: Option<String>,
    pub max_age: Option<String>,
    pub max_count: Option<usize>,
}

/// The budget, parsed. The budget holds when every limit set holds: wt's worktrees and store
/// take at most `max_size`; with `--remove-idle`, there are at most `max_count` worktrees; and
/// nothing idle past `max_age` keeps its build dirs (or, with `--remove-idle`, exists).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub max_size: Option<u64>,
    pub max_age: Option<Duration>,
    pub max_count: Option<usize>,
}

impl Budget {
    pub fn from_config(c: &BudgetConfig) -> Result<Budget, Error> {
        Ok(Budget {
            max_size: c.max_size.as_deref().map(parse_size).transpose()?,
            max_age: c.max_age.as_deref().map(parse_age).transpose()?,
            max_count: c.max_count,
        })
    }

    /// Flags over the config, limit by limit.
    pub fn over(self, flags: Budget) -> Budget {
        Budget {
            max_size: flags.max_size.or(self.max_size),
            max_age: flags.max_age.or(self.max_age),
            max_count: flags.max_count.or(self.max_count),
        }
    }

    pub fn is_set(&self) -> bool {
        self.max_size.is_some() || self.max_age.is_some() || self.max_count.is_some()
    }
}

/// `50G`, `500M`, `1.5T`, `800K`, `123` (bytes); `G`, `GB` and `GiB` alike are 2^30, as `du -h`
/// and `df -h` write them.
pub fn parse_size(text: &str) -> Result<u64, Error> {
    let bad =
        || Error::usage("bad-size", format!("'{text}' is not a size; write e.g. 50G, 500M, 1.5T or a number of bytes"));
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: f64 = number.parse().map_err(|_| bad())?;
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return Err(bad()),
    };
    let bytes = n * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

/// `7d`, `12h`, `30m`, `2w`, `90s`.
pub fn parse_age(text: &str) -> Result<Duration, Error> {
    let bad = || Error::usage("bad-age", format!("'{text}' is not an age; write e.g. 7d, 12h, 30m or 2w"));
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: f64 = number.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        "w" => n * 7.0 * 86400.0,
        _ => return Err(bad()),
    };
    if !secs.is_finite() || !(0.0..=100.0 * 365.0 * 86400.0).contains(&secs) {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(secs))
}

/// For clap's `value_parser`.
pub fn size_arg(text: &str) -> Result<u64, String> {
    parse_size(text).map_err(|e| e.message)
}

/// For clap's `value_parser`.
pub fn age_arg(text: &str) -> Result<Duration, String> {
    parse_age(text).map_err(|e| e.message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_ages_as_people_write_them() {
        assert_eq!(parse_size("50G").unwrap(), 50 << 30);
        assert_eq!(parse_size("1.5T").unwrap(), 3 << 39);
        assert_eq!(parse_size("500MiB").unwrap(), 500 << 20);
        assert_eq!(parse_size("123").unwrap(), 123);
        assert_eq!(parse_age("7d").unwrap(), Duration::from_secs(7 * 86400));
        assert_eq!(parse_age("2w").unwrap(), Duration::from_secs(14 * 86400));
        for bad in ["", "G", "5X", "-1G"] {
            assert_eq!(parse_size(bad).unwrap_err().code, "bad-size", "{bad}");
        }
        for bad in ["", "7", "d", "5y"] {
            assert_eq!(parse_age(bad).unwrap_err().code, "bad-age", "{bad}");
        }
    }
}
