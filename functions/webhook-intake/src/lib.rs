//! The webhook-intake function. Reserved in the workspace layout; its handler, its
//! trigger and its template resources arrive with the triggers issue
//! (schedules and signed webhooks). Nothing deploys or calls it yet.
