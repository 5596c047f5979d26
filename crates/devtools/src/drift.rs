//! Comparing generated text with its checked-in copy, tolerant of what other libm and
//! plotters builds may round differently: numbers may differ by one unit in their last
//! printed digit; everything else must be identical.

/// A number as printed: its value and the size of one unit in its last digit.
fn parse_number(token: &str) -> Option<(f64, f64)> {
    let value: f64 = token.parse().ok()?;
    let mantissa = token.split(['e', 'E']).next().unwrap_or(token);
    let decimals = mantissa.split_once('.').map_or(0, |(_, frac)| frac.len());
    let exponent: i32 = token
        .split_once(['e', 'E'])
        .and_then(|(_, e)| e.parse().ok())
        .unwrap_or(0);
    let unit = 10f64.powi(exponent - i32::try_from(decimals).unwrap_or(0));
    Some((value, unit))
}

/// Splits text into numbers and the text between them.
fn tokens(text: &str) -> Vec<(bool, &str)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let (mut i, mut start) = (0, 0);
    while i < bytes.len() {
        let begins_number = bytes[i].is_ascii_digit()
            || (matches!(bytes[i], b'-' | b'+' | b'.')
                && bytes.get(i + 1).is_some_and(u8::is_ascii_digit));
        // A digit glued to a letter or underscore is part of a name (`f32`, `pair_31`).
        let in_word = i > 0 && (bytes[i - 1].is_ascii_alphabetic() || bytes[i - 1] == b'_');
        if begins_number && !in_word {
            if start < i {
                out.push((false, &text[start..i]));
            }
            let mut j = i + 1;
            while j < bytes.len()
                && (bytes[j].is_ascii_digit()
                    || bytes[j] == b'.'
                    || ((bytes[j] == b'e' || bytes[j] == b'E')
                        && bytes
                            .get(j + 1)
                            .is_some_and(|c| c.is_ascii_digit() || *c == b'-' || *c == b'+')))
            {
                j += if bytes[j] == b'e' || bytes[j] == b'E' {
                    2
                } else {
                    1
                };
            }
            out.push((true, &text[i..j]));
            i = j;
            start = j;
        } else {
            i += 1;
        }
    }
    if start < bytes.len() {
        out.push((false, &text[start..]));
    }
    out
}

/// `None` when `actual` equals `expected` up to one unit in the last printed digit of
/// each number; else where they first differ.
#[must_use]
pub fn first_difference(expected: &str, actual: &str) -> Option<String> {
    let (a, b) = (tokens(expected), tokens(actual));
    for (index, (x, y)) in a.iter().zip(&b).enumerate() {
        let close = match (x, y) {
            ((true, p), (true, q)) => match (parse_number(p), parse_number(q)) {
                (Some((u, du)), Some((v, dv))) => (u - v).abs() <= du.max(dv) * 1.000_001,
                _ => p == q,
            },
            ((false, p), (false, q)) => p == q,
            _ => false,
        };
        if !close {
            return Some(format!(
                "token {index}: {:?} vs {:?}",
                x.1.chars().take(80).collect::<String>(),
                y.1.chars().take(80).collect::<String>()
            ));
        }
    }
    (a.len() != b.len()).then(|| format!("{} tokens vs {}", a.len(), b.len()))
}

#[cfg(test)]
mod tests {
    use super::first_difference;

    #[test]
    fn numbers_may_differ_in_their_last_digit_only() {
        assert_eq!(
            first_difference("x=+0.123456 y=12", "x=+0.123457 y=13"),
            None
        );
        assert!(first_difference("x=+0.123456", "x=+0.123458").is_some());
        assert!(first_difference("cos 1.5e-3", "cos 1.7e-3").is_some());
        assert_eq!(first_difference("cos 1.5e-3", "cos 1.6e-3"), None);
        // Names with digits are text, and text must match.
        assert!(first_difference("f32 pair_31", "f64 pair_31").is_some());
        assert!(first_difference("<svg x=\"1\">", "<svg y=\"1\">").is_some());
        assert!(first_difference("a 1 2", "a 1").is_some());
    }
}
