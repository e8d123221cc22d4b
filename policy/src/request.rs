//! The request façade: what the gateway knows about one request, and its translation into the
//! Cedar request and entity set that `lakeward.cedarschema` describes.

use crate::context::{self, Constructors, Field};
use crate::entity_store::{self, AttrValue, EntitySpec};
use crate::error::chain;
use cedar_policy::{
    Context, Entities, Entity, EntityId, EntityTypeName, EntityUid, Request, Schema,
};
use cedar_policy_core::ast;
use cedar_policy_core::validator::ValidatorEntityTypeKind;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;

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
    pub(crate) actions: HashMap<String, ActionEntity>,
    /// The catalog's entity types, when the schema has them.
    pub(crate) data: Option<DataVocabulary>,
    /// The constructor of `context.clientIp`, looked up once.
    pub(crate) constructors: Constructors,
    pub(crate) shapes: ConformingShapes,
}

/// One action of the schema, in the forms the two ways of building a store take it.
#[derive(Debug)]
pub(crate) struct ActionEntity {
    pub(crate) uid: EntityUid,
    pub(crate) entity: Entity,
    pub(crate) shared: Arc<ast::Entity>,
    /// Its position among the actions, for [`Shape`].
    index: usize,
}

/// What decides whether a request the façade builds conforms to the schema: the action, the
/// principal's and resource's types, and which optional context fields are present. Every
/// value the façade puts in a request has the type the schema gives it, whatever the value
/// (entity ids are free unless an entity type is an enumeration, which
/// [`ConformingShapes::new`] rules out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Shape {
    pub(crate) action: usize,
    pub(crate) principal: PrincipalKind,
    pub(crate) resource: ResourceShape,
    pub(crate) workspace: bool,
    pub(crate) token: bool,
    /// For data requests: whether `context.privileges` is empty (an empty set conforms to a
    /// set of any element type).
    pub(crate) privileges_empty: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ResourceShape {
    Workspace,
    Account,
    Caller,
    Catalog,
    Schema,
    Table,
}

/// The request shapes the schema has accepted, so that a request of a known shape skips
/// Cedar's request validation (about a tenth of an uncached decision). A shape not yet seen is
/// validated in full, and one the schema rejects is validated every time, so the error names
/// this request's values exactly as before.
#[derive(Debug)]
pub(crate) struct ConformingShapes {
    /// Off when the schema has entity types whose ids are checked (enumerations) or that it
    /// does not define (external): there, conformance depends on values, not shapes.
    enabled: bool,
    known: parking_lot::RwLock<HashSet<Shape>>,
}

impl ConformingShapes {
    fn new(schema: &Schema) -> Self {
        let core: &cedar_policy_core::validator::ValidatorSchema = schema.as_ref();
        Self {
            enabled: core
                .entity_types()
                .all(|t| matches!(t.kind, ValidatorEntityTypeKind::Standard(_))),
            known: parking_lot::RwLock::new(HashSet::new()),
        }
    }

    pub(crate) fn request(
        &self,
        shape: Shape,
        (principal, action, resource): (EntityUid, EntityUid, EntityUid),
        context: Context,
        schema: &Schema,
    ) -> Result<Request, String> {
        if self.enabled && self.known.read().contains(&shape) {
            return Request::new(principal, action, resource, context, None).map_err(|e| chain(&e));
        }
        let request = checked_request(principal, action, resource, context, schema)?;
        if self.enabled {
            self.known.write().insert(shape);
        }
        Ok(request)
    }
}

/// `Request::new` against the schema, with the façade's message.
pub(crate) fn checked_request(
    principal: EntityUid,
    action: EntityUid,
    resource: EntityUid,
    context: Context,
    schema: &Schema,
) -> Result<Request, String> {
    Request::new(principal, action, resource, context, Some(schema))
        .map_err(|e| format!("request does not conform to the schema: {}", chain(&e)))
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
            .enumerate()
            .map(|(index, a)| {
                let action = ActionEntity {
                    uid: a.uid(),
                    entity: a.clone(),
                    shared: Arc::new(a.as_ref().clone()),
                    index,
                };
                (a.uid().id().unescaped().to_owned(), action)
            })
            .collect();
        let constructors = Constructors::new()?;
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
            constructors,
            shapes: ConformingShapes::new(schema),
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
            let built = entities(self, &sample)?;
            // Requests leave these out of the store (see `entities`), which is only right
            // while the schema gives them no required attributes; this checks it does not.
            let left_out = [&built.account, &self.workspace_admin, &self.account_admin]
                .map(|uid| Entity::new_no_attrs(uid.clone(), HashSet::new()));
            entity_store::checked(&built.entities, left_out, Some(schema)).map_err(|e| {
                format!("the schema does not describe the entities the gateway builds: {e}")
            })?;
        }
        Ok(())
    }
}

fn uid(ty: &EntityTypeName, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(id))
}

/// Builds the Cedar request and entity set the way the façade first did, every check Cedar's
/// own: the request validated against the schema, the closure of the hierarchy computed by
/// Cedar. [`build`] must give exactly this; it is the oracle the differential tests use.
///
/// Every failure is a message for `Decision::errors`: the caller denies, never panics.
pub(crate) fn build_checked(
    vocab: &Vocabulary,
    schema: &Schema,
    req: &AuthzRequest,
) -> Result<(Request, Entities), String> {
    let action = vocab.action(&req.action)?;
    let built = entities(vocab, req)?;
    let resource = resource_of(req, &built)?;
    let context = context::checked(context_fields(req, built.workspace, built.account))?;
    let request = checked_request(
        built.principal,
        action.uid.clone(),
        resource,
        context,
        schema,
    )?;
    // `action in Action::"SelfService"` reads the request action's ancestors from the store;
    // no policy can read anything else about actions, so that one entity is enough. The other
    // entities were checked against the schema once, in `Vocabulary::self_check`: checking
    // them (and adding every action) per request made a decision about 40% slower.
    let entities = entity_store::checked(&built.entities, [action.entity.clone()], None)?;
    Ok((request, entities))
}

