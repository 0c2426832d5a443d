//! Built-in printers, column for column from upstream `pkg/printers/internalversion/printers.go`.

use super::Column;
use crate::resource::Builtin;
use crate::time::{human_duration, parse};
use jiff::Timestamp;
use serde_json::{Value, json};

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

fn i(v: &Value, p: &str) -> i64 {
    v.pointer(p).and_then(Value::as_i64).unwrap_or(0)
}

fn arr<'a>(v: &'a Value, p: &str) -> &'a [Value] {
    v.pointer(p)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// `translateTimestampSince`: a human age, or `<unknown>` for a missing time.
fn since(v: &Value, p: &str, now: Timestamp) -> String {
    match v.pointer(p).and_then(Value::as_str).and_then(parse) {
        Some(ts) => human_duration(now.duration_since(ts)),
        None => "<unknown>".to_string(),
    }
}

fn name(v: &Value) -> Value {
    json!(s(v, "/metadata/name"))
}

fn containers_cells(containers: &[Value]) -> (String, String) {
    let names: Vec<&str> = containers.iter().map(|c| s(c, "/name")).collect();
    let images: Vec<&str> = containers.iter().map(|c| s(c, "/image")).collect();
    (names.join(","), images.join(","))
}

/// `metav1.FormatLabelSelector`.
fn format_selector(sel: Option<&Value>) -> String {
    let Some(sel) = sel.filter(|s| !s.is_null()) else {
        return "<none>".to_string();
    };
    let mut parts: Vec<String> = Vec::new();
    if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
        let mut kv: Vec<String> = m
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect();
        kv.sort();
        parts.extend(kv);
    }
    for e in sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = s(e, "/key");
        let values: Vec<&str> = arr(e, "/values").iter().filter_map(Value::as_str).collect();
        parts.push(match s(e, "/operator") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            other => format!("{key} {other}"),
        });
    }
    if parts.is_empty() {
        "<none>".to_string()
    } else {
        parts.join(",")
    }
}

fn access_modes(modes: &[Value]) -> String {
    let mut out = Vec::new();
    for (mode, short) in [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ] {
        if modes.iter().any(|m| m.as_str() == Some(mode)) {
            out.push(short);
        }
    }
    out.join(",")
}

fn bool_ptr(v: Option<&Value>) -> String {
    match v.and_then(Value::as_bool) {
        Some(true) => "True".to_string(),
        Some(false) => "False".to_string(),
        None => "<unset>".to_string(),
    }
}

fn condition_true(v: &Value, p: &str, kind: &str) -> bool {
    arr(v, p)
        .iter()
        .any(|c| s(c, "/type") == kind && s(c, "/status") == "True")
}

const POD_COLUMNS: &[Column] = &[
    Column::NAME,
    Column::new(
        "Ready",
        "string",
        "The aggregate readiness state of this pod for accepting traffic.",
    ),
    Column::new(
        "Status",
        "string",
        "The aggregate status of the containers in this pod.",
    ),
    Column::new(
        "Restarts",
        "string",
        "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
    ),
    Column::AGE,
    Column::wide(
        "IP",
        "string",
        "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.",
    ),
    Column::wide(
        "Node",
        "string",
        "NodeName is a request to schedule this pod onto a specific node.",
    ),
    Column::wide(
        "Nominated Node",
        "string",
        "nominatedNodeName is set only when this pod preempts other pods on the node.",
    ),
    Column::wide(
        "Readiness Gates",
        "string",
        "If specified, all readiness gates will be evaluated for pod readiness.",
    ),
];

const JOB_COLUMNS: &[Column] = &[
    Column::NAME,
    Column::new("Status", "string", "Status of the job."),
    Column::new(
        "Completions",
        "string",
        "The desired number of successfully finished pods the job should be run with.",
    ),
    Column::new("Duration", "string", "Time required to complete the job."),
    Column::AGE,
    Column::wide(
        "Containers",
        "string",
        "Names of each container in the template.",
    ),
    Column::wide(
        "Images",
        "string",
        "Images referenced by each container in the template.",
    ),
    Column::wide(
        "Selector",
        "string",
        "A label query over pods that should match the pod count.",
    ),
];

const CRONJOB_COLUMNS: &[Column] = &[
    Column::NAME,
    Column::new("Schedule", "string", "The schedule in Cron format."),
    Column::new(
        "Timezone",
        "string",
        "The time zone name for the given schedule.",
    ),
    Column::new(
        "Suspend",
        "boolean",
        "This flag tells the controller to suspend subsequent executions.",
    ),
    Column::new(
        "Active",
        "integer",
        "A list of pointers to currently running jobs.",
    ),
    Column::new(
        "Last Schedule",
        "string",
        "Information when was the last time the job was successfully scheduled.",
    ),
    Column::AGE,
    Column::wide(
        "Containers",
        "string",
        "Names of each container in the template.",
    ),
    Column::wide(
        "Images",
        "string",
        "Images referenced by each container in the template.",
    ),
    Column::wide(
        "Selector",
        "string",
        "A label query over pods that should match the pod count.",
    ),
];

const EVENT_COLUMNS: &[Column] = &[
    Column::new(
        "Last Seen",
        "string",
        "The time at which the most recent occurrence of this event was recorded.",
    ),
    Column::new(
        "Type",
        "string",
        "Type of this event (Normal, Warning), new types could be added in the future.",
    ),
    Column::new(
        "Reason",
        "string",
        "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
    ),
    Column::new("Object", "string", "The object that this event is about."),
    Column::wide(
        "Subobject",
        "string",
        "The field path of the object this event is about.",
    ),
    Column::wide(
        "Source",
        "string",
        "The component reporting this event. Should be a short machine understandable string.",
    ),
    Column::new(
        "Message",
        "string",
        "A human-readable description of the status of this operation.",
    ),
    Column::wide(
        "First Seen",
        "string",
        "The time at which the event was first recorded.",
    ),
    Column::wide(
        "Count",
        "string",
        "The number of times this event has occurred.",
    ),
    Column::wide("Name", "string", "Name must be unique within a namespace."),
];

