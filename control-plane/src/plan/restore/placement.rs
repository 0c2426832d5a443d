//! Which node's agent runs each restore action, chosen once and remembered.
//!
//! A restore Job needs no particular node unless something pins it, yet a re-derived plan must
//! dispatch it to the same agent (the agent deduplicates by action id only on its own node). So
//! the first dispatch records `objectKey -> node` in the Restore annotation
//! [`well_known::annotation::RESTORE_NODES`] (a JSON object), written with the metadata *before* the status and the
//! dispatch (intent order), and every later reconcile reads it back.
//!
//! Choice on first dispatch, in order: the node the action is pinned to (`schedulingSpec.nodeName`,
//! the target pod's node for `runOnTargetPodNode` and exec actions, or the
//! `volume.kubernetes.io/selected-node` of a claim the job mounts); else the first connected agent
//! (by name) whose Node carries every label of `schedulingSpec.nodeSelector`.

use std::collections::BTreeMap;

use cairn_api::well_known;
use k8s_openapi::api::core::v1::{Node, PersistentVolumeClaim};

use crate::plan::agent_view::AgentView;

/// How an action may be placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// Exactly this node.
    Pinned(String),
    /// Any connected agent whose Node has these labels (none: any).
    Anywhere {
        node_selector: BTreeMap<String, String>,
    },
    /// This node when its agent is connected, else any connected agent.
    Preferably(String),
}

/// The recorded placements, and whether this reconcile added any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placements {
    nodes: BTreeMap<String, String>,
    changed: bool,
    annotation: &'static str,
}

impl Placements {
    /// Reads the Restore annotation; a missing or unreadable one is empty.
    pub fn read(annotations: Option<&BTreeMap<String, String>>) -> Self {
        Self::read_from(annotations, well_known::annotation::RESTORE_NODES)
    }

    /// Reads the placements kept in annotation `annotation` (a Backup's
    /// [`well_known::annotation::BACKUP_NODES`]).
    pub fn read_from(
        annotations: Option<&BTreeMap<String, String>>,
        annotation: &'static str,
    ) -> Self {
        let nodes = annotations
            .and_then(|a| a.get(annotation))
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or_default();
        Self {
            nodes,
            changed: false,
            annotation,
        }
    }

    /// The node recorded for `object_key`.
    pub fn recorded(&self, object_key: &str) -> Option<&str> {
        self.nodes.get(object_key).map(String::as_str)
    }

    /// The node for `object_key`: the recorded one, else a fresh choice (then recorded), else
    /// `None` when no connected agent fits.
    pub fn place(
        &mut self,
        object_key: &str,
        placement: &Placement,
        agents: &AgentView,
        nodes: &[Node],
    ) -> Option<String> {
        if let Some(node) = self.nodes.get(object_key) {
            return Some(node.clone());
        }
        let node = match placement {
            Placement::Pinned(node) => node.clone(),
            Placement::Preferably(node) if agents.nodes.get(node).is_some_and(|s| s.connected) => {
                node.clone()
            }
            Placement::Preferably(_) => agents.any_connected_node()?.to_string(),
            Placement::Anywhere { node_selector } => agents
                .nodes
                .iter()
                .filter(|(_, state)| state.connected)
                .map(|(name, _)| name)
                .find(|name| node_matches(name, node_selector, nodes))?
                .clone(),
        };
        self.nodes.insert(object_key.to_string(), node.clone());
        self.changed = true;
        Some(node)
    }

    /// Forgets where `object_key` ran, so its next attempt is placed afresh.
    pub fn forget(&mut self, object_key: &str) {
        if self.nodes.remove(object_key).is_some() {
            self.changed = true;
        }
    }

    /// The annotation patch when something was recorded.
    pub fn patch(&self) -> Option<(String, String)> {
        self.changed.then(|| {
            (
                self.annotation.to_string(),
                serde_json::to_string(&self.nodes).unwrap_or_default(),
            )
        })
    }
}

