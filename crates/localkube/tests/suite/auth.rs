//! ServiceAccount tokens (`kubectl create token`), RBAC enforcement for their holders, and the
//! review APIs, with the real kubectl: `kubectl auth can-i` answers what the server enforces,
//! and a SubjectAccessReview answers the same for the same user.

use crate::kubectl::for_each_kubectl;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};

const RBAC: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: team-a}
---
apiVersion: v1
kind: Namespace
metadata: {name: team-b}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: orch, namespace: team-a}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: cm-reader, namespace: team-a}
rules:
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: orch-reads, namespace: team-a}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: cm-reader}
subjects:
- {kind: ServiceAccount, name: orch}
"#;

async fn sar(client: &kube::Client, user: &str, groups: &[&str], verb: &str, ns: &str) -> bool {
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.into()),
            groups: Some(groups.iter().map(|g| g.to_string()).collect()),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                resource: Some("configmaps".into()),
                namespace: Some(ns.into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: Api<SubjectAccessReview> = Api::all(client.clone());
    let answer = api.create(&PostParams::default(), &review).await.unwrap();
    answer.status.unwrap().allowed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn service_account_tokens_are_held_to_rbac_and_can_i_agrees() {
    for_each_kubectl(async |k| {
        k.apply(RBAC);
        let token = k.ok(&["create", "token", "orch", "-n", "team-a"]);
        let token = token.trim();
        assert!(!token.is_empty());
        let as_orch = |args: &[&str]| {
            let mut all = vec!["--token", token];
            all.extend_from_slice(args);
            k.run(&all)
        };
        // kubectl auth can-i (a SelfSubjectAccessReview in protobuf) says what RBAC grants.
        let yes = as_orch(&["auth", "can-i", "list", "configmaps", "-n", "team-a"]);
        assert!(
            yes.status.success(),
            "{}",
            String::from_utf8_lossy(&yes.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&yes.stdout).trim(), "yes");
        let no = as_orch(&["auth", "can-i", "list", "configmaps", "-n", "team-b"]);
        assert_eq!(String::from_utf8_lossy(&no.stdout).trim(), "no");
        let no_write = as_orch(&["auth", "can-i", "create", "configmaps", "-n", "team-a"]);
        assert_eq!(String::from_utf8_lossy(&no_write.stdout).trim(), "no");
        // ... and the server enforces the same.
        let listed = as_orch(&["get", "configmaps", "-n", "team-a"]);
        assert!(
            listed.status.success(),
            "{}",
            String::from_utf8_lossy(&listed.stderr)
        );
        let refused = as_orch(&["get", "configmaps", "-n", "team-b"]);
        assert!(!refused.status.success());
        let err = String::from_utf8_lossy(&refused.stderr);
        assert!(
            err.contains("forbidden") && err.contains("system:serviceaccount:team-a:orch"),
            "{err}"
        );
        // A SubjectAccessReview for the same user answers the same.
        let client = k.server.client().await;
        let groups = ["system:serviceaccounts", "system:serviceaccounts:team-a"];
        let user = "system:serviceaccount:team-a:orch";
        assert!(sar(&client, user, &groups, "list", "team-a").await);
        assert!(!sar(&client, user, &groups, "list", "team-b").await);
        assert!(!sar(&client, user, &groups, "create", "team-a").await);
        // A TokenReview names the token's user; a forged token is not authenticated.
        let reviews: Api<TokenReview> = Api::all(client.clone());
        let review = |t: &str| TokenReview {
            spec: TokenReviewSpec {
                token: Some(t.into()),
                audiences: None,
            },
            ..Default::default()
        };
        let ok = reviews
            .create(&PostParams::default(), &review(token))
            .await
            .unwrap();
        let status = ok.status.unwrap();
        assert_eq!(status.authenticated, Some(true));
        assert_eq!(status.user.unwrap().username.as_deref(), Some(user));
        let forged = format!("{token}x");
        let bad = reviews
            .create(&PostParams::default(), &review(&forged))
            .await
            .unwrap();
        assert_ne!(bad.status.unwrap().authenticated, Some(true));
        // Deleting the ServiceAccount invalidates its tokens.
        k.ok(&["delete", "serviceaccount", "orch", "-n", "team-a"]);
        let gone = as_orch(&["get", "configmaps", "-n", "team-a"]);
        assert!(!gone.status.success());
        assert!(String::from_utf8_lossy(&gone.stderr).contains("Unauthorized"));
        // A token for a missing ServiceAccount is NotFound.
        let err = k.fails(&["create", "token", "nobody", "-n", "team-a"]);
        assert!(err.contains("not found"), "{err}");
    })
    .await;
}
