//! Durations on the command line: `500ms`, `30s`, `5m`, `1h`, `1.5s`; a bare number is seconds.

use std::time::Duration;

use crate::error::Error;

/// Parses a duration, or says what form it must take.
pub fn parse(text: &str) -> Result<Duration, Error> {
    let bad =
        || Error::usage("bad-duration", format!("'{text}' is not a duration; write e.g. 500ms, 30s, 5m, 1h or 1.5s"));
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: f64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(bad()),
    };
    if !seconds.is_finite() || seconds <= 0.0 || seconds > 366.0 * 86400.0 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// A duration as a person reads it: `350ms`, `4.2s`, `1m23s`, `2h05m`.
pub fn human(d: Duration) -> String {
    let ms = d.as_millis();
    let s = d.as_secs();
    match () {
        _ if ms < 1000 => format!("{ms}ms"),
        _ if s < 60 => format!("{:.1}s", d.as_secs_f64()),
        _ if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

/// `human` of a number of milliseconds, as records carry durations.
pub fn human_ms(ms: u64) -> String {
    human(Duration::from_millis(ms))
}

/// `parse` for clap's `value_parser`: the error as the one-line message clap prints.
pub fn parse_arg(text: &str) -> Result<Duration, String> {
    parse(text).map_err(|e| e.message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_forms() {
        assert_eq!(parse("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse("1h").unwrap(), Duration::from_secs(3600));
    }

    #[test]
    fn shows_durations_as_people_read_them() {
        assert_eq!(human_ms(350), "350ms");
        assert_eq!(human_ms(4_240), "4.2s");
        assert_eq!(human_ms(82_595), "1m22s");
        assert_eq!(human_ms(7_500_000), "2h05m");
    }

    #[test]
    fn refuses_the_rest() {
        for bad in ["", "s", "-1s", "0", "1x", "1 s", "abc", "1e9h", "1..2s"] {
            assert_eq!(parse(bad).unwrap_err().code, "bad-duration", "{bad:?}");
        }
    }
}
