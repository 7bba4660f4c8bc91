//! Users, teams and tokens: who the caller is and what a token lets them do.
//!
//! A token is 256 random bits shown once (`colo user add`, `colo token create`, the `createToken`
//! mutation) and stored only as its SHA-256, with its scopes, an expiry and a revocation time.
//! [`Catalog::authenticate`] turns a presented token into a [`Caller`]; a forged, expired or
//! revoked token is `Unauthenticated` (HTTP 401), a valid token without the scope `Forbidden` (403).
//!
//! Tokens come in two kinds. `api` tokens are sent as `Authorization: Bearer` by programs and are
//! not subject to CSRF (a browser never adds that header by itself). `session` tokens are what the
//! web pages keep in an HttpOnly, SameSite=Strict cookie; each has a CSRF token beside it, and a
//! mutation made with a session cookie must also carry that CSRF token in a header, so a page of
//! another site cannot act with the user's cookie ([`Catalog::check_csrf`]).

use crate::Catalog;
use crate::error::{CatalogError, Result};
use crate::sealing::{TOKEN_PREFIX, new_token, token_hash};
use crate::store::now_secs;
use rusqlite::{OptionalExtension, params};
use std::fmt;

/// How long a token lives unless told otherwise.
pub const DEFAULT_TOKEN_DAYS: i64 = 90;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Search the catalogue, read public descriptions.
    CatalogRead,
    /// See, add, remove the caller's volumes; add selections.
    Volumes,
    /// Launch and manage datalabs.
    Labs,
    /// Grant the caller's volumes and labs to others.
    Share,
    /// Manage users, archive volumes and everyone's grants (admins only).
    Admin,
}

pub const SCOPE_NAMES: &str = "catalog:read, volumes, labs, share, admin";

impl Scope {
    pub const ALL: [Scope; 5] = [
        Scope::CatalogRead,
        Scope::Volumes,
        Scope::Labs,
        Scope::Share,
        Scope::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::CatalogRead => "catalog:read",
            Scope::Volumes => "volumes",
            Scope::Labs => "labs",
            Scope::Share => "share",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Result<Scope> {
        Scope::ALL
            .into_iter()
            .find(|s| s.as_str() == text.trim())
            .ok_or_else(|| CatalogError::BadScope {
                scope: text.trim().to_string(),
                known: SCOPE_NAMES,
            })
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of scopes, written space-separated (`catalog:read volumes`).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Scopes(u8);

impl Scopes {
    pub fn of(scopes: impl IntoIterator<Item = Scope>) -> Scopes {
        Scopes(scopes.into_iter().fold(0, |bits, s| bits | s.bit()))
    }

    /// Every scope a user may hold: all of them for an admin, all but `admin` otherwise.
    pub fn allowed_for(admin: bool) -> Scopes {
        Scopes::of(
            Scope::ALL
                .into_iter()
                .filter(|s| admin || *s != Scope::Admin),
        )
    }

    /// Parses `catalog:read,volumes` or `catalog:read volumes`.
    pub fn parse(text: &str) -> Result<Scopes> {
        text.split([',', ' '])
            .filter(|s| !s.trim().is_empty())
            .map(Scope::parse)
            .collect::<Result<Vec<_>>>()
            .map(Scopes::of)
    }

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    pub fn is_subset_of(self, other: Scopes) -> bool {
        self.0 & !other.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = self.iter().map(Scope::as_str).collect();
        f.write_str(&names.join(" "))
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scopes({self})")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub admin: bool,
    pub created_at: i64,
    /// Their account on this machine (datalabs run as it; their folder in the mount is theirs).
    pub uid: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Api,
    Session,
}

impl TokenKind {
    fn as_str(self) -> &'static str {
        match self {
            TokenKind::Api => "api",
            TokenKind::Session => "session",
        }
    }
}

/// Who is calling, after their token was checked.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    pub scopes: Scopes,
    pub token_id: i64,
    pub kind: TokenKind,
}

impl Caller {
    /// `Forbidden` unless the token carries `scope` (and, for `admin`, the user is an admin).
    pub fn require(&self, scope: Scope) -> Result<()> {
        if self.scopes.contains(scope) && (scope != Scope::Admin || self.user.admin) {
            Ok(())
        } else {
            Err(CatalogError::Forbidden {
                reason: format!("this token lacks the scope '{}'", scope.as_str()),
            })
        }
    }

    pub fn is_admin(&self) -> bool {
        self.user.admin && self.scopes.contains(Scope::Admin)
    }
}

/// A token just made: the only time its text exists outside the caller's hands.
pub struct NewToken {
    pub id: i64,
    pub token: String,
    pub scopes: Scopes,
    pub expires_at: Option<i64>,
    /// Session tokens: the CSRF token to send with mutations.
    pub csrf: Option<String>,
}

impl fmt::Debug for NewToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "NewToken {{ id: {}, scopes: {}, .. }}",
            self.id, self.scopes
        )
    }
}

