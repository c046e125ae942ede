use lambda_http::{run, service_fn, Error};
use mktg_boot::{init_tracing, Deps, Settings};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let settings = Settings::from_env()?;
    let deps = Deps::build(&settings).await?;
    let mut keys = api::ApiKeys::parse(&std::env::var("MKTG_API_KEYS").unwrap_or_default())?;
    if let Some(oidc) = api::oidc::Oidc::from_env()? {
        keys = keys.with_oidc(oidc);
    }
    keys = keys.with_signup_limit(api::ApiKeys::signup_from_env()?);
    run(service_fn(|request| api::handle(&deps, &keys, request))).await
}