const PVC_COLUMNS: &[Column] = &[
    Column::NAME,
    Column::new(
        "Status",
        "string",
        "Phase represents the current phase of PersistentVolumeClaim.",
    ),
    Column::new(
        "Volume",
        "string",
        "VolumeName is the binding reference to the PersistentVolume backing this claim.",
    ),
    Column::new(
        "Capacity",
        "string",
        "Capacity represents the actual resources of the underlying volume.",
    ),
    Column::new(
        "Access Modes",
        "string",
        "AccessModes contains the desired access modes the volume should have.",
    ),
    Column::new(
        "StorageClass",
        "string",
        "StorageClassName is the name of the StorageClass required by the claim.",
    ),
    Column::new(
        "VolumeAttributesClass",
        "string",
        "VolumeAttributesClassName may be used to set the VolumeAttributesClass used by this claim.",
    ),
    Column::AGE,
    Column::wide(
        "VolumeMode",
        "string",
        "volumeMode defines what type of volume is required by the claim.",
    ),
];

const PV_COLUMNS: &[Column] = &[
    Column::NAME,
    Column::new(
        "Capacity",
        "string",
        "capacity is the description of the persistent volume's resources and capacity.",
    ),
    Column::new(
        "Access Modes",
        "string",
        "accessModes contains all ways the volume can be mounted.",
    ),
    Column::new(
        "Reclaim Policy",
        "string",
        "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim.",
    ),
    Column::new(
        "Status",
        "string",
        "phase indicates if a volume is available, bound to a claim, or released by a claim.",
    ),
    Column::new(
        "Claim",
        "string",
        "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim.",
    ),
    Column::new(
        "StorageClass",
        "string",
        "storageClassName is the name of StorageClass to which this persistent volume belongs.",
    ),
    Column::new(
        "VolumeAttributesClass",
        "string",
        "Name of VolumeAttributesClass to which this persistent volume belongs.",
    ),
    Column::new(
        "Reason",
        "string",
        "reason is a brief CamelCase string that describes any failure.",
    ),
    Column::AGE,
    Column::wide(
        "VolumeMode",
        "string",
        "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state.",
    ),
];

const NODE_COLUMNS: &[Column] = &[
    Column::NAME,
    Column::new("Status", "string", "The status of the node"),
    Column::new("Roles", "string", "The roles of the node"),
    Column::AGE,
    Column::new("Version", "string", "Kubelet Version reported by the node."),
    Column::wide(
        "Internal-IP",
        "string",
        "List of addresses reachable to the node. Queried from cloud provider, if available.",
    ),
    Column::wide(
        "External-IP",
        "string",
        "List of addresses reachable to the node. Queried from cloud provider, if available.",
    ),
    Column::wide(
        "OS-Image",
        "string",
        "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
    ),
    Column::wide(
        "Kernel-Version",
        "string",
        "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
    ),
    Column::wide(
        "Container-Runtime",
        "string",
        "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).",
    ),
];

const DEFAULT_COLUMNS: &[Column] = &[
    Column::NAME,
    Column::new(
        "Created At",
        "date",
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
    ),
];

