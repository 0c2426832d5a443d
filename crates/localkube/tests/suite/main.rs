//! localkube's integration suite: kube-rs, kubectl and Python clients against in-process
//! servers (one per test, each on its own port and directory).

mod auth;
mod common;
mod data_dir;
mod kube_api;
mod kube_runtime;
mod kube_watch;
mod kubectl;
mod kubectl_create;
mod pods;
mod python;
mod watch_consistency;
mod watch_stalled_reader;