/// Builds the Cedar request and entity set for a decision: what [`build_checked`] builds,
/// without the work whose outcome is already known (the validation of a request of a shape
/// the schema accepted, Cedar's closure of a hierarchy the façade built acyclic).
pub(crate) fn build(
    vocab: &Vocabulary,
    schema: &Schema,
    req: &AuthzRequest,
) -> Result<(Request, Entities), String> {
    let action = vocab.action(&req.action)?;
    let built = entities(vocab, req)?;
    let resource = resource_of(req, &built)?;
    let shape = Shape {
        action: action.index,
        principal: req.principal.kind,
        resource: match req.resource {
            ResourceInput::Workspace => ResourceShape::Workspace,
            ResourceInput::Account => ResourceShape::Account,
            ResourceInput::Caller => ResourceShape::Caller,
        },
        workspace: built.workspace.is_some(),
        token: req.token_id.is_some(),
        privileges_empty: None,
    };
    let fields = context_fields(req, built.workspace, built.account);
    let context = context::direct(&vocab.constructors, fields)?;
    let request = vocab.shapes.request(
        shape,
        (built.principal, action.uid.clone(), resource),
        context,
        schema,
    )?;
    let entities = entity_store::fast(built.entities, &action.entity, &action.shared)?;
    Ok((request, entities))
}

impl Vocabulary {
    pub(crate) fn action(&self, name: &str) -> Result<&ActionEntity, String> {
        self.actions
            .get(name)
            .ok_or_else(|| format!("unknown action `{name}`"))
    }
}

fn resource_of(req: &AuthzRequest, built: &Built) -> Result<EntityUid, String> {
    match req.resource {
        ResourceInput::Workspace => built.workspace.clone().ok_or_else(|| {
            format!(
                "action `{}` acts on the workspace but the request addresses none",
                req.action
            )
        }),
        ResourceInput::Account => Ok(built.account.clone()),
        ResourceInput::Caller => Ok(built.principal.clone()),
    }
}

impl ActionEntity {
    pub(crate) fn index(&self) -> usize {
        self.index
    }
}

/// The context `RequestContext` in the schema describes; `Request::new` type-checks it.
pub(crate) fn context_fields(
    req: &AuthzRequest,
    workspace: Option<EntityUid>,
    account: EntityUid,
) -> Vec<(&'static str, Field)> {
    let client_ip = match req.client_ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    let mut fields = Vec::with_capacity(7);
    fields.push(("clientIp", Field::Ip(client_ip.to_string())));
    if let Some(ws) = workspace {
        fields.push(("workspace", Field::Entity(ws)));
    }
    fields.push(("account", Field::Entity(account)));
    fields.push(("authMethod", Field::String(req.auth_method.clone())));
    if let Some(token) = &req.token_id {
        fields.push(("tokenId", Field::String(token.clone())));
    }
    fields.push(("requestTime", Field::Long(req.request_time_unix)));
    fields
}

/// The non-action entities of one request, and the uids the request refers to.
pub(crate) struct Built {
    pub(crate) entities: Vec<EntitySpec>,
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
            entities.push(
                EntitySpec::new(ws.clone(), vec![account.clone()])
                    .with("name", AttrValue::String(name.clone())),
            );
            Some(ws)
        }
        None => None,
    };

    let principal = principal_entities(vocab, &req.principal, &mut entities);
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
    entities: &mut Vec<EntitySpec>,
) -> EntityUid {
    let ty = match p.kind {
        PrincipalKind::Anonymous => {
            // Anonymous callers have no groups or roles whatever the input says.
            entities.push(EntitySpec::new(vocab.anonymous.clone(), Vec::new()));
            return vocab.anonymous.clone();
        }
        PrincipalKind::User => &vocab.user,
        PrincipalKind::ServicePrincipal => &vocab.service_principal,
    };
    let me = uid(ty, &p.id);
    let mut parents = Vec::with_capacity(p.groups.len() + 3);
    // A repeated group id would make a duplicate entity, which cedar rejects: the first of
    // each id is kept (the sort is stable).
    let mut groups: Vec<&(String, String)> = p.groups.iter().collect();
    groups.sort_by(|a, b| a.0.cmp(&b.0));
    groups.dedup_by(|a, b| a.0 == b.0);
    for (id, display_name) in groups {
        let group = uid(&vocab.group, id);
        parents.push(group.clone());
        entities.push(
            EntitySpec::new(group, Vec::new())
                .with("displayName", AttrValue::String(display_name.clone())),
        );
    }
    for (held, role) in [
        (p.workspace_admin, &vocab.workspace_admin),
        (p.account_admin, &vocab.account_admin),
    ] {
        if held {
            parents.push(role.clone());
        }
    }
    if let Some(ws) = p.member_of_workspace {
        parents.push(uid(&vocab.workspace, &ws.to_string()));
    }
    entities.push(
        EntitySpec::new(me.clone(), parents)
            .with("userName", AttrValue::String(p.user_name.clone()))
            .with("active", AttrValue::Bool(p.active)),
    );
    me
}
