use lambda_runtime::{run, service_fn, Error};
use mktg_boot::{init_tracing, Deps, Settings};
use mktg_core::TenantId;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let settings = Settings::from_env()?;
    let deps = Deps::build(&settings).await?;
    // Usage billing: the Stripe key by reference, read once per cold start.
    if let Ok(id) = std::env::var("STRIPE_SECRET_KEY_SECRET_ID") {
        if !id.is_empty() {
            let aws = aws_config::load_from_env().await;
            let client = aws_sdk_secretsmanager::Client::new(&aws);
            let key = mktg_boot::secrets::fetch(&client, &id, "STRIPE_SECRET_KEY").await?;
            use scheduler_tick::billing::Stripe;
            Stripe::configure(Stripe::with_key(key));
        }
    }
    let tenant = TenantId::new(settings.tenant.clone());
    run(service_fn(|event| {
        scheduler_tick::handle(&deps, &tenant, event)
    }))
    .await
}
