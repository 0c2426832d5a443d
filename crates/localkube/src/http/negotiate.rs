//! Content negotiation: which representation the `Accept` header asks for. The answer is
//! always JSON; protobuf preferences fall through to JSON.

/// The representation of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    /// `as=Table;g=meta.k8s.io;v=v1` (or v1beta1).
    Table,
    /// `as=PartialObjectMetadata` or `as=PartialObjectMetadataList`.
    Metadata,
    /// `as=APIGroupDiscoveryList;g=apidiscovery.k8s.io;v=v2` (or v2beta1).
    AggregatedDiscovery,
}

/// The first representation in `accept` this server can produce.
pub fn negotiate(accept: Option<&str>) -> Format {
    let Some(accept) = accept else {
        return Format::Json;
    };
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default();
        let mut as_ = "";
        let mut g = "";
        let mut v = "";
        for p in parts {
            if let Some((k, val)) = p.split_once('=') {
                match k.trim() {
                    "as" => as_ = val.trim(),
                    "g" => g = val.trim(),
                    "v" => v = val.trim(),
                    _ => {}
                }
            }
        }
        let json_like = matches!(media, "application/json" | "*/*" | "application/*");
        match as_ {
            "" if json_like || media == "application/yaml" => return Format::Json,
            "Table" if json_like && g == "meta.k8s.io" && matches!(v, "v1" | "v1beta1") => {
                return Format::Table;
            }
            "PartialObjectMetadata" | "PartialObjectMetadataList"
                if json_like && g == "meta.k8s.io" && matches!(v, "v1" | "v1beta1") =>
            {
                return Format::Metadata;
            }
            "APIGroupDiscoveryList"
                if json_like && g == "apidiscovery.k8s.io" && matches!(v, "v2" | "v2beta1") =>
            {
                return Format::AggregatedDiscovery;
            }
            _ => {}
        }
    }
    Format::Json
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_get_asks_for_a_table() {
        let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(negotiate(Some(accept)), Format::Table);
    }

    #[test]
    fn discovery_prefers_the_aggregated_form() {
        let accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(negotiate(Some(accept)), Format::AggregatedDiscovery);
    }

    #[test]
    fn protobuf_preferences_fall_back_to_json() {
        assert_eq!(
            negotiate(Some("application/vnd.kubernetes.protobuf,application/json")),
            Format::Json
        );
        assert_eq!(
            negotiate(Some("application/vnd.kubernetes.protobuf")),
            Format::Json
        );
        assert_eq!(negotiate(None), Format::Json);
    }

    #[test]
    fn metadata_requests_are_recognised() {
        assert_eq!(
            negotiate(Some(
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
            )),
            Format::Metadata
        );
    }
}
