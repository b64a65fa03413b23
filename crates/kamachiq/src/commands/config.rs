//! `kamachiq config validate` and `kamachiq config example`.

use crate::config::{Config, example};
use crate::{exit, output};

pub fn validate(config: &Config) -> u8 {
    output::line(format!(
        "configuration is valid (from {})",
        config.sources.join(" < ")
    ));
    output::line(format!("home          {}", config.home.display()));
    output::line(format!("database_url  {}", config.database_url_display()));
    output::line(format!("concurrency   {}", config.concurrency));
    output::line(format!(
        "log_level     {}",
        config.log_level.as_str().to_ascii_lowercase()
    ));
    output::line(format!(
        "engine        lease_ttl {} · heartbeat {} · kill_grace {}",
        humantime::format_duration(config.lease_ttl),
        humantime::format_duration(config.heartbeat),
        humantime::format_duration(config.kill_grace)
    ));
    output::line(format!(
        "git           {} <{}>",
        config.author_name, config.author_email
    ));
    exit::OK
}

pub fn print_example() -> u8 {
    output::line(example().trim_end());
    exit::OK
}
