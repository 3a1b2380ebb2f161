//! Webhook tests (issue 4).
