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

/// What a table shows besides its default columns: a NAMESPACE column first (`-A`) and the
/// extra columns of `-o wide`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Layout {
    pub namespaces: bool,
    pub wide: bool,
}

/// The objects of kind `K` in `namespace` (every namespace when `None`; cluster-scoped kinds
/// ignore it), those `selector` matches, exactly as the API server returns them (each with its
/// `apiVersion` and `kind`, as kubectl prints list items).
pub async fn fetch_list<K>(
    client: &kube::Client,
    namespace: Option<&str>,
    selector: Option<&str>,
) -> anyhow::Result<Vec<serde_json::Value>>
where
    K: kube::Resource<DynamicType = ()>,
{
    use anyhow::Context as _;
    let mut params = kube::api::ListParams::default();
    if let Some(selector) = selector {
        params = params.labels(selector);
    }
    let what = || {
        let mut what = format!("listing {}s", K::kind(&()));
        if let Some(ns) = namespace {
            what.push_str(&format!(" in namespace {ns}"));
        }
        if let Some(selector) = selector {
            what.push_str(&format!(" with selector {selector:?}"));
        }
        what
    };
    let request = kube::core::Request::new(K::url_path(&(), namespace))
        .list(&params)
        .with_context(what)?;
    let mut list: serde_json::Value = client.request(request).await.with_context(what)?;
    let items = match list.get_mut("items").map(serde_json::Value::take) {
        Some(serde_json::Value::Array(items)) => items,
        _ => Vec::new(),
    };
    Ok(items.into_iter().map(with_type::<K>).collect())
}

/// The object `name` of kind `K` as the API server returns it, or `None` if there is none.
pub async fn fetch_one<K>(
    client: &kube::Client,
    namespace: Option<&str>,
    name: &str,
) -> anyhow::Result<Option<serde_json::Value>>
where
    K: kube::Resource<DynamicType = ()>,
{
    use anyhow::Context as _;
    let what = || match namespace {
        Some(ns) => format!("reading {} {ns}/{name}", K::kind(&())),
        None => format!("reading {} {name}", K::kind(&())),
    };
    let request = kube::core::Request::new(K::url_path(&(), namespace))
        .get(name, &Default::default())
        .with_context(what)?;
    match client.request::<serde_json::Value>(request).await {
        Ok(object) => Ok(Some(with_type::<K>(object))),
        Err(kube::Error::Api(status)) if status.is_not_found() => Ok(None),
        Err(err) => Err(err).with_context(what),
    }
}

/// The object `name` of kind `K` in the scope's namespace as the API server returns it; an
/// error names it if there is none.
pub async fn fetch_named<K>(scope: &super::Scope, name: &str) -> anyhow::Result<serde_json::Value>
where
    K: kube::Resource<DynamicType = ()>,
{
    fetch_one::<K>(&scope.client, Some(&scope.namespace), name)
        .await?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "there is no {} {name} in namespace {}",
                K::kind(&()),
                scope.namespace
            )
        })
}

fn with_type<K: kube::Resource<DynamicType = ()>>(
    mut object: serde_json::Value,
) -> serde_json::Value {
    if let Some(map) = object.as_object_mut() {
        map.entry("apiVersion")
            .or_insert_with(|| K::api_version(&()).into());
        map.entry("kind").or_insert_with(|| K::kind(&()).into());
    }
    object
}

/// The typed objects of `items` (for tables and text).
pub fn typed<K: serde::de::DeserializeOwned>(
    items: &[serde_json::Value],
) -> anyhow::Result<Vec<K>> {
    items
        .iter()
        .map(|item| {
            serde_json::from_value(item.clone()).map_err(|err| {
                anyhow::anyhow!(
                    "reading {} {:?}: {err}",
                    item.get("kind")
                        .and_then(|k| k.as_str())
                        .unwrap_or("object"),
                    item.pointer("/metadata/name")
                        .and_then(|n| n.as_str())
                        .unwrap_or_default()
                )
            })
        })
        .collect()
}

/// `cairnctl backup|restore|schedule list`: the objects in the scope's namespace (or all, or
/// those `-l` selects), in the `-o` format, as JSON with `--json`, else as `table` draws them,
/// or a line saying there are none.
pub async fn list_and_print<K>(
    scope: &super::Scope,
    plural: &str,
    table: fn(&[K], Layout, Timestamp) -> String,
) -> anyhow::Result<std::process::ExitCode>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + serde::de::DeserializeOwned,
{
    let namespace = (!scope.all_namespaces).then_some(scope.namespace.as_str());
    let items = fetch_list::<K>(&scope.client, namespace, scope.selector.as_deref()).await?;
    let layout = |wide| Layout {
        namespaces: scope.all_namespaces,
        wide,
    };
    if let Some(format) = &scope.output {
        print!(
            "{}",
            crate::output::list_text::<K>(format, &items, |wide| {
                Ok(table(&typed(&items)?, layout(wide), Timestamp::now()))
            })?
        );
    } else if scope.json {
        println!("{}", serde_json::to_string(&items)?);
    } else if items.is_empty() {
        if scope.all_namespaces {
            eprintln!("No {plural} found.");
        } else {
            eprintln!("No {plural} found in namespace {}.", scope.namespace);
        }
    } else {
        print!(
            "{}",
            table(&typed(&items)?, layout(false), Timestamp::now())
        );
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// `cairnctl backup|restore|schedule describe NAME`: the object in the `-o` format (what
/// `kubectl get KIND NAME -o FORMAT` prints; `wide` is its row of the wide table), else
/// `describe` in words (which gets the object and, typed, prints it).
pub async fn describe_and_print<K, F, Fut>(
    scope: &super::Scope,
    command: &str,
    name: &str,
    table: fn(&[K], Layout, Timestamp) -> String,
    describe: F,
) -> anyhow::Result<std::process::ExitCode>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + serde::de::DeserializeOwned,
    F: FnOnce(K) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    scope.refuse_selection(command)?;
    let object = fetch_named::<K>(scope, name).await?;
    match &scope.output {
        Some(format) => print!(
            "{}",
            crate::output::object_text::<K>(format, &object, || {
                Ok(table(
                    &typed(std::slice::from_ref(&object))?,
                    Layout {
                        namespaces: false,
                        wide: true,
                    },
                    Timestamp::now(),
                ))
            })?
        ),
        None => {
            let typed = typed::<K>(std::slice::from_ref(&object))?
                .pop()
                .ok_or_else(|| anyhow::anyhow!("reading {} {name}", K::kind(&())))?;
            describe(typed).await?;
        }
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
