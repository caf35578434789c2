//! Kubernetes resource quantities (`500m`, `1Gi`, `0.5`, `1e3`) in one canonical spelling.

/// Parses a quantity into nano-units (1e-9 of the base unit). `None` when it is not a quantity
/// or cannot be represented exactly.
pub fn parse_nanos(s: &str) -> Option<i128> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let (sign, body) = match s.as_bytes()[0] {
        b'-' => (-1i128, &s[1..]),
        b'+' => (1, &s[1..]),
        _ => (1, s),
    };
    let num_end = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (number, suffix) = body.split_at(num_end);
    if number.is_empty() || number == "." {
        return None;
    }
    let (int_part, frac_part) = match number.split_once('.') {
        Some((i, f)) => (i, f),
        None => (number, ""),
    };
    // trailing zeros of the fraction say nothing; a value too large for i128 fails the checked
    // arithmetic below (found by fuzzing: a length limit on the integer part refused
    // `500000000000000000000000000`, the canonical spelling of `5E26`)
    let frac_part = frac_part.trim_end_matches('0');
    if frac_part.contains('.') || frac_part.len() > 18 {
        return None;
    }
    let mut digits: i128 = 0;
    for b in int_part.bytes().chain(frac_part.bytes()) {
        digits = digits.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
    }
    let mut scale: i32 = -(frac_part.len() as i32); // value = digits * 10^scale
    let mut mult: i128 = 1;
    match suffix {
        "" => {}
        "n" => scale -= 9,
        "u" => scale -= 6,
        "m" => scale -= 3,
        "k" => scale += 3,
        "M" => scale += 6,
        "G" => scale += 9,
        "T" => scale += 12,
        "P" => scale += 15,
        "E" => scale += 18,
        "Ki" => mult = 1 << 10,
        "Mi" => mult = 1 << 20,
        "Gi" => mult = 1 << 30,
        "Ti" => mult = 1 << 40,
        "Pi" => mult = 1 << 50,
        "Ei" => mult = 1 << 60,
        other => {
            let exp = other.strip_prefix(['e', 'E'])?;
            scale += exp.parse::<i32>().ok()?;
        }
    }
    let mut v = digits.checked_mul(mult)?;
    // to nano units: multiply by 10^(scale + 9)
    let shift = scale + 9;
    if shift >= 0 {
        v = v.checked_mul(10i128.checked_pow(shift as u32)?)?;
    } else {
        let d = 10i128.checked_pow((-shift) as u32)?;
        if v % d != 0 {
            return None;
        }
        v /= d;
    }
    Some(sign * v)
}

/// The canonical spelling of a quantity: a plain decimal number of base units
/// (`500m` -> `0.5`, `1Gi` -> `1073741824`), or `None` when `s` is not a quantity.
pub fn canonical(s: &str) -> Option<String> {
    let n = parse_nanos(s)?;
    let neg = n < 0;
    let n = n.abs();
    let int = n / 1_000_000_000;
    let frac = n % 1_000_000_000;
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    out.push_str(&int.to_string());
    if frac != 0 {
        let f = format!("{frac:09}");
        out.push('.');
        out.push_str(f.trim_end_matches('0'));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_quantities_are_spelled_alike() {
        assert_eq!(canonical("500m"), canonical("0.5"));
        assert_eq!(canonical("1Gi"), canonical("1024Mi"));
        assert_eq!(canonical("1k"), canonical("1000"));
        assert_eq!(canonical("1e3"), canonical("1k"));
        assert_eq!(canonical("2").as_deref(), Some("2"));
        assert_eq!(canonical("0.5").as_deref(), Some("0.5"));
        assert_ne!(canonical("1G"), canonical("1Gi"));
        assert_eq!(canonical("abc"), None);
        assert_eq!(canonical("1Zi"), None);
    }

    /// Regression (fuzz target `quantity`, fuzz/artifacts/quantity/crash-eadd5e57...): a
    /// canonical spelling reads back as itself, also when it has more than 20 digits.
    #[test]
    fn large_canonical_spellings_read_back() {
        for s in [
            "5E26",
            "5e26",
            "1E28",
            "170141183460469231731E9",
            "1.50000000000000000000000",
        ] {
            let c = canonical(s).expect(s);
            assert_eq!(canonical(&c).as_deref(), Some(c.as_str()), "{s} -> {c}");
        }
        assert_eq!(
            canonical("5E26").as_deref(),
            Some("500000000000000000000000000")
        );
        assert_eq!(
            canonical("1.50000000000000000000000").as_deref(),
            Some("1.5")
        );
        // beyond i128 nano-units: not a quantity DriftGuard compares, not a panic
        assert_eq!(canonical("1E40"), None);
        assert_eq!(canonical(&"9".repeat(60)), None);
    }
}
