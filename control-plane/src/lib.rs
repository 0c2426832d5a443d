//! Cairn's control plane: reconcilers split into pure planners (`plan/`) and a thin IO shell.
