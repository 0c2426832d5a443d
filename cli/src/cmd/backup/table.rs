//! kubectl-style output helpers: columns padded to their widest cell, ages like `5s`, `3m`,
//! `2h`, `4d`, and the `--json` shapes of objects and lists.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// Lays out rows under a header, each column as wide as its widest cell plus three spaces
/// (what `kubectl get` prints).
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(width) = widths.get_mut(i) {
                *width = (*width).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < row.len() {
                let pad = widths.get(i).copied().unwrap_or(0) - cell.chars().count() + 3;
                line.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The age kubectl prints for a timestamp: `45s`, `12m`, `5h`, `3d`.
pub fn age(since: Option<&Time>, now: Timestamp) -> String {
    let Some(since) = since else {
        return "<unknown>".into();
    };
    let seconds = now.as_second().saturating_sub(since.0.as_second()).max(0);
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// A cell for an optional value (`<none>` like kubectl when absent).
pub fn cell(value: Option<&str>) -> String {
    match value {
        Some(v) if !v.is_empty() => v.to_string(),
        _ => "<none>".into(),
    }
}

/// `cairnctl backup|restore list`: the objects in the scope's namespace (or all), as JSON with
/// `--json`, else as `table` draws them, or a line saying there are none.
pub async fn list_and_print<K>(
    scope: &super::Scope,
    all_namespaces: bool,
    plural: &str,
    table: fn(&[K], bool, Timestamp) -> String,
) -> anyhow::Result<std::process::ExitCode>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    use anyhow::Context as _;
    let api: kube::Api<K> = if all_namespaces {
        kube::Api::all(scope.client.clone())
    } else {
        kube::Api::namespaced(scope.client.clone(), &scope.namespace)
    };
    let list = api
        .list(&kube::api::ListParams::default())
        .await
        .with_context(|| format!("listing {plural}"))?;
    if scope.json {
        println!("{}", serde_json::to_string(&list.items)?);
    } else if list.items.is_empty() {
        if all_namespaces {
            eprintln!("No {plural} found.");
        } else {
            eprintln!("No {plural} found in namespace {}.", scope.namespace);
        }
    } else {
        print!("{}", table(&list.items, all_namespaces, Timestamp::now()));
    }
    Ok(std::process::ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_as_wide_as_their_widest_cell_plus_three_spaces() {
        let text = render(
            &["NAME", "STATUS"],
            &[
                vec!["a-long-name".into(), "Completed".into()],
                vec!["b".into(), "Running".into()],
            ],
        );
        assert_eq!(
            text,
            "NAME          STATUS\na-long-name   Completed\nb             Running\n"
        );
    }

    #[test]
    fn ages_read_like_kubectl() {
        let now: Timestamp = "2026-01-10T12:00:00Z".parse().expect("time");
        let at = |s: &str| Time(s.parse().expect("time"));
        assert_eq!(age(Some(&at("2026-01-10T11:59:15Z")), now), "45s");
        assert_eq!(age(Some(&at("2026-01-10T11:48:00Z")), now), "12m");
        assert_eq!(age(Some(&at("2026-01-10T07:00:00Z")), now), "5h");
        assert_eq!(age(Some(&at("2026-01-07T12:00:00Z")), now), "3d");
        assert_eq!(age(Some(&at("2026-01-10T12:00:09Z")), now), "0s");
        assert_eq!(age(None, now), "<unknown>");
    }

    #[test]
    fn missing_cells_say_none() {
        assert_eq!(cell(None), "<none>");
        assert_eq!(cell(Some("")), "<none>");
        assert_eq!(cell(Some("x")), "x");
    }
}
