//! A client of the public gRPC API (docs/API.md) of a test stack: TLS with the stack's
//! `api/ca.crt`, and a bearer token from `kubectl create token`.

use std::path::Path;

use cairn_proto::api::v1::backup_service_client::BackupServiceClient;
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

/// A TLS channel to the API whose address and CA `cairnctl up` wrote under `data_dir/api`.
pub async fn channel(data_dir: &Path) -> anyhow::Result<Channel> {
    let endpoint = std::fs::read_to_string(data_dir.join("api/endpoint"))?;
    let ca = std::fs::read_to_string(data_dir.join("api/ca.crt"))?;
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .domain_name("localhost");
    let channel = Channel::from_shared(format!("https://{}", endpoint.trim()))?
        .tls_config(tls)?
        .connect()
        .await?;
    Ok(channel)
}

/// `request` with `authorization: Bearer <token>`.
pub fn with_token<T>(message: T, token: &str) -> anyhow::Result<tonic::Request<T>> {
    let mut request = tonic::Request::new(message);
    let value: MetadataValue<_> = format!("Bearer {token}").parse()?;
    request.metadata_mut().insert("authorization", value);
    Ok(request)
}

/// A Backup client on `channel`.
pub fn backups(channel: &Channel) -> BackupServiceClient<Channel> {
    BackupServiceClient::new(channel.clone())
}

/// `kubectl create token <account> -n <namespace>`.
pub async fn token(
    kubectl: &crate::Kubectl,
    namespace: &str,
    account: &str,
) -> anyhow::Result<String> {
    Ok(kubectl
        .run(&["create", "token", account, "-n", namespace])
        .await?
        .trim()
        .to_owned())
}

/// A ServiceAccount `account` in `namespace` bound to a Role granting `verbs` on Backups and
/// Restores there.
pub fn rbac_manifest(namespace: &str, account: &str, verbs: &[&str]) -> String {
    let verbs = verbs.join(", ");
    format!(
        r#"apiVersion: v1
kind: ServiceAccount
metadata: {{name: {account}, namespace: {namespace}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: {account}-backups, namespace: {namespace}}}
rules:
- apiGroups: [dataprotection.kubeblocks.io]
  resources: [backups, restores]
  verbs: [{verbs}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: {account}-backups, namespace: {namespace}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: {account}-backups}}
subjects:
- {{kind: ServiceAccount, name: {account}}}
"#
    )
}
