//! List requests: label selectors and pages (docs/API.md §4, ListBackups).

use kube::api::ListParams;
use tonic::Status;

use super::status::invalid_field;

/// The page size without one in the request, and the largest allowed.
pub const MAX_PAGE_SIZE: u32 = 500;

/// The list parameters of a request's `label_selector`, `page_size` and `page_token`.
pub fn list_params(
    label_selector: &str,
    page_size: i32,
    page_token: &str,
) -> Result<ListParams, Status> {
    let limit = match page_size {
        0 => MAX_PAGE_SIZE,
        n if n < 0 => {
            return Err(invalid_field(
                "page_size",
                format!("{n} is negative (0 means the default, {MAX_PAGE_SIZE})"),
            ));
        }
        n => (n as u32).min(MAX_PAGE_SIZE),
    };
    let mut params = ListParams::default().limit(limit);
    if !label_selector.is_empty() {
        params = params.labels(label_selector);
    }
    if !page_token.is_empty() {
        params = params.continue_token(page_token);
    }
    Ok(params)
}

/// Maps a list failure: a 400 is the label selector's fault.
pub fn list_error(
    err: &kube::Error,
    label_selector: &str,
    target: super::status::Target<'_>,
) -> Status {
    if let kube::Error::Api(status) = err
        && status.code == 400
    {
        return invalid_field(
            "label_selector",
            format!(
                "{label_selector:?} is not a valid label selector: {}",
                status.message
            ),
        );
    }
    super::status::from_kube(err, target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes_default_and_are_capped() {
        assert_eq!(list_params("", 0, "").unwrap().limit, Some(MAX_PAGE_SIZE));
        assert_eq!(
            list_params("", 9000, "").unwrap().limit,
            Some(MAX_PAGE_SIZE)
        );
        assert_eq!(
            list_params("", 7, "t").unwrap().continue_token.as_deref(),
            Some("t")
        );
        let err = list_params("", -1, "").unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
    }
}
