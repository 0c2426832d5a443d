//! Cairn's gRPC protocols, generated from `proto/cairn/**.proto` (see docs/PROTOCOL.md).