fn node_matches(name: &str, selector: &BTreeMap<String, String>, nodes: &[Node]) -> bool {
    if selector.is_empty() {
        return true;
    }
    let Some(node) = nodes
        .iter()
        .find(|n| n.metadata.name.as_deref() == Some(name))
    else {
        return false;
    };
    let labels = node.metadata.labels.clone().unwrap_or_default();
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The node a claim was bound to by the scheduler, if any.
pub fn selected_node(claims: &[PersistentVolumeClaim], name: &str) -> Option<String> {
    claims
        .iter()
        .find(|c| c.metadata.name.as_deref() == Some(name))
        .and_then(|c| c.metadata.annotations.as_ref())
        .and_then(|a| a.get(well_known::annotation::SELECTED_NODE))
        .filter(|n| !n.is_empty())
        .cloned()
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;
    use serde_json::json;

    use super::*;
    use crate::plan::agent_view::NodeState;

    fn agents(nodes: &[(&str, bool)]) -> AgentView {
        AgentView {
            nodes: nodes
                .iter()
                .map(|(n, connected)| {
                    (
                        n.to_string(),
                        NodeState {
                            connected: *connected,
                            since: Timestamp::UNIX_EPOCH,
                        },
                    )
                })
                .collect(),
            ..Default::default()
        }
    }

    fn node(name: &str, labels: serde_json::Value) -> Node {
        serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap()
    }

    #[test]
    fn the_first_choice_is_recorded_and_reused_when_other_agents_connect() {
        let mut placements = Placements::read(None);
        let anywhere = Placement::Anywhere {
            node_selector: BTreeMap::new(),
        };
        let first = placements.place("Job/j", &anywhere, &agents(&[("b", true)]), &[]);
        assert_eq!(first.as_deref(), Some("b"));
        let (key, value) = placements.patch().unwrap();
        let annotations = BTreeMap::from([(key, value)]);
        let mut again = Placements::read(Some(&annotations));
        let second = again.place(
            "Job/j",
            &anywhere,
            &agents(&[("a", true), ("b", true)]),
            &[],
        );
        assert_eq!(second.as_deref(), Some("b"));
        assert_eq!(again.patch(), None);
    }

    #[test]
    fn pinned_actions_go_to_their_node_even_while_it_is_disconnected() {
        let mut placements = Placements::read(None);
        let node = placements.place(
            "Pod/p",
            &Placement::Pinned("x".into()),
            &agents(&[("a", true)]),
            &[],
        );
        assert_eq!(node.as_deref(), Some("x"));
    }

    #[test]
    fn node_selector_picks_only_agents_whose_node_has_the_labels() {
        let mut placements = Placements::read(None);
        let selector = Placement::Anywhere {
            node_selector: BTreeMap::from([("disk".to_string(), "ssd".to_string())]),
        };
        let nodes = [
            node("a", json!({"disk": "hdd"})),
            node("b", json!({"disk": "ssd"})),
        ];
        let view = agents(&[("a", true), ("b", true), ("c", true)]);
        assert_eq!(
            placements
                .place("Job/j", &selector, &view, &nodes)
                .as_deref(),
            Some("b")
        );
        let mut none = Placements::read(None);
        assert_eq!(
            none.place("Job/j", &selector, &agents(&[("a", true)]), &nodes),
            None
        );
    }

    #[test]
    fn disconnected_agents_are_never_chosen_for_unpinned_actions() {
        let mut placements = Placements::read(None);
        let anywhere = Placement::Anywhere {
            node_selector: BTreeMap::new(),
        };
        assert_eq!(
            placements.place("Job/j", &anywhere, &agents(&[("a", false)]), &[]),
            None
        );
        assert_eq!(placements.patch(), None);
    }

    #[test]
    fn an_unreadable_annotation_counts_as_empty() {
        let annotations = BTreeMap::from([(
            well_known::annotation::RESTORE_NODES.to_string(),
            "not json".to_string(),
        )]);
        assert_eq!(Placements::read(Some(&annotations)).recorded("Job/j"), None);
    }
}
