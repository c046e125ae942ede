//! A tenant's own schedules: work it wants started by itself, beside (and
//! checked like) the deployment's schedules.yaml.

use crate::ActionError;
use mktg_boot::tenant::{self, Item, OwnSchedule, MAX_OWN_SCHEDULES};
use mktg_boot::Deps;
use mktg_core::TenantId;

/// Creates or replaces the tenant's schedule `id`.
pub async fn put(
    deps: &Deps,
    tenant: &TenantId,
    id: &str,
    schedule: OwnSchedule,
) -> Result<(), ActionError> {
    schedule
        .to_schedule(id, &deps.config)
        .map_err(|why| ActionError::Invalid(format!("schedule \"{id}\": {why}")))?;
    let own = tenant::load(deps, tenant).await?;
    if !own.own_schedules.contains_key(id) && own.own_schedules.len() >= MAX_OWN_SCHEDULES {
        return Err(ActionError::Conflict(format!(
            "this tenant has {MAX_OWN_SCHEDULES} schedules already; delete one first"
        )));
    }
    tenant::put_item(deps, tenant, Item::Schedule, id, &schedule).await?;
    Ok(())
}

/// Deletes the tenant's schedule `id` (slots already fired stay fired).
pub async fn delete(deps: &Deps, tenant: &TenantId, id: &str) -> Result<(), ActionError> {
    let own = tenant::load(deps, tenant).await?;
    if !own.own_schedules.contains_key(id) {
        let why = if deps.config.schedules.list.iter().any(|s| s.id == id) {
            format!("\"{id}\" is a schedule of the deployment (schedules.yaml): turn it off in settings instead")
        } else {
            format!("this tenant has no schedule \"{id}\"")
        };
        return Err(ActionError::NotFound(why));
    }
    tenant::delete_item(deps, tenant, Item::Schedule, id).await?;
    Ok(())
}
