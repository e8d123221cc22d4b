//! The request façade: what the gateway knows about one request, and its translation into the
//! Cedar request and entity set that `lakeward.cedarschema` describes.

use crate::error::chain;
use cedar_policy::{
    Context, Entities, Entity, EntityId, EntityTypeName, EntityUid, Request, RestrictedExpression,
    Schema,
};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::str::FromStr;

/// Who is asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    /// A human user (`Lakeward::User`).
    User,
    /// A service principal (`Lakeward::ServicePrincipal`).
    ServicePrincipal,
    /// No credentials: `Lakeward::Anonymous::"anonymous"`, and the other principal fields are
    /// ignored (no groups, roles or workspace, whatever they say).
    Anonymous,
}

/// The authenticated principal and what the gateway resolved about it for this request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PrincipalInput {
    /// User or service principal, or anonymous.
    pub kind: PrincipalKind,
    /// The SCIM id (ignored for anonymous).
    pub id: String,
    /// The SCIM `userName` (or application id for a service principal).
    pub user_name: String,
    /// Whether the principal is active; inactive principals are denied by the baseline.
    pub active: bool,
    /// (group id, displayName)
    pub groups: Vec<(String, String)>,
    /// Member of the addressed workspace's `admins` group → parent `Role::"workspace_admin"`.
    pub workspace_admin: bool,
    /// Member of the account's `admins` group → parent `Role::"account_admin"`.
    pub account_admin: bool,
    /// The addressed workspace id when the principal is assigned to it → parent
    /// `Workspace::"<id>"`. The baseline forbids everything but public actions in a workspace
    /// the principal is not a member of.
    pub member_of_workspace: Option<i64>,
}

/// What the request acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceInput {
    /// The workspace addressed (`AuthzRequest::workspace`).
    Workspace,
    /// The account (`AuthzRequest::account_id`).
    Account,
    /// The principal itself, for self-service routes.
    Caller,
}

/// One authorization question, as the gateway asks it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AuthzRequest {
    /// Who is asking.
    pub principal: PrincipalInput,
    /// The action's id without its type, e.g. `CreateToken`.
    pub action: String,
    /// What it acts on.
    pub resource: ResourceInput,
    /// The address the IP access lists were checked against. IPv4-mapped IPv6 addresses are
    /// passed to Cedar as IPv4, so `isInRange(ip("10.0.0.0/8"))` matches them.
    pub client_ip: IpAddr,
    /// (workspace id, name) of the workspace addressed; `None` on account-level routes.
    pub workspace: Option<(i64, String)>,
    /// The account the deployment serves.
    pub account_id: String,
    /// `pat`, `oauth` or `none`.
    pub auth_method: String,
    /// The personal access token's id when `auth_method` is `pat`.
    pub token_id: Option<String>,
    /// Seconds since the Unix epoch at which the gateway received the request.
    pub request_time_unix: i64,
}

/// Names parsed once per bundle so that building a request parses no strings.
#[derive(Debug)]
pub(crate) struct Vocabulary {
    user: EntityTypeName,
    service_principal: EntityTypeName,
    group: EntityTypeName,
    workspace: EntityTypeName,
    account: EntityTypeName,
    anonymous: EntityUid,
    workspace_admin: EntityUid,
    account_admin: EntityUid,
    /// `CreateToken` → the action's uid and its entity (ancestors already transitively closed
    /// by the schema), for every action in the `Lakeward` namespace.
    pub(crate) actions: HashMap<String, (EntityUid, Entity)>,
    /// The catalog's entity types, when the schema has them.
    pub(crate) data: Option<DataVocabulary>,
}

/// The catalog entity types, when the schema declares them: what the data façade (`data`)
/// builds its securables with. It lives here, beside the [`Vocabulary`] that holds it, so that
/// this module imports nothing from the façade that imports it.
#[derive(Debug)]
pub(crate) struct DataVocabulary {
    pub(crate) catalog: EntityTypeName,
    pub(crate) schema: EntityTypeName,
    pub(crate) table: EntityTypeName,
}

impl DataVocabulary {
    /// `None` when the schema predates the data plane (it declares no `Lakeward::Table`):
    /// such a bundle still decides gateway requests, and denies every data request.
    pub(crate) fn new(schema: &Schema) -> Option<Self> {
        let declared: HashSet<String> = schema.entity_types().map(ToString::to_string).collect();
        let ty = |name: &str| {
            let full = format!("Lakeward::{name}");
            declared
                .contains(&full)
                .then(|| full.parse::<EntityTypeName>().ok())
                .flatten()
        };
        Some(Self {
            catalog: ty("Catalog")?,
            schema: ty("Schema")?,
            table: ty("Table")?,
        })
    }
}

