//! Name and label validation with apimachinery's wording.

const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const QUALIFIED_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

fn lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn dns_label_chars(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| lower_alnum(c) || c == '-')
        && s.starts_with(lower_alnum)
        && s.ends_with(lower_alnum)
}

/// RFC 1123 label (namespaces, most generated names): at most 63 characters.
pub fn is_dns1123_label(s: &str) -> Result<(), String> {
    if s.len() > 63 {
        return Err("must be no more than 63 characters".to_string());
    }
    if !dns_label_chars(s) {
        return Err(DNS1123_LABEL_MSG.to_string());
    }
    Ok(())
}

/// RFC 1123 subdomain (most object names): at most 253 characters.
pub fn is_dns1123_subdomain(s: &str) -> Result<(), String> {
    if s.len() > 253 {
        return Err("must be no more than 253 characters".to_string());
    }
    if s.is_empty() || !s.split('.').all(dns_label_chars) {
        return Err(DNS1123_SUBDOMAIN_MSG.to_string());
    }
    Ok(())
}

fn alnum(c: char) -> bool {
    c.is_ascii_alphanumeric()
}

fn name_part_ok(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| alnum(c) || matches!(c, '-' | '_' | '.'))
        && s.starts_with(alnum)
        && s.ends_with(alnum)
}

/// A label value: empty, or at most 63 characters of `[-A-Za-z0-9_.]` with alphanumeric ends.
pub fn is_label_value(s: &str) -> Result<(), String> {
    if s.len() > 63 {
        return Err("must be no more than 63 characters".to_string());
    }
    if !s.is_empty() && !name_part_ok(s) {
        return Err(LABEL_VALUE_MSG.to_string());
    }
    Ok(())
}

/// A label or annotation key: an optional DNS-subdomain prefix and a name part.
pub fn is_qualified_name(s: &str) -> Result<(), String> {
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            return Err("prefix part must be non-empty".to_string());
        }
        is_dns1123_subdomain(prefix).map_err(|e| format!("prefix part {e}"))?;
    }
    if name.is_empty() {
        return Err("name part must be non-empty".to_string());
    }
    if name.len() > 63 {
        return Err("name part must be no more than 63 characters".to_string());
    }
    if !name_part_ok(name) {
        return Err(QUALIFIED_NAME_MSG.to_string());
    }
    Ok(())
}

/// A path segment name (what `path.ValidatePathSegmentName` rejects).
pub fn is_path_segment(s: &str) -> Result<(), String> {
    if s == "." || s == ".." {
        return Err(format!("may not be '{s}'"));
    }
    if s.contains('/') || s.contains('%') {
        return Err("may not contain '/' or '%'".to_string());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subdomains_labels_and_values_follow_the_regexes() {
        assert!(is_dns1123_subdomain("my-cm.v1").is_ok());
        assert!(is_dns1123_subdomain("My").is_err());
        assert!(is_dns1123_subdomain("-a").is_err());
        assert!(is_dns1123_subdomain("a..b").is_err());
        assert!(is_dns1123_label("a.b").is_err());
        assert!(is_dns1123_label(&"a".repeat(64)).is_err());
        assert!(is_label_value("").is_ok());
        assert!(is_label_value("My_value.1").is_ok());
        assert!(is_label_value("_x").is_err());
        assert!(is_qualified_name("app.kubernetes.io/name").is_ok());
        assert!(is_qualified_name("/name").is_err());
        assert!(is_qualified_name("Bad_Prefix/name").is_err());
    }
}
