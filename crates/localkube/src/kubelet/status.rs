//! Pod status from container states (a pure function): phase, conditions and
//! container statuses, as the kubelet reports them.

use serde_json::{Value, json};

/// A container's state.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    Waiting {
        reason: String,
        message: String,
    },
    Running {
        started_at: String,
    },
    Terminated {
        exit_code: i32,
        signal: Option<i32>,
        reason: String,
        message: String,
        started_at: String,
        finished_at: String,
    },
}

impl State {
    pub fn waiting(reason: &str, message: impl Into<String>) -> State {
        State::Waiting {
            reason: reason.to_string(),
            message: message.into(),
        }
    }

    pub fn is_running(&self) -> bool {
        matches!(self, State::Running { .. })
    }

    pub fn exit_code(&self) -> Option<i32> {
        match self {
            State::Terminated { exit_code, .. } => Some(*exit_code),
            _ => None,
        }
    }

    fn to_json(&self, container_id: &str) -> Value {
        match self {
            State::Waiting { reason, message } => {
                let mut w = json!({"reason": reason});
                if !message.is_empty() {
                    w["message"] = json!(message);
                }
                json!({"waiting": w})
            }
            State::Running { started_at } => json!({"running": {"startedAt": started_at}}),
            State::Terminated {
                exit_code,
                signal,
                reason,
                message,
                started_at,
                finished_at,
            } => {
                let mut t = json!({
                    "exitCode": exit_code,
                    "reason": reason,
                    "startedAt": started_at,
                    "finishedAt": finished_at,
                    "containerID": container_id,
                });
                if let Some(s) = signal {
                    t["signal"] = json!(s);
                }
                if !message.is_empty() {
                    t["message"] = json!(message);
                }
                json!({"terminated": t})
            }
        }
    }
}

/// What the kubelet knows about one container.
#[derive(Debug, Clone, PartialEq)]
pub struct Container {
    pub name: String,
    pub image: String,
    pub state: State,
    pub last_state: Option<State>,
    pub ready: bool,
    pub started: bool,
    pub restart_count: i64,
    pub pid: Option<u32>,
    /// Set once the container ran (so a waiting state after it means a restart).
    pub ever_started: bool,
}

impl Container {
    pub fn new(name: &str, image: &str) -> Container {
        Container {
            name: name.to_string(),
            image: image.to_string(),
            state: State::waiting("ContainerCreating", ""),
            last_state: None,
            ready: false,
            started: false,
            restart_count: 0,
            pid: None,
            ever_started: false,
        }
    }

    fn to_json(&self) -> Value {
        let id = self.pid.map(|p| format!("local://{p}")).unwrap_or_default();
        let mut v = json!({
            "name": self.name,
            "image": self.image,
            "imageID": format!("local://{}", self.image),
            "ready": self.ready,
            "started": self.started,
            "restartCount": self.restart_count,
            "state": self.state.to_json(&id),
            "lastState": self.last_state.as_ref().map(|s| s.to_json(&id)).unwrap_or_else(|| json!({})),
        });
        if !id.is_empty() {
            v["containerID"] = json!(id);
        }
        v
    }
}

/// The pod as the kubelet runs it.
#[derive(Debug, Clone, PartialEq)]
pub struct PodRuntime {
    pub restart_policy: String,
    pub init: Vec<Container>,
    pub main: Vec<Container>,
    pub sandbox_ready: bool,
    pub start_time: Option<String>,
    /// An init container failed and will not be retried.
    pub init_failed: bool,
    /// A pod-level reason and message (e.g. DeadlineExceeded).
    pub reason: Option<(String, String)>,
    /// Set once termination was requested (deletion).
    pub terminating: bool,
}

impl PodRuntime {
    pub fn init_done(&self) -> bool {
        self.init.iter().all(|c| c.state.exit_code() == Some(0))
    }

