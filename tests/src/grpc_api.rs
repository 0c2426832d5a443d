//! A client of the public gRPC API (docs/API.md) of a test stack: TLS with the stack's
//! `api/ca.crt`, and a bearer token from `kubectl create token` or a client certificate from a
//! test CA (`--api-client-ca`).

use std::path::Path;

use cairn_proto::api::v1::backup_service_client::BackupServiceClient;
use cairn_proto::api::v1::repository_service_client::RepositoryServiceClient;
use cairn_proto::api::v1::restore_service_client::RestoreServiceClient;
use cairn_proto::api::v1::schedule_service_client::ScheduleServiceClient;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

/// A TLS channel to the API whose address and CA `cairnctl up` wrote under `data_dir/api`.
pub async fn channel(data_dir: &Path) -> anyhow::Result<Channel> {
    connect(data_dir, None).await
}

/// Like [`channel`], presenting the client certificate `identity`.
pub async fn channel_as(data_dir: &Path, identity: &ClientCert) -> anyhow::Result<Channel> {
    connect(data_dir, Some(identity)).await
}

async fn connect(data_dir: &Path, identity: Option<&ClientCert>) -> anyhow::Result<Channel> {
    let endpoint = std::fs::read_to_string(data_dir.join("api/endpoint"))?;
    let ca = std::fs::read_to_string(data_dir.join("api/ca.crt"))?;
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .domain_name("localhost");
    if let Some(identity) = identity {
        tls = tls.identity(Identity::from_pem(&identity.cert_pem, &identity.key_pem));
    }
    let channel = Channel::from_shared(format!("https://{}", endpoint.trim()))?
        .tls_config(tls)?
        .connect()
        .await?;
    Ok(channel)
}

/// A client certificate and its key (PEM).
pub struct ClientCert {
    pub cert_pem: String,
    pub key_pem: String,
}

/// A CA issuing client certificates, as an organisation's own CA would.
pub struct ClientCa {
    /// The CA certificate (what `--api-client-ca` names).
    pub cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl ClientCa {
    /// A new CA named `name`.
    pub fn generate(name: &str) -> anyhow::Result<ClientCa> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key)?;
        Ok(ClientCa {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// A client certificate for user `user` (the subject's CN) in `groups` (its O names), as
    /// the Kubernetes API server reads client certificates.
    pub fn issue(&self, user: &str, groups: &[&str]) -> anyhow::Result<ClientCert> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, user);
        for group in groups {
            params
                .distinguished_name
                .push(DnType::OrganizationName, *group);
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(ClientCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
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

/// A Restore client on `channel`.
pub fn restores(channel: &Channel) -> RestoreServiceClient<Channel> {
    RestoreServiceClient::new(channel.clone())
}

/// A schedule client on `channel`.
pub fn schedules(channel: &Channel) -> ScheduleServiceClient<Channel> {
    ScheduleServiceClient::new(channel.clone())
}

/// A repository client on `channel`.
pub fn repositories(channel: &Channel) -> RepositoryServiceClient<Channel> {
    RepositoryServiceClient::new(channel.clone())
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
