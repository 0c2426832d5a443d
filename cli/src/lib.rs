//! Shared code of the `cairnctl` and `datasafed` binaries.
