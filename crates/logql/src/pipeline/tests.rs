//! End-to-end tests of whole pipelines built from syntax trees.
