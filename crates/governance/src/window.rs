//! Windows as operators write them: a whole number and one unit, `30s`, `5m`, `1h`, `7d`.
//!
//! The seed's rules were written this way (`"window": "5m"`), so that is the wire form; a
//! compound form like `1h30m` is refused rather than half understood (write `90m`). Formatting
//! picks the largest unit that divides the window exactly, so `300s` reads back as `5m`.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

use crate::Error;

const UNITS: [(char, u64); 4] = [('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)];

/// Parses `text` as a whole number followed by `s`, `m`, `h` or `d`.
pub fn parse(text: &str) -> Result<Duration, Error> {
    let invalid = |why| Error::InvalidWindow {
        value: text.to_owned(),
        why,
    };
    let Some(unit) = text.chars().last() else {
        return Err(invalid("empty; write a number and a unit such as 5m"));
    };
    let Some(&(_, seconds)) = UNITS.iter().find(|(u, _)| *u == unit) else {
        return Err(invalid("the unit must be one of s, m, h, d"));
    };
    let number = &text[..text.len() - unit.len_utf8()];
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("expected a whole number before the unit"));
    }
    let n: u64 = number
        .parse()
        .map_err(|_| invalid("the number is too large"))?;
    n.checked_mul(seconds)
        .map(Duration::from_secs)
        .ok_or_else(|| invalid("the number is too large"))
}

/// Writes `window` with the largest unit that divides it exactly; sub-second parts are dropped
/// (rules refuse windows that have them, see [`crate::Rule::check`]).
pub fn format(window: Duration) -> String {
    let secs = window.as_secs();
    let (unit, size) = UNITS
        .iter()
        .copied()
        .find(|(_, size)| secs > 0 && secs.is_multiple_of(*size))
        .unwrap_or(('s', 1));
    format!("{}{unit}", secs / size)
}

/// Serde helpers: `#[serde(with = "crate::window")]` on a `Duration` field.
pub fn serialize<S: Serializer>(window: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(*window))
}

/// See [`serialize`].
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse(&text).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit() {
        assert_eq!(parse("45s").unwrap(), Duration::from_secs(45));
        assert_eq!(parse("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse("1h").unwrap(), Duration::from_secs(3_600));
        assert_eq!(parse("7d").unwrap(), Duration::from_secs(604_800));
        assert_eq!(parse("0m").unwrap(), Duration::ZERO);
    }

    #[test]
    fn refuses_what_it_does_not_understand_with_the_reason() {
        let why = |text: &str| match parse(text) {
            Err(Error::InvalidWindow { value, why }) => {
                assert_eq!(value, text);
                why
            }
            other => panic!("{text}: {other:?}"),
        };
        assert_eq!(why(""), "empty; write a number and a unit such as 5m");
        assert_eq!(why("5"), "the unit must be one of s, m, h, d");
        assert_eq!(why("5min"), "the unit must be one of s, m, h, d");
        assert_eq!(why("2w"), "the unit must be one of s, m, h, d");
        assert_eq!(why("m"), "expected a whole number before the unit");
        assert_eq!(why("1.5h"), "expected a whole number before the unit");
        assert_eq!(why("-5m"), "expected a whole number before the unit");
        assert_eq!(why(" 5m"), "expected a whole number before the unit");
        assert_eq!(why("1h30m"), "expected a whole number before the unit");
        assert_eq!(why("99999999999999999999s"), "the number is too large");
        assert_eq!(why("999999999999999999d"), "the number is too large");
        assert_eq!(
            parse("5x").unwrap_err().to_string(),
            "invalid window `5x`: the unit must be one of s, m, h, d"
        );
    }

    #[test]
    fn formats_with_the_largest_exact_unit() {
        assert_eq!(format(Duration::from_secs(300)), "5m");
        assert_eq!(format(Duration::from_secs(90)), "90s");
        assert_eq!(format(Duration::from_secs(5_400)), "90m");
        assert_eq!(format(Duration::from_secs(7_200)), "2h");
        assert_eq!(format(Duration::from_secs(172_800)), "2d");
        assert_eq!(format(Duration::ZERO), "0s");
        assert_eq!(format(Duration::from_millis(1_500)), "1s");
        for text in ["1s", "59s", "1m", "15m", "1h", "25h", "1d", "7d"] {
            assert_eq!(format(parse(text).unwrap()), text);
        }
    }
}
