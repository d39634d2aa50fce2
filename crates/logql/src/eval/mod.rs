//! Metric evaluation: step grid, range and vector aggregations, binary operators.