/// The column definitions of a built-in kind.
pub fn columns(b: Builtin) -> Vec<Column> {
    match b {
        Builtin::Pod => POD_COLUMNS.to_vec(),
        Builtin::Job => JOB_COLUMNS.to_vec(),
        Builtin::CronJob => CRONJOB_COLUMNS.to_vec(),
        Builtin::Event | Builtin::EventV1 => EVENT_COLUMNS.to_vec(),
        Builtin::PersistentVolumeClaim => PVC_COLUMNS.to_vec(),
        Builtin::PersistentVolume => PV_COLUMNS.to_vec(),
        Builtin::Node => NODE_COLUMNS.to_vec(),
        Builtin::Namespace => vec![
            Column::NAME,
            Column::new("Status", "string", "The status of the namespace"),
            Column::AGE,
        ],
        Builtin::ConfigMap => vec![
            Column::NAME,
            Column::new("Data", "integer", "Data contains the configuration data."),
            Column::AGE,
        ],
        Builtin::Secret => vec![
            Column::NAME,
            Column::new(
                "Type",
                "string",
                "Used to facilitate programmatic handling of secret data.",
            ),
            Column::new("Data", "integer", "Data contains the secret data."),
            Column::AGE,
        ],
        Builtin::ServiceAccount => vec![
            Column::NAME,
            Column::new(
                "Secrets",
                "integer",
                "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.",
            ),
            Column::AGE,
        ],
        Builtin::StorageClass => vec![
            Column::NAME,
            Column::new(
                "Provisioner",
                "string",
                "Indicates the type of the provisioner.",
            ),
            Column::new(
                "ReclaimPolicy",
                "string",
                "Indicates the type of the reclaim policy.",
            ),
            Column::new(
                "VolumeBindingMode",
                "string",
                "Indicates how PersistentVolumeClaims should be bound.",
            ),
            Column::new(
                "AllowVolumeExpansion",
                "string",
                "Indicates whether the storage class allow volume expand.",
            ),
            Column::AGE,
        ],
        Builtin::CsiDriver => vec![
            Column::NAME,
            Column::new(
                "AttachRequired",
                "boolean",
                "Indicates this CSI volume driver requires an attach operation.",
            ),
            Column::new(
                "PodInfoOnMount",
                "boolean",
                "Indicates this CSI volume driver requires additional pod information during mount operations.",
            ),
            Column::new(
                "StorageCapacity",
                "boolean",
                "Indicates that the CSI volume driver wants pod scheduling to consider the storage capacity.",
            ),
            Column::new(
                "TokenRequests",
                "string",
                "Indicates the CSI volume driver requires service account tokens.",
            ),
            Column::new(
                "RequiresRepublish",
                "boolean",
                "Indicates the CSI volume driver wants NodePublishVolume being periodically called.",
            ),
            Column::new(
                "Modes",
                "string",
                "Defines the volume lifecycle modes that are supported by this driver.",
            ),
            Column::AGE,
        ],
        Builtin::Lease => vec![
            Column::NAME,
            Column::new(
                "Holder",
                "string",
                "HolderIdentity contains the identity of the holder of a current lease.",
            ),
            Column::AGE,
        ],
        Builtin::StatefulSet => vec![
            Column::NAME,
            Column::new("Ready", "string", "Number of the pod with ready state"),
            Column::AGE,
            Column::wide(
                "Containers",
                "string",
                "Names of each container in the template.",
            ),
            Column::wide(
                "Images",
                "string",
                "Images referenced by each container in the template.",
            ),
        ],
        Builtin::Deployment => vec![
            Column::NAME,
            Column::new("Ready", "string", "Number of the pod with ready state"),
            Column::new(
                "Up-to-date",
                "integer",
                "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
            ),
            Column::new(
                "Available",
                "integer",
                "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
            ),
            Column::AGE,
            Column::wide(
                "Containers",
                "string",
                "Names of each container in the template.",
            ),
            Column::wide(
                "Images",
                "string",
                "Images referenced by each container in the template.",
            ),
            Column::wide("Selector", "string", "Label selector for pods."),
        ],
        Builtin::DaemonSet => vec![
            Column::NAME,
            Column::new(
                "Desired",
                "integer",
                "The total number of nodes that should be running the daemon pod.",
            ),
            Column::new(
                "Current",
                "integer",
                "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod.",
            ),
            Column::new(
                "Ready",
                "integer",
                "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready.",
            ),
            Column::new(
                "Up-to-date",
                "integer",
                "The total number of nodes that are running updated daemon pod",
            ),
            Column::new(
                "Available",
                "integer",
                "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available.",
            ),
            Column::new(
                "Node Selector",
                "string",
                "NodeSelector is a selector which must be true for the pod to fit on a node.",
            ),
            Column::AGE,
            Column::wide(
                "Containers",
                "string",
                "Names of each container in the template.",
            ),
            Column::wide(
                "Images",
                "string",
                "Images referenced by each container in the template.",
            ),
            Column::wide(
                "Selector",
                "string",
                "A label query over pods that are managed by the daemon set.",
            ),
        ],
        Builtin::ReplicaSet => vec![
            Column::NAME,
            Column::new(
                "Desired",
                "integer",
                "Replicas is the number of desired replicas.",
            ),
            Column::new(
                "Current",
                "integer",
                "Replicas is the most recently observed number of replicas.",
            ),
            Column::new(
                "Ready",
                "integer",
                "The number of ready replicas for this replica set.",
            ),
            Column::AGE,
            Column::wide(
                "Containers",
                "string",
                "Names of each container in the template.",
            ),
            Column::wide(
                "Images",
                "string",
                "Images referenced by each container in the template.",
            ),
            Column::wide(
                "Selector",
                "string",
                "Selector is a label query over pods that should match the replica count.",
            ),
        ],
        Builtin::Service => vec![
            Column::NAME,
            Column::new(
                "Type",
                "string",
                "Type determines how the Service is exposed.",
            ),
            Column::new(
                "Cluster-IP",
                "string",
                "clusterIP is the IP address of the service.",
            ),
            Column::new(
                "External-IP",
                "string",
                "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.",
            ),
            Column::new(
                "Port(s)",
                "string",
                "The list of ports that are exposed by this service.",
            ),
            Column::AGE,
            Column::wide(
                "Selector",
                "string",
                "Route service traffic to pods with label keys and values matching this selector.",
            ),
        ],
        Builtin::Endpoints => vec![
            Column::NAME,
            Column::new("Endpoints", "string", "Endpoints of the service"),
            Column::AGE,
        ],
        Builtin::PodDisruptionBudget => vec![
            Column::NAME,
            Column::new(
                "Min Available",
                "string",
                "The minimum number of pods that must be available simultaneously.",
            ),
            Column::new(
                "Max Unavailable",
                "string",
                "The maximum number of pods that may be unavailable simultaneously.",
            ),
            Column::new(
                "Allowed Disruptions",
                "integer",
                "Calculated number of pods that may be disrupted at this time.",
            ),
            Column::AGE,
        ],
        Builtin::ControllerRevision => vec![
            Column::NAME,
            Column::new("Controller", "string", "Controller of the object"),
            Column::new(
                "Revision",
                "string",
                "Revision indicates the revision of the state represented by Data.",
            ),
            Column::AGE,
        ],
        Builtin::PriorityClass => vec![
            Column::NAME,
            Column::new("Value", "integer", "The value of this priority class."),
            Column::new(
                "Global-Default",
                "boolean",
                "globalDefault specifies whether this PriorityClass should be considered as the default priority.",
            ),
            Column::AGE,
            Column::wide(
                "PreemptionPolicy",
                "string",
                "PreemptionPolicy is the Policy for preempting pods with lower priority.",
            ),
        ],
        Builtin::RoleBinding | Builtin::ClusterRoleBinding => vec![
            Column::NAME,
            Column::new(
                "Role",
                "string",
                "RoleRef references the Role or ClusterRole.",
            ),
            Column::AGE,
            Column::wide("Users", "string", "Users in the binding"),
            Column::wide("Groups", "string", "Groups in the binding"),
            Column::wide(
                "ServiceAccounts",
                "string",
                "ServiceAccounts in the binding",
            ),
        ],
        Builtin::ValidatingAdmissionPolicy => vec![
            Column::NAME,
            Column::new(
                "Validations",
                "integer",
                "Validations contain CEL expressions which is used to apply the validation.",
            ),
            Column::new(
                "ParamKind",
                "string",
                "ParamKind specifies the kind of resources used to parameterize this policy",
            ),
            Column::AGE,
        ],
        Builtin::ValidatingAdmissionPolicyBinding => vec![
            Column::NAME,
            Column::new(
                "PolicyName",
                "string",
                "PolicyName references a ValidatingAdmissionPolicy name which the ValidatingAdmissionPolicyBinding binds to.",
            ),
            Column::new(
                "ParamRef",
                "string",
                "ParamRef specifies the parameter resource used to configure the admission control policy.",
            ),
            Column::AGE,
        ],
        Builtin::Role
        | Builtin::ClusterRole
        | Builtin::CustomResourceDefinition
        | Builtin::ResourceQuota
        | Builtin::Ingress => DEFAULT_COLUMNS.to_vec(),
    }
}

