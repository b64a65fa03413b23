//! API tokens. Only a hash of each secret is stored: whoever reads the database cannot act as
//! anyone. Generating secrets and hashing them is the caller's business.

use kamachiq_domain::{Role, TenantId, Timestamp};
use sqlx::any::AnyRow;

use crate::decode::{count, opt_time, text, time};
use crate::{Error, Store};

/// A token to store.
#[derive(Clone, Debug)]
pub struct NewToken {
    pub id: String,
    pub tenant: TenantId,
    pub name: String,
    pub roles: Vec<Role>,
    /// Hex SHA-256 of the secret.
    pub hash: String,
    pub at: Timestamp,
}

/// A stored token: who it is and what it may do; never its secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub id: String,
    pub tenant: TenantId,
    pub name: String,
    pub roles: Vec<Role>,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

impl Store {
    /// Stores a token. A live token of the same name in the same tenant is refused.
    pub async fn create_token(&self, new: &NewToken) -> Result<Token, Error> {
        let roles: Vec<&str> = new.roles.iter().map(|r| r.as_str()).collect();
        let result = sqlx::query(self.sql.insert_token.sql())
            .bind(new.id.as_str())
            .bind(new.tenant.as_str())
            .bind(new.name.as_str())
            .bind(roles.join(","))
            .bind(new.hash.as_str())
            .bind(new.at.as_millis())
            .execute(&self.pool)
            .await;
        match result {
            Ok(_) => Ok(Token {
                id: new.id.clone(),
                tenant: new.tenant.clone(),
                name: new.name.clone(),
                roles: new.roles.clone(),
                created_at: new.at,
                revoked_at: None,
            }),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(Error::TokenNameTaken {
                    tenant: new.tenant.to_string(),
                    name: new.name.clone(),
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The live (not revoked) token whose secret hashes to `hash`.
    pub async fn live_token_by_hash(&self, hash: &str) -> Result<Option<Token>, Error> {
        let row = sqlx::query(self.sql.select_live_token_by_hash.sql())
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(token).transpose()
    }

    /// Tokens, revoked ones included, oldest first; of one tenant or of all.
    pub async fn tokens(&self, tenant: Option<&TenantId>) -> Result<Vec<Token>, Error> {
        let rows = sqlx::query(self.sql.select_tokens.sql())
            .bind(tenant.map(ToString::to_string))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(token).collect()
    }

    /// Revokes a live token (of `tenant`, when given). A token that does not exist, is
    /// another tenant's or is already revoked is `TokenNotFound`.
    pub async fn revoke_token(
        &self,
        id: &str,
        tenant: Option<&TenantId>,
        at: Timestamp,
    ) -> Result<Token, Error> {
        let row = sqlx::query(self.sql.revoke_token.sql())
            .bind(id)
            .bind(tenant.map(ToString::to_string))
            .bind(at.as_millis())
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| Error::TokenNotFound(id.to_owned()))?;
        token(&row)
    }

    /// How many tokens are live: none means nobody can call the API yet.
    pub async fn live_token_count(&self) -> Result<u32, Error> {
        let row = sqlx::query(self.sql.count_live_tokens.sql())
            .fetch_one(&self.pool)
            .await?;
        count(&row, "n")
    }
}

fn token(row: &AnyRow) -> Result<Token, Error> {
    let roles = text(row, "roles")?;
    Ok(Token {
        id: text(row, "id")?,
        tenant: TenantId::parse(text(row, "tenant")?)?,
        name: text(row, "name")?,
        roles: roles
            .split(',')
            .filter(|r| !r.is_empty())
            .map(str::parse)
            .collect::<Result<_, _>>()?,
        created_at: time(row, "created_at")?,
        revoked_at: opt_time(row, "revoked_at")?,
    })
}
