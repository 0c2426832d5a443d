//! The KubeBlocks data-protection API (`dataprotection.kubeblocks.io/v1alpha1`) as Rust types.