/// The cells of a built-in object, in column order.
pub fn cells(b: Builtin, v: &Value, now: Timestamp) -> Vec<Value> {
    let age = || json!(since(v, "/metadata/creationTimestamp", now));
    match b {
        Builtin::Pod => pod_cells(v, now),
        Builtin::Job => job_cells(v, now),
        Builtin::CronJob => {
            let (names, images) =
                containers_cells(arr(v, "/spec/jobTemplate/spec/template/spec/containers"));
            let last = if v
                .pointer("/status/lastScheduleTime")
                .is_some_and(|t| !t.is_null())
            {
                since(v, "/status/lastScheduleTime", now)
            } else {
                "<none>".to_string()
            };
            let tz = match s(v, "/spec/timeZone") {
                "" => "<none>",
                t => t,
            };
            vec![
                name(v),
                json!(s(v, "/spec/schedule")),
                json!(tz),
                json!(bool_ptr(v.pointer("/spec/suspend"))),
                json!(arr(v, "/status/active").len()),
                json!(last),
                age(),
                json!(names),
                json!(images),
                json!(format_selector(
                    v.pointer("/spec/jobTemplate/spec/selector")
                )),
            ]
        }
        Builtin::Event | Builtin::EventV1 => event_cells(v, now),
        Builtin::Namespace => vec![name(v), json!(s(v, "/status/phase")), age()],
        Builtin::ConfigMap => {
            let n = v
                .get("data")
                .and_then(Value::as_object)
                .map_or(0, |m| m.len())
                + v.get("binaryData")
                    .and_then(Value::as_object)
                    .map_or(0, |m| m.len());
            vec![name(v), json!(n), age()]
        }
        Builtin::Secret => {
            let n = v
                .get("data")
                .and_then(Value::as_object)
                .map_or(0, |m| m.len());
            vec![name(v), json!(s(v, "/type")), json!(n), age()]
        }
        Builtin::ServiceAccount => vec![name(v), json!(arr(v, "/secrets").len()), age()],
        Builtin::PersistentVolumeClaim => {
            let phase = if v
                .pointer("/metadata/deletionTimestamp")
                .is_some_and(|d| !d.is_null())
            {
                "Terminating"
            } else {
                s(v, "/status/phase")
            };
            let bound = !s(v, "/spec/volumeName").is_empty();
            let (capacity, modes) = if bound {
                (
                    s(v, "/status/capacity/storage").to_string(),
                    access_modes(arr(v, "/status/accessModes")),
                )
            } else {
                (String::new(), String::new())
            };
            let vac = match s(v, "/spec/volumeAttributesClassName") {
                "" => "<unset>",
                c => c,
            };
            let mode = match s(v, "/spec/volumeMode") {
                "" => "<unset>",
                m => m,
            };
            vec![
                name(v),
                json!(phase),
                json!(s(v, "/spec/volumeName")),
                json!(capacity),
                json!(modes),
                json!(s(v, "/spec/storageClassName")),
                json!(vac),
                age(),
                json!(mode),
            ]
        }
        Builtin::PersistentVolume => {
            let claim = if v.pointer("/spec/claimRef").is_some_and(|c| !c.is_null()) {
                format!(
                    "{}/{}",
                    s(v, "/spec/claimRef/namespace"),
                    s(v, "/spec/claimRef/name")
                )
            } else {
                String::new()
            };
            let phase = if v
                .pointer("/metadata/deletionTimestamp")
                .is_some_and(|d| !d.is_null())
            {
                "Terminating"
            } else {
                s(v, "/status/phase")
            };
            let vac = match s(v, "/spec/volumeAttributesClassName") {
                "" => "<unset>",
                c => c,
            };
            let mode = match s(v, "/spec/volumeMode") {
                "" => "<unset>",
                m => m,
            };
            vec![
                name(v),
                json!(s(v, "/spec/capacity/storage")),
                json!(access_modes(arr(v, "/spec/accessModes"))),
                json!(s(v, "/spec/persistentVolumeReclaimPolicy")),
                json!(phase),
                json!(claim),
                json!(s(v, "/spec/storageClassName")),
                json!(vac),
                json!(s(v, "/status/reason")),
                age(),
                json!(mode),
            ]
        }
        Builtin::Node => node_cells(v, now),
        Builtin::StorageClass => {
            let mut n = s(v, "/metadata/name").to_string();
            if s(
                v,
                "/metadata/annotations/storageclass.kubernetes.io~1is-default-class",
            ) == "true"
            {
                n.push_str(" (default)");
            }
            vec![
                json!(n),
                json!(s(v, "/provisioner")),
                json!(match s(v, "/reclaimPolicy") {
                    "" => "Delete",
                    p => p,
                }),
                json!(match s(v, "/volumeBindingMode") {
                    "" => "Immediate",
                    m => m,
                }),
                json!(
                    v.get("allowVolumeExpansion")
                        .and_then(Value::as_bool)
                        .unwrap_or(false)
                ),
                age(),
            ]
        }
        Builtin::CsiDriver => {
            let token = if arr(v, "/spec/tokenRequests").is_empty() {
                "<unset>".to_string()
            } else {
                arr(v, "/spec/tokenRequests")
                    .iter()
                    .map(|t| s(t, "/audience").to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            let modes: Vec<&str> = arr(v, "/spec/volumeLifecycleModes")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            vec![
                name(v),
                json!(
                    v.pointer("/spec/attachRequired")
                        .and_then(Value::as_bool)
                        .unwrap_or(true)
                ),
                json!(
                    v.pointer("/spec/podInfoOnMount")
                        .and_then(Value::as_bool)
                        .unwrap_or(false)
                ),
                json!(
                    v.pointer("/spec/storageCapacity")
                        .and_then(Value::as_bool)
                        .unwrap_or(false)
                ),
                json!(token),
                json!(
                    v.pointer("/spec/requiresRepublish")
                        .and_then(Value::as_bool)
                        .unwrap_or(false)
                ),
                json!(if modes.is_empty() {
                    "Persistent".to_string()
                } else {
                    modes.join(",")
                }),
                age(),
            ]
        }
        Builtin::Lease => vec![name(v), json!(s(v, "/spec/holderIdentity")), age()],
        Builtin::StatefulSet => {
            let (names, images) = containers_cells(arr(v, "/spec/template/spec/containers"));
            vec![
                name(v),
                json!(format!(
                    "{}/{}",
                    i(v, "/status/readyReplicas"),
                    i(v, "/spec/replicas")
                )),
                age(),
                json!(names),
                json!(images),
            ]
        }
        Builtin::Deployment => {
            let (names, images) = containers_cells(arr(v, "/spec/template/spec/containers"));
            vec![
                name(v),
                json!(format!(
                    "{}/{}",
                    i(v, "/status/readyReplicas"),
                    i(v, "/spec/replicas")
                )),
                json!(i(v, "/status/updatedReplicas")),
                json!(i(v, "/status/availableReplicas")),
                age(),
                json!(names),
                json!(images),
                json!(format_selector(v.pointer("/spec/selector"))),
            ]
        }
        Builtin::DaemonSet => {
            let (names, images) = containers_cells(arr(v, "/spec/template/spec/containers"));
            let node_selector = v
                .pointer("/spec/template/spec/nodeSelector")
                .and_then(Value::as_object)
                .map(|m| {
                    let mut kv: Vec<String> = m
                        .iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                        .collect();
                    kv.sort();
                    kv.join(",")
                })
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "<none>".to_string());
            vec![
                name(v),
                json!(i(v, "/status/desiredNumberScheduled")),
                json!(i(v, "/status/currentNumberScheduled")),
                json!(i(v, "/status/numberReady")),
                json!(i(v, "/status/updatedNumberScheduled")),
                json!(i(v, "/status/numberAvailable")),
                json!(node_selector),
                age(),
                json!(names),
                json!(images),
                json!(format_selector(v.pointer("/spec/selector"))),
            ]
        }
        Builtin::ReplicaSet => {
            let (names, images) = containers_cells(arr(v, "/spec/template/spec/containers"));
            vec![
                name(v),
                json!(i(v, "/spec/replicas")),
                json!(i(v, "/status/replicas")),
                json!(i(v, "/status/readyReplicas")),
                age(),
                json!(names),
                json!(images),
                json!(format_selector(v.pointer("/spec/selector"))),
            ]
        }
        Builtin::Service => {
            let ports: Vec<String> = arr(v, "/spec/ports")
                .iter()
                .map(|p| {
                    let port = i(p, "/port");
                    let proto = match s(p, "/protocol") {
                        "" => "TCP",
                        x => x,
                    };
                    match i(p, "/nodePort") {
                        0 => format!("{port}/{proto}"),
                        np => format!("{port}:{np}/{proto}"),
                    }
                })
                .collect();
            let external: Vec<&str> = arr(v, "/spec/externalIPs")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            let selector = v
                .pointer("/spec/selector")
                .and_then(Value::as_object)
                .map(|m| {
                    let mut kv: Vec<String> = m
                        .iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                        .collect();
                    kv.sort();
                    kv.join(",")
                })
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "<none>".to_string());
            vec![
                name(v),
                json!(s(v, "/spec/type")),
                json!(match s(v, "/spec/clusterIP") {
                    "" => "<none>",
                    ip => ip,
                }),
                json!(if external.is_empty() {
                    "<none>".to_string()
                } else {
                    external.join(",")
                }),
                json!(if ports.is_empty() {
                    "<none>".to_string()
                } else {
                    ports.join(",")
                }),
                age(),
                json!(selector),
            ]
        }
        Builtin::Endpoints => {
            let mut eps = Vec::new();
            for subset in arr(v, "/subsets") {
                for a in arr(subset, "/addresses") {
                    for p in arr(subset, "/ports") {
                        eps.push(format!("{}:{}", s(a, "/ip"), i(p, "/port")));
                    }
                }
            }
            vec![
                name(v),
                json!(if eps.is_empty() {
                    "<none>".to_string()
                } else {
                    eps.join(",")
                }),
                age(),
            ]
        }
        Builtin::PodDisruptionBudget => {
            let show = |p: &str| match v.pointer(p) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => "N/A".to_string(),
            };
            vec![
                name(v),
                json!(show("/spec/minAvailable")),
                json!(show("/spec/maxUnavailable")),
                json!(i(v, "/status/disruptionsAllowed")),
                age(),
            ]
        }
        Builtin::ControllerRevision => {
            let controller = arr(v, "/metadata/ownerReferences")
                .iter()
                .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
                .map(|r| format!("{}/{}", s(r, "/kind").to_lowercase(), s(r, "/name")))
                .unwrap_or_else(|| "<none>".to_string());
            vec![
                name(v),
                json!(controller),
                json!(i(v, "/revision").to_string()),
                age(),
            ]
        }
        Builtin::PriorityClass => vec![
            name(v),
            json!(i(v, "/value")),
            json!(
                v.get("globalDefault")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
            ),
            age(),
            json!(match s(v, "/preemptionPolicy") {
                "" => "PreemptLowerPriority",
                p => p,
            }),
        ],
        Builtin::RoleBinding | Builtin::ClusterRoleBinding => {
            let subjects = |kind: &str| -> String {
                arr(v, "/subjects")
                    .iter()
                    .filter(|s2| s(s2, "/kind") == kind)
                    .map(|s2| {
                        if kind == "ServiceAccount" {
                            format!("{}/{}", s(s2, "/namespace"), s(s2, "/name"))
                        } else {
                            s(s2, "/name").to_string()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            vec![
                name(v),
                json!(format!(
                    "{}/{}",
                    s(v, "/roleRef/kind"),
                    s(v, "/roleRef/name")
                )),
                age(),
                json!(subjects("User")),
                json!(subjects("Group")),
                json!(subjects("ServiceAccount")),
            ]
        }
        Builtin::ValidatingAdmissionPolicy => vec![
            name(v),
            json!(arr(v, "/spec/validations").len()),
            json!(match (
                s(v, "/spec/paramKind/apiVersion"),
                s(v, "/spec/paramKind/kind")
            ) {
                (api, kind) if !kind.is_empty() => format!("{api}/{kind}"),
                _ => "<unset>".to_string(),
            }),
            age(),
        ],
        Builtin::ValidatingAdmissionPolicyBinding => vec![
            name(v),
            json!(s(v, "/spec/policyName")),
            json!(match s(v, "/spec/paramRef/name") {
                "" => "<unset>".to_string(),
                name => format!("*/{name}"),
            }),
            age(),
        ],
        Builtin::Role
        | Builtin::ClusterRole
        | Builtin::CustomResourceDefinition
        | Builtin::ResourceQuota
        | Builtin::Ingress => {
            vec![name(v), json!(s(v, "/metadata/creationTimestamp"))]
        }
    }
}

fn pod_cells(pod: &Value, now: Timestamp) -> Vec<Value> {
    let init_specs = arr(pod, "/spec/initContainers");
    let mut restarts: i64 = 0;
    let mut total = arr(pod, "/spec/containers").len();
    let mut ready = 0usize;
    let mut last_restart: Option<Timestamp> = None;
    let mut reason = match s(pod, "/status/reason") {
        "" => s(pod, "/status/phase").to_string(),
        r => r.to_string(),
    };
    let bump_restart = |c: &Value, last: &mut Option<Timestamp>| {
        if let Some(t) = c
            .pointer("/lastState/terminated/finishedAt")
            .and_then(Value::as_str)
            .and_then(parse)
            && last.is_none_or(|l| l < t)
        {
            *last = Some(t);
        }
    };
    let mut initializing = false;
    let mut sidecar_restarts = 0;
    for (idx, c) in arr(pod, "/status/initContainerStatuses").iter().enumerate() {
        restarts += i(c, "/restartCount");
        bump_restart(c, &mut last_restart);
        let restartable = init_specs
            .iter()
            .find(|spec| s(spec, "/name") == s(c, "/name"))
            .is_some_and(|spec| s(spec, "/restartPolicy") == "Always");
        if restartable {
            sidecar_restarts += i(c, "/restartCount");
            if c.get("started").and_then(Value::as_bool) == Some(true) {
                total += 1;
                if c.get("ready").and_then(Value::as_bool) == Some(true) {
                    ready += 1;
                }
            }
            continue;
        }
        let terminated = c.pointer("/state/terminated");
        let waiting = c.pointer("/state/waiting");
        if let Some(t) = terminated
            && i(t, "/exitCode") == 0
        {
            continue;
        }
        if let Some(t) = terminated {
            reason = match s(t, "/reason") {
                "" if i(t, "/signal") != 0 => format!("Init:Signal:{}", i(t, "/signal")),
                "" => format!("Init:ExitCode:{}", i(t, "/exitCode")),
                r => format!("Init:{r}"),
            };
        } else if let Some(w) = waiting
            && !s(w, "/reason").is_empty()
            && s(w, "/reason") != "PodInitializing"
        {
            reason = format!("Init:{}", s(w, "/reason"));
        } else {
            reason = format!("Init:{idx}/{}", init_specs.len());
        }
        initializing = true;
        break;
    }
    if !initializing || condition_true(pod, "/status/conditions", "Initialized") {
        restarts = sidecar_restarts;
        let mut has_running = false;
        for c in arr(pod, "/status/containerStatuses").iter().rev() {
            restarts += i(c, "/restartCount");
            bump_restart(c, &mut last_restart);
            let waiting = c.pointer("/state/waiting");
            let terminated = c.pointer("/state/terminated");
            if let Some(w) = waiting.filter(|w| !s(w, "/reason").is_empty()) {
                reason = s(w, "/reason").to_string();
            } else if let Some(t) = terminated.filter(|t| !s(t, "/reason").is_empty()) {
                reason = s(t, "/reason").to_string();
            } else if let Some(t) = terminated {
                reason = if i(t, "/signal") != 0 {
                    format!("Signal:{}", i(t, "/signal"))
                } else {
                    format!("ExitCode:{}", i(t, "/exitCode"))
                };
            } else if c.get("ready").and_then(Value::as_bool) == Some(true)
                && c.pointer("/state/running").is_some()
            {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if condition_true(pod, "/status/conditions", "Ready") {
                "Running".to_string()
            } else {
                "NotReady".to_string()
            };
        }
    }
    let phase = s(pod, "/status/phase");
    if pod
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|d| !d.is_null())
    {
        if s(pod, "/status/reason") == "NodeLost" {
            reason = "Unknown".to_string();
        } else if !matches!(phase, "Succeeded" | "Failed") {
            reason = "Terminating".to_string();
        }
    }
    let restarts_text = match last_restart {
        Some(t) if restarts != 0 => {
            format!("{restarts} ({} ago)", human_duration(now.duration_since(t)))
        }
        _ => restarts.to_string(),
    };
    let ip = arr(pod, "/status/podIPs")
        .first()
        .map(|p| s(p, "/ip"))
        .filter(|p| !p.is_empty())
        .unwrap_or(match s(pod, "/status/podIP") {
            "" => "<none>",
            ip => ip,
        });
    let node = match s(pod, "/spec/nodeName") {
        "" => "<none>",
        n => n,
    };
    let nominated = match s(pod, "/status/nominatedNodeName") {
        "" => "<none>",
        n => n,
    };
    let gates = arr(pod, "/spec/readinessGates");
    let gates_text = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let met = gates
            .iter()
            .filter(|g| condition_true(pod, "/status/conditions", s(g, "/conditionType")))
            .count();
        format!("{met}/{}", gates.len())
    };
    vec![
        name(pod),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts_text),
        json!(since(pod, "/metadata/creationTimestamp", now)),
        json!(ip),
        json!(node),
        json!(nominated),
        json!(gates_text),
    ]
}

fn job_cells(job: &Value, now: Timestamp) -> Vec<Value> {
    let succeeded = i(job, "/status/succeeded");
    let completions = match (
        job.pointer("/spec/completions").and_then(Value::as_i64),
        job.pointer("/spec/parallelism").and_then(Value::as_i64),
    ) {
        (Some(c), _) => format!("{succeeded}/{c}"),
        (None, Some(p)) if p > 1 => format!("{succeeded}/1 of {p}"),
        _ => format!("{succeeded}/1"),
    };
    let start = job
        .pointer("/status/startTime")
        .and_then(Value::as_str)
        .and_then(parse);
    let end = job
        .pointer("/status/completionTime")
        .and_then(Value::as_str)
        .and_then(parse);
    let duration = match (start, end) {
        (None, _) => String::new(),
        (Some(s), None) => human_duration(now.duration_since(s)),
        (Some(s), Some(e)) => human_duration(e.duration_since(s)),
    };
    let has = |k: &str| condition_true(job, "/status/conditions", k);
    let status = if has("Complete") {
        "Complete"
    } else if has("Failed") {
        "Failed"
    } else if job
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|d| !d.is_null())
    {
        "Terminating"
    } else if has("Suspended") {
        "Suspended"
    } else if has("FailureTarget") {
        "FailureTarget"
    } else if has("SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else {
        "Running"
    };
    let (names, images) = containers_cells(arr(job, "/spec/template/spec/containers"));
    vec![
        name(job),
        json!(status),
        json!(completions),
        json!(duration),
        json!(since(job, "/metadata/creationTimestamp", now)),
        json!(names),
        json!(images),
        json!(format_selector(job.pointer("/spec/selector"))),
    ]
}

