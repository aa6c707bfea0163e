//! Humane durations on the command line: `5s`, `500ms`, `1m30s`, `1.5s`.
//!
//! A bare number is rejected rather than guessed at: `--ttl 30` could mean seconds or
//! milliseconds, and a TTL a thousand times too short silently deletes data.

use std::time::Duration;

/// Unit suffixes and their length in nanoseconds; a unit must match exactly.
const UNITS: [(&str, u128); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60 * 1_000_000_000),
    ("h", 3_600 * 1_000_000_000),
    ("d", 86_400 * 1_000_000_000),
];

/// Parses a sequence of `<number><unit>` parts, e.g. `1h30m`, `1.5s`, `250ms`.
pub fn parse_duration(input: &str) -> Result<Duration, String> {
    let text = input.trim();
    if text.is_empty() {
        return Err("empty duration (use e.g. 5s, 500ms, 1m30s)".to_string());
    }
    let mut rest = text;
    let mut total_nanos: u128 = 0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after_number) = rest.split_at(number_len);
        if number.is_empty() {
            return Err(format!(
                "expected a number in {text:?} (use e.g. 5s, 500ms, 1m30s)"
            ));
        }
        let unit_len = after_number
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after_number.len());
        let (unit, after_unit) = after_number.split_at(unit_len);
        if unit.is_empty() {
            return Err(format!(
                "missing unit after {number:?} in {text:?} (use e.g. {number}s or {number}ms)"
            ));
        }
        let unit_nanos = UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, nanos)| *nanos)
            .ok_or_else(|| {
                format!("unknown unit {unit:?} in {text:?} (units: ns, us, ms, s, m, h, d)")
            })?;
        total_nanos = total_nanos
            .checked_add(scale(number, unit_nanos, text)?)
            .ok_or_else(|| format!("duration {text:?} is too long"))?;
        rest = after_unit;
    }
    let secs = u64::try_from(total_nanos / 1_000_000_000)
        .map_err(|_| format!("duration {text:?} is too long"))?;
    // The remainder is below one billion, so it fits in a u32.
    let subsec = (total_nanos % 1_000_000_000) as u32;
    Ok(Duration::new(secs, subsec))
}

/// `number` (digits with at most one `.`) times `unit_nanos`, exactly, in nanoseconds; fractions
/// of a nanosecond are dropped.
fn scale(number: &str, unit_nanos: u128, whole_text: &str) -> Result<u128, String> {
    let invalid = || format!("invalid number {number:?} in {whole_text:?}");
    let too_long = || format!("duration {whole_text:?} is too long");
    let (whole, fraction) = match number.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (number, ""),
    };
    if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
        return Err(invalid());
    }
    let whole_value: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| too_long())?
    };
    let mut nanos = whole_value.checked_mul(unit_nanos).ok_or_else(too_long)?;
    // Digits past the nanosecond cannot change the result; cap them so 10^len cannot overflow.
    let fraction = &fraction[..fraction.len().min(18)];
    if !fraction.is_empty() {
        let numerator: u128 = fraction.parse().map_err(|_| invalid())?;
        let denominator = 10u128.pow(fraction.len() as u32);
        nanos = nanos
            .checked_add(numerator * unit_nanos / denominator)
            .ok_or_else(too_long)?;
    }
    Ok(nanos)
}

/// `--timeout`: zero would fail every request before it is sent.
pub fn parse_timeout(input: &str) -> Result<Duration, String> {
    let duration = parse_duration(input)?;
    if duration.is_zero() {
        return Err("the timeout must be greater than zero".to_string());
    }
    Ok(duration)
}

/// `--ttl`: the API counts TTLs in whole milliseconds and reads 0 as "no TTL", so a TTL that
/// would round down to 0 is rejected instead of silently making the key permanent.
pub fn parse_ttl(input: &str) -> Result<Duration, String> {
    let duration = parse_duration(input)?;
    if duration < Duration::from_millis(1) {
        return Err("a TTL must be at least 1ms (omit --ttl for a key that never expires)".into());
    }
    Ok(duration)
}

/// The TTL as the API's `ttl_ms`: 0 for none, saturating for absurdly long TTLs.
pub fn ttl_millis(ttl: Option<Duration>) -> u64 {
    ttl.map_or(0, |ttl| u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_single_units() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("7ns"), Ok(Duration::from_nanos(7)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
    }

    #[test]
    fn parses_compound_and_fractional_durations() {
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h0m5s"), Ok(Duration::from_secs(3605)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration(".25s"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration(" 10s "), Ok(Duration::from_secs(10)));
    }

    #[test]
    fn rejects_ambiguous_or_malformed_durations() {
        for bad in ["", "30", "s", "5x", "1..5s", ".s", "5 s", "-5s", "ms5"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
        let message = parse_duration("30").unwrap_err();
        assert!(message.contains("missing unit"), "{message}");
    }

    #[test]
    fn rejects_overflowing_durations() {
        assert!(parse_duration("99999999999999999999999999999999999999999d").is_err());
        assert!(parse_duration("999999999999999999999d").is_err());
    }

    #[test]
    fn timeout_must_be_positive() {
        assert!(parse_timeout("0s").is_err());
        assert_eq!(parse_timeout("1ms"), Ok(Duration::from_millis(1)));
    }

    #[test]
    fn ttl_must_be_at_least_a_millisecond() {
        assert!(parse_ttl("0s").is_err());
        assert!(parse_ttl("500us").is_err());
        assert_eq!(parse_ttl("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(ttl_millis(Some(Duration::from_secs(30))), 30_000);
        assert_eq!(ttl_millis(None), 0);
    }
}
