use lambda_runtime::{run, service_fn, Error};
use mktg_boot::{init_tracing, Deps, Settings};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let settings = Settings::from_env()?;
    let deps = Deps::build(&settings).await?;
    run(service_fn(|event| director::handle(&deps, event))).await
}
