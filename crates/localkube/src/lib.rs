//! localkube: an embedded Kubernetes-compatible API server with a process kubelet.
