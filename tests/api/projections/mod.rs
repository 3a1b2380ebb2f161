//! Projection tests (issue 3).
