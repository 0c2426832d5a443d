//! localkube: an embedded Kubernetes-compatible API server persisted on local disk, with a
//! process kubelet. See `docs` in the crate README and `Server::builder`.

pub mod admission;
pub mod auth;
pub mod controllers;
pub mod error;
pub mod http;
pub mod kubeconfig;
pub mod kubelet;
pub mod limits;
pub mod patch;
pub mod private;
pub mod protobuf;
pub mod resource;
pub mod rest;
pub mod seed;
pub mod selector;
pub mod server;
pub mod store;
pub mod table;
pub mod time;
pub mod tls;
pub mod validation;

pub use server::{RunningServer, Server, ServerBuilder, ServerError, default_node_name};