    /// The pod phase.
    pub fn phase(&self) -> &'static str {
        if self
            .reason
            .as_ref()
            .is_some_and(|(r, _)| r == "DeadlineExceeded")
            || self.init_failed
        {
            return "Failed";
        }
        if !self.init_done() {
            return "Pending";
        }
        let all_terminated =
            !self.main.is_empty() && self.main.iter().all(|c| c.state.exit_code().is_some());
        let all_ok = self.main.iter().all(|c| c.state.exit_code() == Some(0));
        let terminal = match self.restart_policy.as_str() {
            "Never" => all_terminated,
            "OnFailure" => all_terminated && all_ok,
            _ => self.terminating && all_terminated,
        };
        if terminal {
            return if all_ok { "Succeeded" } else { "Failed" };
        }
        if self.main.iter().any(|c| c.ever_started) {
            "Running"
        } else {
            "Pending"
        }
    }

    /// `status` for the pod, keeping transition times of unchanged conditions from `previous`.
    pub fn status(&self, previous: Option<&Value>, qos: &str, now: &str) -> Value {
        let phase = self.phase();
        let terminal = matches!(phase, "Succeeded" | "Failed");
        let unready: Vec<&str> = self
            .main
            .iter()
            .filter(|c| !c.ready)
            .map(|c| c.name.as_str())
            .collect();
        let uninit: Vec<&str> = self
            .init
            .iter()
            .filter(|c| c.state.exit_code() != Some(0))
            .map(|c| c.name.as_str())
            .collect();
        let since = |kind: &str, status: &str| -> Value {
            previous
                .and_then(|p| p.get("conditions"))
                .and_then(Value::as_array)
                .and_then(|cs| {
                    cs.iter()
                        .find(|c| c["type"] == kind && c["status"] == status)
                })
                .and_then(|c| c.get("lastTransitionTime").cloned())
                .unwrap_or_else(|| json!(now))
        };
        let cond = |kind: &str, ok: bool, reason: &str, message: String| -> Value {
            let status = if ok { "True" } else { "False" };
            let mut c = json!({"type": kind, "status": status, "lastProbeTime": null, "lastTransitionTime": since(kind, status)});
            if !ok || !reason.is_empty() {
                if !reason.is_empty() {
                    c["reason"] = json!(reason);
                }
                if !message.is_empty() {
                    c["message"] = json!(message);
                }
            }
            c
        };
        let ready = unready.is_empty() && !terminal;
        let (ready_reason, ready_message) = if terminal {
            ("PodCompleted", String::new())
        } else if ready {
            ("", String::new())
        } else {
            (
                "ContainersNotReady",
                format!("containers with unready status: [{}]", unready.join(" ")),
            )
        };
        let conditions = vec![
            cond(
                "PodReadyToStartContainers",
                self.sandbox_ready,
                "",
                String::new(),
            ),
            cond(
                "Initialized",
                uninit.is_empty(),
                if uninit.is_empty() {
                    if terminal { "PodCompleted" } else { "" }
                } else {
                    "ContainersNotInitialized"
                },
                if uninit.is_empty() {
                    String::new()
                } else {
                    format!("containers with incomplete status: [{}]", uninit.join(" "))
                },
            ),
            cond("Ready", ready, ready_reason, ready_message.clone()),
            cond("ContainersReady", ready, ready_reason, ready_message),
            cond("PodScheduled", true, "", String::new()),
        ];
        let mut status = json!({
            "phase": phase,
            "conditions": conditions,
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": "127.0.0.1",
            "podIPs": [{"ip": "127.0.0.1"}],
            "qosClass": qos,
            "containerStatuses": self.main.iter().map(Container::to_json).collect::<Vec<_>>(),
        });
        if let Some(t) = &self.start_time {
            status["startTime"] = json!(t);
        }
        if !self.init.is_empty() {
            status["initContainerStatuses"] =
                json!(self.init.iter().map(Container::to_json).collect::<Vec<_>>());
        }
        if let Some((r, m)) = &self.reason {
            status["reason"] = json!(r);
            status["message"] = json!(m);
        }
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terminated(code: i32) -> State {
        State::Terminated {
            exit_code: code,
            signal: None,
            reason: if code == 0 {
                "Completed".into()
            } else {
                "Error".into()
            },
            message: String::new(),
            started_at: "t0".into(),
            finished_at: "t1".into(),
        }
    }

    fn pod(policy: &str, states: &[State]) -> PodRuntime {
        PodRuntime {
            restart_policy: policy.into(),
            init: Vec::new(),
            main: states
                .iter()
                .enumerate()
                .map(|(i, s)| Container {
                    state: s.clone(),
                    ever_started: !matches!(s, State::Waiting { .. }),
                    ..Container::new(&format!("c{i}"), "img")
                })
                .collect(),
            sandbox_ready: true,
            start_time: None,
            init_failed: false,
            reason: None,
            terminating: false,
        }
    }

    #[test]
    fn phases_follow_exit_codes_and_restart_policy() {
        let running = State::Running {
            started_at: "t".into(),
        };
        assert_eq!(
            pod("Never", &[State::waiting("ContainerCreating", "")]).phase(),
            "Pending"
        );
        assert_eq!(
            pod("Never", std::slice::from_ref(&running)).phase(),
            "Running"
        );
        assert_eq!(
            pod("Never", &[terminated(0), terminated(0)]).phase(),
            "Succeeded"
        );
        assert_eq!(
            pod("Never", &[terminated(0), terminated(1)]).phase(),
            "Failed"
        );
        assert_eq!(
            pod("Never", &[terminated(0), running.clone()]).phase(),
            "Running"
        );
        assert_eq!(pod("OnFailure", &[terminated(1)]).phase(), "Running");
        assert_eq!(pod("OnFailure", &[terminated(0)]).phase(), "Succeeded");
        assert_eq!(pod("Always", &[terminated(0)]).phase(), "Running");
    }

    #[test]
    fn failed_or_pending_init_containers_hold_the_pod() {
        let mut p = pod("Never", &[State::waiting("PodInitializing", "")]);
        p.init = vec![Container::new("init", "img")];
        assert_eq!(p.phase(), "Pending");
        p.init[0].state = terminated(2);
        p.init_failed = true;
        assert_eq!(p.phase(), "Failed");
    }

    #[test]
    fn readiness_conditions_list_unready_containers() {
        let mut p = pod(
            "Always",
            &[
                State::Running {
                    started_at: "t".into(),
                },
                State::Running {
                    started_at: "t".into(),
                },
            ],
        );
        p.main[0].ready = true;
        let s = p.status(None, "BestEffort", "now");
        let ready = s["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap();
        assert_eq!(ready["status"], "False");
        assert_eq!(ready["message"], "containers with unready status: [c1]");
        p.main[1].ready = true;
        let s2 = p.status(Some(&s), "BestEffort", "later");
        let ready = s2["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap();
        assert_eq!(ready["status"], "True");
        let sched = s2["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "PodScheduled")
            .unwrap();
        assert_eq!(
            sched["lastTransitionTime"], "now",
            "unchanged conditions keep their time"
        );
    }
}
