//! Sizes as people read them in tables and summaries: `512 B`, `7.7 MiB`, `2.0 GiB`.

/// `bytes` in the largest binary unit under 1024 of it, one decimal (`512 B` whole).
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
    if unit == "B" {
        format!("{bytes} B")
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
        assert_eq!(super::human(3 << 40), "3.0 TiB");
    }
}
