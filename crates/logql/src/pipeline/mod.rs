//! The log pipeline: line filters, parsers, label filters, formatting stages.
