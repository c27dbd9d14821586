//! Flink's pattern languages, translated to the ones Weir's expression engine runs.
//!
//! Flink SQL takes SQL-standard `SIMILAR TO` patterns and Java `SimpleDateFormat` patterns
//! (`DATE_FORMAT`); DataFusion, which evaluates Weir's expressions, runs Rust regular
//! expressions and chrono `strftime` formats. Both the SQL compiler and the runtime translate
//! with these functions, so a query means what it means in Flink whichever way it arrives.

/// The Rust regular expression that matches exactly what the SQL `SIMILAR TO` pattern
/// `pattern` matches (the whole string). `%` is any string, `_` any character; `|`, `*`,
/// `+`, `?`, `{m,n}`, `( )` and `[ ]` are regular-expression syntax; every other character,
/// `.` included, stands for itself; `escape` makes the character after it literal.
pub fn similar_to_regex(pattern: &str, escape: Option<char>) -> Result<String, String> {
    let mut out = String::from("^(?s:");
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if Some(c) == escape {
            let Some(next) = chars.next() else {
                return Err(format!(
                    "SIMILAR TO pattern {pattern:?} ends with its escape character"
                ));
            };
            push_literal(&mut out, next);
            continue;
        }
        match c {
            '%' => out.push_str(".*"),
            '_' => out.push('.'),
            '|' | '*' | '+' | '?' | '(' | ')' | '{' | '}' => out.push(c),
            '[' => {
                // A bracket expression, copied up to its closing bracket.
                out.push('[');
                let mut first = true;
                loop {
                    let Some(b) = chars.next() else {
                        return Err(format!(
                            "SIMILAR TO pattern {pattern:?} has an unclosed '['"
                        ));
                    };
                    if b == ']' && !first {
                        out.push(']');
                        break;
                    }
                    if b == '\\' || (b == '[' && !first) {
                        out.push('\\');
                    }
                    if first && b == '^' {
                        out.push('^');
                        continue;
                    }
                    out.push(b);
                    first = false;
                }
            }
            other => push_literal(&mut out, other),
        }
    }
    out.push_str(")$");
    Ok(out)
}

fn push_literal(out: &mut String, c: char) {
    if "\\.^$|?*+()[]{}#&-~".contains(c) {
        out.push('\\');
    }
    out.push(c);
}

/// The chrono `strftime` format that prints what the Java `SimpleDateFormat` pattern
/// `pattern` prints (Flink's `DATE_FORMAT`), for the letters a timestamp has: `y`, `M`, `d`,
/// `H`, `h`, `m`, `s`, `SSS`, `a`, `E`, `D`; quoted text ('...', '' for a quote) is
/// literal. A letter Weir cannot print is an error naming it, never printed as itself.
pub fn java_date_format(pattern: &str) -> Result<String, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            // Quoted literal text; '' is a quote.
            if chars.get(i + 1) == Some(&'\'') {
                out.push('\'');
                i += 2;
                continue;
            }
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(format!("date format {pattern:?} has an unclosed quote")),
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                        out.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(ch) => {
                        push_text(&mut out, *ch);
                        i += 1;
                    }
                }
            }
            continue;
        }
        if !c.is_ascii_alphabetic() {
            push_text(&mut out, c);
            i += 1;
            continue;
        }
        let mut n = 1;
        while chars.get(i + n) == Some(&c) {
            n += 1;
        }
        i += n;
        let spec = match (c, n) {
            ('y', 2) => "%y".to_string(),
            ('y', _) => "%Y".to_string(),
            ('M', 1) => "%-m".to_string(),
            ('M', 2) => "%m".to_string(),
            ('M', 3) => "%b".to_string(),
            ('M', _) => "%B".to_string(),
            ('d', 1) => "%-d".to_string(),
            ('d', _) => "%d".to_string(),
            ('D', 1) => "%-j".to_string(),
            ('D', _) => "%j".to_string(),
            ('H', 1) => "%-H".to_string(),
            ('H', _) => "%H".to_string(),
            ('h', 1) => "%-I".to_string(),
            ('h', _) => "%I".to_string(),
            ('K', _) => {
                return Err(format!(
                    "date format {pattern:?}: the letter 'K' (hour 0-11) is not supported"
                ))
            }
            ('m', 1) => "%-M".to_string(),
            ('m', _) => "%M".to_string(),
            ('s', 1) => "%-S".to_string(),
            ('s', _) => "%S".to_string(),
            // Fraction of a second in java.time's sense (Flink formats with it): SSS is
            // the milliseconds; S and SS (tenths, hundredths) chrono cannot print.
            ('S', 3) => "%3f".to_string(),
            ('a', _) => "%p".to_string(),
            ('E', 1..=3) => "%a".to_string(),
            ('E', _) => "%A".to_string(),
            (other, _) => {
                return Err(format!(
                    "date format {pattern:?}: the pattern letter '{other}' is not supported (supported: y M d D H h m s SSS a E, and 'quoted text')"
                ))
            }
        };
        out.push_str(&spec);
    }
    Ok(out)
}

fn push_text(out: &mut String, c: char) {
    if c == '%' {
        out.push_str("%%");
    } else {
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn similar(p: &str) -> String {
        similar_to_regex(p, None).unwrap()
    }

    #[test]
    fn similar_to_patterns_are_anchored_regexes() {
        assert_eq!(similar("[a-c]"), "^(?s:[a-c])$");
        assert_eq!(similar("a%"), "^(?s:a.*)$");
        assert_eq!(similar("(a|b)+_"), "^(?s:(a|b)+.)$");
        assert_eq!(similar("a.b"), "^(?s:a\\.b)$");
        assert_eq!(similar("[^x]"), "^(?s:[^x])$");
        assert_eq!(similar_to_regex("a!%", Some('!')).unwrap(), "^(?s:a%)$");
        assert!(similar_to_regex("[ab", None).is_err());
        assert!(similar_to_regex("a!", Some('!')).is_err());
    }

    #[test]
    fn java_date_patterns_become_strftime() {
        assert_eq!(
            java_date_format("yyyy-MM-dd HH:mm").unwrap(),
            "%Y-%m-%d %H:%M"
        );
        assert_eq!(java_date_format("yyyyMMdd").unwrap(), "%Y%m%d");
        assert_eq!(java_date_format("HH:mm:ss.SSS").unwrap(), "%H:%M:%S.%3f");
        assert_eq!(java_date_format("EEE MMM dd").unwrap(), "%a %b %d");
        assert_eq!(
            java_date_format("yyyy 'at' HH 'o''clock' 100%").unwrap(),
            "%Y at %H o'clock 100%%"
        );
        assert!(java_date_format("yyyy Q").unwrap_err().contains("'Q'"));
        assert!(java_date_format("'open").is_err());
    }
}