fn event_cells(ev: &Value, now: Timestamp) -> Vec<Value> {
    let present = |p: &str| {
        ev.pointer(p)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
    };
    let first = if present("/firstTimestamp") {
        since(ev, "/firstTimestamp", now)
    } else {
        since(ev, "/eventTime", now)
    };
    let mut last = if present("/lastTimestamp") {
        since(ev, "/lastTimestamp", now)
    } else {
        first.clone()
    };
    let mut count = i(ev, "/count");
    if ev.get("series").is_some_and(|s| !s.is_null()) {
        last = since(ev, "/series/lastObservedTime", now);
        count = i(ev, "/series/count");
    } else if count == 0 {
        count = 1;
    }
    let kind = s(ev, "/involvedObject/kind").to_lowercase();
    let target = match s(ev, "/involvedObject/name") {
        "" => kind,
        n => format!("{kind}/{n}"),
    };
    let source = {
        let component = match s(ev, "/source/component") {
            "" => s(ev, "/reportingComponent"),
            c => c,
        };
        let host = match s(ev, "/source/host") {
            "" => s(ev, "/reportingInstance"),
            h => h,
        };
        if host.is_empty() {
            component.to_string()
        } else {
            format!("{component}, {host}")
        }
    };
    vec![
        json!(last),
        json!(s(ev, "/type")),
        json!(s(ev, "/reason")),
        json!(target),
        json!(s(ev, "/involvedObject/fieldPath")),
        json!(source),
        json!(s(ev, "/message").trim()),
        json!(first),
        json!(count.to_string()),
        name(ev),
    ]
}

