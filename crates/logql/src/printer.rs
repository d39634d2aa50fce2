//! `Display` for the syntax tree: prints LogQL that parses back to the same tree.
