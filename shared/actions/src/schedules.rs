//! A tenant's own schedules: work it wants started by itself, beside (and
//! checked like) the deployment's schedules.yaml.

use crate::ActionError;
use mktg_boot::tenant::{self, Kind, OwnSchedule, MAX_OWN_SCHEDULES};
use mktg_boot::Deps;
use mktg_core::TenantId;

/// Creates or replaces the tenant's schedule `id`.
pub async fn put(
    deps: &Deps,
    tenant: &TenantId,
    id: &str,
    schedule: OwnSchedule,
    by: &str,
) -> Result<(), ActionError> {
    schedule
        .to_schedule(id, &deps.config)
        .map_err(|why| ActionError::Invalid(format!("schedule \"{id}\": {why}")))?;
    let mut own = tenant::load(deps, tenant).await?;
    if !own.own_schedules.contains_key(id) && own.own_schedules.len() >= MAX_OWN_SCHEDULES {
        return Err(ActionError::Conflict(format!(
            "this tenant has {MAX_OWN_SCHEDULES} schedules already; delete one first"
        )));
    }
    own.own_schedules.insert(id.to_string(), schedule);
    tenant::save(deps, tenant, Kind::OwnSchedules, &own.own_schedules, by).await?;
    Ok(())
}

/// Deletes the tenant's schedule `id` (slots already fired stay fired).
pub async fn delete(deps: &Deps, tenant: &TenantId, id: &str, by: &str) -> Result<(), ActionError> {
    let mut own = tenant::load(deps, tenant).await?;
    if own.own_schedules.remove(id).is_none() {
        let why = if deps.config.schedules.list.iter().any(|s| s.id == id) {
            format!("\"{id}\" is a schedule of the deployment (schedules.yaml): turn it off in settings instead")
        } else {
            format!("this tenant has no schedule \"{id}\"")
        };
        return Err(ActionError::NotFound(why));
    }
    tenant::save(deps, tenant, Kind::OwnSchedules, &own.own_schedules, by).await?;
    Ok(())
}