fn node_cells(node: &Value, now: Timestamp) -> Vec<Value> {
    let conditions = arr(node, "/status/conditions");
    let mut status: Vec<String> = Vec::new();
    match conditions.iter().find(|c| s(c, "/type") == "Ready") {
        Some(c) if s(c, "/status") == "True" => status.push("Ready".into()),
        Some(c) if s(c, "/status") == "False" => status.push("NotReady".into()),
        _ => status.push("Unknown".into()),
    }
    if node.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push("SchedulingDisabled".into());
    }
    let mut roles: Vec<String> = node
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|l| {
            l.keys()
                .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                .filter(|r| !r.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    roles.sort();
    let address = |kind: &str| -> String {
        arr(node, "/status/addresses")
            .iter()
            .find(|a| s(a, "/type") == kind)
            .map(|a| s(a, "/address").to_string())
            .unwrap_or_else(|| "<none>".to_string())
    };
    let runtime = match s(node, "/status/nodeInfo/containerRuntimeVersion") {
        "" => "<unknown>",
        r => r,
    };
    vec![
        name(node),
        json!(status.join(",")),
        json!(if roles.is_empty() {
            "<none>".to_string()
        } else {
            roles.join(",")
        }),
        json!(since(node, "/metadata/creationTimestamp", now)),
        json!(s(node, "/status/nodeInfo/kubeletVersion")),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        json!(match s(node, "/status/nodeInfo/osImage") {
            "" => "<unknown>",
            o => o,
        }),
        json!(match s(node, "/status/nodeInfo/kernelVersion") {
            "" => "<unknown>",
            k => k,
        }),
        json!(runtime),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-11-22T01:10:00Z".parse().unwrap()
    }

    #[test]
    fn every_builtin_row_has_one_cell_per_column() {
        let obj = json!({"metadata": {"name": "x", "creationTimestamp": "2026-11-22T01:05:00Z"}});
        for b in [
            Builtin::Pod,
            Builtin::Job,
            Builtin::CronJob,
            Builtin::Event,
            Builtin::PersistentVolumeClaim,
            Builtin::PersistentVolume,
            Builtin::Node,
            Builtin::Namespace,
            Builtin::ConfigMap,
            Builtin::Secret,
            Builtin::ServiceAccount,
            Builtin::StorageClass,
            Builtin::CsiDriver,
            Builtin::Lease,
            Builtin::StatefulSet,
            Builtin::Deployment,
            Builtin::DaemonSet,
            Builtin::ReplicaSet,
            Builtin::Service,
            Builtin::Endpoints,
            Builtin::PodDisruptionBudget,
            Builtin::ControllerRevision,
            Builtin::PriorityClass,
            Builtin::RoleBinding,
            Builtin::ClusterRoleBinding,
            Builtin::Role,
            Builtin::ClusterRole,
            Builtin::CustomResourceDefinition,
            Builtin::ResourceQuota,
            Builtin::Ingress,
            Builtin::ValidatingAdmissionPolicy,
            Builtin::ValidatingAdmissionPolicyBinding,
        ] {
            assert_eq!(cells(b, &obj, now()).len(), columns(b).len(), "{b:?}");
        }
    }

    #[test]
    fn a_completed_pod_prints_completed_and_a_running_one_ready() {
        let done = json!({"metadata": {"name": "p", "creationTimestamp": "2026-11-22T01:05:00Z"},
            "spec": {"containers": [{"name": "c"}], "nodeName": "n"},
            "status": {"phase": "Succeeded", "containerStatuses": [{"name": "c", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}});
        let c = pod_cells(&done, now());
        assert_eq!(c[1], "0/1");
        assert_eq!(c[2], "Completed");
        assert_eq!(c[4], "5m");
        assert_eq!(c[6], "n");
        let running = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]},
            "status": {"phase": "Running", "containerStatuses": [{"name": "c", "ready": true, "restartCount": 2,
                "state": {"running": {}}, "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2026-11-22T01:09:00Z"}}}]}});
        let c = pod_cells(&running, now());
        assert_eq!(c[1], "1/1");
        assert_eq!(c[2], "Running");
        assert_eq!(c[3], "2 (60s ago)");
    }

    #[test]
    fn pods_waiting_on_init_containers_print_init_progress() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {"initContainers": [{"name": "a"}, {"name": "b"}], "containers": [{"name": "c"}]},
            "status": {"phase": "Pending", "initContainerStatuses": [
                {"name": "a", "state": {"terminated": {"exitCode": 0}}},
                {"name": "b", "state": {"running": {}}}]}});
        assert_eq!(pod_cells(&pod, now())[2], "Init:1/2");
        let failed = json!({"metadata": {"name": "p"}, "spec": {"initContainers": [{"name": "a"}], "containers": [{"name": "c"}]},
            "status": {"phase": "Failed", "initContainerStatuses": [{"name": "a", "state": {"terminated": {"exitCode": 3, "reason": "Error"}}}]}});
        assert_eq!(pod_cells(&failed, now())[2], "Init:Error");
    }

    #[test]
    fn job_status_and_completions_follow_conditions() {
        let job = json!({"metadata": {"name": "j"}, "spec": {"completions": 1, "parallelism": 1},
            "status": {"succeeded": 1, "startTime": "2026-11-22T01:05:00Z", "completionTime": "2026-11-22T01:05:07Z",
                "conditions": [{"type": "Complete", "status": "True"}]}});
        let c = job_cells(&job, now());
        assert_eq!(c[1], "Complete");
        assert_eq!(c[2], "1/1");
        assert_eq!(c[3], "7s");
    }

    #[test]
    fn events_print_lowercase_kind_slash_name_and_series_counts() {
        let ev = json!({"metadata": {"name": "e"}, "involvedObject": {"kind": "Pod", "name": "p"}, "type": "Normal",
            "reason": "Started", "message": " hi ", "eventTime": "2026-11-22T01:09:00.000000Z",
            "series": {"count": 3, "lastObservedTime": "2026-11-22T01:09:30.000000Z"}});
        let c = event_cells(&ev, now());
        assert_eq!(c[0], "30s");
        assert_eq!(c[3], "pod/p");
        assert_eq!(c[6], "hi");
        assert_eq!(c[8], "3");
    }
}
