//! The console's local accounts (`console_accounts`): a name, a role and
//! the argon2id hash of a password. The hashing and the roles' meaning are
//! `console`'s; this file only keeps the rows.

use rusqlite::{OptionalExtension, params};

use super::{Ledger, LedgerError};

/// One local account as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub role: String,
    /// The PHC string of the password's hash (never the password).
    pub password_hash: String,
    pub created_at: i64,
    pub updated_at: i64,
}

// The hash is not a secret in the way a password is, but it is never logged.
impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("password_hash", &"<hidden>")
            .finish()
    }
}

impl Ledger {
    /// Adds the account, or replaces its role and password if it exists;
    /// true if it was new.
    pub fn put_console_account(
        &self,
        name: &str,
        role: &str,
        password_hash: &str,
        now: i64,
    ) -> Result<bool, LedgerError> {
        self.write(|tx| {
            let existed: bool = tx
                .query_row(
                    "SELECT 1 FROM console_accounts WHERE name = ?1",
                    [name],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            tx.execute(
                "INSERT INTO console_accounts (name, role, password_hash, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT (name) DO UPDATE SET \
                 role = excluded.role, password_hash = excluded.password_hash, updated_at = excluded.updated_at",
                params![name, role, password_hash, now],
            )?;
            Ok(!existed)
        })
    }

    /// The account called `name`, if there is one.
    pub fn console_account(&self, name: &str) -> Result<Option<Account>, LedgerError> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT name, role, password_hash, created_at, updated_at FROM console_accounts \
                 WHERE name = ?1",
                [name],
                |r| {
                    Ok(Account {
                        name: r.get(0)?,
                        role: r.get(1)?,
                        password_hash: r.get(2)?,
                        created_at: r.get(3)?,
                        updated_at: r.get(4)?,
                    })
                },
            )
            .optional()?)
        })
    }

    /// Every account, by name.
    pub fn console_accounts(&self) -> Result<Vec<Account>, LedgerError> {
        self.read(|c| {
            let mut stmt = c.prepare(
                "SELECT name, role, password_hash, created_at, updated_at FROM console_accounts \
                 ORDER BY name",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(Account {
                    name: r.get(0)?,
                    role: r.get(1)?,
                    password_hash: r.get(2)?,
                    created_at: r.get(3)?,
                    updated_at: r.get(4)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// Removes the account; true if it existed.
    pub fn remove_console_account(&self, name: &str) -> Result<bool, LedgerError> {
        self.write(|tx| Ok(tx.execute("DELETE FROM console_accounts WHERE name = ?1", [name])? > 0))
    }
}
