//! `kamachiq token create|list|revoke`: API tokens, in the local store.

use kamachiq_api::{CreatedToken, TokenView};
use kamachiq_domain::{Role, TenantId, Timestamp};
use kamachiq_server::token_view;
use kamachiq_store::NewToken;

use crate::cli::TokenCommand;
use crate::commands::inspect::short_time;
use crate::commands::open_store;
use crate::config::Config;
use crate::{InvalidInput, exit, output};

pub async fn token(config: &Config, command: &TokenCommand) -> anyhow::Result<u8> {
    match command {
        TokenCommand::Create {
            tenant,
            name,
            roles,
            json,
        } => create(config, tenant, name, roles, *json).await,
        TokenCommand::List { tenant, json } => list(config, tenant.as_deref(), *json).await,
        TokenCommand::Revoke { id, json } => revoke(config, id, *json).await,
    }
}

async fn create(
    config: &Config,
    tenant: &str,
    name: &str,
    roles: &[String],
    json: bool,
) -> anyhow::Result<u8> {
    let tenant =
        TenantId::parse(tenant).map_err(|e| InvalidInput::new(format!("--tenant: {e}")))?;
    kamachiq_server::check_token_name(name)
        .map_err(|e| InvalidInput::new(format!("--name: {e}")))?;
    let mut parsed: Vec<Role> = Vec::with_capacity(roles.len());
    for role in roles {
        let role: Role = role.parse().map_err(|_| {
            let known: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
            InvalidInput::new(format!(
                "--role: unknown role `{role}`; roles are {}",
                known.join(", ")
            ))
        })?;
        if !parsed.contains(&role) {
            parsed.push(role);
        }
    }
    let store = open_store(config).await?;
    let secret = kamachiq_server::new_secret()
        .map_err(|e| anyhow::anyhow!("cannot get randomness for the secret: {e}"))?;
    let token = store
        .create_token(&NewToken {
            id: ulid::Ulid::generate().to_string().to_lowercase(),
            tenant,
            name: name.to_owned(),
            roles: parsed,
            hash: kamachiq_server::hash_secret(&secret),
            at: Timestamp::from_system_time(std::time::SystemTime::now()),
        })
        .await
        .map_err(|e| match e {
            kamachiq_store::Error::TokenNameTaken { .. } => {
                anyhow::Error::from(InvalidInput::new(e.to_string()))
            }
            other => other.into(),
        })?;
    if json {
        output::json_pretty(&CreatedToken {
            token: token_view(&token),
            secret,
        });
    } else {
        output::line(format!(
            "token {} created for tenant {} as {} (roles: {})",
            token.id,
            token.tenant,
            token.name,
            roles_text(&token.roles)
        ));
        output::line("its secret, shown this once (only a hash is kept; store it now):");
        output::line(secret);
    }
    Ok(exit::OK)
}

async fn list(config: &Config, tenant: Option<&str>, json: bool) -> anyhow::Result<u8> {
    let tenant = match tenant {
        Some(t) => {
            Some(TenantId::parse(t).map_err(|e| InvalidInput::new(format!("--tenant: {e}")))?)
        }
        None => None,
    };
    let store = open_store(config).await?;
    let tokens = store.tokens(tenant.as_ref()).await?;
    if json {
        let views: Vec<TokenView> = tokens.iter().map(token_view).collect();
        output::json_pretty(&views);
        return Ok(exit::OK);
    }
    if tokens.is_empty() {
        output::note(
            "no tokens yet; create one with `kamachiq token create --tenant T --name N --role R`",
        );
        return Ok(exit::OK);
    }
    let mut table = output::table(&[
        "id",
        "tenant",
        "name",
        "roles",
        "created (utc)",
        "revoked (utc)",
    ]);
    for t in &tokens {
        table.add_row(vec![
            t.id.clone(),
            t.tenant.to_string(),
            t.name.clone(),
            roles_text(&t.roles),
            short_time(t.created_at),
            t.revoked_at.map(short_time).unwrap_or_default(),
        ]);
    }
    output::line(table);
    Ok(exit::OK)
}

async fn revoke(config: &Config, id: &str, json: bool) -> anyhow::Result<u8> {
    let store = open_store(config).await?;
    let token = store
        .revoke_token(
            id,
            None,
            Timestamp::from_system_time(std::time::SystemTime::now()),
        )
        .await
        .map_err(|e| match e {
            kamachiq_store::Error::TokenNotFound(_) => {
                anyhow::Error::from(InvalidInput::new(e.to_string()))
            }
            other => other.into(),
        })?;
    if json {
        output::json_pretty(&token_view(&token));
    } else {
        output::line(format!(
            "token {} ({} of tenant {}) revoked",
            token.id, token.name, token.tenant
        ));
    }
    Ok(exit::OK)
}

fn roles_text(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
