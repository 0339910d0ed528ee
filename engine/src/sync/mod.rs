//! Sans-IO anti-entropy sessions (see issue: built on the tree in [`crate::aae`]).
