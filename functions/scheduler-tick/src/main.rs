use lambda_runtime::{run, service_fn, Error};
use mktg_boot::{init_tracing, Deps, Settings};
use mktg_core::TenantId;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let settings = Settings::from_env()?;
    let deps = Deps::build(&settings).await?;
    let tenant = TenantId::new(settings.tenant.clone());
    run(service_fn(|event| {
        scheduler_tick::handle(&deps, &tenant, event)
    }))
    .await
}
