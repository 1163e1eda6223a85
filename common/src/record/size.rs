//! Sizes as people read them in tables, summaries and messages: `512 B`, `7.7 MiB`, `1 MiB`.

/// `bytes` in the largest binary unit under 1024 of it, one decimal, none when the value is
/// whole (`1 MiB`, a limit as it is set; `512 B`).
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = "B";
    for u in UNITS {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = u;
    }
    if value.fract() == 0.0 {
        format!("{value:.0} {unit}")
    } else {
        format!("{value:.1} {unit}")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(super::human(512), "512 B");
        assert_eq!(super::human(8 * 1024 - 1), "8.0 KiB");
        assert_eq!(super::human(7_700_000), "7.3 MiB");
        assert_eq!(super::human(3 << 19), "1.5 MiB");
        assert_eq!(super::human(1 << 20), "1 MiB", "a limit as it is set");
        assert_eq!(super::human(2 << 30), "2 GiB");
        assert_eq!(super::human(3 << 40), "3 TiB");
    }
}