/// A token as listings show it: never its text.
#[derive(Debug, Clone)]
pub struct TokenInfo {
    pub id: i64,
    pub user: String,
    pub kind: TokenKind,
    pub scopes: Scopes,
    pub label: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

/// User and team names: they become folder names in the mount and parts of URLs.
pub fn check_principal_name(what: &'static str, name: &str) -> Result<()> {
    let ok = (1..=32).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(CatalogError::BadName {
            what,
            name: name.chars().take(64).collect(),
            rule: "1-32 characters of a-z, 0-9, '-' or '_', starting with a letter",
        })
    }
}

/// Users' accounts, unless the operator sets them: this plus the user's id.
pub const DEFAULT_UID_BASE: i64 = 100_000;

impl Catalog {
    /// A new user with a first token holding every scope they may have.
    pub fn add_user(&self, name: &str, admin: bool) -> Result<(User, NewToken)> {
        check_principal_name("user", name)?;
        let created_at = now_secs();
        let id = self.store.with(|c| {
            let taken: bool = c
                .query_row(
                    "SELECT EXISTS(SELECT 1 FROM users WHERE name = ?1) OR EXISTS(SELECT 1 FROM teams WHERE name = ?1)",
                    [name],
                    |r| r.get(0),
                )
                .map_err(CatalogError::db("checking a user name"))?;
            if taken {
                return Err(CatalogError::Exists {
                    what: "user or team",
                    name: name.to_string(),
                });
            }
            c.execute(
                "INSERT INTO users (name, admin, created_at) VALUES (?1, ?2, ?3)",
                params![name, admin, created_at],
            )
            .map_err(CatalogError::db("adding a user"))?;
            let id = c.last_insert_rowid();
            c.execute(
                "UPDATE users SET uid = ?2 WHERE id = ?1",
                params![id, DEFAULT_UID_BASE + id],
            )
            .map_err(CatalogError::db("adding a user"))?;
            Ok(id)
        })?;
        let user = User {
            id,
            name: name.to_string(),
            admin,
            created_at,
            uid: (DEFAULT_UID_BASE + id) as u32,
        };
        let token = self.create_token(name, None, Some(DEFAULT_TOKEN_DAYS), "first token")?;
        tracing::info!(user = name, admin, "user added");
        Ok((user, token))
    }

