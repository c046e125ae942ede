use lambda_http::{run, service_fn, Error};
use mktg_boot::{init_tracing, Deps, Settings};
use mktg_core::TenantId;
use webhook_intake::WebhookSecrets;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let settings = Settings::from_env()?;
    let deps = Deps::build(&settings).await?;
    let secrets = WebhookSecrets::from_vars(std::env::vars());
    let tenant = TenantId::new(settings.tenant.clone());
    run(service_fn(|request| {
        webhook_intake::handle(&deps, &secrets, &tenant, request)
    }))
    .await
}
