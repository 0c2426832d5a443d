//! The kubeconfig localkube writes for its clients (CA data and a bearer token).

use base64::Engine;

/// A kubeconfig for `server` trusting `ca_pem` and authenticating with `token`.
pub fn render(server: &str, ca_pem: &str, token: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: localkube
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: localkube
  user:
    token: {token}
contexts:
- name: localkube
  context:
    cluster: localkube
    user: localkube
    namespace: default
current-context: localkube
preferences: {{}}
"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kubeconfig_parses_as_yaml_with_one_context() {
        let text = render("https://127.0.0.1:1234", "PEM", "tok");
        let v: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(v["current-context"], "localkube");
        assert_eq!(
            v["clusters"][0]["cluster"]["server"],
            "https://127.0.0.1:1234"
        );
        assert_eq!(v["users"][0]["user"]["token"], "tok");
    }
}