    /// Sets the account `user`'s datalabs run as (to match a directory service); refused for
    /// root and system accounts and for a uid another user has.
    pub fn set_uid(&self, user: &str, uid: u32) -> Result<()> {
        if uid < 1000 {
            return Err(CatalogError::BadRequest {
                detail: format!("uid {uid}: below 1000 are root and system accounts"),
            });
        }
        let id = self.user(user)?.id;
        self.store.with(|c| {
            let other: Option<String> = c
                .query_row(
                    "SELECT name FROM users WHERE uid = ?1 AND id != ?2",
                    params![uid, id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(CatalogError::db("setting a uid"))?;
            if let Some(other) = other {
                return Err(CatalogError::Exists {
                    what: "uid (of user)",
                    name: format!("{uid} ({other})"),
                });
            }
            c.execute("UPDATE users SET uid = ?2 WHERE id = ?1", params![id, uid])
                .map_err(CatalogError::db("setting a uid"))?;
            Ok(())
        })
    }

    /// The operator acting for `user` (the CLI, which needs no token: whoever runs it can read
    /// the database): the user's own rights, with every scope they may hold.
    pub fn acting_for(&self, user: &str) -> Result<Caller> {
        let user = self.user(user)?;
        Ok(Caller {
            scopes: Scopes::allowed_for(user.admin),
            user,
            token_id: 0,
            kind: TokenKind::Api,
        })
    }

    pub fn user(&self, name: &str) -> Result<User> {
        self.store.with(|c| {
            c.query_row(
                "SELECT id, name, admin, created_at, uid FROM users WHERE name = ?1",
                [name],
                |r| {
                    Ok(User {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        admin: r.get(2)?,
                        created_at: r.get(3)?,
                        uid: r.get(4)?,
                    })
                },
            )
            .optional()
            .map_err(CatalogError::db("reading a user"))?
            .ok_or_else(|| CatalogError::NotFound {
                what: "user",
                name: name.to_string(),
            })
        })
    }

    pub fn users(&self) -> Result<Vec<User>> {
        self.store.with(|c| {
            let mut st = c
                .prepare("SELECT id, name, admin, created_at, uid FROM users ORDER BY name")
                .map_err(CatalogError::db("listing users"))?;
            let rows = st
                .query_map([], |r| {
                    Ok(User {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        admin: r.get(2)?,
                        created_at: r.get(3)?,
                        uid: r.get(4)?,
                    })
                })
                .map_err(CatalogError::db("listing users"))?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
                .map_err(CatalogError::db("listing users"))
        })
    }

    /// Removes a user with their tokens, their own volumes and the grants made to them.
    pub fn remove_user(&self, name: &str) -> Result<()> {
        let user = self.user(name)?;
        self.store.with(|c| {
            c.execute("DELETE FROM users WHERE id = ?1", [user.id])
                .map_err(CatalogError::db("removing a user"))
        })?;
        tracing::info!(user = name, "user removed");
        Ok(())
    }

    /// A new API token for `user`: `scopes` default to all the user may hold; asking for `admin`
    /// as a non-admin is `Forbidden`. `expires_days` of `None` never expires.
    pub fn create_token(
        &self,
        user: &str,
        scopes: Option<Scopes>,
        expires_days: Option<i64>,
        label: &str,
    ) -> Result<NewToken> {
        let user = self.user(user)?;
        let allowed = Scopes::allowed_for(user.admin);
        let scopes = scopes.unwrap_or(allowed);
        if !scopes.is_subset_of(allowed) {
            return Err(CatalogError::Forbidden {
                reason: format!(
                    "user '{}' is not an admin: the scope 'admin' is not theirs to hold",
                    user.name
                ),
            });
        }
        let now = now_secs();
        let expires_at = expires_days.map(|d| now + d * 86_400);
        self.insert_token(&user, TokenKind::Api, scopes, expires_at, label)
    }

    /// A session for the web pages of the caller who logged in with an API token: the token's
    /// scopes, never more, `hours` long.
    pub fn create_session_for(&self, caller: &Caller, hours: i64) -> Result<NewToken> {
        let expires_at = Some(now_secs() + hours * 3600);
        self.insert_token(
            &caller.user,
            TokenKind::Session,
            caller.scopes,
            expires_at,
            "session",
        )
    }

    /// A session for the web pages (cookie + CSRF token), `hours` long.
    pub fn create_session(&self, user: &str, hours: i64) -> Result<NewToken> {
        let user = self.user(user)?;
        let expires_at = Some(now_secs() + hours * 3600);
        self.insert_token(
            &user,
            TokenKind::Session,
            Scopes::allowed_for(user.admin),
            expires_at,
            "session",
        )
    }

    fn insert_token(
        &self,
        user: &User,
        kind: TokenKind,
        scopes: Scopes,
        expires_at: Option<i64>,
        label: &str,
    ) -> Result<NewToken> {
        let token = new_token()?;
        let csrf = match kind {
            TokenKind::Session => Some(new_token()?),
            TokenKind::Api => None,
        };
        let id = self.store.with(|c| {
            c.execute(
                "INSERT INTO tokens (user_id, kind, hash, csrf_hash, scopes, label, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    user.id,
                    kind.as_str(),
                    token_hash(&token),
                    csrf.as_deref().map(token_hash),
                    scopes.to_string(),
                    label,
                    now_secs(),
                    expires_at
                ],
            )
            .map_err(CatalogError::db("storing a token"))?;
            Ok(c.last_insert_rowid())
        })?;
        tracing::info!(user = %user.name, token_id = id, scopes = %scopes, "token created");
        Ok(NewToken {
            id,
            token,
            scopes,
            expires_at,
            csrf,
        })
    }

    /// The caller a token stands for.
    pub fn authenticate(&self, token: &str) -> Result<Caller> {
        if !token.starts_with(TOKEN_PREFIX) {
            return Err(CatalogError::Unauthenticated {
                reason: "not a colo token",
            });
        }
        let hash = token_hash(token);
        let now = now_secs();
        self.store.with(|c| {
            let row = c
                .query_row(
                    "SELECT t.id, t.kind, t.scopes, t.expires_at, t.revoked_at, t.last_used_at,
                            u.id, u.name, u.admin, u.created_at, u.uid
                     FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.hash = ?1",
                    [&hash],
                    |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, Option<i64>>(3)?,
                            r.get::<_, Option<i64>>(4)?,
                            r.get::<_, Option<i64>>(5)?,
                            User {
                                id: r.get(6)?,
                                name: r.get(7)?,
                                admin: r.get(8)?,
                                created_at: r.get(9)?,
                                uid: r.get(10)?,
                            },
                        ))
                    },
                )
                .optional()
                .map_err(CatalogError::db("checking a token"))?;
            let Some((id, kind, scopes, expires_at, revoked_at, last_used, user)) = row else {
                return Err(CatalogError::Unauthenticated {
                    reason: "unknown token",
                });
            };
            if revoked_at.is_some() {
                return Err(CatalogError::Unauthenticated {
                    reason: "the token was revoked",
                });
            }
            if expires_at.is_some_and(|e| e <= now) {
                return Err(CatalogError::Unauthenticated {
                    reason: "the token expired",
                });
            }
            // Last use is kept to the minute: no write per request.
            if last_used.is_none_or(|t| now - t >= 60) {
                c.execute(
                    "UPDATE tokens SET last_used_at = ?1 WHERE id = ?2",
                    params![now, id],
                )
                .map_err(CatalogError::db("recording a token's use"))?;
            }
            Ok(Caller {
                user,
                scopes: Scopes::parse(&scopes)?,
                token_id: id,
                kind: if kind == "session" {
                    TokenKind::Session
                } else {
                    TokenKind::Api
                },
            })
        })
    }

    /// Mutations made with a session cookie must send that session's CSRF token; API tokens need
    /// none.
    pub fn check_csrf(&self, caller: &Caller, csrf: Option<&str>) -> Result<()> {
        if caller.kind == TokenKind::Api {
            return Ok(());
        }
        let expected: Option<Vec<u8>> = self.store.with(|c| {
            c.query_row(
                "SELECT csrf_hash FROM tokens WHERE id = ?1",
                [caller.token_id],
                |r| r.get(0),
            )
            .map_err(CatalogError::db("reading a session"))
        })?;
        match (expected, csrf) {
            // Hashes are compared, so timing says nothing about the token itself.
            (Some(h), Some(sent)) if h == token_hash(sent) => Ok(()),
            _ => Err(CatalogError::Forbidden {
                reason:
                    "a change made with a session cookie needs its CSRF token (header X-CSRF-Token)"
                        .into(),
            }),
        }
    }

    /// Revokes token `id`. Only its user or an admin may (`by` of `None`: the operator's CLI).
    pub fn revoke_token(&self, id: i64, by: Option<&Caller>) -> Result<()> {
        let now = now_secs();
        self.store.with(|c| {
            let owner: Option<i64> = c
                .query_row("SELECT user_id FROM tokens WHERE id = ?1", [id], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(CatalogError::db("reading a token"))?;
            let allowed = match (owner, by) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some(owner), Some(caller)) => owner == caller.user.id || caller.is_admin(),
            };
            if !allowed {
                return Err(CatalogError::NotFound {
                    what: "token",
                    name: id.to_string(),
                });
            }
            c.execute(
                "UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?1) WHERE id = ?2",
                params![now, id],
            )
            .map_err(CatalogError::db("revoking a token"))?;
            Ok(())
        })?;
        tracing::info!(token_id = id, "token revoked");
        Ok(())
    }

    /// Tokens of `user` (all users' with `None`), newest first; never their text.
    pub fn tokens(&self, user: Option<&str>) -> Result<Vec<TokenInfo>> {
        self.store.with(|c| {
            let mut st = c
                .prepare(
                    "SELECT t.id, u.name, t.kind, t.scopes, t.label, t.created_at, t.expires_at,
                            t.revoked_at, t.last_used_at
                     FROM tokens t JOIN users u ON u.id = t.user_id
                     WHERE ?1 IS NULL OR u.name = ?1 ORDER BY t.id DESC",
                )
                .map_err(CatalogError::db("listing tokens"))?;
            let rows = st
                .query_map([user], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, i64>(5)?,
                        r.get::<_, Option<i64>>(6)?,
                        r.get::<_, Option<i64>>(7)?,
                        r.get::<_, Option<i64>>(8)?,
                    ))
                })
                .map_err(CatalogError::db("listing tokens"))?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(CatalogError::db("listing tokens"))?;
            rows.into_iter()
                .map(
                    |(
                        id,
                        user,
                        kind,
                        scopes,
                        label,
                        created_at,
                        expires_at,
                        revoked_at,
                        last_used_at,
                    )| {
                        Ok(TokenInfo {
                            id,
                            user,
                            kind: if kind == "session" {
                                TokenKind::Session
                            } else {
                                TokenKind::Api
                            },
                            scopes: Scopes::parse(&scopes)?,
                            label,
                            created_at,
                            expires_at,
                            revoked_at,
                            last_used_at,
                        })
                    },
                )
                .collect()
        })
    }

    /// A team of existing users (the name shares one namespace with users').
    pub fn add_team(&self, name: &str, members: &[&str]) -> Result<i64> {
        check_principal_name("team", name)?;
        let ids = members
            .iter()
            .map(|m| self.user(m).map(|u| u.id))
            .collect::<Result<Vec<_>>>()?;
        self.store.with(|c| {
            let tx = c.transaction().map_err(CatalogError::db("adding a team"))?;
            let taken: bool = tx
                .query_row(
                    "SELECT EXISTS(SELECT 1 FROM users WHERE name = ?1) OR EXISTS(SELECT 1 FROM teams WHERE name = ?1)",
                    [name],
                    |r| r.get(0),
                )
                .map_err(CatalogError::db("checking a team name"))?;
            if taken {
                return Err(CatalogError::Exists {
                    what: "user or team",
                    name: name.to_string(),
                });
            }
            tx.execute("INSERT INTO teams (name, created_at) VALUES (?1, ?2)", params![name, now_secs()])
                .map_err(CatalogError::db("adding a team"))?;
            let team = tx.last_insert_rowid();
            for id in ids {
                tx.execute(
                    "INSERT OR IGNORE INTO team_members (team_id, user_id) VALUES (?1, ?2)",
                    params![team, id],
                )
                .map_err(CatalogError::db("adding a team member"))?;
            }
            tx.commit().map_err(CatalogError::db("adding a team"))?;
            Ok(team)
        })
    }

    pub(crate) fn team_id(&self, name: &str) -> Result<i64> {
        self.store.with(|c| {
            c.query_row("SELECT id FROM teams WHERE name = ?1", [name], |r| r.get(0))
                .optional()
                .map_err(CatalogError::db("reading a team"))?
                .ok_or_else(|| CatalogError::NotFound {
                    what: "team",
                    name: name.to_string(),
                })
        })
    }
}
