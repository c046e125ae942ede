//! What a person decides, shared by the `mktg` CLI and the REST API:
//! approving or denying a tool call that writes or spends, and a proposed
//! budget shift.

pub mod approvals;
