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

const IMPERSONATION: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: team-a}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: gateway, namespace: team-a}
---
# The gateway may act as alice and as members of group dba, nobody else.
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: impersonate-alice}
rules:
- apiGroups: [""]
  resources: [users]
  resourceNames: [alice]
  verbs: [impersonate]
- apiGroups: [""]
  resources: [groups]
  resourceNames: [dba]
  verbs: [impersonate]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: gateway-impersonates}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: impersonate-alice}
subjects:
- {kind: ServiceAccount, name: gateway, namespace: team-a}
---
# Aggregation: cm-admin has no rules of its own; it gathers those labelled for it, and those
# of cm-edit, itself aggregated.
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: cm-admin}
aggregationRule:
  clusterRoleSelectors:
  - matchLabels: {example.io/aggregate-to-cm-admin: "true"}
rules: []
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: cm-edit
  labels: {example.io/aggregate-to-cm-admin: "true"}
aggregationRule:
  clusterRoleSelectors:
  - matchExpressions:
    - {key: example.io/aggregate-to, operator: In, values: [cm-edit]}
rules: []
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: cm-read
  labels: {example.io/aggregate-to-cm-admin: "true"}
rules:
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: cm-write
  labels: {example.io/aggregate-to: cm-edit}
rules:
- apiGroups: [""]
  resources: [configmaps]
  verbs: [create]
---
# The group dba gets cm-admin in team-a.
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: dba-cm-admin, namespace: team-a}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cm-admin}
subjects:
- {kind: Group, name: dba}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn impersonation_is_authorised_by_rbac_and_aggregated_roles_grant_their_parts() {
    for_each_kubectl(async |k| {
        k.apply(IMPERSONATION);
        let can_i = |args: &[&str]| {
            let out = k.run(args);
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        };
        // The admin may impersonate anyone; alice in group dba gets the aggregated cm-admin
        // (get/list from cm-read, create through the nested cm-edit from cm-write), nothing else.
        let as_dba = ["--as", "alice", "--as-group", "dba"];
        let ask = |who: &[&str], verb: &str| {
            let mut args = who.to_vec();
            args.extend(["auth", "can-i", verb, "configmaps", "-n", "team-a"]);
            can_i(&args)
        };
        assert_eq!(ask(&as_dba, "list"), "yes", "cm-read through aggregation");
        assert_eq!(
            ask(&as_dba, "create"),
            "yes",
            "cm-write through nested aggregation"
        );
        assert_eq!(ask(&as_dba, "delete"), "no");
        assert_eq!(
            ask(&["--as", "alice"], "list"),
            "no",
            "alice without the group"
        );
        // The server enforces what can-i says, for the impersonated user.
        k.ok(&[
            "--as",
            "alice",
            "--as-group",
            "dba",
            "create",
            "configmap",
            "made-as-alice",
            "-n",
            "team-a",
        ]);
        let err = k.fails(&["--as", "alice", "get", "configmaps", "-n", "team-a"]);
        assert!(err.contains("User \"alice\" cannot list"), "{err}");
        // A SubjectAccessReview for alice in dba answers the same.
        let client = k.server.client().await;
        assert!(sar(&client, "alice", &["dba"], "create", "team-a").await);
        assert!(!sar(&client, "alice", &["dba"], "delete", "team-a").await);

        // A ServiceAccount needs `impersonate` for each part: the gateway may be alice in dba...
        let token = k.ok(&["create", "token", "gateway", "-n", "team-a"]);
        let token = token.trim();
        let gateway_as = |who: &[&str], verb: &str| {
            let mut args = vec!["--token", token];
            args.extend_from_slice(who);
            args.extend(["auth", "can-i", verb, "configmaps", "-n", "team-a"]);
            can_i(&args)
        };
        assert_eq!(gateway_as(&as_dba, "create"), "yes");
        let listed = k.run(&[
            "--token",
            token,
            "--as",
            "alice",
            "--as-group",
            "dba",
            "get",
            "configmaps",
            "-n",
            "team-a",
        ]);
        assert!(
            listed.status.success(),
            "{}",
            String::from_utf8_lossy(&listed.stderr)
        );
        // ... but not bob, nor alice in another group.
        let err = k.fails(&[
            "--token",
            token,
            "--as",
            "bob",
            "get",
            "configmaps",
            "-n",
            "team-a",
        ]);
        assert!(
            err.contains("users \"bob\" is forbidden")
                && err.contains("cannot impersonate resource \"users\""),
            "{err}"
        );
        let err = k.fails(&[
            "--token",
            token,
            "--as",
            "alice",
            "--as-group",
            "system:masters",
            "get",
            "configmaps",
            "-n",
            "team-a",
        ]);
        assert!(
            err.contains("groups \"system:masters\" is forbidden")
                && err.contains("cannot impersonate"),
            "{err}"
        );
        // Without the impersonation right the gateway's own identity has no access at all.
        assert_eq!(gateway_as(&[], "list"), "no");
    })
    .await;
}
