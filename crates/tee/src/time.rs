//! RFC 3339 UTC timestamps to unix seconds, without a clock or a date crate.

/// Parse `YYYY-MM-DDTHH:MM:SSZ` (optionally with fractional seconds, ignored) into unix
/// seconds. Returns `None` for anything else, including dates before 1970.
pub(crate) fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let num = |r: core::ops::Range<usize>| -> Option<u64> {
        let part = b.get(r)?;
        let mut v: u64 = 0;
        for &c in part {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v
                .checked_mul(10)?
                .checked_add(u64::from(c.checked_sub(b'0')?))?;
        }
        Some(v)
    };
    if b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || !matches!(b.get(10), Some(b'T' | b't'))
        || b.get(13) != Some(&b':')
        || b.get(16) != Some(&b':')
    {
        return None;
    }
    let rest = b.get(19..)?;
    let tail_ok = match rest {
        [b'Z' | b'z'] => true,
        [b'.', frac @ .., b'Z' | b'z'] => !frac.is_empty() && frac.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    if !tail_ok {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo)
        || d == 0
        || d > days_in_month(y, mo)
        || h > 23
        || mi > 59
        || sec > 60
    {
        return None;
    }
    let days = days_from_civil(y, mo, d)?;
    days.checked_mul(86_400)?
        .checked_add(h * 3600)?
        .checked_add(mi * 60)?
        .checked_add(sec)
}

fn is_leap(y: u64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: u64, m: u64) -> u64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date, by counting whole years and months.
fn days_from_civil(y: u64, m: u64, d: u64) -> Option<u64> {
    if y < 1970 {
        return None;
    }
    let mut days: u64 = 0;
    for year in 1970..y {
        days = days.checked_add(if is_leap(year) { 366 } else { 365 })?;
    }
    for month in 1..m {
        days = days.checked_add(days_in_month(y, month))?;
    }
    days.checked_add(d.checked_sub(1)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2025-06-19T10:16:03Z"), Some(1_750_328_163));
        assert_eq!(
            parse_rfc3339("2024-02-29T00:00:00.123Z"),
            Some(1_709_164_800)
        );
        assert_eq!(parse_rfc3339("2023-02-29T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("2025-06-19 10:16:03Z"), None);
        assert_eq!(parse_rfc3339("2025-06-19T10:16:03+01:00"), None);
        assert_eq!(parse_rfc3339(""), None);
    }
}