const NAMESPACE: &str = "Lakeward";
/// The entity types the façade builds; the schema must declare them all.
const REQUIRED_TYPES: [&str; 7] = [
    "User",
    "ServicePrincipal",
    "Anonymous",
    "Group",
    "Role",
    "Workspace",
    "Account",
];

impl Vocabulary {
    /// Fails when the schema does not describe the entities the façade builds: a missing
    /// entity type, or attributes or parents of the wrong shape.
    pub(crate) fn new(schema: &Schema) -> Result<Self, String> {
        let declared: HashSet<&EntityTypeName> = schema.entity_types().collect();
        let ty = |name: &str| -> Result<EntityTypeName, String> {
            let full = format!("{NAMESPACE}::{name}");
            let parsed = EntityTypeName::from_str(&full).map_err(|e| chain(&e))?;
            if declared.contains(&parsed) {
                Ok(parsed)
            } else {
                Err(format!(
                    "the schema does not declare entity type `{full}`, which the gateway builds"
                ))
            }
        };
        for name in REQUIRED_TYPES {
            ty(name)?;
        }
        let role = ty("Role")?;
        let action_type = format!("{NAMESPACE}::Action");
        let action_entities = schema.action_entities().map_err(|e| chain(&e))?;
        let actions = action_entities
            .iter()
            .filter(|a| a.uid().type_name().to_string() == action_type)
            .map(|a| (a.uid().id().unescaped().to_owned(), (a.uid(), a.clone())))
            .collect();
        let vocab = Self {
            user: ty("User")?,
            service_principal: ty("ServicePrincipal")?,
            group: ty("Group")?,
            workspace: ty("Workspace")?,
            account: ty("Account")?,
            anonymous: uid(&ty("Anonymous")?, "anonymous"),
            workspace_admin: uid(&role, "workspace_admin"),
            account_admin: uid(&role, "account_admin"),
            actions,
            data: DataVocabulary::new(schema),
        };
        vocab.self_check(schema)?;
        Ok(vocab)
    }

    /// Checks once, against the schema, entities of every shape the façade builds, so that
    /// requests can skip the (costly) per-entity schema conformance check.
    fn self_check(&self, schema: &Schema) -> Result<(), String> {
        for kind in [
            PrincipalKind::User,
            PrincipalKind::ServicePrincipal,
            PrincipalKind::Anonymous,
        ] {
            let sample = AuthzRequest {
                principal: PrincipalInput {
                    kind,
                    id: "1".into(),
                    user_name: "sample".into(),
                    active: true,
                    groups: vec![("g".into(), "admins".into())],
                    workspace_admin: true,
                    account_admin: true,
                    member_of_workspace: Some(1),
                },
                action: String::new(),
                resource: ResourceInput::Caller,
                client_ip: IpAddr::from([127, 0, 0, 1]),
                workspace: Some((1, "sample".into())),
                account_id: "sample".into(),
                auth_method: "pat".into(),
                token_id: None,
                request_time_unix: 0,
            };
            let mut built = entities(self, &sample)?;
            // Requests leave these out of the store (see `entities`), which is only right
            // while the schema gives them no required attributes; this checks it does not.
            built.entities.extend(
                [&built.account, &self.workspace_admin, &self.account_admin]
                    .map(|uid| Entity::new_no_attrs(uid.clone(), HashSet::new())),
            );
            Entities::from_entities(built.entities, Some(schema)).map_err(|e| {
                format!(
                    "the schema does not describe the entities the gateway builds: {}",
                    chain(&e)
                )
            })?;
        }
        Ok(())
    }
}

fn uid(ty: &EntityTypeName, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(id))
}

fn attrs<const N: usize>(
    pairs: [(&str, RestrictedExpression); N],
) -> HashMap<String, RestrictedExpression> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// Builds the Cedar request (its context type-checked against the schema) and entity set.
///
/// Every failure is a message for `Decision::errors`: the caller denies, never panics.
pub(crate) fn build(
    vocab: &Vocabulary,
    schema: &Schema,
    req: &AuthzRequest,
) -> Result<(Request, Entities), String> {
    let (action, action_entity) = vocab
        .actions
        .get(&req.action)
        .ok_or_else(|| format!("unknown action `{}`", req.action))?
        .clone();
    let Built {
        mut entities,
        principal,
        workspace,
        account,
    } = entities(vocab, req)?;

    let resource = match req.resource {
        ResourceInput::Workspace => workspace.clone().ok_or_else(|| {
            format!(
                "action `{}` acts on the workspace but the request addresses none",
                req.action
            )
        })?,
        ResourceInput::Account => account.clone(),
        ResourceInput::Caller => principal.clone(),
    };

    let context =
        Context::from_pairs(context_pairs(req, workspace, account)).map_err(|e| chain(&e))?;
    let request = Request::new(principal, action, resource, context, Some(schema))
        .map_err(|e| format!("request does not conform to the schema: {}", chain(&e)))?;
    // `action in Action::"SelfService"` reads the request action's ancestors from the store;
    // no policy can read anything else about actions, so that one entity is enough. The other
    // entities were checked against the schema once, in `Vocabulary::self_check`: checking
    // them (and adding every action) per request made a decision about 40% slower.
    entities.push(action_entity);
    let entities = Entities::from_entities(entities, None).map_err(|e| chain(&e))?;
    Ok((request, entities))
}

