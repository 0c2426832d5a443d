//! docs/API.md is the specification of `cairn.api.v1`: every service and every call of the
//! generated descriptors is documented there, and every call the document lists exists.

use prost::Message as _;
use prost_types::FileDescriptorSet;

fn api_services() -> Vec<(String, Vec<String>)> {
    let set = FileDescriptorSet::decode(cairn_proto::FILE_DESCRIPTOR_SET).unwrap();
    let mut out = Vec::new();
    for file in set.file {
        if file.package() != "cairn.api.v1" {
            continue;
        }
        for service in file.service {
            let methods = service
                .method
                .iter()
                .map(|m| m.name().to_string())
                .collect();
            out.push((format!("cairn.api.v1.{}", service.name()), methods));
        }
    }
    out.sort();
    out
}

fn doc() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/API.md")).unwrap()
}

#[test]
fn the_four_services_of_the_public_api_are_generated() {
    let names: Vec<_> = api_services().into_iter().map(|(s, _)| s).collect();
    assert_eq!(
        names,
        [
            "cairn.api.v1.BackupService",
            "cairn.api.v1.RepositoryService",
            "cairn.api.v1.RestoreService",
            "cairn.api.v1.ScheduleService",
        ]
    );
}

#[test]
fn every_service_and_call_is_in_the_api_document() {
    let doc = doc();
    for (service, methods) in api_services() {
        assert!(
            doc.contains(&format!("`{service}`")),
            "docs/API.md does not name {service}"
        );
        for method in methods {
            assert!(
                doc.contains(&method),
                "docs/API.md does not document {service}.{method}"
            );
        }
    }
}

#[test]
fn every_call_in_the_documents_service_table_exists() {
    let doc = doc();
    let services = api_services();
    for line in doc.lines().filter(|l| l.starts_with("| `cairn.api.v1.")) {
        let cells: Vec<_> = line.split('|').map(str::trim).collect();
        let service = cells[1].trim_matches('`');
        let (_, methods) = services
            .iter()
            .find(|(s, _)| s == service)
            .unwrap_or_else(|| panic!("docs/API.md lists {service}, which the proto lacks"));
        for call in cells[2].split(',').map(str::trim) {
            assert!(
                methods.iter().any(|m| m == call),
                "docs/API.md lists {service}.{call}, which the proto lacks"
            );
        }
    }
}