/// The context `RequestContext` in the schema describes; `Request::new` type-checks it.
pub(crate) fn context_pairs(
    req: &AuthzRequest,
    workspace: Option<EntityUid>,
    account: EntityUid,
) -> Vec<(String, RestrictedExpression)> {
    let client_ip = match req.client_ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    let mut pairs = Vec::with_capacity(6);
    let mut push = |key: &str, value| pairs.push((key.to_owned(), value));
    push(
        "clientIp",
        RestrictedExpression::new_ip(client_ip.to_string()),
    );
    if let Some(ws) = workspace {
        push("workspace", RestrictedExpression::new_entity_uid(ws));
    }
    push("account", RestrictedExpression::new_entity_uid(account));
    push(
        "authMethod",
        RestrictedExpression::new_string(req.auth_method.clone()),
    );
    if let Some(token) = &req.token_id {
        push("tokenId", RestrictedExpression::new_string(token.clone()));
    }
    push(
        "requestTime",
        RestrictedExpression::new_long(req.request_time_unix),
    );
    pairs
}

/// The non-action entities of one request, and the uids the request refers to.
pub(crate) struct Built {
    pub(crate) entities: Vec<Entity>,
    pub(crate) principal: EntityUid,
    pub(crate) workspace: Option<EntityUid>,
    pub(crate) account: EntityUid,
}

pub(crate) fn entities(vocab: &Vocabulary, req: &AuthzRequest) -> Result<Built, String> {
    // Accounts and roles have no attributes and no parents, so they appear only as parents:
    // leaving them out of the store changes no decision and saves a share of the per-request
    // transitive closure.
    let mut entities = Vec::with_capacity(req.principal.groups.len() + 4);
    let account = uid(&vocab.account, &req.account_id);

    let workspace = match &req.workspace {
        Some((id, name)) => {
            let ws = uid(&vocab.workspace, &id.to_string());
            let entity = Entity::new(
                ws.clone(),
                attrs([("name", RestrictedExpression::new_string(name.clone()))]),
                HashSet::from([account.clone()]),
            )
            .map_err(|e| chain(&e))?;
            entities.push(entity);
            Some(ws)
        }
        None => None,
    };

    let principal = principal_entities(vocab, &req.principal, &mut entities)?;
    Ok(Built {
        entities,
        principal,
        workspace,
        account,
    })
}

/// Pushes the principal's entity and the groups and roles it belongs to; returns its uid.
fn principal_entities(
    vocab: &Vocabulary,
    p: &PrincipalInput,
    entities: &mut Vec<Entity>,
) -> Result<EntityUid, String> {
    let ty = match p.kind {
        PrincipalKind::Anonymous => {
            // Anonymous callers have no groups or roles whatever the input says.
            entities.push(Entity::new_no_attrs(
                vocab.anonymous.clone(),
                HashSet::new(),
            ));
            return Ok(vocab.anonymous.clone());
        }
        PrincipalKind::User => &vocab.user,
        PrincipalKind::ServicePrincipal => &vocab.service_principal,
    };
    let me = uid(ty, &p.id);
    let mut parents = HashSet::with_capacity(p.groups.len() + 3);
    for (id, display_name) in &p.groups {
        let group = uid(&vocab.group, id);
        // A repeated group id would make a duplicate entity, which cedar rejects.
        if parents.insert(group.clone()) {
            entities.push(
                Entity::new(
                    group,
                    attrs([(
                        "displayName",
                        RestrictedExpression::new_string(display_name.clone()),
                    )]),
                    HashSet::new(),
                )
                .map_err(|e| chain(&e))?,
            );
        }
    }
    for (held, role) in [
        (p.workspace_admin, &vocab.workspace_admin),
        (p.account_admin, &vocab.account_admin),
    ] {
        if held {
            parents.insert(role.clone());
        }
    }
    if let Some(ws) = p.member_of_workspace {
        parents.insert(uid(&vocab.workspace, &ws.to_string()));
    }
    entities.push(
        Entity::new(
            me.clone(),
            attrs([
                (
                    "userName",
                    RestrictedExpression::new_string(p.user_name.clone()),
                ),
                ("active", RestrictedExpression::new_bool(p.active)),
            ]),
            parents,
        )
        .map_err(|e| chain(&e))?,
    );
    Ok(me)
}
